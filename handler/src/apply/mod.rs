//! Apply: executes a tenant's plan through the Graph client.
//!
//! Only `enforce` actions are written, in plan order (locations before the
//! policy that uses them). A block policy is re-checked for lockout safety
//! just before it is written. The first failed write stops that tenant.

use crate::config::{Config, ControlMode};
use crate::graph::GraphClient;
use crate::model::{ConditionalAccessPolicy, NamedLocation};
use crate::observe::{LOCATIONS, POLICIES};
use crate::plan::{Action, Block, Observed, Op, TenantPlan, merge_patch, safety, to_value};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// How one tenant ended. Every tenant ends with exactly one.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "camelCase")]
pub enum Outcome {
    /// Nothing to do.
    Compliant,
    /// Every planned write succeeded.
    Fixed,
    Failed(String),
    Held(String),
    Skipped(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Compliant => "compliant",
            Outcome::Fixed => "fixed",
            Outcome::Failed(_) => "failed",
            Outcome::Held(_) => "held",
            Outcome::Skipped(_) => "skipped",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Failed(r) | Outcome::Held(r) | Outcome::Skipped(r) => Some(r),
            _ => None,
        }
    }
}

/// A tenant's result: its outcome and the writes made.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantResult {
    pub tenant_id: String,
    pub tenant_name: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub written: usize,
}

/// The outcome a plan has without applying it.
pub fn outcome_without_apply(plan: &TenantPlan) -> Option<Outcome> {
    match &plan.block {
        Some(Block::Skip(r)) => return Some(Outcome::Skipped(r.clone())),
        Some(Block::Hold(r)) => return Some(Outcome::Held(r.clone())),
        None => {}
    }
    if plan.actions.is_empty() {
        return Some(Outcome::Compliant);
    }
    if plan.enforced().next().is_none() {
        return Some(Outcome::Skipped(format!(
            "report mode: {} deviation(s) reported, not enforced",
            plan.actions.len()
        )));
    }
    None
}

/// Applies one tenant's plan.
pub async fn apply_tenant(
    client: &GraphClient,
    config: &Config,
    plan: &TenantPlan,
    observed: &Observed,
) -> TenantResult {
    let result = |outcome, written| TenantResult {
        tenant_id: plan.tenant_id.clone(),
        tenant_name: plan.tenant_name.clone(),
        outcome,
        written,
    };
    if let Some(o) = outcome_without_apply(plan) {
        return result(o, 0);
    }
    let mut location_ids: BTreeMap<String, String> = BTreeMap::new();
    let mut written = 0;
    for action in plan.actions.iter().filter(|a| a.mode == ControlMode::Enforce) {
        let body = resolve_locations(&action.body, &location_ids);
        if let Err(e) = recheck(config, observed, action, &body) {
            tracing::error!(tenant = %plan.tenant_id, target = %action.target, "lockout safety stopped a write: {e}");
            return result(
                Outcome::Held(format!("lockout safety stopped the write to \"{}\": {e}", action.target)),
                written,
            );
        }
        let tenant = &plan.tenant_id;
        let sent = match &action.op {
            Op::CreateLocation => client.post::<_, NamedLocation>(tenant, LOCATIONS, &body).await.map(|l| {
                location_ids.insert(format!("location:{}", action.target), l.id().to_string());
            }),
            Op::UpdateLocation { id } => client.patch(tenant, &format!("{LOCATIONS}/{id}"), &body).await,
            Op::CreatePolicy => client.post::<_, ConditionalAccessPolicy>(tenant, POLICIES, &body).await.map(|_| ()),
            Op::UpdatePolicy { id } => client.patch(tenant, &format!("{POLICIES}/{id}"), &body).await,
        };
        match sent {
            Ok(()) => written += 1,
            Err(e) => {
                return result(Outcome::Failed(format!("{} \"{}\": {e}", action.control, action.target)), written);
            }
        }
    }
    result(Outcome::Fixed, written)
}

/// Replaces `location:<name>` placeholders with the ids of locations just created.
fn resolve_locations(body: &Value, ids: &BTreeMap<String, String>) -> Value {
    match body {
        Value::String(s) => ids.get(s).map_or_else(|| body.clone(), |id| Value::String(id.clone())),
        Value::Array(a) => Value::Array(a.iter().map(|v| resolve_locations(v, ids)).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), resolve_locations(v, ids))).collect()),
        other => other.clone(),
    }
}

/// Lockout safety, re-checked on the policy as it will stand after this write.
fn recheck(config: &Config, observed: &Observed, action: &Action, body: &Value) -> Result<(), String> {
    if !action.op.is_policy() {
        return Ok(());
    }
    let current = match &action.op {
        Op::UpdatePolicy { id } => observed.policies.iter().find(|p| p.id() == id).map(to_value).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    let mut after = if current.is_null() { Value::Object(Default::default()) } else { current };
    merge_patch(&mut after, body);
    // Only the technician block policy can lock anyone out; other writes only add exclusions.
    if action.control != crate::config::Control::A2 || !safety::is_block(&after) {
        return Ok(());
    }
    if let Some(s) = after.pointer("/conditions/locations/excludeLocations").and_then(Value::as_array)
        && s.iter().any(|v| v.as_str().is_some_and(|v| v.starts_with("location:")))
    {
        return Err("a trusted location it needs was not created".into());
    }
    safety::check_block_policy(config, observed, &after)
}
