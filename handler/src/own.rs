//! caguard's own writes, by tenant, object id and when each was sent and
//! answered, kept in the store so the audit log's records of them are recognised
//! as caguard's ([`crate::audit::Own`]) whatever identity they were made as, and
//! CIPP's edits under the same app or service account are not.

use crate::apply::TenantResult;
use crate::apply::write::Span;
use crate::store::Store;
use serde_json::json;

/// The store kind, one per tenant (`own-write-{tenant}`, so a reconcile reads only
/// its own tenant's records): key the object id, value `{"spans": [[sent, answered], …]}`.
pub fn kind(tenant: &str) -> String {
    format!("own-write-{}", tenant.to_ascii_lowercase())
}
/// Writes remembered per object, and for how long.
const KEEP: usize = 20;
const KEEP_DAYS: i64 = 7;

fn key(object: &str) -> String {
    object.to_ascii_lowercase()
}

fn spans_of(v: &serde_json::Value) -> Vec<Span> {
    let t = |x: &serde_json::Value| {
        x.as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()).map(|d| d.to_utc())
    };
    v["spans"].as_array().map(|a| a.iter().filter_map(|p| Some((t(&p[0])?, t(&p[1])?))).collect()).unwrap_or_default()
}

/// Records the writes a result made (each object's send and answer times).
pub async fn record(store: &dyn Store, result: &TenantResult) {
    if result.spans.is_empty() {
        return;
    }
    let now = chrono::Utc::now();
    let kind = kind(&result.tenant_id);
    let existing = store.records(&kind).await.unwrap_or_default();
    let mut rows: Vec<(String, serde_json::Value)> = Vec::new();
    for (id, span) in result.spans.iter().filter(|(id, _)| !id.is_empty()) {
        let k = key(id);
        let mut spans = match rows.iter().find(|(kk, _)| *kk == k) {
            Some((_, v)) => spans_of(v),
            None => existing.iter().find(|(kk, _)| *kk == k).map(|(_, v)| spans_of(v)).unwrap_or_default(),
        };
        spans.retain(|(_, done)| now - *done < chrono::Duration::days(KEEP_DAYS));
        spans.push(*span);
        let skip = spans.len().saturating_sub(KEEP);
        let list: Vec<_> = spans.iter().skip(skip).map(|(a, b)| json!([a.to_rfc3339(), b.to_rfc3339()])).collect();
        rows.retain(|(kk, _)| *kk != k);
        rows.push((k, json!({ "spans": list })));
    }
    if let Err(e) = store.put_records(&kind, rows).await {
        let tenant = &result.tenant_id;
        tracing::warn!(%tenant, "caguard's own writes could not be recorded: {e}; the audit log may show them as CIPP's");
    }
}

/// When caguard wrote `object` in `tenant` (empty when never, or not within a week).
pub async fn writes(store: &dyn Store, tenant: &str, object: &str) -> Vec<Span> {
    let k = key(object);
    let all = store.records(&kind(tenant)).await.unwrap_or_default();
    all.iter().find(|(kk, _)| *kk == k).map(|(_, v)| spans_of(v)).unwrap_or_default()
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
        user: Some(config.cipp_service_account().account.clone()),
        writes: Some(writes(store, tenant, object).await),
    }
}
