//! The MSP tenant: trusted locations (A1), the technician block policies (A2)
//! and their session policies (S4), MFA on the CIPP app (A3), break-glass
//! accounts excluded everywhere (A4), the service accounts' policies (B1) and
//! their exclusion everywhere else (B2). The owned policies are built in
//! [`super::policies`].

use super::{
    Action, Block, Observed, Op, TenantPlan, exclude_users, owned_key, owned_policy_ids, policies, strings, to_value,
    union,
};
use crate::config::{Config, Control, ControlMode};
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
    let site_ids = plan_locations(config, o, &mut plan);
    for i in 0..config.lockdowns.len() {
        policies::lockdown(config, o, i, &site_ids, &mut plan);
        policies::session(config, o, i, &mut plan);
    }
    for i in 0..config.service_accounts.len() {
        policies::service(config, o, i, &mut plan);
    }
    if let Some(app) = &config.cipp_app {
        policies::cipp_app(config, o, app, &mut plan);
    }
    plan_service_exclusions(config, o, &mut plan);
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
/// Returns each site's name and its location id (or `location:<name>` if it is
/// yet to be created).
fn plan_locations(config: &Config, o: &Observed, plan: &mut TenantPlan) -> Vec<(String, String)> {
    let mut ids = Vec::new();
    for site in &config.sites {
        let name = config.location_name(site);
        let key = owned_key(Control::A1, Some(&site.name));
        let desired: Vec<IpRange> = site.ranges.iter().map(|n| IpRange::from_net(*n)).collect();
        let desired_json = to_value(&desired);
        let Some(loc) = find_owned_location(o, &key, &name, plan) else {
            let placeholder = format!("location:{name}");
            ids.push((site.name.clone(), placeholder.clone()));
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
        ids.push((site.name.clone(), loc.id().to_string()));
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

/// B2: every service account is excluded from every other policy in the MSP
/// tenant, in one write per policy. caguard's own policies carry the exclusions
/// in their desired state.
fn plan_service_exclusions(config: &Config, o: &Observed, plan: &mut TenantPlan) {
    let ids: Vec<String> =
        config.service_accounts.iter().filter_map(|s| o.account(&s.account)).map(str::to_string).collect();
    let owned = owned_policy_ids(plan);
    let names = config.owned_policy_names();
    for p in &o.policies {
        if owned.iter().any(|id| id.eq_ignore_ascii_case(p.id()))
            || names.iter().any(|n| p.name().eq_ignore_ascii_case(n))
        {
            continue;
        }
        let reason = "a service account is not excluded, so this policy also applies to it";
        if let Some(action) = exclude_users(Control::B2, p, &ids, reason) {
            plan.push(config, action);
        }
    }
}
