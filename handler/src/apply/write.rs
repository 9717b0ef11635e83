//! One write, made safe against Graph's eventual consistency.
//!
//! - A policy PATCH is preceded by a fresh GET of that policy, and the planner
//!   runs again on the fresh copy: what someone changed since the sweep observed
//!   the tenant is kept, and a write that is no longer needed is not made.
//! - A policy that references a named location created a moment ago is retried
//!   while Graph answers 1040 ("NamedLocation … does not exist"), as CIPP does
//!   since KelvinTegelaar/CIPP#3932.
//! - Every write is read back until its change is visible (a read right after a
//!   write can return the old object; the Terraform provider likewise waits for
//!   consistent reads). One that never shows is reported as a failure.
//!
//! All waits follow `GraphConfig::consistency`: bounded, with backoff.

use crate::config::{Config, Control};
use crate::graph::{GraphClient, GraphError};
use crate::model::{ConditionalAccessPolicy, NamedLocation};
use crate::observe::{self, LOCATIONS, POLICIES};
use crate::plan::{self, Action, Observed, Op, TenantPlan, safety, same, to_value};
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;

pub(super) struct Context<'a> {
    pub client: &'a GraphClient,
    pub config: &'a Config,
    pub plan: &'a TenantPlan,
    pub observed: &'a Observed,
    /// Placeholders of objects created earlier in this apply → their ids.
    pub created: &'a BTreeMap<String, String>,
}

/// When a write was sent and answered: the audit record of it falls inside.
pub type Span = (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>);

pub(super) enum Done {
    /// Written and visible; the id when it was a create, and when it was sent.
    Written(Option<String>, Span),
    /// The fresh copy needed no write any more.
    Unneeded,
}

pub(super) enum Stop {
    /// A safety rule refused the write.
    Held(String),
    Failed(String),
}

fn failed(e: GraphError) -> Stop {
    Stop::Failed(e.to_string())
}

pub(super) async fn one(ctx: &Context<'_>, action: &Action) -> Result<Done, Stop> {
    match &action.op {
        Op::CreateLocation => create_location(ctx, action).await,
        Op::UpdateLocation { id } => update_location(ctx, action, id).await,
        Op::CreatePolicy => create_policy(ctx, action).await,
        Op::UpdatePolicy { id } => update_policy(ctx, action, id).await,
    }
}

async fn create_location(ctx: &Context<'_>, action: &Action) -> Result<Done, Stop> {
    let (client, tenant) = (ctx.client, ctx.plan.tenant_id.as_str());
    let sent = chrono::Utc::now();
    let loc: NamedLocation = client.post(tenant, LOCATIONS, &action.body).await.map_err(failed)?;
    let span = (sent, chrono::Utc::now());
    let id = loc.id().to_string();
    let id_ref = id.as_str();
    eventually(ctx, &format!("the new location \"{}\"", action.target), move || async move {
        Ok(observe::location(client, tenant, id_ref).await?.is_some())
    })
    .await?;
    Ok(Done::Written(Some(id), span))
}

async fn update_location(ctx: &Context<'_>, action: &Action, id: &str) -> Result<Done, Stop> {
    let (client, tenant) = (ctx.client, ctx.plan.tenant_id.as_str());
    let sent = chrono::Utc::now();
    client.patch(tenant, &format!("{LOCATIONS}/{id}"), &action.body).await.map_err(failed)?;
    let span = (sent, chrono::Utc::now());
    let body = &action.body;
    eventually(ctx, &format!("the change to \"{}\"", action.target), move || async move {
        Ok(observe::location(client, tenant, id).await?.is_some_and(|l| contains(&to_value(&l), body)))
    })
    .await?;
    Ok(Done::Written(None, span))
}

async fn create_policy(ctx: &Context<'_>, action: &Action) -> Result<Done, Stop> {
    safe(ctx, ctx.observed, action)?;
    let (client, tenant) = (ctx.client, ctx.plan.tenant_id.as_str());
    let body = resolve_locations(&action.body, ctx.created);
    let body_ref = &body;
    let sent = chrono::Utc::now();
    let beta = crate::beta::writes_beta(&body);
    let p: ConditionalAccessPolicy = replicated(ctx, move || async move {
        if beta {
            client.post_beta(tenant, POLICIES, body_ref).await
        } else {
            client.post(tenant, POLICIES, body_ref).await
        }
    })
    .await?;
    let span = (sent, chrono::Utc::now());
    let id = p.id().to_string();
    visible(ctx, &id, &action.target, &body).await?;
    Ok(Done::Written(Some(id), span))
}

async fn update_policy(ctx: &Context<'_>, action: &Action, id: &str) -> Result<Done, Stop> {
    let (client, tenant) = (ctx.client, ctx.plan.tenant_id.as_str());
    let fresh = read_policy(ctx, action.control, id)
        .await
        .map_err(failed)?
        .ok_or_else(|| Stop::Failed("the policy was deleted after caguard read it".into()))?;
    let Some((observed, action)) = replan(ctx, action, fresh)? else { return Ok(Done::Unneeded) };
    safe(ctx, &observed, &action)?;
    let body = resolve_locations(&action.body, ctx.created);
    let (path, body_ref) = (format!("{POLICIES}/{id}"), &body);
    let path_ref = path.as_str();
    let sent = chrono::Utc::now();
    let beta = crate::beta::writes_beta(&body);
    replicated(ctx, move || async move {
        if beta {
            client.patch_beta(tenant, path_ref, body_ref).await
        } else {
            client.patch(tenant, path_ref, body_ref).await
        }
    })
    .await?;
    let span = (sent, chrono::Utc::now());
    visible(ctx, id, &action.target, &body).await?;
    Ok(Done::Written(None, span))
}

/// Plans the tenant again with `fresh` in place of the policy it replaces, and
/// returns the same write as it stands now (`None`: no longer needed).
fn replan(
    ctx: &Context<'_>,
    action: &Action,
    fresh: ConditionalAccessPolicy,
) -> Result<Option<(Observed, Action)>, Stop> {
    let mut o = ctx.observed.clone();
    match o.policies.iter_mut().find(|p| p.id().eq_ignore_ascii_case(fresh.id())) {
        Some(p) => *p = fresh,
        None => o.policies.push(fresh),
    }
    let again = if ctx.plan.msp { plan::plan_msp(ctx.config, &o) } else { plan::plan_customer(ctx.config, &o) };
    if let Some(plan::Block::Hold(why)) = &again.block {
        return Err(Stop::Held(why.clone()));
    }
    let same_write = again.enforced().find(|a| a.control == action.control && a.op == action.op).cloned();
    Ok(same_write.map(|a| (o, a)))
}

/// Lockout safety on the block policy as it will stand after this write.
fn safe(ctx: &Context<'_>, observed: &Observed, action: &Action) -> Result<(), Stop> {
    let current = match &action.op {
        Op::UpdatePolicy { id } => observed.policies.iter().find(|p| p.id() == id).map(to_value),
        _ => None,
    };
    let after = crate::plan::resulting(&current.unwrap_or(Value::Null), &action.body);
    if action.control != Control::A2 || !safety::is_block(&after) {
        return Ok(()); // only a technician block policy can lock anyone out
    }
    let name = after["displayName"].as_str().unwrap_or(&action.target);
    let Some(lockdown) = ctx.config.lockdowns.iter().find(|l| l.name.eq_ignore_ascii_case(name)) else {
        return Err(Stop::Held(format!("\"{name}\" blocks but is not a configured lockdown policy")));
    };
    safety::check_block_policy(ctx.config, lockdown, observed, &after, &ctx.plan.actions).map_err(Stop::Held)
}

/// A policy as caguard planned it: S4's from v1.0 with its beta session property laid over.
async fn read_policy(
    ctx: &Context<'_>,
    control: Control,
    id: &str,
) -> Result<Option<ConditionalAccessPolicy>, GraphError> {
    let (client, tenant) = (ctx.client, ctx.plan.tenant_id.as_str());
    if control == Control::S4 && crate::beta::needed(ctx.config) {
        crate::beta::policy(client, tenant, id).await
    } else {
        observe::policy(client, tenant, id).await
    }
}

/// Reads the policy back until it shows `body` (from beta too when the body set a beta property).
async fn visible(ctx: &Context<'_>, id: &str, name: &str, body: &Value) -> Result<(), Stop> {
    let (client, tenant) = (ctx.client, ctx.plan.tenant_id.as_str());
    let beta = crate::beta::writes_beta(body);
    eventually(ctx, &format!("the write to \"{name}\""), move || async move {
        let p = if beta {
            crate::beta::policy(client, tenant, id).await?
        } else {
            observe::policy(client, tenant, id).await?
        };
        Ok(p.is_some_and(|p| contains(&to_value(&p), body)))
    })
    .await
}

/// Sends, retrying while Graph has not replicated a named location the body references.
async fn replicated<T, F, Fut>(ctx: &Context<'_>, mut send: F) -> Result<T, Stop>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, GraphError>>,
{
    let policy = ctx.client.consistency();
    let mut attempt = 0;
    loop {
        match send().await {
            Err(e) if e.is_unreplicated_location() && attempt < policy.max_retries => {
                tracing::info!(tenant = %ctx.plan.tenant_id, attempt, "named location not replicated yet; retrying");
                tokio::time::sleep(policy.backoff(attempt)).await;
                attempt += 1;
            }
            other => return other.map_err(failed),
        }
    }
}

/// Looks until `check` is true, bounded; a change that never shows is a failure.
async fn eventually<F, Fut>(ctx: &Context<'_>, what: &str, mut check: F) -> Result<(), Stop>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, GraphError>>,
{
    let policy = ctx.client.consistency();
    for attempt in 0..=policy.max_retries {
        if check().await.map_err(failed)? {
            return Ok(());
        }
        if attempt < policy.max_retries {
            tokio::time::sleep(policy.backoff(attempt)).await;
        }
    }
    Err(Stop::Failed(format!(
        "{what} was accepted but never became visible in Graph's reads (waited {} times); check it by hand",
        policy.max_retries + 1
    )))
}

/// True when every property `body` sets has that value in `current`: objects
/// property by property, arrays as sets, strings ignoring case (flag lists as sets).
pub fn contains(current: &Value, body: &Value) -> bool {
    match (current, body) {
        (Value::Object(c), Value::Object(b)) => b.iter().all(|(k, v)| contains(c.get(k).unwrap_or(&Value::Null), v)),
        (Value::Null, Value::Object(b)) => b.values().all(|v| contains(&Value::Null, v)),
        (Value::String(c), Value::String(b)) => flags(c) == flags(b),
        _ => same(Some(current), body),
    }
}

fn flags(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.split(',').map(|f| f.trim().to_ascii_lowercase()).collect();
    v.sort();
    v
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

#[cfg(test)]
mod tests {
    use super::contains;
    use serde_json::json;

    #[test]
    fn contains_reads_arrays_as_sets_and_ignores_what_the_body_does_not_set() {
        let current = json!({"conditions": {"users": {"excludeUsers": ["B", "a"], "includeUsers": ["All"]}},
                             "state": "enabled"});
        assert!(contains(&current, &json!({"conditions": {"users": {"excludeUsers": ["a", "b"]}}})));
        assert!(!contains(&current, &json!({"conditions": {"users": {"excludeUsers": ["a"]}}})));
        assert!(contains(
            &json!({"t": "internalGuest,serviceProvider"}),
            &json!({"t": "serviceProvider,internalGuest"})
        ));
        assert!(contains(&json!({}), &json!({"sessionControls": {"value": null}})));
        assert!(!contains(&json!({"state": "disabled"}), &json!({"state": "enabled"})));
    }
}
