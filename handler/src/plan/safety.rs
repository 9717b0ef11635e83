//! Lockout safety for the technician block policy. Checked by the planner and
//! re-checked by apply just before every write of a block policy.

use crate::config::{Config, ControlMode, Lockdown};
use crate::model::{NamedLocation, NamedLocationKind};
use crate::plan::{Action, Observed, Op, merge_patch, strings, to_value};
use serde_json::Value;

/// A policy that blocks access.
pub fn is_block(policy: &Value) -> bool {
    strings(policy, "/grantControls/builtInControls").iter().any(|c| c == "block")
}

/// Checks the block policy as it will stand after a write.
///
/// - every break-glass account is excluded;
/// - the trusted set is not empty, and every location it excludes is, by id, an IP
///   location marked trusted that holds exactly one site's configured ranges, as
///   observed or as the enforced location writes in `actions` will leave it;
/// - it targets no users beyond the lockdown's configured technicians (All users
///   only where that lockdown is configured so, with every service account excluded).
pub fn check_block_policy(
    config: &Config,
    lockdown: &Lockdown,
    observed: &Observed,
    policy: &Value,
    actions: &[Action],
) -> Result<(), String> {
    for bg in &config.break_glass {
        let Some(id) = observed.account(bg) else {
            return Err(format!("break-glass account '{bg}' did not resolve to a user, so it cannot be excluded"));
        };
        if !strings(policy, "/conditions/users/excludeUsers").iter().any(|u| u.eq_ignore_ascii_case(id)) {
            return Err(format!("break-glass account '{bg}' ({id}) is not excluded"));
        }
    }
    let trusted = strings(policy, "/conditions/locations/excludeLocations");
    if trusted.is_empty() || config.sites.iter().all(|s| s.ranges.is_empty()) {
        return Err("the trusted set is empty: the policy would block technicians everywhere".into());
    }
    for id in &trusted {
        check_trusted_location(config, observed, id, actions)?;
    }
    let excluded = strings(policy, "/conditions/users/excludeUsers");
    for sa in &config.service_accounts {
        let id = observed.account(&sa.account).unwrap_or(sa.account.as_str());
        if !excluded.iter().any(|u| u.eq_ignore_ascii_case(id)) {
            return Err(format!("service account '{}' ({id}) is not excluded", sa.account));
        }
    }
    let allowed_users: Vec<&str> =
        lockdown.technician_users.iter().map(|u| observed.account(u).unwrap_or(u.as_str())).collect();
    for u in strings(policy, "/conditions/users/includeUsers") {
        if !allowed_users.iter().any(|a| a.eq_ignore_ascii_case(&u)) {
            return Err(format!("it would target '{u}', who is not a configured technician"));
        }
    }
    for g in strings(policy, "/conditions/users/includeGroups") {
        if !lockdown.technician_groups.iter().any(|a| a.eq_ignore_ascii_case(&g)) {
            return Err(format!("it would target group '{g}', which is not a configured technician group"));
        }
    }
    if !strings(policy, "/conditions/users/includeRoles").is_empty() {
        return Err("it would target directory roles".into());
    }
    if policy.pointer("/conditions/users/includeGuestsOrExternalUsers").is_some_and(|v| !v.is_null()) {
        return Err("it would target guests or external users".into());
    }
    Ok(())
}

/// One excluded location, as it will stand: an IP location, trusted, with exactly
/// the ranges of a configured site. `location:<name>` is one this plan creates.
fn check_trusted_location(config: &Config, observed: &Observed, id: &str, actions: &[Action]) -> Result<(), String> {
    let enforced = actions.iter().filter(|a| a.mode == ControlMode::Enforce);
    let after: Value = if let Some(name) = id.strip_prefix("location:") {
        let create = enforced.clone().find(|a| a.op == Op::CreateLocation && a.target.eq_ignore_ascii_case(name));
        create
            .map(|a| a.body.clone())
            .ok_or_else(|| format!("trusted location \"{name}\" is not created by this plan"))?
    } else {
        let loc = observed
            .locations
            .iter()
            .find(|l| l.id().eq_ignore_ascii_case(id))
            .ok_or_else(|| format!("excluded location {id} is not a named location caguard can see"))?;
        let mut v = to_value(loc);
        for a in enforced.filter(|a| matches!(&a.op, Op::UpdateLocation { id: u } if u.eq_ignore_ascii_case(id))) {
            merge_patch(&mut v, &a.body);
        }
        v
    };
    let loc: NamedLocation = serde_json::from_value(after).map_err(|e| format!("location {id}: {e}"))?;
    if loc.kind() != NamedLocationKind::Ip {
        return Err(format!("excluded location \"{}\" ({id}) is not an IP location", loc.name()));
    }
    if loc.is_trusted.as_ref() != Some(&true) {
        return Err(format!("excluded location \"{}\" ({id}) is not marked trusted", loc.name()));
    }
    let mut have: Vec<ipnet::IpNet> =
        loc.cidrs().iter().filter_map(|c| c.parse::<ipnet::IpNet>().ok()).map(|n| n.trunc()).collect();
    have.sort();
    have.dedup();
    let matches_a_site = config.sites.iter().any(|s| {
        let mut want = s.ranges.clone();
        want.sort();
        !want.is_empty() && want == have
    });
    if !matches_a_site {
        return Err(format!(
            "excluded location \"{}\" ({id}) does not hold exactly the ranges of a configured site",
            loc.name()
        ));
    }
    Ok(())
}
