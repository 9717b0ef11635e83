//! What caguard owns in the MSP tenant, by object id: the trusted locations and
//! the policies it created (or adopted and said so). Kept in the store as
//! records of kind `owned`, so objects are found by id first and a rename is
//! drift rather than a reason to create a second one. Configured accounts are
//! recorded too (`user:<configured>`), so a UPN that comes to point at another
//! user is a hold ([`crate::plan::accounts`]).

use crate::apply::TenantResult;
use crate::plan::{Observed, TenantPlan};
use crate::store::Store;
use std::collections::BTreeMap;

/// Store record kind.
pub const KIND: &str = "owned";

/// The recorded ids: key (`A2`, `B1`, `A1:<site>`) → object id. A store that
/// cannot be read gives none, so caguard falls back to names and says so.
pub async fn load(store: &dyn Store) -> BTreeMap<String, String> {
    match store.records(KIND).await {
        Ok(rows) => rows
            .into_iter()
            .filter_map(|(k, v)| v.get("id").and_then(|i| i.as_str()).map(|i| (k, i.to_string())))
            .collect(),
        Err(e) => {
            tracing::warn!("could not read which objects caguard owns ({e}); finding them by name");
            BTreeMap::new()
        }
    }
}

/// Records the ids a plan relies on, with those of objects the apply created,
/// and each account's first resolution (its id and UPN). Placeholders whose
/// create failed are left out.
pub async fn record(store: &dyn Store, plan: &TenantPlan, result: &TenantResult, observed: &Observed) {
    let rows: Vec<(String, serde_json::Value)> = plan
        .owns
        .iter()
        .filter_map(|(key, v)| {
            let placeholder = v.starts_with("location:") || v.starts_with("policy:");
            let id = if placeholder { result.created.get(v)? } else { v };
            let mut row = serde_json::json!({"id": id});
            if placeholder {
                // Made by caguard, so `caguard uninstall` may delete it (adopted objects stay).
                row["created"] = serde_json::json!(true);
            }
            if let Some(upn) = observed.upns.get(&id.to_ascii_lowercase()) {
                row["userPrincipalName"] = serde_json::json!(upn);
            }
            (observed.owned.get(key) != Some(id)).then(|| (key.clone(), row))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    if let Err(e) = store.put_records(KIND, rows).await {
        tracing::error!("could not record which objects caguard owns: {e}");
    }
}
