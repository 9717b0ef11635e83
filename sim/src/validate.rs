//! Graph's input validation for the objects the simulator stores.
//! Each error is the message of a 400 `BadRequest`.
//!
//! The rules come from Microsoft Graph's v1.0 reference, not from examples:
//! `conditionalAccessPolicy` and every type it holds, as a schema table
//! ([`POLICY`]). A known property must have its documented shape (an object
//! where an object belongs, a collection where a collection belongs) and its
//! documented enum values. Properties the table does not name (beta-only ones
//! such as `agents` or `deviceStates`, OData annotations of a GET export) are
//! stored verbatim, as Graph keeps what its newer schema knows: the simulator
//! must be as strict as Graph, and no stricter.

use serde_json::Value;

/// The shape of one property.
#[derive(Clone, Copy)]
pub enum Ty {
    Str,
    Bool,
    Int,
    /// One documented value (compared ignoring case, as OData enum parsing does).
    Enum(&'static [&'static str]),
    /// A flags enum written as one comma-separated string.
    Flags(&'static [&'static str]),
    /// A collection of `Ty`.
    List(&'static Ty),
    /// An object with these documented properties.
    Obj(&'static [(&'static str, Ty)]),
}

const STATES: &[&str] = &["enabled", "disabled", "enabledForReportingButNotEnforced"];
/// `conditionalAccessGrantControl`. `riskRemediation` and `compliantNetwork` are
/// members of the evolvable enum (sent back only with `Prefer: include-unknown-enum-members`).
pub const GRANTS: &[&str] = &[
    "block",
    "mfa",
    "compliantDevice",
    "domainJoinedDevice",
    "approvedApplication",
    "compliantApplication",
    "passwordChange",
    "unknownFutureValue",
    "riskRemediation",
    "compliantNetwork",
];
/// `conditionalAccessClientApp`; `easUnsupported` is deprecated but still accepted.
pub const CLIENT_APPS: &[&str] = &[
    "all",
    "browser",
    "mobileAppsAndDesktopClients",
    "exchangeActiveSync",
    "easSupported",
    "other",
    "unknownFutureValue",
    "easUnsupported",
];
const PLATFORMS: &[&str] =
    &["android", "iOS", "windows", "windowsPhone", "macOS", "linux", "all", "unknownFutureValue"];
const RISKS: &[&str] = &["low", "medium", "high", "hidden", "none", "unknownFutureValue"];
const SP_RISKS: &[&str] = &["low", "medium", "high", "none", "unknownFutureValue"];
const INSIDER_RISKS: &[&str] = &["minor", "moderate", "elevated", "unknownFutureValue"];
const GUEST_TYPES: &[&str] = &[
    "none",
    "internalGuest",
    "b2bCollaborationGuest",
    "b2bCollaborationMember",
    "b2bDirectConnectUser",
    "otherExternalUser",
    "serviceProvider",
    "unknownFutureValue",
];
const MEMBERSHIP_KINDS: &[&str] = &["all", "enumerated", "unknownFutureValue"];
const FILTER_MODES: &[&str] = &["include", "exclude"];
const TRANSFER_METHODS: &[&str] = &["none", "deviceCodeFlow", "authenticationTransfer", "unknownFutureValue"];
const FREQ_INTERVALS: &[&str] = &["timeBased", "everyTime", "unknownFutureValue"];
const FREQ_TYPES: &[&str] = &["days", "hours", "unknownFutureValue"];
const FREQ_AUTH: &[&str] = &["primaryAndSecondaryAuthentication", "secondaryAuthentication", "unknownFutureValue"];
const BROWSER_MODES: &[&str] = &["always", "never"];
const MCAS_TYPES: &[&str] = &["mcasConfigured", "monitorOnly", "blockDownloads", "unknownFutureValue"];

const STRINGS: Ty = Ty::List(&Ty::Str);
const FILTER: Ty = Ty::Obj(&[("mode", Ty::Enum(FILTER_MODES)), ("rule", Ty::Str)]);
const GUESTS: Ty = Ty::Obj(&[
    ("guestOrExternalUserTypes", Ty::Flags(GUEST_TYPES)),
    ("externalTenants", Ty::Obj(&[("membershipKind", Ty::Enum(MEMBERSHIP_KINDS)), ("members", STRINGS)])),
]);
const USERS: Ty = Ty::Obj(&[
    ("includeUsers", STRINGS),
    ("excludeUsers", STRINGS),
    ("includeGroups", STRINGS),
    ("excludeGroups", STRINGS),
    ("includeRoles", STRINGS),
    ("excludeRoles", STRINGS),
    ("includeGuestsOrExternalUsers", GUESTS),
    ("excludeGuestsOrExternalUsers", GUESTS),
]);
const CONDITIONS: Ty = Ty::Obj(&[
    (
        "applications",
        Ty::Obj(&[
            ("includeApplications", STRINGS),
            ("excludeApplications", STRINGS),
            ("includeUserActions", STRINGS),
            ("includeAuthenticationContextClassReferences", STRINGS),
            ("applicationFilter", FILTER),
        ]),
    ),
    ("users", USERS),
    (
        "clientApplications",
        Ty::Obj(&[
            ("includeServicePrincipals", STRINGS),
            ("excludeServicePrincipals", STRINGS),
            ("servicePrincipalFilter", FILTER),
        ]),
    ),
    ("clientAppTypes", Ty::List(&Ty::Enum(CLIENT_APPS))),
    ("devices", Ty::Obj(&[("includeDevices", STRINGS), ("excludeDevices", STRINGS), ("deviceFilter", FILTER)])),
    ("locations", Ty::Obj(&[("includeLocations", STRINGS), ("excludeLocations", STRINGS)])),
    (
        "platforms",
        Ty::Obj(&[
            ("includePlatforms", Ty::List(&Ty::Enum(PLATFORMS))),
            ("excludePlatforms", Ty::List(&Ty::Enum(PLATFORMS))),
        ]),
    ),
    ("signInRiskLevels", Ty::List(&Ty::Enum(RISKS))),
    ("userRiskLevels", Ty::List(&Ty::Enum(RISKS))),
    ("servicePrincipalRiskLevels", Ty::List(&Ty::Enum(SP_RISKS))),
    ("insiderRiskLevels", Ty::Flags(INSIDER_RISKS)),
    ("authenticationFlows", Ty::Obj(&[("transferMethods", Ty::Flags(TRANSFER_METHODS))])),
]);
const GRANT_CONTROLS: Ty = Ty::Obj(&[
    ("operator", Ty::Enum(&["AND", "OR"])),
    ("builtInControls", Ty::List(&Ty::Enum(GRANTS))),
    ("customAuthenticationFactors", STRINGS),
    ("termsOfUse", STRINGS),
    ("authenticationStrength", Ty::Obj(&[("id", Ty::Str)])),
]);
const SESSION_CONTROLS: Ty = Ty::Obj(&[
    ("applicationEnforcedRestrictions", Ty::Obj(&[("isEnabled", Ty::Bool)])),
    ("cloudAppSecurity", Ty::Obj(&[("isEnabled", Ty::Bool), ("cloudAppSecurityType", Ty::Enum(MCAS_TYPES))])),
    ("persistentBrowser", Ty::Obj(&[("isEnabled", Ty::Bool), ("mode", Ty::Enum(BROWSER_MODES))])),
    (
        "signInFrequency",
        Ty::Obj(&[
            ("isEnabled", Ty::Bool),
            ("value", Ty::Int),
            ("type", Ty::Enum(FREQ_TYPES)),
            ("authenticationType", Ty::Enum(FREQ_AUTH)),
            ("frequencyInterval", Ty::Enum(FREQ_INTERVALS)),
        ]),
    ),
    ("disableResilienceDefaults", Ty::Bool),
    // Beta only (v1.0 stores it verbatim, as any property its schema lacks).
    ("continuousAccessEvaluation", Ty::Obj(&[("mode", Ty::Enum(CAE_MODES))])),
]);
/// `continuousAccessEvaluationMode` (beta); `strictLocation` is an evolvable member.
const CAE_MODES: &[&str] = &["strictEnforcement", "disabled", "unknownFutureValue", "strictLocation"];
/// `conditionalAccessPolicy` (v1.0).
pub const POLICY: Ty = Ty::Obj(&[
    ("id", Ty::Str),
    ("displayName", Ty::Str),
    ("createdDateTime", Ty::Str),
    ("modifiedDateTime", Ty::Str),
    ("templateId", Ty::Str),
    ("state", Ty::Enum(STATES)),
    ("conditions", CONDITIONS),
    ("grantControls", GRANT_CONTROLS),
    ("sessionControls", SESSION_CONTROLS),
]);

/// Graph caps an IP named location at this many ranges.
pub const MAX_IP_RANGES: usize = 2000;

/// The documented spelling of `s`, matched ignoring case.
fn canonical(allowed: &'static [&'static str], s: &str) -> Option<&'static str> {
    allowed.iter().copied().find(|a| a.eq_ignore_ascii_case(s))
}

/// Checks `v` against `ty` at `path`, rewriting enum values to their canonical
/// spelling (Graph answers a GET with `all`, whatever case was sent).
pub fn check(v: &mut Value, ty: Ty, path: &str) -> Result<(), String> {
    if v.is_null() {
        return Ok(());
    }
    let wrong = |what: &str, v: &Value| {
        let shown: String = v.to_string().chars().take(60).collect();
        Err(format!("Property '{path}' must be {what}, not {shown}."))
    };
    match ty {
        Ty::Str if v.is_string() => Ok(()),
        Ty::Str => wrong("a string", v),
        Ty::Bool if v.is_boolean() => Ok(()),
        Ty::Bool => wrong("a boolean", v),
        Ty::Int if v.is_i64() => Ok(()),
        Ty::Int => wrong("an integer", v),
        Ty::Enum(allowed) => {
            let Some(s) = v.as_str() else { return wrong("a string", v) };
            match canonical(allowed, s) {
                Some(c) => {
                    *v = Value::String(c.to_string());
                    Ok(())
                }
                None => Err(format!("Requested value '{s}' was not found for property '{path}'.")),
            }
        }
        Ty::Flags(allowed) => {
            let Some(s) = v.as_str() else { return wrong("a comma-separated string", v) };
            let mut out = Vec::new();
            for flag in s.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                let c = canonical(allowed, flag)
                    .ok_or_else(|| format!("Requested value '{flag}' was not found for property '{path}'."))?;
                out.push(c);
            }
            *v = Value::String(out.join(","));
            Ok(())
        }
        Ty::List(item) => {
            let Some(items) = v.as_array_mut() else { return wrong("a collection", v) };
            items.iter_mut().enumerate().try_for_each(|(i, x)| check(x, *item, &format!("{path}[{i}]")))
        }
        Ty::Obj(props) => {
            let Some(obj) = v.as_object_mut() else { return wrong("an object", v) };
            for (name, pty) in props {
                if let Some(x) = obj.get_mut(*name) {
                    let sub = if path.is_empty() { (*name).to_string() } else { format!("{path}.{name}") };
                    check(x, *pty, &sub)?;
                }
            }
            Ok(())
        }
    }
}

fn has_value(v: Option<&Value>) -> bool {
    v.is_some_and(|x| !x.is_null())
}

fn guests_rules(users: &Value) -> Result<(), String> {
    for prop in ["includeGuestsOrExternalUsers", "excludeGuestsOrExternalUsers"] {
        let Some(t) = users.get(prop).and_then(|g| g.get("externalTenants")).filter(|t| !t.is_null()) else {
            continue;
        };
        if t.get("membershipKind").and_then(Value::as_str) == Some("enumerated")
            && t.get("members").and_then(Value::as_array).is_none_or(|m| m.is_empty())
        {
            return Err(format!(
                "conditions.users.{prop}.externalTenants: enumerated membership needs at least one member."
            ));
        }
    }
    // The legacy value and the guest objects are two ways of saying the same thing,
    // and Graph refuses a policy that uses both (hashicorp/terraform-provider-azuread#1196).
    let legacy = ["includeUsers", "excludeUsers"].iter().any(|k| {
        users.get(*k).and_then(Value::as_array).is_some_and(|a| a.iter().any(|x| x == "GuestsOrExternalUsers"))
    });
    let objects =
        has_value(users.get("includeGuestsOrExternalUsers")) || has_value(users.get("excludeGuestsOrExternalUsers"));
    if legacy && objects {
        return Err("'GuestsOrExternalUsers' cannot be combined with guestOrExternalUsers".into());
    }
    Ok(())
}

/// Validates a whole CA policy as it would be stored, normalising enum spellings.
pub fn policy(p: &mut Value) -> Result<(), String> {
    check(p, POLICY, "")?;
    if p.get("displayName").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err("displayName is required.".into());
    }
    let c = p.get("conditions").filter(|c| !c.is_null()).ok_or("conditions is required.")?;
    if !has_value(c.get("applications")) {
        return Err("conditions.applications is required.".into());
    }
    let users = c.get("users").filter(|u| !u.is_null());
    if users.is_none() && !has_value(c.get("clientApplications")) {
        return Err("Either conditions.users or conditions.clientApplications is required.".into());
    }
    if let Some(users) = users {
        guests_rules(users)?;
    }
    if let Some(g) = p.get("grantControls").filter(|g| !g.is_null()) {
        let controls = g.get("builtInControls").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        if controls.iter().any(|c| c == "block") && controls.len() > 1 {
            return Err("grantControls: 'block' cannot be combined with other controls.".into());
        }
    }
    if let Some(f) = p.pointer("/sessionControls/signInFrequency").filter(|f| !f.is_null())
        && f.get("frequencyInterval").and_then(Value::as_str) == Some("everyTime")
        && (has_value(f.get("value")) || has_value(f.get("type")))
    {
        return Err(
            "sessionControls.signInFrequency: value and type must be null when frequencyInterval is everyTime.".into(),
        );
    }
    Ok(())
}

/// Validates a named location as it would be stored.
pub fn named_location(l: &Value) -> Result<(), String> {
    let kind = l.get("@odata.type").and_then(Value::as_str).ok_or(
        "The '@odata.type' property is required to identify the namedLocation type (ipNamedLocation or countryNamedLocation).",
    )?;
    if l.get("displayName").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err("displayName is required.".into());
    }
    match kind {
        "#microsoft.graph.ipNamedLocation" => {
            let ranges = l.get("ipRanges").and_then(Value::as_array).ok_or("ipRanges is required.")?;
            if ranges.is_empty() {
                return Err("ipRanges must contain at least one range.".into());
            }
            if ranges.len() > MAX_IP_RANGES {
                return Err(format!("ipRanges has {} ranges; at most {MAX_IP_RANGES} are allowed.", ranges.len()));
            }
            ranges.iter().try_for_each(ip_range)
        }
        "#microsoft.graph.countryNamedLocation" => {
            let c = l.get("countriesAndRegions").and_then(Value::as_array).ok_or("countriesAndRegions is required.")?;
            for code in c {
                let ok = code.as_str().is_some_and(|s| s.len() == 2 && s.chars().all(|ch| ch.is_ascii_alphabetic()));
                if !ok {
                    return Err(format!("Invalid country code {code}."));
                }
            }
            Ok(())
        }
        other => Err(format!("Requested value '{other}' was not found for property '@odata.type'.")),
    }
}

fn ip_range(r: &Value) -> Result<(), String> {
    let cidr = r.get("cidrAddress").and_then(Value::as_str).ok_or("ipRanges: cidrAddress is required.")?;
    let net: ipnet::IpNet = cidr.parse().map_err(|_| format!("ipRanges: '{cidr}' is not a valid CIDR range."))?;
    if net.prefix_len() <= 8 {
        return Err(format!(
            "ipRanges: '{cidr}' has a prefix of /{}; prefixes of /8 or shorter are not allowed.",
            net.prefix_len()
        ));
    }
    let want = match net {
        ipnet::IpNet::V4(_) => "#microsoft.graph.iPv4CidrRange",
        ipnet::IpNet::V6(_) => "#microsoft.graph.iPv6CidrRange",
    };
    match r.get("@odata.type").and_then(Value::as_str) {
        Some(t) if t != want => Err(format!("ipRanges: '{cidr}' is typed {t} but is a {want} address.")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"displayName": "p", "state": "enabled",
               "conditions": {"applications": {"includeApplications": ["All"]}, "users": {"includeUsers": ["All"]}},
               "grantControls": {"operator": "OR", "builtInControls": ["mfa"]}})
    }

    #[test]
    fn rejects_short_prefixes_and_unknown_enums() {
        let loc = json!({"@odata.type": "#microsoft.graph.ipNamedLocation", "displayName": "x",
                         "ipRanges": [{"cidrAddress": "10.0.0.0/8"}]});
        assert!(named_location(&loc).unwrap_err().contains("/8"));
        let mut p = base();
        p["state"] = json!("on");
        assert!(policy(&mut p).unwrap_err().contains("'on'"));
    }

    #[test]
    fn accepts_every_documented_grant_and_canonicalises_case() {
        for g in GRANTS.iter().filter(|g| **g != "block") {
            let mut p = base();
            p["grantControls"]["builtInControls"] = json!([g]);
            policy(&mut p).unwrap_or_else(|e| panic!("{g}: {e}"));
        }
        let mut p = base();
        p["conditions"]["clientAppTypes"] = json!(["All"]);
        policy(&mut p).unwrap();
        assert_eq!(p["conditions"]["clientAppTypes"], json!(["all"]));
    }

    #[test]
    fn users_may_be_null_for_workload_identities() {
        let mut p = base();
        p["conditions"]["users"] = Value::Null;
        assert!(policy(&mut p).unwrap_err().contains("clientApplications"));
        p["conditions"]["clientApplications"] = json!({"includeServicePrincipals": ["ServicePrincipalsInMyTenant"]});
        policy(&mut p).unwrap();
    }

    #[test]
    fn refuses_shapes_the_schema_cannot_hold() {
        let mut p = base();
        p["conditions"]["locations"] = json!([]);
        assert!(policy(&mut p).unwrap_err().contains("conditions.locations"));
        let mut p = base();
        p["conditions"]["users"]["includeUsers"] = json!("All");
        assert!(policy(&mut p).unwrap_err().contains("includeUsers"));
    }

    #[test]
    fn refuses_the_legacy_value_beside_guest_objects() {
        let mut p = base();
        p["conditions"]["users"]["includeUsers"] = json!(["GuestsOrExternalUsers"]);
        policy(&mut p).unwrap();
        p["conditions"]["users"]["excludeGuestsOrExternalUsers"] = json!({"guestOrExternalUserTypes": "serviceProvider",
            "externalTenants": {"@odata.type": "#microsoft.graph.conditionalAccessAllExternalTenants", "membershipKind": "all"}});
        assert_eq!(policy(&mut p).unwrap_err(), "'GuestsOrExternalUsers' cannot be combined with guestOrExternalUsers");
    }
}
