//! The policies caguard owns whole in the MSP tenant: each lockdown policy (A2)
//! and its session policy (S4), each service account's policy (B1), and MFA on
//! the CIPP app (A3). Each is built as a list of desired fields; anything else
//! found in it is drift ([`super::whole`]).

use super::{
    Action, Block, Diff, Observed, Op, TenantPlan, Wanted, find_owned_policy, policy_key, safety, to_value, whole,
};
use crate::config::{AppMfa, Config, Control, ControlMode, Lockdown, Rollout, ServiceAccount};
use serde_json::{Value, json};

/// The ids every other MSP policy must exclude: break-glass and service accounts.
/// Accounts have resolved (checked before planning).
pub(super) fn protected_ids(config: &Config, o: &Observed) -> Vec<String> {
    let bg = config.break_glass.iter().filter_map(|b| o.account(b));
    let sa = config.service_accounts.iter().filter_map(|s| o.account(&s.account));
    let mut out: Vec<String> = Vec::new();
    for id in bg.chain(sa) {
        if !out.iter().any(|x| x.eq_ignore_ascii_case(id)) {
            out.push(id.to_string());
        }
    }
    out
}

fn rollout_state(r: Rollout) -> &'static str {
    match r {
        Rollout::ReportOnly | Rollout::Auto => "enabledForReportingButNotEnforced",
        Rollout::Enabled => "enabled",
    }
}

/// The configured rollout state, except that an enabled policy stays enabled:
/// caguard never weakens one back to report-only on its own. `auto` turns it
/// On when the sign-in evidence holds (`o.promote`, from [`crate::rollout`]).
fn state_for(control: Control, current: &Value, l: &Lockdown, o: &Observed, plan: &mut TenantPlan) -> &'static str {
    let rollout = l.rollout;
    if rollout == Rollout::Auto
        && current.get("state").and_then(Value::as_str) == Some("enabledForReportingButNotEnforced")
        && let Some(why) = o.promote.get(&l.name)
    {
        plan.note(
            control,
            format!(
                "switching \"{}\" from report-only to On: {why}",
                current["displayName"].as_str().unwrap_or(&l.name)
            ),
        );
        return "enabled";
    }
    match current.get("state").and_then(Value::as_str) {
        Some("enabled") if rollout != Rollout::Enabled => {
            let name = current["displayName"].as_str().unwrap_or_default();
            plan.note(control, format!("\"{name}\" is enabled while its rollout says reportOnly; caguard never weakens it back — set its rollout to \"enabled\""));
            "enabled"
        }
        _ => rollout_state(rollout),
    }
}

/// The lockdown's technicians as `includeUsers` (resolved ids, or `All`).
fn technicians(l: &Lockdown, o: &Observed) -> Vec<String> {
    l.technician_users.iter().map(|u| o.account(u).unwrap_or(u.as_str()).to_string()).collect()
}

fn lockdown_names(config: &Config) -> Vec<&str> {
    config.lockdowns.iter().map(|l| l.name.as_str()).collect()
}

/// The existing owned policy for `w`, or why the plan holds. `Err(())`: the plan
/// is held (or the policy withheld) and nothing more is planned for it.
fn existing<'a>(
    config: &Config,
    o: &'a Observed,
    w: &Wanted<'_>,
    plan: &mut TenantPlan,
    must_block: bool,
) -> Result<Option<&'a crate::model::ConditionalAccessPolicy>, ()> {
    let (existing, by_name) = find_owned_policy(o, w, plan)?;
    let name = w.name;
    if let Some(p) = existing.filter(|p| by_name && safety::is_block(&to_value(*p)) != must_block) {
        let why = if must_block {
            "does not block; caguard will not turn it into a block policy"
        } else {
            "blocks access; caguard will not turn it into a policy that grants"
        };
        plan.block = Some(Block::Hold(format!(
            "an existing policy is called \"{name}\" ({}) but {why}. Rename it, or choose another name in caguard.toml",
            p.id()
        )));
        return Err(());
    }
    if let Some(p) = existing.filter(|_| by_name)
        && hold_unrecorded(config, o, plan, name, p.id())
    {
        return Err(());
    }
    Ok(existing)
}

/// A2: one technician block policy, exactly as configured and owned whole.
pub(super) fn lockdown(
    config: &Config,
    o: &Observed,
    index: usize,
    site_ids: &[(String, String)],
    plan: &mut TenantPlan,
) {
    let l = &config.lockdowns[index];
    let w = Wanted {
        control: Control::A2,
        key: policy_key(Control::A2, index, &l.name),
        name: &l.name,
        siblings: lockdown_names(config),
    };
    let Ok(existing) = existing(config, o, &w, plan, true) else { return };
    let current = existing.map(to_value).unwrap_or(Value::Null);
    let state = state_for(Control::A2, &current, l, o, plan);
    let trusted: Vec<&String> = site_ids
        .iter()
        .filter(|(site, _)| l.sites.iter().any(|s| s.eq_ignore_ascii_case(site)))
        .map(|(_, id)| id)
        .collect();
    let mut fields = users_fields(config, o, &current, l, Control::A2, plan);
    fields.extend([
        ("/displayName".into(), json!(l.name)),
        ("/state".into(), json!(state)),
        ("/conditions/applications/includeApplications".into(), json!(l.apps)),
        ("/conditions/locations/includeLocations".into(), json!(["All"])),
        ("/conditions/locations/excludeLocations".into(), json!(trusted)),
        ("/conditions/clientAppTypes".into(), json!(["all"])),
        ("/grantControls/operator".into(), json!("OR")),
        ("/grantControls/builtInControls".into(), json!(["block"])),
    ]);
    whole::close(&current, &mut fields);
    let missing = "technicians are not blocked outside the trusted locations";
    if let Some(a) = owned_policy_action(Control::A2, &l.name, existing, &current, fields, missing) {
        let after = resulting(&current, &a.body);
        if let Err(e) = safety::check_block_policy(config, l, o, &after, &plan.actions) {
            plan.block = Some(Block::Hold(format!("lockout safety: \"{}\": {e}", l.name)));
            return;
        }
        plan.push(config, a);
    }
}

/// The users of a lockdown (or its session policy): its technicians, with
/// break-glass and service accounts excluded and nothing else but exclusions
/// made on purpose.
fn users_fields(
    config: &Config,
    o: &Observed,
    current: &Value,
    l: &Lockdown,
    control: Control,
    plan: &mut TenantPlan,
) -> Vec<whole::Field> {
    let required = protected_ids(config, o);
    let mut excluded =
        |prop: &str, required: &[String]| json!(whole::exclusions(config, o, current, prop, required, control, plan));
    vec![
        ("/conditions/users/includeUsers".into(), json!(technicians(l, o))),
        ("/conditions/users/includeGroups".into(), json!(l.technician_groups)),
        ("/conditions/users/excludeUsers".into(), excluded("excludeUsers", &required)),
        ("/conditions/users/excludeGroups".into(), excluded("excludeGroups", &[])),
        ("/conditions/users/excludeRoles".into(), excluded("excludeRoles", &[])),
    ]
}

/// S4: the lockdown's technicians on its apps re-sign in every N hours, and
/// (beta, preview) CAE enforces the location strictly, so a session started in
/// the office does not outlive the office network. In `report` mode the gap is
/// shown, not written.
pub(super) fn session(config: &Config, o: &Observed, index: usize, plan: &mut TenantPlan) {
    let l = &config.lockdowns[index];
    let mode = config.session_mode(l);
    if mode == ControlMode::Off {
        return;
    }
    let name = &l.session.policy_name;
    let siblings = config.lockdowns.iter().map(|l| l.session.policy_name.as_str()).collect();
    let w = Wanted { control: Control::S4, key: policy_key(Control::S4, index, name), name, siblings };
    let Ok(existing) = existing(config, o, &w, plan, false) else { return };
    let current = existing.map(to_value).unwrap_or(Value::Null);
    let state = state_for(Control::S4, &current, l, o, plan);
    let mut fields = users_fields(config, o, &current, l, Control::S4, plan);
    fields.extend([
        ("/displayName".into(), json!(name)),
        ("/state".into(), json!(state)),
        ("/conditions/applications/includeApplications".into(), json!(l.apps)),
        ("/conditions/clientAppTypes".into(), json!(["all"])),
        // Everywhere, the office included: the session itself is what is limited.
        ("/conditions/locations".into(), Value::Null),
        ("/grantControls".into(), Value::Null),
    ]);
    let wanted = session_controls(l);
    if !same_session(current.get("sessionControls"), &wanted) {
        fields.push(("/sessionControls".into(), wanted));
    }
    whole::close(&current, &mut fields);
    let missing = format!(
        "a session started in the office outlives the office network; \"{}\" needs a sign-in every {} h{}",
        l.name,
        l.session.sign_in_frequency_hours,
        if l.session.strict_location { " and strict location enforcement (CAE, preview)" } else { "" }
    );
    if let Some(a) = owned_policy_action(Control::S4, name, existing, &current, fields, &missing) {
        plan.push_as(mode, a);
    }
}

/// The session controls S4 wants. `continuousAccessEvaluation` exists in beta only.
fn session_controls(l: &Lockdown) -> Value {
    let mut v = json!({"signInFrequency": {
        "isEnabled": true, "type": "hours", "value": l.session.sign_in_frequency_hours,
        "frequencyInterval": "timeBased", "authenticationType": "primaryAndSecondaryAuthentication"}});
    if l.session.strict_location {
        v["continuousAccessEvaluation"] = json!({"mode": "strictLocation"});
    }
    v
}

/// Session controls compared by meaning: frequency enabled, in hours, of that
/// value, and CAE's mode where wanted; nothing else set.
fn same_session(now: Option<&Value>, wanted: &Value) -> bool {
    let Some(now) = now.filter(|v| v.is_object()) else { return false };
    let sif = |v: &Value| {
        let s = &v["signInFrequency"];
        (s["isEnabled"].clone(), s["type"].clone(), s["value"].clone())
    };
    let cae = |v: &Value| v.pointer("/continuousAccessEvaluation/mode").cloned().unwrap_or(Value::Null);
    let others = now.as_object().is_some_and(|o| {
        o.iter().any(|(k, v)| {
            !k.starts_with('@') && !v.is_null() && k != "signInFrequency" && k != "continuousAccessEvaluation"
        })
    });
    sif(now) == sif(wanted) && cae(now) == cae(wanted) && !others
}

/// B1: one service account's own policy, owned whole: that account only, all
/// apps, MFA, sign-in frequency every time, no location condition, enabled.
pub(super) fn service(config: &Config, o: &Observed, index: usize, plan: &mut TenantPlan) {
    let sa: &ServiceAccount = &config.service_accounts[index];
    let id = o.account(&sa.account).unwrap_or_default().to_string();
    let name = &sa.policy_name;
    let siblings = config.service_accounts.iter().map(|s| s.policy_name.as_str()).collect();
    let w = Wanted { control: Control::B1, key: policy_key(Control::B1, index, name), name, siblings };
    let Ok(existing) = existing(config, o, &w, plan, false) else { return };
    let current = existing.map(to_value).unwrap_or(Value::Null);
    let every_time = json!({"isEnabled": true, "frequencyInterval": "everyTime",
                            "authenticationType": "primaryAndSecondaryAuthentication", "value": null, "type": null});
    let sif = current.pointer("/sessionControls/signInFrequency");
    let sif_ok = sif.is_some_and(|s| s["isEnabled"] == json!(true) && s["frequencyInterval"] == json!("everyTime"));
    // The other service accounts are out of scope already; they are excluded too,
    // so every MSP policy but its own excludes each service account (B2).
    let others: Vec<String> = config
        .service_accounts
        .iter()
        .filter_map(|s| o.account(&s.account))
        .filter(|x| !x.eq_ignore_ascii_case(&id))
        .map(str::to_string)
        .collect();
    let mut excluded = |prop: &str, required: &[String]| {
        // The service account excluding itself is drift: it is never "on purpose".
        let mut kept = whole::exclusions(config, o, &current, prop, required, Control::B1, plan);
        kept.retain(|x| !x.eq_ignore_ascii_case(&id));
        json!(kept)
    };
    let mut fields: Vec<whole::Field> = vec![
        ("/displayName".into(), json!(name)),
        ("/state".into(), json!("enabled")),
        ("/conditions/users/includeUsers".into(), json!([id])),
        ("/conditions/users/includeGroups".into(), json!([])),
        ("/conditions/users/excludeUsers".into(), excluded("excludeUsers", &others)),
        ("/conditions/users/excludeGroups".into(), excluded("excludeGroups", &[])),
        ("/conditions/users/excludeRoles".into(), excluded("excludeRoles", &[])),
        ("/conditions/applications/includeApplications".into(), json!(["All"])),
        ("/conditions/clientAppTypes".into(), json!(["all"])),
        ("/grantControls/operator".into(), json!("OR")),
        ("/grantControls/builtInControls".into(), json!(["mfa"])),
        // No location condition at all: the account must do MFA from anywhere.
        ("/conditions/locations".into(), Value::Null),
    ];
    // Sign-in frequency compares by meaning (enabled, every time), not byte for byte.
    if !sif_ok {
        fields.push(("/sessionControls/signInFrequency".into(), every_time));
    }
    whole::close(&current, &mut fields);
    let missing = format!("service account '{}' has no MFA-every-time policy", sa.account);
    if let Some(a) = owned_policy_action(Control::B1, name, existing, &current, fields, &missing) {
        plan.push(config, a);
    }
}

/// A3: MFA (or an authentication strength) for everyone signing in to the app
/// CIPP signs in with, break-glass and service accounts excluded. Enabled.
pub(super) fn cipp_app(config: &Config, o: &Observed, app: &AppMfa, plan: &mut TenantPlan) {
    let name = &app.policy_name;
    let w = Wanted { control: Control::A3, key: policy_key(Control::A3, 0, name), name, siblings: vec![] };
    let Ok(existing) = existing(config, o, &w, plan, false) else { return };
    let current = existing.map(to_value).unwrap_or(Value::Null);
    let required = protected_ids(config, o);
    let mut excluded = |prop: &str, required: &[String]| {
        json!(whole::exclusions(config, o, &current, prop, required, Control::A3, plan))
    };
    let mut fields: Vec<whole::Field> = vec![
        ("/displayName".into(), json!(name)),
        ("/state".into(), json!("enabled")),
        ("/conditions/users/includeUsers".into(), json!(["All"])),
        ("/conditions/users/excludeUsers".into(), excluded("excludeUsers", &required)),
        ("/conditions/users/excludeGroups".into(), excluded("excludeGroups", &[])),
        ("/conditions/users/excludeRoles".into(), excluded("excludeRoles", &[])),
        ("/conditions/applications/includeApplications".into(), json!([app.app_id])),
        ("/conditions/clientAppTypes".into(), json!(["all"])),
        ("/conditions/locations".into(), Value::Null),
        ("/grantControls/operator".into(), json!("OR")),
    ];
    match &app.authentication_strength {
        // Graph refuses `mfa` next to an authentication strength.
        Some(strength) => {
            // Graph returns the strength expanded: the same id is the same strength.
            let now = &current["grantControls"]["authenticationStrength"];
            let same = now["id"].as_str().is_some_and(|id| id.eq_ignore_ascii_case(strength));
            let wanted = if same { now.clone() } else { json!({"id": strength}) };
            fields.push(("/grantControls/builtInControls".into(), json!([])));
            fields.push(("/grantControls/authenticationStrength".into(), wanted));
        }
        None => fields.push(("/grantControls/builtInControls".into(), json!(["mfa"]))),
    }
    whole::close(&current, &mut fields);
    let missing = "signing in to CIPP does not require MFA";
    if let Some(a) = owned_policy_action(Control::A3, name, existing, &current, fields, missing) {
        plan.push(config, a);
    }
}

/// A policy found by name that the store has no record of creating is someone
/// else's: with a store in use it is held (a warning naming it), not taken over,
/// unless `names.adopt_existing`. Returns whether it held.
fn hold_unrecorded(config: &Config, o: &Observed, plan: &mut TenantPlan, name: &str, id: &str) -> bool {
    if !o.ledger || config.adopt_existing {
        return false;
    }
    plan.block = Some(Block::Hold(format!(
        "an existing policy is already called \"{name}\" ({id}) and caguard has no record of creating it; it is not taken over. \
         Rename it, choose another name in caguard.toml, or set names.adopt_existing = true to adopt it"
    )));
    true
}

/// The policy as it will stand after `body` is applied to `current`.
pub fn resulting(current: &Value, body: &Value) -> Value {
    let mut after = if current.is_null() { json!({}) } else { current.clone() };
    super::merge_patch(&mut after, body);
    after
}

/// A create or an update of a policy caguard owns, or `None` when it is as wanted.
fn owned_policy_action(
    control: Control,
    name: &str,
    existing: Option<&crate::model::ConditionalAccessPolicy>,
    current: &Value,
    fields: Vec<whole::Field>,
    missing_reason: &str,
) -> Option<Action> {
    match existing {
        None => {
            let mut body = json!({"displayName": name});
            for (ptr, v) in fields {
                // A top-level null is said (S4's `grantControls: null`: Graph would
                // otherwise fill in empty grant controls); deeper ones are left out.
                if !v.is_null() || ptr.matches('/').count() == 1 {
                    super::put(&mut body, &ptr, v);
                }
            }
            Some(Action {
                control,
                mode: ControlMode::Enforce,
                op: Op::CreatePolicy,
                target: name.to_string(),
                reason: format!("no policy \"{name}\": {missing_reason}"),
                body,
                before: Value::Null,
            })
        }
        Some(p) => {
            let mut diff = Diff::new(current);
            for (ptr, v) in fields {
                diff.want(&ptr, v);
            }
            (!diff.is_empty()).then(|| Action {
                control,
                mode: ControlMode::Enforce,
                op: Op::UpdatePolicy { id: p.id().to_string() },
                target: name.to_string(),
                reason: format!("drifted: {}", diff.changed.join(", ")),
                body: diff.body,
                before: diff.before,
            })
        }
    }
}
