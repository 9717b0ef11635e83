//! The pure planner: `(Config, Observed) → TenantPlan`. No I/O.
//!
//! Each action names its control, says in one line why, and carries the exact
//! JSON that apply will send, next to what is there now. caguard owns only the
//! objects it names (the trusted locations, the block policy and the service
//! account policy); in every other policy it only ever *adds* exclusions,
//! patching nothing but the `conditions.users` subtree it changes.

pub mod accounts;
mod customer;
mod msp;
pub mod safety;
pub mod whole;

mod json;
mod policies;
pub use customer::{
    D1Change, can_apply_to_service_providers, d1_change, excludes_service_provider, merge_service_provider_exclusion,
};
pub(crate) use json::{Diff, put, strings, union};
pub use json::{merge_patch, same, to_value};
pub use policies::resulting;

use crate::config::{Config, Control, ControlMode};
use crate::model::{ConditionalAccessPolicy, NamedLocation};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// What one tenant looks like now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub tenant_id: String,
    pub tenant_name: String,
    pub policies: Vec<ConditionalAccessPolicy>,
    /// Read in the MSP tenant only.
    pub locations: Vec<NamedLocation>,
    pub security_defaults: bool,
    /// Entra ID P1 (or P2) licensed; `None` when it could not be read.
    pub p1: Option<bool>,
    /// The GDAP relationship grants a role that can write CA; `None` outside GDAP.
    pub gdap_can_write_ca: Option<bool>,
    /// Configured account (object id or UPN, lower case) → object id, where it resolved.
    pub accounts: BTreeMap<String, String>,
    /// Resolved object id (lower case) → its userPrincipalName, for the record.
    pub upns: BTreeMap<String, String>,
    /// Group id (lower case) → display name, for the groups excluded from the
    /// policies caguard owns (a `Vacation Exclusion - …` group is kept).
    pub group_names: BTreeMap<String, String>,
    /// `owned` was read from a store: a same-named object with no record there is
    /// someone else's, held rather than adopted (unless `names.adopt_existing`).
    pub ledger: bool,
    /// Policies Graph returned that the models cannot read: reported by name, left alone.
    pub unreadable: Vec<Unreadable>,
    /// The objects caguard created or adopted here, from its store: key (see
    /// [`owned_key`]) → object id. They are found by id first, so a rename is drift.
    pub owned: BTreeMap<String, String>,
    /// The tenant's default domain, where it could be read (it names the tenant in alerts).
    pub default_domain: Option<String>,
    /// CIPP manages it directly: D2 (its service account excluded) instead of D1.
    pub direct: bool,
    /// Lockdowns with `rollout = "auto"` whose sign-in evidence holds: name → why
    /// ([`crate::rollout`]). The planner switches them On.
    pub promote: BTreeMap<String, String>,
}

/// A policy that did not fit the models (for example `"locations": []`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unreadable {
    pub id: String,
    pub name: String,
    pub error: String,
}

impl Unreadable {
    /// This policy, left alone for `reason`.
    fn withheld(&self, control: Control, reason: String) -> Withheld {
        Withheld { control, policy_id: self.id.clone(), target: self.name.clone(), reason, would_also_exclude: vec![] }
    }
}

/// The store key of an owned object: `A2`, `B1`, or `A1:<site>` (lower case).
pub fn owned_key(control: Control, site: Option<&str>) -> String {
    match site {
        Some(s) => format!("{control}:{}", s.to_ascii_lowercase()),
        None => control.to_string(),
    }
}

impl Observed {
    /// The object id of a configured account, if it resolved.
    pub fn account(&self, configured: &str) -> Option<&str> {
        self.accounts.get(&configured.to_ascii_lowercase()).map(String::as_str)
    }
}

/// The kind of write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Op {
    CreateLocation,
    UpdateLocation { id: String },
    CreatePolicy,
    UpdatePolicy { id: String },
}

impl Op {
    pub fn verb(&self) -> &'static str {
        match self {
            Op::CreateLocation | Op::CreatePolicy => "create",
            Op::UpdateLocation { .. } | Op::UpdatePolicy { .. } => "update",
        }
    }

    pub fn is_policy(&self) -> bool {
        matches!(self, Op::CreatePolicy | Op::UpdatePolicy { .. })
    }
}

/// One write caguard will make (mode `enforce`) or only reports (mode `report`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    pub control: Control,
    pub mode: ControlMode,
    #[serde(flatten)]
    pub op: Op,
    /// Display name of the object written.
    pub target: String,
    /// One line: why.
    pub reason: String,
    /// Exactly what is sent: the whole object for a create, only the changed
    /// subtree for an update. Location ids not yet created appear as `location:<name>`.
    pub body: Value,
    /// The same subtree as it is now (`null` for a create).
    pub before: Value,
}

/// Why a tenant is not (or not yet) changed.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", content = "reason", rename_all = "camelCase")]
pub enum Block {
    /// Enforcement cannot or must not run there (security defaults, no P1, GDAP roles, excluded by config).
    Skip(String),
    /// A safety rule stopped the plan; it needs a person (or `--yes`).
    Hold(String),
}

/// A write caguard will not make, because it would do more than add what it must:
/// reported in the plan, alerted once per window, and never counted as a failure.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Withheld {
    pub control: Control,
    pub policy_id: String,
    pub target: String,
    pub reason: String,
    /// What writing it would newly exclude besides the MSP's service-provider users.
    pub would_also_exclude: Vec<String>,
}

/// Something a person should know that is not a write.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Note {
    pub control: Control,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantPlan {
    pub tenant_id: String,
    pub tenant_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_domain: Option<String>,
    pub msp: bool,
    pub actions: Vec<Action>,
    pub block: Option<Block>,
    pub notes: Vec<Note>,
    pub withheld: Vec<Withheld>,
    /// The owned objects this plan relies on: store key → id, or the placeholder
    /// (`location:<name>`, `policy:<name>`) of an object this plan creates.
    pub owns: BTreeMap<String, String>,
    /// What each id in the plan is, from what was observed (a UPN, a group or
    /// location name, "MSP tenant"), so a plan reads without looking ids up.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// What If checks run before this plan's risky writes (filled by the sweep,
    /// which can ask Graph; the planner itself never does).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub what_if: Vec<crate::whatif::Check>,
}

impl TenantPlan {
    pub fn new(o: &Observed, msp: bool) -> Self {
        TenantPlan {
            tenant_id: o.tenant_id.clone(),
            tenant_name: o.tenant_name.clone(),
            default_domain: o.default_domain.clone(),
            msp,
            actions: vec![],
            block: None,
            notes: vec![],
            withheld: vec![],
            owns: BTreeMap::new(),
            labels: BTreeMap::new(),
            what_if: vec![],
        }
    }

    /// Actions apply will execute.
    pub fn enforced(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(|a| a.mode == ControlMode::Enforce)
    }

    pub(crate) fn note(&mut self, control: Control, message: impl Into<String>) {
        self.notes.push(Note { control, message: message.into() });
    }

    /// Adds an action unless its control is off.
    fn push(&mut self, config: &Config, action: Action) {
        self.push_as(config.control(action.control), action);
    }

    /// Adds an action in `mode` (a control set per object, like S4), unless off.
    fn push_as(&mut self, mode: ControlMode, action: Action) {
        if mode != ControlMode::Off {
            self.actions.push(Action { mode, ..action });
        }
    }
}

/// Plans the MSP tenant (A1, A2, B1, B2).
pub fn plan_msp(config: &Config, observed: &Observed) -> TenantPlan {
    labelled(msp::plan(config, observed), config, observed)
}

/// Plans one customer tenant (D1 in GDAP mode, D2 in direct mode).
pub fn plan_customer(config: &Config, observed: &Observed) -> TenantPlan {
    labelled(customer::plan(config, observed), config, observed)
}

/// Labels every id the plan's actions mention with what was observed.
fn labelled(mut plan: TenantPlan, config: &Config, o: &Observed) -> TenantPlan {
    let mut known: BTreeMap<String, String> = BTreeMap::new();
    known.insert(config.msp_tenant_id.to_ascii_lowercase(), "MSP tenant".into());
    for (configured, id) in &o.accounts {
        let upn = o.upns.get(&id.to_ascii_lowercase()).cloned().unwrap_or_else(|| configured.clone());
        known.insert(id.to_ascii_lowercase(), upn);
    }
    for (id, name) in &o.group_names {
        known.insert(id.clone(), format!("group \"{name}\""));
    }
    for g in config.technician_groups() {
        known.entry(g.to_ascii_lowercase()).or_insert_with(|| "technician group".into());
    }
    for l in &o.locations {
        known.insert(l.id().to_ascii_lowercase(), format!("location \"{}\"", l.name()));
    }
    for a in &plan.actions {
        mentioned(&a.body, &known, &mut plan.labels);
        mentioned(&a.before, &known, &mut plan.labels);
    }
    plan
}

fn mentioned(v: &Value, known: &BTreeMap<String, String>, out: &mut BTreeMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(l) = known.get(&s.to_ascii_lowercase()) {
                out.insert(s.clone(), l.clone());
            } else if let Some(name) = s.strip_prefix("location:") {
                out.insert(s.clone(), format!("the new location \"{name}\""));
            }
        }
        Value::Array(a) => a.iter().for_each(|x| mentioned(x, known, out)),
        Value::Object(o) => o.values().for_each(|x| mentioned(x, known, out)),
        _ => {}
    }
}

/// Holds plans past the safety limits unless `confirmed` (`--yes`): more than
/// `max_policies_per_tenant` policy writes in one tenant, or changes in more
/// than `max_tenant_fraction` of all tenants at once.
pub fn apply_limits(config: &Config, plans: &mut [TenantPlan], confirmed: bool) {
    if confirmed {
        return;
    }
    for p in plans.iter_mut().filter(|p| p.block.is_none()) {
        let writes = p.enforced().filter(|a| a.op.is_policy()).count();
        if writes > config.max_policies_per_tenant {
            p.block = Some(Block::Hold(format!(
                "{writes} policy writes exceed the limit of {} per tenant; confirm with --yes",
                config.max_policies_per_tenant
            )));
        }
    }
    let total = plans.len();
    let changing = plans.iter().filter(|p| p.block.is_none() && p.enforced().next().is_some()).count();
    if total > 0 && changing as f64 > config.max_tenant_fraction * total as f64 && changing > 1 {
        let reason = format!(
            "changes in {changing} of {total} tenants exceed the limit of {:.0}% at once; confirm with --yes",
            config.max_tenant_fraction * 100.0
        );
        for p in plans.iter_mut().filter(|p| p.block.is_none() && p.enforced().next().is_some()) {
            p.block = Some(Block::Hold(reason.clone()));
        }
    }
}

/// An update adding `user_ids` to a policy's `excludeUsers` (one write however
/// many), or `None` when they are all there already. Used for the service
/// accounts in the MSP tenant (B2) and in direct-mode customers (D2).
pub(crate) fn exclude_users(
    control: Control,
    p: &ConditionalAccessPolicy,
    user_ids: &[String],
    reason: &str,
) -> Option<Action> {
    let excl = strings(&to_value(p), "/conditions/users/excludeUsers");
    if user_ids.iter().all(|id| excl.iter().any(|u| u.eq_ignore_ascii_case(id))) {
        return None;
    }
    Some(Action {
        control,
        mode: ControlMode::Enforce,
        op: Op::UpdatePolicy { id: p.id().to_string() },
        target: p.name().to_string(),
        reason: reason.to_string(),
        body: serde_json::json!({"conditions": {"users": {"excludeUsers": union(&excl, user_ids)}}}),
        before: serde_json::json!({"conditions": {"users": {"excludeUsers": excl}}}),
    })
}

/// The store key of one of several owned policies of a control: the first
/// configured keeps the bare control (`A2`), as when caguard owned one; the
/// others are `A2:<name>` (lower case).
pub fn policy_key(control: Control, index: usize, name: &str) -> String {
    if index == 0 { control.to_string() } else { format!("{control}:{}", name.to_ascii_lowercase()) }
}

/// Which owned policy `find_owned_policy` looks for: its control, store key and
/// name, and the names of the other policies of the same control (so a store
/// record that now belongs to a reordered sibling is not taken for this one).
pub(crate) struct Wanted<'a> {
    pub control: Control,
    pub key: String,
    pub name: &'a str,
    pub siblings: Vec<&'a str>,
}

/// The policy caguard owns for `w`: by the id in its store first (a rename is
/// then drift, and restored), else by name, adopted with a note. `None` inside
/// `Ok` means it does not exist yet; the flag says it was found by name, with no
/// record that caguard made it. `Err(())` when a policy with that id or name
/// could not be read: caguard then neither rewrites nor duplicates it (withheld).
pub(crate) fn find_owned_policy<'a>(
    o: &'a Observed,
    w: &Wanted<'_>,
    plan: &mut TenantPlan,
) -> Result<(Option<&'a ConditionalAccessPolicy>, bool), ()> {
    let (control, key, name) = (w.control, w.key.clone(), w.name);
    let recorded = o.owned.get(&key);
    let unreadable = o
        .unreadable
        .iter()
        .find(|u| recorded.is_some_and(|id| id.eq_ignore_ascii_case(&u.id)) || u.name.eq_ignore_ascii_case(name));
    if let Some(u) = unreadable {
        let why = format!("caguard's policy could not be read ({}); it is neither rewritten nor duplicated", u.error);
        plan.withheld.push(u.withheld(control, why));
        return Err(());
    }
    let by_id = |id: &String| o.policies.iter().find(|p| p.id().eq_ignore_ascii_case(id));
    let sibling_named = |p: &ConditionalAccessPolicy| {
        !p.name().eq_ignore_ascii_case(name) && w.siblings.iter().any(|s| p.name().eq_ignore_ascii_case(s))
    };
    if let Some(p) = recorded.and_then(by_id).filter(|p| !sibling_named(p)) {
        plan.owns.insert(key, p.id().to_string());
        return Ok((Some(p), false));
    }
    // Another record of this control whose policy carries this name: the entries
    // were reordered, or the short form became the list form.
    let prefix = format!("{control}:");
    let moved = o
        .owned
        .iter()
        .filter(|(k, _)| **k != key && (k.as_str() == control.to_string() || k.starts_with(&prefix)))
        .filter_map(|(_, id)| by_id(id))
        .find(|p| p.name().eq_ignore_ascii_case(name));
    if let Some(p) = moved {
        plan.owns.insert(key, p.id().to_string());
        return Ok((Some(p), false));
    }
    if let Some(id) = recorded.filter(|id| by_id(id).is_none()) {
        plan.note(control, format!("the policy caguard created for \"{name}\" ({id}) was deleted"));
    }
    let hits: Vec<_> = o.policies.iter().filter(|p| p.name().eq_ignore_ascii_case(name)).collect();
    if hits.len() > 1 {
        plan.note(control, format!("{} policies are called \"{name}\"; caguard adopts the first", hits.len()));
    }
    match hits.first() {
        Some(p) => {
            plan.note(
                control,
                format!("adopting \"{name}\" ({}), found by name: caguard has no record of creating it", p.id()),
            );
            plan.owns.insert(key, p.id().to_string());
            Ok((Some(p), true))
        }
        None => {
            plan.owns.insert(key, format!("policy:{name}"));
            Ok((None, false))
        }
    }
}

/// Reports every policy that could not be read as withheld (once), so it is
/// named in the plan and alerted, and left alone.
pub(crate) fn report_unreadable(plan: &mut TenantPlan, control: Control, o: &Observed) {
    for u in &o.unreadable {
        if plan.withheld.iter().any(|w| w.policy_id == u.id) {
            continue;
        }
        let why = format!("it could not be read into caguard's models ({}), so it is left alone", u.error);
        plan.withheld.push(u.withheld(control, why));
    }
}

/// Ids of the policies caguard owns in this plan (every key but the
/// locations' and the accounts'), for skipping them elsewhere.
pub(crate) fn owned_policy_ids(plan: &TenantPlan) -> Vec<String> {
    plan.owns
        .iter()
        .filter(|(k, id)| !k.starts_with("A1:") && !k.starts_with("user:") && !id.starts_with("policy:"))
        .map(|(_, id)| id.clone())
        .collect()
}
