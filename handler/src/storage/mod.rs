//! A small typed client for Azure Table Storage (no maintained crate exists).
//!
//! Used for CIPP's own tables (`ApiClients`, `AccessIPRanges`) and for caguard's
//! ledger. Authenticates with a connection string's account key (SharedKeyLite;
//! Azurite locally) or with an Entra token from the managed identity in Azure.
//! REST reference: <https://learn.microsoft.com/rest/api/storageservices/table-service-rest-api>.

mod queue;
mod table;

pub use queue::QueueClient;
pub use table::{Auth, DEV_ACCOUNT, DEV_KEY, Entity, TableClient, TableError};
