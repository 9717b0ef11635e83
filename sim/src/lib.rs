//! A simulated Microsoft Graph estate for caguard's tests, demo and benchmarks.
//!
//! It serves the Graph subset caguard uses (Conditional Access policies, named
//! locations, security defaults, GDAP, users and groups, audit logs,
//! subscriptions, `sendMail`, `$batch`) plus the Entra token endpoint, and
//! behaves the way Microsoft documents it:
//! - the CA endpoints allow 1 request/second per tenant and answer 429 *without* Retry-After;
//! - POST answers 201 with `id` and `createdDateTime`; PATCH answers 204 and keeps what it was not sent;
//! - bad enum values, short CIDR prefixes, over-long range lists and named-location
//!   PATCHes without `@odata.type` get 400 in Graph's error shape;
//! - every write adds a `directoryAudit` record saying who made it.
//!
//! Every request is journalled so tests can assert on traffic, and faults
//! (latency, error rate, 429 storms, token failures) can be set at start or at run time.

mod admin;
mod arm;
pub mod chat;
mod directory;
mod estate;
/// caguard's Conditional Access evaluator: the product crate owns it, and the
/// simulator compiles the same file for `conditionalAccess/evaluate`, so the
/// simulator and caguard can never evaluate differently.
#[path = "../../handler/src/whatif/eval.rs"]
#[allow(dead_code)]
mod eval;
mod filter;
mod gdap;
pub mod generate;
mod graph;
mod objects;
mod partner_center;
mod server;
mod signins;
mod state;
mod subscriptions;
mod token;
mod validate;

pub use estate::{App, CippSite, Estate, RefreshTokenSpec, TenantSpec};
pub use server::{SimHandle, SimOptions, start};
pub use signins::{Mfa, SignInSpec};
pub use state::{Actor, Faults, JournalEntry, TokenFailure};

/// The sample estate shipped with caguard: one MSP tenant and 24 customer
/// tenants with the mess real tenants have. `docs/estate-format.md` describes it.
pub const SAMPLE_ESTATE: &str = include_str!("../estates/sample.json");

/// Parses the embedded sample estate.
pub fn sample_estate() -> Estate {
    serde_json::from_str(SAMPLE_ESTATE).expect("the embedded sample estate is valid")
}
