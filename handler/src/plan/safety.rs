//! Lockout safety for the technician block policy. Checked by the planner and
//! re-checked by apply just before every write of a block policy.

use crate::config::Config;
use crate::plan::{Observed, strings};
use serde_json::Value;

/// A policy that blocks access.
pub fn is_block(policy: &Value) -> bool {
    strings(policy, "/grantControls/builtInControls").iter().any(|c| c == "block")
}

/// Checks the block policy as it will stand after a write.
///
/// - every break-glass account is excluded;
/// - the trusted set is not empty;
/// - it targets no users beyond the configured technicians.
pub fn check_block_policy(config: &Config, observed: &Observed, policy: &Value) -> Result<(), String> {
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
    let allowed_users: Vec<&str> =
        config.technician_users.iter().map(|u| observed.account(u).unwrap_or(u.as_str())).collect();
    for u in strings(policy, "/conditions/users/includeUsers") {
        if !allowed_users.iter().any(|a| a.eq_ignore_ascii_case(&u)) {
            return Err(format!("it would target '{u}', who is not a configured technician"));
        }
    }
    for g in strings(policy, "/conditions/users/includeGroups") {
        if !config.technician_groups.iter().any(|a| a.eq_ignore_ascii_case(&g)) {
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
