//! The MSP tenant: trusted locations (A1), the technician block policy (A2),
//! the service account's policy (B1) and its exclusion everywhere else (B2).

use super::{
    Action, Block, Diff, Observed, Op, TenantPlan, exclude_user, find_owned_policy, owned_key, owned_policy_ids,
    safety, strings, to_value, union, whole,
};
use crate::config::{Config, Control, ControlMode, Rollout};
use crate::model::{IP_NAMED_LOCATION, IpRange, NamedLocationKind};
use serde_json::{Value, json};

pub(super) fn plan(config: &Config, o: &Observed) -> TenantPlan {
    let mut plan = TenantPlan::new(o, true);
    if o.security_defaults {
        plan.block = Some(Block::Skip(
            "security defaults are on, so Conditional Access cannot run here; caguard never turns them off — disable them in Entra first".into(),
        ));
        return plan;
    }
    if o.p1 == Some(false) {
        plan.block = Some(Block::Skip("no Entra ID P1 licence: Conditional Access is unavailable".into()));
        return plan;
    }
    if let Err(why) = super::accounts::check(config, o, &mut plan) {
        plan.block = Some(Block::Hold(why));
        return plan;
    }
    let location_ids = plan_locations(config, o, &mut plan);
    plan_block_policy(config, o, &location_ids, &mut plan);
    let service = o.account(&config.service_account).unwrap_or_default().to_string();
    plan_service_policy(config, o, &service, &mut plan);
    plan_service_exclusions(config, o, &service, &mut plan);
    plan_break_glass_exclusions(config, o, &mut plan);
    super::report_unreadable(&mut plan, Control::B2, o);
    plan
}

/// A4: every break-glass account is excluded from every other enabled or
/// report-only MSP policy that could apply to it, not only from the block policy
/// ("exclude emergency access accounts from all Conditional Access policies",
/// Microsoft's emergency-access guidance). In `report` mode the action is shown,
/// not written, and alerted as a lockout risk.
fn plan_break_glass_exclusions(config: &Config, o: &Observed, plan: &mut TenantPlan) {
    let ids: Vec<String> = config.break_glass.iter().filter_map(|b| o.account(b)).map(str::to_string).collect();
    if ids.len() != config.break_glass.len() {
        return; // an unresolved account already holds the block policy, with its reason
    }
    let owned = owned_policy_ids(plan);
    for p in &o.policies {
        if owned.iter().any(|id| id.eq_ignore_ascii_case(p.id()))
            || p.state.as_ref() == Some(&crate::model::PolicyState::Disabled)
            || !could_apply_to(p, &ids)
        {
            continue;
        }
        let excl = strings(&to_value(p), "/conditions/users/excludeUsers");
        let missing: Vec<String> =
            ids.iter().filter(|id| !excl.iter().any(|e| e.eq_ignore_ascii_case(id))).cloned().collect();
        if missing.is_empty() {
            continue;
        }
        let reason = format!("{} break-glass account(s) not excluded: this policy could lock them out", missing.len());
        // An enforced B2 write to the same list carries these too: one write per
        // policy (CA allows one request a second per tenant), and the two never
        // undo each other. The folded action keeps B2's control and says both.
        let op = Op::UpdatePolicy { id: p.id().to_string() };
        let a4 = config.control(Control::A4);
        if let Some(b2) =
            plan.actions.iter_mut().find(|a| a.op == op && a.mode == ControlMode::Enforce && a4 == ControlMode::Enforce)
        {
            let base = strings(&b2.body, "/conditions/users/excludeUsers");
            b2.body = json!({"conditions": {"users": {"excludeUsers": union(&base, &missing)}}});
            b2.reason = format!("{}; and A4: {reason}", b2.reason);
            continue;
        }
        plan.push(
            config,
            Action {
                control: Control::A4,
                mode: ControlMode::Enforce,
                op,
                target: p.name().to_string(),
                reason,
                body: json!({"conditions": {"users": {"excludeUsers": union(&excl, &missing)}}}),
                before: json!({"conditions": {"users": {"excludeUsers": excl}}}),
            },
        );
    }
}

/// The policy's users could include one of `ids`: everything except a policy that
/// names only other users (no groups, roles or guests, which could hold them).
fn could_apply_to(p: &crate::model::ConditionalAccessPolicy, ids: &[String]) -> bool {
    let Some(u) = p.users() else { return false };
    let named = crate::model::list(&u.include_users);
    let only_other_users = crate::model::list(&u.include_groups).is_empty()
        && crate::model::list(&u.include_roles).is_empty()
        && u.include_guests_or_external_users.as_ref().is_none()
        && named.iter().all(|n| !n.eq_ignore_ascii_case("All") && !ids.iter().any(|id| id.eq_ignore_ascii_case(n)));
    !only_other_users
}

/// A1: one trusted IP location per site with exactly the configured ranges.
/// Returns the location id (or `location:<name>` if it is yet to be created) per site.
fn plan_locations(config: &Config, o: &Observed, plan: &mut TenantPlan) -> Vec<String> {
    let mut ids = Vec::new();
    for site in &config.sites {
        let name = config.location_name(site);
        let key = owned_key(Control::A1, Some(&site.name));
        let desired: Vec<IpRange> = site.ranges.iter().map(|n| IpRange::from_net(*n)).collect();
        let desired_json = to_value(&desired);
        let Some(loc) = find_owned_location(o, &key, &name, plan) else {
            let placeholder = format!("location:{name}");
            ids.push(placeholder.clone());
            plan.owns.insert(key, placeholder);
            plan.push(config, Action {
                control: Control::A1,
                mode: ControlMode::Enforce,
                op: Op::CreateLocation,
                target: name.clone(),
                reason: format!("no trusted named location for site \"{}\"", site.name),
                body: json!({"@odata.type": IP_NAMED_LOCATION, "displayName": name, "isTrusted": true, "ipRanges": desired_json}),
                before: Value::Null,
            });
            continue;
        };
        ids.push(loc.id().to_string());
        plan.owns.insert(key, loc.id().to_string());
        let mut have: Vec<ipnet::IpNet> =
            loc.cidrs().iter().filter_map(|c| c.parse::<ipnet::IpNet>().ok()).map(|n| n.trunc()).collect();
        have.sort();
        have.dedup();
        let mut want = site.ranges.clone();
        want.sort();
        let trusted = loc.is_trusted.as_ref().copied().unwrap_or(false);
        let renamed = loc.name() != name;
        if have == want && trusted && !renamed {
            continue;
        }
        let mut why = Vec::new();
        let mut body = json!({"@odata.type": IP_NAMED_LOCATION, "isTrusted": true, "ipRanges": desired_json});
        let mut before = json!({"isTrusted": trusted, "ipRanges": to_value(&loc.ip_ranges)});
        if have != want {
            why.push(format!("ranges are [{}], configured [{}]", join(&have), join(&want)));
        }
        if !trusted {
            why.push("it is not marked trusted".into());
        }
        if renamed {
            why.push(format!("it was renamed to \"{}\"", loc.name()));
            body["displayName"] = json!(name);
            before["displayName"] = json!(loc.name());
        }
        plan.push(
            config,
            Action {
                control: Control::A1,
                mode: ControlMode::Enforce,
                op: Op::UpdateLocation { id: loc.id().to_string() },
                target: name.clone(),
                reason: why.join("; "),
                body,
                before,
            },
        );
    }
    ids
}

/// The IP location caguard owns for a site: by the id in its store first (a rename
/// is then drift), else an IP location of that name, adopted with a note. A
/// same-named location of another kind (a country location) is never adopted.
fn find_owned_location<'a>(
    o: &'a Observed,
    key: &str,
    name: &str,
    plan: &mut TenantPlan,
) -> Option<&'a crate::model::NamedLocation> {
    if let Some(id) = o.owned.get(key) {
        match o.locations.iter().find(|l| l.id().eq_ignore_ascii_case(id)) {
            Some(l) if l.kind() == NamedLocationKind::Ip => return Some(l),
            Some(_) => plan.note(
                Control::A1,
                format!("the location caguard owns for \"{name}\" ({id}) is no longer an IP location"),
            ),
            None => plan.note(Control::A1, format!("the location caguard created for \"{name}\" ({id}) was deleted")),
        }
    }
    let hits: Vec<_> = o.locations.iter().filter(|l| l.name().eq_ignore_ascii_case(name)).collect();
    for other in hits.iter().filter(|l| l.kind() != NamedLocationKind::Ip) {
        plan.note(
            Control::A1,
            format!(
                "\"{name}\" ({}) is not an IP named location, so it is never trusted for the block policy; caguard uses its own IP location",
                other.id()
            ),
        );
    }
    let ip: Vec<_> = hits.into_iter().filter(|l| l.kind() == NamedLocationKind::Ip).collect();
    if ip.len() > 1 {
        plan.note(
            Control::A1,
            format!("{} IP named locations are called \"{name}\"; caguard adopts the first", ip.len()),
        );
    }
    let found = ip.first().copied()?;
    plan.note(
        Control::A1,
        format!("adopting the existing location \"{name}\" ({}): caguard did not create it", found.id()),
    );
    Some(found)
}

fn join(nets: &[ipnet::IpNet]) -> String {
    nets.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn rollout_state(r: Rollout) -> &'static str {
    match r {
        Rollout::ReportOnly => "enabledForReportingButNotEnforced",
        Rollout::Enabled => "enabled",
    }
}

/// A2: the technician block policy, exactly as configured and owned whole.
/// Accounts have resolved (checked before planning).
fn plan_block_policy(config: &Config, o: &Observed, location_ids: &[String], plan: &mut TenantPlan) {
    let name = &config.block_policy_name;
    let mut required: Vec<String> =
        config.break_glass.iter().filter_map(|b| o.account(b)).map(str::to_string).collect();
    required.extend(o.account(&config.service_account).map(str::to_string));
    let users: Vec<String> =
        config.technician_users.iter().map(|u| o.account(u).unwrap_or(u.as_str()).to_string()).collect();
    let Ok((existing, by_name)) = find_owned_policy(o, Control::A2, name, plan) else { return };
    if let Some(p) = existing.filter(|p| by_name && !safety::is_block(&to_value(*p))) {
        plan.block = Some(Block::Hold(format!(
            "an existing policy is called \"{name}\" ({}) but does not block; caguard will not turn it into the technician block policy. Rename it, or set names.block_policy",
            p.id()
        )));
        return;
    }
    if let Some(p) = existing.filter(|_| by_name)
        && hold_unrecorded(config, o, plan, name, p.id())
    {
        return;
    }
    let current = existing.map(to_value).unwrap_or(Value::Null);
    let state = match current.get("state").and_then(Value::as_str) {
        Some("enabled") if config.rollout == Rollout::ReportOnly => {
            plan.note(Control::A2, "the block policy is enabled while rollout says reportOnly; caguard never weakens it back — set rollout.block_policy = \"enabled\"");
            "enabled"
        }
        _ => rollout_state(config.rollout),
    };
    let excluded = |prop: &str, required: &[String], plan: &mut TenantPlan| {
        json!(whole::exclusions(config, o, &current, prop, required, Control::A2, plan))
    };
    let mut fields: Vec<whole::Field> = vec![
        ("/displayName".into(), json!(name)),
        ("/state".into(), json!(state)),
        ("/conditions/users/includeUsers".into(), json!(users)),
        ("/conditions/users/includeGroups".into(), json!(config.technician_groups)),
        ("/conditions/users/excludeUsers".into(), excluded("excludeUsers", &required, plan)),
        ("/conditions/users/excludeGroups".into(), excluded("excludeGroups", &[], plan)),
        ("/conditions/users/excludeRoles".into(), excluded("excludeRoles", &[], plan)),
        ("/conditions/applications/includeApplications".into(), json!(config.protected_apps)),
        ("/conditions/locations/includeLocations".into(), json!(["All"])),
        ("/conditions/locations/excludeLocations".into(), json!(location_ids)),
        ("/conditions/clientAppTypes".into(), json!(["all"])),
        ("/grantControls/operator".into(), json!("OR")),
        ("/grantControls/builtInControls".into(), json!(["block"])),
    ];
    whole::close(&current, &mut fields);
    let missing = "technicians are not blocked outside the trusted locations";
    if let Some(a) = owned_policy_action(Control::A2, name, existing, &current, fields, missing) {
        let after = resulting(&current, &a.body);
        if let Err(e) = safety::check_block_policy(config, o, &after, &plan.actions) {
            plan.block = Some(Block::Hold(format!("lockout safety: {e}")));
            return;
        }
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
         Rename it, choose another name in [names], or set names.adopt_existing = true to adopt it"
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
                if !v.is_null() {
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

/// B1: the service account's own policy, owned whole: that account only, all
/// apps, MFA, sign-in frequency every time, no location condition, enabled.
fn plan_service_policy(config: &Config, o: &Observed, service_id: &str, plan: &mut TenantPlan) {
    let name = &config.service_policy_name;
    let Ok((existing, by_name)) = find_owned_policy(o, Control::B1, name, plan) else { return };
    if let Some(p) = existing.filter(|p| by_name && safety::is_block(&to_value(*p))) {
        plan.block = Some(Block::Hold(format!(
            "an existing policy is called \"{name}\" ({}) but blocks access; caguard will not turn it into the service account's MFA policy. Rename it, or set names.service_account_policy",
            p.id()
        )));
        return;
    }
    if let Some(p) = existing.filter(|_| by_name)
        && hold_unrecorded(config, o, plan, name, p.id())
    {
        return;
    }
    let current = existing.map(to_value).unwrap_or(Value::Null);
    let every_time = json!({"isEnabled": true, "frequencyInterval": "everyTime",
                            "authenticationType": "primaryAndSecondaryAuthentication", "value": null, "type": null});
    let sif = current.pointer("/sessionControls/signInFrequency");
    let sif_ok = sif.is_some_and(|s| s["isEnabled"] == json!(true) && s["frequencyInterval"] == json!("everyTime"));
    let excluded = |prop: &str, plan: &mut TenantPlan| {
        // The service account excluding itself is drift: it is never "on purpose".
        let mut kept = whole::exclusions(config, o, &current, prop, &[], Control::B1, plan);
        kept.retain(|x| !x.eq_ignore_ascii_case(service_id));
        json!(kept)
    };
    let mut fields: Vec<whole::Field> = vec![
        ("/displayName".into(), json!(name)),
        ("/state".into(), json!("enabled")),
        ("/conditions/users/includeUsers".into(), json!([service_id])),
        ("/conditions/users/includeGroups".into(), json!([])),
        ("/conditions/users/excludeUsers".into(), excluded("excludeUsers", plan)),
        ("/conditions/users/excludeGroups".into(), excluded("excludeGroups", plan)),
        ("/conditions/users/excludeRoles".into(), excluded("excludeRoles", plan)),
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
    let missing = "the service account has no MFA-every-time policy";
    if let Some(a) = owned_policy_action(Control::B1, name, existing, &current, fields, missing) {
        plan.push(config, a);
    }
}

/// B2: the service account is excluded from every other policy in the MSP tenant.
fn plan_service_exclusions(config: &Config, o: &Observed, service_id: &str, plan: &mut TenantPlan) {
    let owned = owned_policy_ids(plan);
    for p in &o.policies {
        let name = p.name();
        if owned.iter().any(|id| id.eq_ignore_ascii_case(p.id()))
            || name.eq_ignore_ascii_case(&config.service_policy_name)
            || name.eq_ignore_ascii_case(&config.block_policy_name)
        {
            continue; // B1 includes it; A2 excludes it as part of its own desired state
        }
        let reason = "the service account is not excluded, so this policy also applies to it";
        if let Some(action) = exclude_user(Control::B2, p, service_id, reason) {
            plan.push(config, action);
        }
    }
}
