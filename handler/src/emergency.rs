//! Emergency override (#13). During an incident an admin may sign in with a
//! break-glass account (or as a member of `emergency.operators_group`) and turn
//! caguard's block policy off, or take an exclusion out. caguard must not undo
//! that a minute later. Before a reconcile writes, it asks the audit log who
//! made each change it is about to revert; a change by an emergency actor since
//! caguard last had the tenant in order is left in place: that control is paused
//! in that tenant (for `emergency.pause_hours`), and one alert says who did what
//! and how to resume. A change by anyone else is reverted as before.

use crate::audit::Change;
use crate::config::{Config, Control, ControlMode};
use crate::graph::GraphClient;
use crate::pause::{Pause, Scope};
use crate::plan::{Observed, Op, TenantPlan};
use crate::store::Store;
use std::collections::BTreeMap;

/// The object ids of the people whose changes caguard does not revert.
#[derive(Clone, Debug, Default)]
pub struct Actors(pub Vec<String>);

impl Actors {
    fn contains(&self, id: &str) -> bool {
        self.0.iter().any(|a| a.eq_ignore_ascii_case(id))
    }
}

/// The break-glass accounts (as first resolved, from the store's records) and the
/// members of `emergency.operators_group` in the MSP tenant.
pub async fn actors(client: &GraphClient, config: &Config, store: &dyn Store) -> Actors {
    let recorded: BTreeMap<String, String> = crate::owned::load(store).await;
    let mut ids: Vec<String> = config
        .break_glass
        .iter()
        .filter_map(|b| recorded.get(&crate::plan::accounts::account_key(b)))
        .map(|id| id.to_ascii_lowercase())
        .collect();
    // A break-glass account configured by object id is its own record.
    ids.extend(config.break_glass.iter().filter(|b| crate::config::is_guid(b)).map(|b| b.to_ascii_lowercase()));
    if let Some(group) = &config.emergency_group {
        let path = format!("/groups/{group}/members?$select=id");
        match client.list::<serde_json::Value>(&config.msp_tenant_id, &path).await {
            Ok(members) => {
                ids.extend(members.iter().filter_map(|m| m["id"].as_str()).map(str::to_ascii_lowercase));
            }
            Err(e) => tracing::warn!("emergency operators group {group} could not be read: {e}"),
        }
    }
    ids.sort();
    ids.dedup();
    Actors(ids)
}

/// A control left alone because an emergency actor changed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    pub control: Control,
    pub target: String,
    pub change: Change,
}

/// The object an action would revert: the id it updates, or for a create the id
/// caguard recorded for the object that was deleted.
fn reverted_object(action: &crate::plan::Action, plan: &TenantPlan, o: &Observed) -> Option<String> {
    match &action.op {
        Op::UpdatePolicy { id } | Op::UpdateLocation { id } => Some(id.clone()),
        Op::CreatePolicy => {
            let placeholder = format!("policy:{}", action.target);
            let key = plan.owns.iter().find(|(_, v)| **v == placeholder).map(|(k, _)| k.clone())?;
            o.owned.get(&key).cloned()
        }
        Op::CreateLocation => None,
    }
}

/// The planned writes that would revert an emergency actor's change made after
/// `since` (RFC 3339: when caguard last had this tenant in order; `None` when it
/// never had, as in a first rollout, where nothing is an override).
pub async fn overrides(
    client: &GraphClient,
    config: &crate::config::Config,
    store: &dyn crate::store::Store,
    plan: &TenantPlan,
    o: &Observed,
    actors: &Actors,
    since: Option<&str>,
) -> Vec<Override> {
    if actors.0.is_empty() {
        return vec![];
    }
    let mut out: Vec<Override> = Vec::new();
    for action in plan.enforced() {
        if out.iter().any(|x| x.control == action.control) {
            continue;
        }
        let Some(id) = reverted_object(action, plan, o) else { continue };
        let own = crate::own::identity(client, config, store, &plan.tenant_id, &id).await;
        let change = match crate::audit::who_changed(client, &plan.tenant_id, &id, &own).await {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(tenant = %plan.tenant_id, "audit log unreadable, so no emergency override can be seen: {e}");
                continue;
            }
        };
        let recent = match (parse_time(&change.when), since.and_then(parse_time)) {
            (Some(when), Some(since)) => when > since,
            _ => false,
        };
        if recent && change.user_id.as_deref().is_some_and(|u| actors.contains(u)) {
            out.push(Override { control: action.control, target: action.target.clone(), change });
        }
    }
    out
}

/// Leaves the overridden controls' writes out of the plan (shown, not written).
pub fn honour(plan: &mut TenantPlan, overrides: &[Override]) {
    for a in plan.actions.iter_mut().filter(|a| overrides.iter().any(|x| x.control == a.control)) {
        a.mode = ControlMode::Report;
    }
}

/// The pause an override sets, so later reconciles leave it alone too.
pub fn pause_for(config: &Config, tenant: &str, x: &Override) -> Pause {
    let scope = Scope { tenant: Some(tenant.to_ascii_lowercase()), control: Some(x.control) };
    let reason = format!(
        "emergency change by {} at {} ({} on \"{}\"); caguard does not revert it",
        x.change.who, x.change.when, x.change.activity, x.target
    );
    let hours = config.emergency_pause_hours;
    Pause::new(scope, &reason, &x.change.who, hours, chrono::Utc::now()).expect("reason and hours are valid")
}

/// The one high-priority alert an override raises.
pub fn alert(plan: &TenantPlan, x: &Override, p: &Pause) -> crate::alert::Alert {
    crate::alert::Alert {
        tenant_id: plan.tenant_id.clone(),
        tenant_name: plan.tenant_name.clone(),
        kind: crate::alert::kind::EMERGENCY_OVERRIDE.into(),
        message: format!(
            "{} changed \"{}\" ({}) and is an emergency operator: caguard left {} alone in this tenant. {}",
            x.change.who,
            x.target,
            x.change.activity,
            x.control,
            p.describe()
        ),
        control: Some(x.control.to_string()),
        object_name: Some(x.target.clone()),
        changed_by: Some(x.change.who.clone()),
        changed_at: Some(x.change.when.clone()),
        ..Default::default()
    }
}

/// When caguard last had `tenant` in order (compliant or fixed), from its results.
pub async fn last_in_order(store: &dyn Store, tenant: &str) -> Option<String> {
    let statuses = store.statuses().await.unwrap_or_default();
    statuses
        .into_iter()
        .find(|s| s.tenant_id.eq_ignore_ascii_case(tenant) && (s.outcome == "compliant" || s.outcome == "fixed"))
        .map(|s| s.at)
}

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc())
}
