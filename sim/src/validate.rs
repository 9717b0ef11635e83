//! Graph's input validation for the objects the simulator stores.
//! Each error is the message of a 400 `BadRequest`.

use serde_json::Value;

const STATES: &[&str] = &["enabled", "disabled", "enabledForReportingButNotEnforced"];
const GRANTS: &[&str] = &[
    "block",
    "mfa",
    "compliantDevice",
    "domainJoinedDevice",
    "approvedApplication",
    "compliantApplication",
    "passwordChange",
    "unknownFutureValue",
];
const CLIENT_APPS: &[&str] = &[
    "all",
    "browser",
    "mobileAppsAndDesktopClients",
    "exchangeActiveSync",
    "easSupported",
    "other",
    "unknownFutureValue",
];
const PLATFORMS: &[&str] =
    &["android", "iOS", "windows", "windowsPhone", "macOS", "linux", "all", "unknownFutureValue"];
const RISKS: &[&str] = &["low", "medium", "high", "hidden", "none", "unknownFutureValue"];
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
const FREQ_INTERVALS: &[&str] = &["timeBased", "everyTime", "unknownFutureValue"];
const FREQ_TYPES: &[&str] = &["days", "hours", "unknownFutureValue"];
const FREQ_AUTH: &[&str] = &["primaryAndSecondaryAuthentication", "secondaryAuthentication", "unknownFutureValue"];

/// Graph caps an IP named location at this many ranges.
pub const MAX_IP_RANGES: usize = 2000;

fn enum_value(v: Option<&Value>, allowed: &[&str], prop: &str) -> Result<(), String> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(()),
        Some(Value::String(s)) => Err(format!("Requested value '{s}' was not found for property '{prop}'.")),
        Some(other) => Err(format!("Invalid value {other} for property '{prop}'.")),
    }
}

fn enum_list(v: Option<&Value>, allowed: &[&str], prop: &str) -> Result<(), String> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) => items.iter().try_for_each(|i| enum_value(Some(i), allowed, prop)),
        Some(other) => Err(format!("Property '{prop}' must be a collection, got {other}.")),
    }
}

fn guests(v: Option<&Value>, prop: &str) -> Result<(), String> {
    let Some(g) = v.filter(|g| !g.is_null()) else { return Ok(()) };
    if let Some(types) = g.get("guestOrExternalUserTypes").and_then(Value::as_str) {
        for flag in types.split(',').map(str::trim) {
            enum_value(Some(&Value::String(flag.into())), GUEST_TYPES, &format!("{prop}.guestOrExternalUserTypes"))?;
        }
    }
    if let Some(t) = g.get("externalTenants").filter(|t| !t.is_null()) {
        enum_value(t.get("membershipKind"), MEMBERSHIP_KINDS, &format!("{prop}.externalTenants.membershipKind"))?;
        if t.get("membershipKind").and_then(Value::as_str) == Some("enumerated")
            && t.get("members").and_then(Value::as_array).is_none_or(|m| m.is_empty())
        {
            return Err(format!("{prop}.externalTenants: enumerated membership needs at least one member."));
        }
    }
    Ok(())
}

/// Validates a whole CA policy as it would be stored.
pub fn policy(p: &Value) -> Result<(), String> {
    if p.get("displayName").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err("displayName is required.".into());
    }
    enum_value(p.get("state"), STATES, "state")?;
    let c = p.get("conditions").filter(|c| !c.is_null()).ok_or("conditions is required.")?;
    if c.get("applications").is_none_or(Value::is_null) || c.get("users").is_none_or(Value::is_null) {
        return Err("conditions.applications and conditions.users are required.".into());
    }
    enum_list(c.get("clientAppTypes"), CLIENT_APPS, "conditions.clientAppTypes")?;
    enum_list(c.get("signInRiskLevels"), RISKS, "conditions.signInRiskLevels")?;
    enum_list(c.get("userRiskLevels"), RISKS, "conditions.userRiskLevels")?;
    if let Some(pl) = c.get("platforms").filter(|p| !p.is_null()) {
        enum_list(pl.get("includePlatforms"), PLATFORMS, "conditions.platforms.includePlatforms")?;
        enum_list(pl.get("excludePlatforms"), PLATFORMS, "conditions.platforms.excludePlatforms")?;
    }
    let users = &c["users"];
    guests(users.get("includeGuestsOrExternalUsers"), "conditions.users.includeGuestsOrExternalUsers")?;
    guests(users.get("excludeGuestsOrExternalUsers"), "conditions.users.excludeGuestsOrExternalUsers")?;
    if let Some(g) = p.get("grantControls").filter(|g| !g.is_null()) {
        enum_list(g.get("builtInControls"), GRANTS, "grantControls.builtInControls")?;
        enum_value(g.get("operator"), &["AND", "OR"], "grantControls.operator")?;
        let controls = g.get("builtInControls").and_then(Value::as_array).map_or(0, Vec::len);
        let blocks = g.get("builtInControls").and_then(Value::as_array).is_some_and(|a| a.iter().any(|c| c == "block"));
        if blocks && controls > 1 {
            return Err("grantControls: 'block' cannot be combined with other controls.".into());
        }
    }
    if let Some(f) = p.pointer("/sessionControls/signInFrequency").filter(|f| !f.is_null()) {
        enum_value(f.get("frequencyInterval"), FREQ_INTERVALS, "sessionControls.signInFrequency.frequencyInterval")?;
        enum_value(f.get("type"), FREQ_TYPES, "sessionControls.signInFrequency.type")?;
        enum_value(f.get("authenticationType"), FREQ_AUTH, "sessionControls.signInFrequency.authenticationType")?;
        if f.get("frequencyInterval").and_then(Value::as_str) == Some("everyTime")
            && (f.get("value").is_some_and(|v| !v.is_null()) || f.get("type").is_some_and(|v| !v.is_null()))
        {
            return Err(
                "sessionControls.signInFrequency: value and type must be null when frequencyInterval is everyTime."
                    .into(),
            );
        }
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

    #[test]
    fn rejects_short_prefixes_and_unknown_enums() {
        let loc = json!({"@odata.type": "#microsoft.graph.ipNamedLocation", "displayName": "x",
                         "ipRanges": [{"cidrAddress": "10.0.0.0/8"}]});
        assert!(named_location(&loc).unwrap_err().contains("/8"));
        let p = json!({"displayName": "p", "state": "on",
                       "conditions": {"applications": {}, "users": {}}});
        assert!(policy(&p).unwrap_err().contains("'on'"));
    }
}
