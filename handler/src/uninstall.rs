//! Uninstall (#13): remove exactly what caguard added, and nothing else.
//!
//! Every write that adds an exclusion to a policy caguard does not own (B2, A4,
//! D1, D2) is recorded in the store as it lands (records of kind `added`): the
//! tenant, the policy, the users it added, or for D1 the guest exclusion as it
//! was before. The objects caguard created are recorded with `created` in its
//! `owned` records. `caguard uninstall` plans the inverse from those records and
//! what Graph holds now: each added user is taken out of `excludeUsers` (others'
//! additions stay); a D1 exclusion is put back as it was, unless someone changed
//! it since, when it is left alone and said so; the policies caguard created are
//! deleted, the block policy first, then the locations it referenced. Objects
//! caguard adopted are left in place, and so are the break-glass exclusions it
//! added to other policies (A4): taking them out could lock the emergency
//! accounts out, and caguard never does that. It is idempotent: a step already
//! undone is no step.

use crate::apply::TenantResult;
use crate::config::Control;
use crate::graph::GraphClient;
use crate::observe::{LOCATIONS, POLICIES};
use crate::plan::{Op, TenantPlan, strings};
use crate::store::Store;
use serde_json::{Value, json};

/// Store record kind of the exclusions caguard added.
pub const ADDED: &str = "added";

/// Records the exclusions a tenant's apply added (called after each apply).
pub async fn record_added(store: &dyn Store, plan: &TenantPlan, result: &TenantResult) {
    let rows: Vec<(String, Value)> = result
        .written_actions(plan)
        .filter(|a| matches!(a.control, Control::B2 | Control::A4 | Control::D1 | Control::D2))
        .filter_map(|a| {
            let Op::UpdatePolicy { id } = &a.op else { return None };
            let key = format!("{}-{}-{}", plan.tenant_id.to_ascii_lowercase(), id.to_ascii_lowercase(), a.control);
            let row = match a.control {
                Control::D1 => json!({
                    "tenant": plan.tenant_id, "policy": id, "control": "D1", "target": a.target,
                    "before": a.before.pointer("/conditions/users/excludeGuestsOrExternalUsers").cloned().unwrap_or(Value::Null),
                    "after": a.body.pointer("/conditions/users/excludeGuestsOrExternalUsers").cloned().unwrap_or(Value::Null),
                }),
                _ => {
                    let before = strings(&a.before, "/conditions/users/excludeUsers");
                    let added: Vec<String> = strings(&a.body, "/conditions/users/excludeUsers")
                        .into_iter()
                        .filter(|u| !before.iter().any(|b| b.eq_ignore_ascii_case(u)))
                        .collect();
                    json!({"tenant": plan.tenant_id, "policy": id, "control": a.control.to_string(), "target": a.target, "users": added})
                }
            };
            Some((key, row))
        })
        .collect();
    if !rows.is_empty()
        && let Err(e) = store.put_records(ADDED, rows).await
    {
        tracing::error!(tenant = %plan.tenant_id, "could not record the exclusions caguard added (uninstall will miss them): {e}");
    }
}

/// One step of an uninstall.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub tenant: String,
    pub target: String,
    /// `patch policy`, `delete policy` or `delete location`.
    pub action: String,
    pub path: String,
    /// The PATCH body (null for a delete).
    pub body: Value,
    pub reason: String,
    /// The store record this step undoes (`added` or `owned`), removed once done.
    #[serde(skip)]
    record: (String, String),
}

/// What an uninstall would do now, and the records it cannot act on (with why).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub left_alone: Vec<String>,
}

async fn current(client: &GraphClient, tenant: &str, path: &str) -> Result<Option<Value>, String> {
    match client.get::<Value>(tenant, path).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.status() == Some(404) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Plans the uninstall from the store's records and Graph's objects as they are now.
pub async fn plan(client: &GraphClient, config: &crate::config::Config, store: &dyn Store) -> Result<Plan, String> {
    let msp_tenant = config.msp_tenant_id.as_str();
    let mut out = Plan::default();
    // The break-glass accounts as caguard resolved them: their exclusions stay.
    let owned = crate::owned::load(store).await;
    let break_glass: Vec<String> = config
        .break_glass
        .iter()
        .filter_map(|b| owned.get(&crate::plan::accounts::account_key(b)))
        .map(|id| id.to_ascii_lowercase())
        .collect();
    for (key, r) in store.records(ADDED).await.map_err(|e| e.to_string())? {
        let (tenant, policy) = (r["tenant"].as_str().unwrap_or_default(), r["policy"].as_str().unwrap_or_default());
        let target = r["target"].as_str().unwrap_or_default().to_string();
        let path = format!("{POLICIES}/{policy}");
        let Some(now) = current(client, tenant, &path).await? else {
            out.left_alone.push(format!("\"{target}\" in {tenant}: the policy no longer exists"));
            continue;
        };
        let step = |body: Value, reason: String| Step {
            tenant: tenant.into(),
            target: target.clone(),
            action: "patch policy".into(),
            path: path.clone(),
            body,
            reason,
            record: (ADDED.into(), key.clone()),
        };
        if r["control"] == "D1" {
            let have = now.pointer("/conditions/users/excludeGuestsOrExternalUsers").cloned().unwrap_or(Value::Null);
            if have == r["before"] {
                continue; // already as it was
            }
            if have != r["after"] {
                out.left_alone.push(format!("\"{target}\" in {tenant}: its guest exclusion was changed after caguard's D1 write, so it is left as it is"));
                continue;
            }
            let body = json!({"conditions": {"users": {"excludeGuestsOrExternalUsers": r["before"]}}});
            out.steps.push(step(body, "D1: the guest exclusion as it was before caguard".into()));
            continue;
        }
        let (kept_bg, added): (Vec<String>, Vec<String>) =
            strings(&r, "/users").into_iter().partition(|u| break_glass.contains(&u.to_ascii_lowercase()));
        if !kept_bg.is_empty() {
            out.left_alone.push(format!(
                "\"{target}\" in {tenant}: the {} break-glass exclusion(s) caguard added stay (removing them could lock the emergency accounts out)",
                kept_bg.len()
            ));
        }
        let excl = strings(&now, "/conditions/users/excludeUsers");
        let kept: Vec<String> =
            excl.iter().filter(|u| !added.iter().any(|a| a.eq_ignore_ascii_case(u))).cloned().collect();
        if kept.len() != excl.len() {
            let control = r["control"].as_str().unwrap_or_default();
            let body = json!({"conditions": {"users": {"excludeUsers": kept}}});
            out.steps.push(step(
                body,
                format!("{control}: remove the {} account(s) caguard excluded", excl.len() - kept.len()),
            ));
        }
    }
    plan_owned(client, msp_tenant, store, &mut out).await?;
    Ok(out)
}

/// The objects caguard created, deleted policies first (the block policy before
/// the locations it references), adopted ones left in place.
async fn plan_owned(client: &GraphClient, msp: &str, store: &dyn Store, out: &mut Plan) -> Result<(), String> {
    let mut owned = store.records(crate::owned::KIND).await.map_err(|e| e.to_string())?;
    owned.retain(|(k, _)| !k.starts_with("user:"));
    // Block policies first (A2…), then the other policies, then the locations
    // (A1:<site>) the block policies reference.
    owned.sort_by_key(|(k, _)| match k.as_str() {
        k if k == "A2" || k.starts_with("A2:") => 0,
        k if k.starts_with("A1:") => 2,
        _ => 1,
    });
    for (key, r) in owned {
        let id = r["id"].as_str().unwrap_or_default();
        let (base, kind) = if key.starts_with("A1:") { (LOCATIONS, "location") } else { (POLICIES, "policy") };
        let path = format!("{base}/{id}");
        let Some(now) = current(client, msp, &path).await? else { continue };
        let name = now["displayName"].as_str().unwrap_or(id).to_string();
        if r["created"] != json!(true) {
            out.left_alone.push(format!("\"{name}\" ({key}): caguard adopted it, it did not create it"));
            continue;
        }
        out.steps.push(Step {
            tenant: msp.into(),
            target: name,
            action: format!("delete {kind}"),
            path,
            body: Value::Null,
            reason: format!("{key}: caguard created it"),
            record: (crate::owned::KIND.into(), key),
        });
    }
    Ok(())
}

/// Carries the steps out in order; a step that fails stops the ones after it in
/// the same tenant (a location is never deleted while the block policy may still
/// reference it). Returns the errors.
pub async fn apply(client: &GraphClient, store: &dyn Store, plan: &Plan) -> Vec<String> {
    let mut failed_tenants: Vec<String> = Vec::new();
    let mut errors = Vec::new();
    for s in &plan.steps {
        if failed_tenants.contains(&s.tenant) {
            errors.push(format!("{} \"{}\": not attempted after an earlier failure", s.action, s.target));
            continue;
        }
        let done = if s.body.is_null() {
            client.delete(&s.tenant, &s.path).await
        } else {
            client.patch(&s.tenant, &s.path, &s.body).await
        };
        match done {
            Ok(()) => {
                let _ = store.delete_record(&s.record.0, &s.record.1).await;
            }
            Err(e) => {
                failed_tenants.push(s.tenant.clone());
                errors.push(format!("{} \"{}\": {e}", s.action, s.target));
            }
        }
    }
    errors
}
