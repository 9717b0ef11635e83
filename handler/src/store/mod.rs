//! The store: per-tenant last results and the sweep's change budget.
//!
//! One trait, so the CLI and demo can use an embedded file and the Functions
//! app a shared table store (Azure Table Storage arrives with the watch issue).

mod file;

pub use file::FileStore;

use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A tenant's last result, as `Status` reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    pub tenant_id: String,
    pub tenant_name: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub written: usize,
    /// RFC 3339.
    pub at: String,
    pub correlation_id: String,
}

#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

pub trait Store: Send + Sync {
    /// Records a tenant's last result (replacing the previous one).
    fn put_status(&self, status: TenantStatus) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Every tenant's last result.
    fn statuses(&self) -> BoxFuture<'_, Result<Vec<TenantStatus>, StoreError>>;
    /// Claims one of `limit` change slots of sweep `sweep` for `tenant`.
    /// True when the tenant already holds one or one was free: the
    /// "at most N% of tenants at once" rule, shared by every instance.
    fn claim_change(&self, sweep: &str, tenant: &str, limit: usize) -> BoxFuture<'_, Result<bool, StoreError>>;
    /// The watch's last fingerprint per tenant.
    fn fingerprints(&self) -> BoxFuture<'_, Result<std::collections::BTreeMap<String, String>, StoreError>>;
    /// Records fingerprints (merged into those already stored).
    fn put_fingerprints(&self, fps: std::collections::BTreeMap<String, String>) -> BoxFuture<'_, Result<(), StoreError>>;
}
