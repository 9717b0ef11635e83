//! caguard's own writes, by tenant, object id and time, kept in the store so the
//! audit log's records of them are recognised as caguard's ([`crate::audit::Own`])
//! whatever identity they were made as, and CIPP's edits under the same app are not.

use crate::apply::TenantResult;
use crate::plan::{Op, TenantPlan};
use crate::store::Store;
use serde_json::json;

/// The store kind: key `{tenant}|{object id}`, value `{"at": [RFC 3339, …]}`.
pub const KIND: &str = "own-write";
/// Writes remembered per object, and for how long.
const KEEP: usize = 20;
const KEEP_DAYS: i64 = 7;

fn key(tenant: &str, object: &str) -> String {
    format!("{}|{}", tenant.to_ascii_lowercase(), object.to_ascii_lowercase())
}

/// The ids of the objects a result wrote: updated ones, and created ones by the id Graph gave.
pub fn written_ids(plan: &TenantPlan, result: &TenantResult) -> Vec<String> {
    let mut ids: Vec<String> = result
        .written_actions(plan)
        .filter_map(|a| match &a.op {
            Op::UpdatePolicy { id } | Op::UpdateLocation { id } => Some(id.clone()),
            _ => None,
        })
        .collect();
    ids.extend(result.created.values().cloned());
    ids.sort();
    ids.dedup();
    ids
}

/// Records that caguard wrote these objects now.
pub async fn record(store: &dyn Store, tenant: &str, ids: &[String]) {
    let now = chrono::Utc::now();
    let existing = store.records(KIND).await.unwrap_or_default();
    let mut rows = Vec::new();
    for id in ids {
        let k = key(tenant, id);
        let mut times = existing.iter().find(|(kk, _)| *kk == k).map(|(_, v)| times_of(v)).unwrap_or_default();
        times.retain(|t| now - *t < chrono::Duration::days(KEEP_DAYS));
        times.push(now);
        let skip = times.len().saturating_sub(KEEP);
        let at: Vec<String> = times.iter().skip(skip).map(|t| t.to_rfc3339()).collect();
        rows.push((k, json!({ "at": at })));
    }
    if let Err(e) = store.put_records(KIND, rows).await {
        tracing::warn!(
            tenant,
            "caguard's own writes could not be recorded: {e}; the audit log may show them as CIPP's"
        );
    }
}

fn times_of(v: &serde_json::Value) -> Vec<chrono::DateTime<chrono::Utc>> {
    v["at"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t.as_str()?).ok())
                .map(|t| t.to_utc())
                .collect()
        })
        .unwrap_or_default()
}

/// When caguard wrote `object` in `tenant` (empty when never, or not within a week).
pub async fn writes(store: &dyn Store, tenant: &str, object: &str) -> Vec<chrono::DateTime<chrono::Utc>> {
    let k = key(tenant, object);
    let all = store.records(KIND).await.unwrap_or_default();
    all.iter().find(|(kk, _)| *kk == k).map(|(_, v)| times_of(v)).unwrap_or_default()
}

/// caguard's identity and its writes to `object`, for [`crate::audit::who_changed`].
pub async fn identity(
    client: &crate::graph::GraphClient,
    config: &crate::config::Config,
    store: &dyn Store,
    tenant: &str,
    object: &str,
) -> crate::audit::Own {
    crate::audit::Own {
        app_id: client.app_id().await.unwrap_or_default(),
        user: Some(config.service_account.clone()),
        writes: Some(writes(store, tenant, object).await),
    }
}
