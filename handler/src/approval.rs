//! Held plans a person can see and approve (#13). A plan held by the safety
//! limits (too many policy writes in a tenant, too many tenants at once: a first
//! rollout, typically) is stored with its actions and their diffs. Approving it
//! (`POST /api/plans/{id}/approve`) lets the next reconcile apply exactly that
//! plan: the plan's id is a digest of what it would write, so if the tenant has
//! changed since, the new plan has another id, the approval does not apply, and
//! the new plan is held for a new look. Lockout-safety holds are never
//! approvable here: they need the config or the tenant fixed.

use crate::plan::TenantPlan;
use crate::store::Store;
use serde::{Deserialize, Serialize};

/// Store record kinds.
pub const HELD: &str = "held-plan";
pub const APPROVED: &str = "approved-plan";

/// A held plan as stored and shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldPlan {
    pub id: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub reason: String,
    pub at: String,
    /// Per action: its headline, then its diff lines.
    pub actions: Vec<HeldAction>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldAction {
    pub headline: String,
    pub diff: Vec<String>,
}

/// The id of a plan: a digest of the tenant and exactly what it would write.
pub fn plan_id(plan: &TenantPlan) -> String {
    let writes: Vec<_> = plan.enforced().map(|a| (&a.control, &a.op, &a.body)).collect();
    let text = format!("{}|{}", plan.tenant_id.to_ascii_lowercase(), serde_json::to_string(&writes).expect("json"));
    format!("plan-{:016x}", crate::alert::fnv1a(&text))
}

fn key(tenant: &str) -> String {
    tenant.to_ascii_lowercase()
}

/// Stores a plan the limits held (replacing the tenant's earlier one).
pub async fn hold(store: &dyn Store, plan: &TenantPlan, reason: &str) {
    let held = HeldPlan {
        id: plan_id(plan),
        tenant_id: plan.tenant_id.clone(),
        tenant_name: plan.tenant_name.clone(),
        reason: reason.to_string(),
        at: chrono::Utc::now().to_rfc3339(),
        actions: plan
            .enforced()
            .map(|a| HeldAction {
                headline: format!("{} {} \"{}\": {}", a.control, a.op.verb(), a.target, a.reason),
                diff: crate::report::diff(&a.before, &a.body, &plan.labels),
            })
            .collect(),
    };
    if let Err(e) = store.put_record(HELD, &key(&plan.tenant_id), serde_json::to_value(&held).expect("json")).await {
        tracing::error!(tenant = %plan.tenant_id, "could not store the held plan for approval: {e}");
    }
}

/// Every held plan.
pub async fn held(store: &dyn Store) -> Result<Vec<HeldPlan>, String> {
    let rows = store.records(HELD).await.map_err(|e| e.to_string())?;
    Ok(rows.into_iter().filter_map(|(_, v)| serde_json::from_value(v).ok()).collect())
}

/// Approves the held plan `id`; `Err` names why not (no such plan).
pub async fn approve(store: &dyn Store, id: &str, by: &str) -> Result<HeldPlan, String> {
    let plan = held(store).await?.into_iter().find(|p| p.id == id).ok_or_else(|| {
        format!(
            "no held plan '{}' (the tenant may have changed and been re-planned: list /api/plans)",
            crate::logging::bounded(id)
        )
    })?;
    let row = serde_json::json!({"id": plan.id, "by": by, "at": chrono::Utc::now().to_rfc3339()});
    store.put_record(APPROVED, &key(&plan.tenant_id), row).await.map_err(|e| e.to_string())?;
    Ok(plan)
}

/// Whether `plan` (as planned now) is the one a person approved.
pub async fn is_approved(store: &dyn Store, plan: &TenantPlan) -> bool {
    let Ok(rows) = store.records(APPROVED).await else { return false };
    let id = plan_id(plan);
    rows.iter().any(|(k, v)| *k == key(&plan.tenant_id) && v["id"] == id.as_str())
}

/// After an approved plan was applied: forget it and its approval.
pub async fn done(store: &dyn Store, tenant: &str) {
    let _ = store.delete_record(APPROVED, &key(tenant)).await;
    let _ = store.delete_record(HELD, &key(tenant)).await;
}
