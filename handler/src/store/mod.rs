//! The store: per-tenant last results and the sweep's change budget.
//!
//! One trait, so the CLI and demo can use an embedded file and the Functions
//! app a shared table store (Azure Table Storage arrives with the watch issue).

mod file;
mod table;

pub use file::FileStore;
pub use table::TableStore;

use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The store the environment asks for: `CAGUARD_STORE_PATH` (a file), else the
/// function app's own storage account (`AzureWebJobsStorage` as a connection string,
/// or `AzureWebJobsStorage__accountName` with the managed identity), else a temp file.
pub fn from_env() -> Result<std::sync::Arc<dyn Store>, String> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if let Some(path) = get("CAGUARD_STORE_PATH") {
        return Ok(std::sync::Arc::new(FileStore::new(path)));
    }
    if let Some(cs) = get("AzureWebJobsStorage") {
        let client = crate::storage::TableClient::from_connection_string(&cs)
            .map_err(|e| format!("AzureWebJobsStorage: {e}"))?;
        return Ok(std::sync::Arc::new(TableStore::new(client, "")));
    }
    if let Some(account) = get("AzureWebJobsStorage__accountName") {
        let endpoint = format!("https://{account}.table.core.windows.net");
        let client = crate::storage::TableClient::new(
            &endpoint,
            crate::storage::Auth::Token(crate::secrets::azure_credential()?),
        );
        return Ok(std::sync::Arc::new(TableStore::new(client, "")));
    }
    Ok(std::sync::Arc::new(FileStore::new(std::env::temp_dir().join("caguard").join("store.json"))))
}

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

/// One deviation from desired state: what, where, who, and what caguard did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftRecord {
    pub tenant_id: String,
    pub tenant_name: String,
    /// A1, A2, B1, B2, C1, C2, D1, D2.
    pub control: String,
    pub object_id: String,
    pub object_name: String,
    /// The subtree before and after, as JSON.
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    /// From the audit log (`initiatedBy`), or "unknown".
    pub changed_by: String,
    pub changed_at: Option<String>,
    /// What caguard did: `restored`, `reported`, `held`, …
    pub action: String,
    pub result: String,
    pub detected_at: String,
    /// The reconcile that found it; with tenant, object and control it keys the record,
    /// so a retried reconcile writes the same record again rather than a second one.
    pub correlation_id: String,
}

impl DriftRecord {
    /// The record's identity: the same drift found by the same reconcile is one record.
    pub fn key(&self) -> String {
        use sha2::Digest;
        let d = sha2::Sha256::digest(format!(
            "{}|{}|{}|{}",
            self.correlation_id,
            self.tenant_id.to_ascii_lowercase(),
            self.object_id,
            self.control
        ));
        d.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

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
    fn put_fingerprints(
        &self,
        fps: std::collections::BTreeMap<String, String>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Records a drift; writing the same record (same key) again changes nothing.
    fn record_drift(&self, record: DriftRecord) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Drift records, newest first, for one tenant or all.
    fn drift_records(&self, tenant: Option<&str>) -> BoxFuture<'_, Result<Vec<DriftRecord>, StoreError>>;
    /// Counts one more alert for `key` in the window starting at `window`; returns the
    /// count in that window after this one (1: the first, so send it).
    fn count_alert(&self, key: &str, window: &str) -> BoxFuture<'_, Result<u32, StoreError>>;
    /// The count of a window, without counting.
    fn alert_count(&self, key: &str, window: &str) -> BoxFuture<'_, Result<u32, StoreError>>;
    /// Small keyed records of a kind (e.g. `subscription`): put replaces.
    fn put_record(&self, kind: &str, key: &str, value: serde_json::Value) -> BoxFuture<'_, Result<(), StoreError>>;
    fn records(&self, kind: &str) -> BoxFuture<'_, Result<Vec<(String, serde_json::Value)>, StoreError>>;
    fn delete_record(&self, kind: &str, key: &str) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Many records of one kind at once (the watch's tenant list holds thousands).
    fn put_records(
        &self,
        kind: &str,
        records: Vec<(String, serde_json::Value)>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    fn delete_records(&self, kind: &str, keys: Vec<String>) -> BoxFuture<'_, Result<(), StoreError>>;
}
