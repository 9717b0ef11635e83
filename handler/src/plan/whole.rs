//! caguard's own policies are owned whole (#12). Every property that narrows
//! who or what an owned policy covers is part of its desired state: an excluded
//! group, role, app or user beyond the required ones, a platform, a risk level,
//! a device filter, an authentication flow, or a property caguard does not model
//! is drift, removed and alerted. The one allowance is the exclusions an MSP
//! makes on purpose: CIPP's `Vacation Exclusion - …` groups and
//! `accounts.allowed_exclusions`. Those are kept, and reported.

use super::{Observed, TenantPlan, strings, union};
use crate::config::{Config, Control};
use serde_json::Value;

/// CIPP's vacation mode excludes people from a policy through a security group
/// named `Vacation Exclusion - <policy name>` (CIPP's `Invoke-ExecCAExclusion`).
pub const VACATION_PREFIX: &str = "Vacation Exclusion - ";

/// Containers of an owned policy whose every property is desired. A property
/// found in one that the desired fields do not name is removed (set to null).
const CLOSED: &[&str] =
    &["/conditions", "/conditions/users", "/conditions/applications", "/conditions/locations", "/grantControls"];

/// One desired property of an owned policy: a JSON pointer and its value.
pub(super) type Field = (String, Value);

/// Adds `(pointer, null)` for every property of a closed container in `current`
/// that `fields` does not name, so anything added out of band is drift.
pub(super) fn close(current: &Value, fields: &mut Vec<Field>) {
    for container in CLOSED {
        let Some(obj) = current.pointer(container).and_then(Value::as_object) else { continue };
        for key in obj.keys().filter(|k| !k.starts_with('@')) {
            let ptr = format!("{container}/{key}");
            let named = fields
                .iter()
                .any(|(f, _)| f == &ptr || f.starts_with(&format!("{ptr}/")) || ptr.starts_with(&format!("{f}/")));
            if !named && !CLOSED.contains(&ptr.as_str()) {
                fields.push((ptr, Value::Null));
            }
        }
    }
}

/// The exclusions an owned policy keeps in `/conditions/users/<prop>`: the
/// `required` ones, plus those it has now that the MSP made on purpose (reported
/// in a note). Everything else there is drift.
pub(super) fn exclusions(
    config: &Config,
    o: &Observed,
    current: &Value,
    prop: &str,
    required: &[String],
    control: Control,
    plan: &mut TenantPlan,
) -> Vec<String> {
    let now = strings(current, &format!("/conditions/users/{prop}"));
    let is_required = |x: &String| required.iter().any(|r| r.eq_ignore_ascii_case(x));
    let allowed: Vec<String> =
        now.iter().filter(|x| !is_required(x) && on_purpose(config, o, prop, x)).cloned().collect();
    if !allowed.is_empty() {
        let shown: Vec<String> = allowed.iter().map(|id| describe(o, prop, id)).collect();
        plan.note(control, format!("kept {prop} the MSP made on purpose: {}", shown.join(", ")));
    }
    let kept: Vec<String> = now.into_iter().filter(|x| is_required(x) || allowed.contains(x)).collect();
    union(&kept, required)
}

/// An exclusion the MSP made on purpose: listed in `accounts.allowed_exclusions`,
/// or (for groups) one of CIPP's vacation groups.
fn on_purpose(config: &Config, o: &Observed, prop: &str, id: &str) -> bool {
    config.allowed_exclusions.iter().any(|a| a.eq_ignore_ascii_case(id))
        || (prop == "excludeGroups" && group_name(o, id).is_some_and(is_vacation_group))
}

fn is_vacation_group(name: &str) -> bool {
    name.len() > VACATION_PREFIX.len() && name[..VACATION_PREFIX.len()].eq_ignore_ascii_case(VACATION_PREFIX)
}

fn group_name<'a>(o: &'a Observed, id: &str) -> Option<&'a str> {
    o.group_names.get(&id.to_ascii_lowercase()).map(String::as_str)
}

fn describe(o: &Observed, prop: &str, id: &str) -> String {
    match group_name(o, id).filter(|_| prop == "excludeGroups") {
        Some(name) => format!("\"{name}\" ({id})"),
        None => id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn close_removes_what_the_fields_do_not_name_and_nothing_they_do() {
        let current = json!({"conditions": {
            "users": {"includeUsers": ["a"], "excludeRoles": ["r"]},
            "platforms": {"includePlatforms": ["android"]},
            "futureCondition": {"x": 1},
            "locations": {"includeLocations": ["All"]}},
            "grantControls": {"operator": "OR", "termsOfUse": ["t"], "@odata.type": "x"}});
        let mut fields: Vec<Field> = vec![
            ("/conditions/users/includeUsers".into(), json!(["a"])),
            ("/conditions/locations".into(), Value::Null),
            ("/grantControls/operator".into(), json!("OR")),
        ];
        close(&current, &mut fields);
        let mut added: Vec<&str> = fields[3..].iter().map(|(p, _)| p.as_str()).collect();
        added.sort();
        assert_eq!(
            added,
            [
                "/conditions/futureCondition",
                "/conditions/platforms",
                "/conditions/users/excludeRoles",
                "/grantControls/termsOfUse"
            ]
        );
        assert!(fields[3..].iter().all(|(_, v)| v.is_null()));
    }

    #[test]
    fn vacation_groups_are_recognised_by_their_prefix_only() {
        assert!(is_vacation_group("Vacation Exclusion - Block technicians"));
        assert!(is_vacation_group("vacation exclusion - x"));
        assert!(!is_vacation_group("Vacation Exclusion - "));
        assert!(!is_vacation_group("CIPP Technicians"));
    }
}
