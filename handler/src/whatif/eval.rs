//! The Conditional Access evaluator: which policies apply to a sign-in, why the
//! others do not, and what the sign-in must then satisfy. Pure: policies and
//! named locations (as Graph returns them) and a sign-in in, answers out.
//!
//! It answers as Graph's What If does (`POST /identity/conditionalAccess/evaluate`,
//! v1.0): each policy with `policyApplies` and one `analysisReasons` value, the
//! first condition that is not met (learn.microsoft.com, whatIfAnalysisResult and
//! "Conditional Access What If tool"). A condition caguard does not model (device
//! filters, times, application filters, …), or one the sign-in does not say
//! enough about, gives `notEnoughInformation`, never a guess. Only enabled and
//! report-only policies are evaluated; a disabled one is `policyNotEnabled`.
//!
//! This file is self-contained (serde_json and ipnet only): the simulator
//! compiles the same file for its `evaluate` endpoint, so the two cannot differ.

use serde_json::{Value, json};
use std::net::IpAddr;

/// Who signs in.
#[derive(Clone, Debug, PartialEq)]
pub enum Identity {
    /// A user of the tenant (or a guest in it): its object id, the groups and
    /// directory roles (template ids) it holds, and, for a guest or external
    /// user, its kind (`b2bCollaborationGuest`, `serviceProvider`, …) and home tenant.
    User { id: String, groups: Vec<String>, roles: Vec<String>, external: Option<(String, Option<String>)> },
    /// A single-tenant service principal (workload identity).
    ServicePrincipal { id: String },
}

/// What the sign-in is for.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Apps(Vec<String>),
    UserAction(String),
    AuthContext(String),
}

/// A sign-in, as What If's `signInIdentity`, `signInContext` and `signInConditions` say it.
#[derive(Clone, Debug, PartialEq)]
pub struct SignIn {
    pub identity: Identity,
    pub target: Target,
    pub ip: Option<IpAddr>,
    /// Two-letter country code.
    pub country: Option<String>,
    /// `browser`, `mobileAppsAndDesktopClients`, `exchangeActiveSync`, `other`.
    pub client_app: Option<String>,
    /// `android`, `iOS`, `windows`, `macOS`, `linux`, `windowsPhone`.
    pub platform: Option<String>,
    pub sign_in_risk: Option<String>,
    pub user_risk: Option<String>,
    pub service_principal_risk: Option<String>,
    pub insider_risk: Option<String>,
    pub transfer_method: Option<String>,
}

impl SignIn {
    /// A user signing in to `apps` from `ip` in a browser on Windows (the
    /// conditions caguard's own checks leave open).
    pub fn user(id: &str, groups: Vec<String>, apps: Vec<String>, ip: Option<IpAddr>) -> SignIn {
        SignIn {
            identity: Identity::User { id: id.into(), groups, roles: vec![], external: None },
            target: Target::Apps(apps),
            ip,
            country: None,
            client_app: Some("browser".into()),
            platform: Some("windows".into()),
            sign_in_risk: None,
            user_risk: None,
            service_principal_risk: None,
            insider_risk: None,
            transfer_method: None,
        }
    }
}

/// `whatIfAnalysisReasons`, in the order conditions are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    NotSet,
    NotEnoughInformation,
    PolicyNotEnabled,
    Users,
    WorkloadIdentities,
    Application,
    UserActions,
    AuthenticationContext,
    DevicePlatform,
    Devices,
    ClientApps,
    Location,
    SignInRisk,
    UserRisk,
    InsiderRisk,
    AuthenticationFlow,
    Time,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotSet => "notSet",
            Reason::NotEnoughInformation => "notEnoughInformation",
            Reason::PolicyNotEnabled => "policyNotEnabled",
            Reason::Users => "users",
            Reason::WorkloadIdentities => "workloadIdentities",
            Reason::Application => "application",
            Reason::UserActions => "userActions",
            Reason::AuthenticationContext => "authenticationContext",
            Reason::DevicePlatform => "devicePlatform",
            Reason::Devices => "devices",
            Reason::ClientApps => "clientApps",
            Reason::Location => "location",
            Reason::SignInRisk => "signInRisk",
            Reason::UserRisk => "userRisk",
            Reason::InsiderRisk => "insiderRisk",
            Reason::AuthenticationFlow => "authenticationFlow",
            Reason::Time => "time",
        }
    }
}

/// One policy's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub policy_id: String,
    pub name: String,
    /// `enabled` or `enabledForReportingButNotEnforced` (or `disabled`).
    pub state: String,
    pub applies: bool,
    pub reason: Reason,
}

impl Answer {
    pub fn report_only(&self) -> bool {
        self.state == "enabledForReportingButNotEnforced"
    }
}

/// A condition's verdict: met, not met, or not knowable here.
#[derive(Clone, Copy, PartialEq)]
enum Met {
    Yes,
    No,
    Unknown,
}

fn met(b: bool) -> Met {
    if b { Met::Yes } else { Met::No }
}

fn strs(v: &Value, ptr: &str) -> Vec<String> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_ascii_lowercase).collect())
        .unwrap_or_default()
}

fn has(list: &[String], x: &str) -> bool {
    list.iter().any(|l| l.eq_ignore_ascii_case(x))
}

fn set(v: Option<&Value>) -> bool {
    v.is_some_and(|x| !x.is_null() && !x.as_array().is_some_and(Vec::is_empty))
}

/// Evaluates every policy against the sign-in.
pub fn evaluate(policies: &[Value], locations: &[Value], s: &SignIn) -> Vec<Answer> {
    policies.iter().map(|p| answer(p, locations, s)).collect()
}

fn answer(p: &Value, locations: &[Value], s: &SignIn) -> Answer {
    let state = p["state"].as_str().unwrap_or("disabled").to_string();
    let mut a = Answer {
        policy_id: p["id"].as_str().unwrap_or_default().to_string(),
        name: p["displayName"].as_str().unwrap_or_default().to_string(),
        state: state.clone(),
        applies: false,
        reason: Reason::PolicyNotEnabled,
    };
    if state != "enabled" && state != "enabledForReportingButNotEnforced" {
        return a;
    }
    let c = &p["conditions"];
    let checks: [(Reason, Met); 12] = [
        (identity_reason(c, s), identity(c, s)),
        (target_reason(s), target(c, s)),
        (Reason::DevicePlatform, platform(c, s)),
        (Reason::Devices, if set(c.get("devices")) { Met::Unknown } else { Met::Yes }),
        (Reason::ClientApps, client_apps(c, s)),
        (Reason::Location, location(c, locations, s)),
        (Reason::SignInRisk, level(c.get("signInRiskLevels"), s.sign_in_risk.as_deref())),
        (Reason::UserRisk, level(c.get("userRiskLevels"), s.user_risk.as_deref())),
        (Reason::WorkloadIdentities, level(c.get("servicePrincipalRiskLevels"), s.service_principal_risk.as_deref())),
        (Reason::InsiderRisk, flags(c.get("insiderRiskLevels"), s.insider_risk.as_deref())),
        (
            Reason::AuthenticationFlow,
            flags(c.pointer("/authenticationFlows/transferMethods"), s.transfer_method.as_deref()),
        ),
        (Reason::Time, if set(c.get("times")) { Met::Unknown } else { Met::Yes }),
    ];
    if let Some((reason, _)) = checks.iter().find(|(_, m)| *m == Met::No) {
        a.reason = *reason;
    } else if checks.iter().any(|(_, m)| *m == Met::Unknown) || unmodelled(c) {
        a.reason = Reason::NotEnoughInformation;
    } else {
        a.applies = true;
        a.reason = Reason::NotSet;
    }
    a
}

/// Conditions this evaluator does not know at all.
fn unmodelled(c: &Value) -> bool {
    const KNOWN: &[&str] = &[
        "users",
        "applications",
        "clientApplications",
        "platforms",
        "devices",
        "clientAppTypes",
        "locations",
        "signInRiskLevels",
        "userRiskLevels",
        "servicePrincipalRiskLevels",
        "insiderRiskLevels",
        "authenticationFlows",
        "times",
    ];
    c.as_object()
        .is_some_and(|o| o.iter().any(|(k, v)| !k.starts_with('@') && !KNOWN.contains(&k.as_str()) && set(Some(v))))
}

fn identity_reason(c: &Value, s: &SignIn) -> Reason {
    match s.identity {
        Identity::User { .. } if !set(c.get("users")) => Reason::WorkloadIdentities,
        Identity::User { .. } => Reason::Users,
        Identity::ServicePrincipal { .. } => Reason::WorkloadIdentities,
    }
}

fn identity(c: &Value, s: &SignIn) -> Met {
    match &s.identity {
        Identity::User { id, groups, roles, external } => {
            let u = &c["users"];
            if u.is_null() {
                return Met::No; // a workload-identity policy
            }
            let excluded = has(&strs(u, "/excludeUsers"), id)
                || groups.iter().any(|g| has(&strs(u, "/excludeGroups"), g))
                || roles.iter().any(|r| has(&strs(u, "/excludeRoles"), r))
                || external.as_ref().is_some_and(|e| guests(&u["excludeGuestsOrExternalUsers"], e))
                || (external.is_some() && has(&strs(u, "/excludeUsers"), "GuestsOrExternalUsers"));
            let inc = strs(u, "/includeUsers");
            let included = has(&inc, "All")
                || has(&inc, id)
                || groups.iter().any(|g| has(&strs(u, "/includeGroups"), g))
                || roles.iter().any(|r| has(&strs(u, "/includeRoles"), r))
                || external.as_ref().is_some_and(|e| guests(&u["includeGuestsOrExternalUsers"], e))
                || (external.is_some() && has(&inc, "GuestsOrExternalUsers"));
            met(included && !excluded)
        }
        Identity::ServicePrincipal { id } => {
            let ca = &c["clientApplications"];
            if !set(Some(ca)) {
                return Met::No;
            }
            if set(ca.get("servicePrincipalFilter")) {
                return Met::Unknown;
            }
            let inc = strs(ca, "/includeServicePrincipals");
            let included = has(&inc, id) || has(&inc, "ServicePrincipalsInMyTenant");
            met(included && !has(&strs(ca, "/excludeServicePrincipals"), id))
        }
    }
}

/// A `conditionalAccessGuestsOrExternalUsers` object covers this external user:
/// its kind is among the types, and its home tenant among the tenants (internal
/// guests have no home tenant, so the tenants do not apply to them).
fn guests(g: &Value, (kind, tenant): &(String, Option<String>)) -> bool {
    let Some(types) = g.get("guestOrExternalUserTypes").and_then(Value::as_str) else { return false };
    if !types.split(',').any(|t| t.trim().eq_ignore_ascii_case(kind)) {
        return false;
    }
    if kind.eq_ignore_ascii_case("internalGuest") {
        return true;
    }
    match g.get("externalTenants").filter(|t| !t.is_null()) {
        None => true,
        Some(t) if t["membershipKind"] == "all" => true,
        Some(t) => tenant.as_ref().is_some_and(|home| has(&strs(t, "/members"), home)),
    }
}

fn target_reason(s: &SignIn) -> Reason {
    match s.target {
        Target::Apps(_) => Reason::Application,
        Target::UserAction(_) => Reason::UserActions,
        Target::AuthContext(_) => Reason::AuthenticationContext,
    }
}

/// Apps in Microsoft's "Office 365" app group that caguard may meet
/// (learn.microsoft.com, "Conditional Access: Target resources", Office 365).
const OFFICE_365: &[&str] = &[
    "00000002-0000-0ff1-ce00-000000000000", // Exchange Online
    "00000003-0000-0ff1-ce00-000000000000", // SharePoint Online
    "cc15fd57-2c6c-4117-a88c-83b1d56b4bbe", // Microsoft Teams Services
    "00000004-0000-0ff1-ce00-000000000000", // Skype for Business Online
];

fn target(c: &Value, s: &SignIn) -> Met {
    let a = &c["applications"];
    match &s.target {
        Target::Apps(apps) => {
            if set(a.get("applicationFilter")) {
                return Met::Unknown;
            }
            let (inc, exc) = (strs(a, "/includeApplications"), strs(a, "/excludeApplications"));
            let covers = |list: &[String], app: &str| {
                has(list, "All")
                    || has(list, app)
                    || (has(list, "Office365") && OFFICE_365.iter().any(|o| o.eq_ignore_ascii_case(app)))
            };
            let excluded = |app: &str| {
                exc.iter().any(|e| e == &app.to_ascii_lowercase())
                    || (has(&exc, "Office365") && OFFICE_365.iter().any(|o| o.eq_ignore_ascii_case(app)))
            };
            met(!apps.is_empty() && apps.iter().any(|app| covers(&inc, app) && !excluded(app)))
        }
        Target::UserAction(action) => met(has(&strs(a, "/includeUserActions"), action)),
        Target::AuthContext(ctx) => met(has(&strs(a, "/includeAuthenticationContextClassReferences"), ctx)),
    }
}

fn platform(c: &Value, s: &SignIn) -> Met {
    let p = &c["platforms"];
    if !set(Some(p)) {
        return Met::Yes;
    }
    let Some(mine) = &s.platform else { return Met::Unknown };
    let inc = strs(p, "/includePlatforms");
    met((has(&inc, "all") || has(&inc, mine)) && !has(&strs(p, "/excludePlatforms"), mine))
}

fn client_apps(c: &Value, s: &SignIn) -> Met {
    let types = strs(c, "/clientAppTypes");
    if types.is_empty() || has(&types, "all") {
        return Met::Yes;
    }
    let Some(mine) = &s.client_app else { return Met::Unknown };
    let eas = mine.eq_ignore_ascii_case("exchangeActiveSync")
        && (has(&types, "easSupported") || has(&types, "easUnsupported"));
    met(has(&types, mine) || eas)
}

/// A risk level list: empty is any; a level the sign-in does not give is `none`.
fn level(list: Option<&Value>, mine: Option<&str>) -> Met {
    let levels: Vec<String> = list
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_ascii_lowercase).collect())
        .unwrap_or_default();
    if levels.is_empty() {
        return Met::Yes;
    }
    met(has(&levels, mine.unwrap_or("none")))
}

/// A flags enum (`minor,moderate`): empty or null is any.
fn flags(v: Option<&Value>, mine: Option<&str>) -> Met {
    let Some(text) = v.and_then(Value::as_str).filter(|t| !t.trim().is_empty()) else { return Met::Yes };
    let Some(mine) = mine else { return Met::No };
    met(text.split(',').any(|f| f.trim().eq_ignore_ascii_case(mine)))
}

/// Locations: the sign-in is in `includeLocations` and not in `excludeLocations`.
/// `AllTrusted` is every trusted named location *and* the legacy MFA trusted IPs,
/// which Graph cannot read: an IP outside every trusted named location may still
/// be in it, so that case is not knowable here.
fn location(c: &Value, locations: &[Value], s: &SignIn) -> Met {
    let l = &c["locations"];
    if !set(Some(l)) {
        return Met::Yes;
    }
    let inside = |ids: &[String]| -> Met {
        let mut unknown = false;
        for id in ids {
            match in_location(id, locations, s) {
                Met::Yes => return Met::Yes,
                Met::Unknown => unknown = true,
                Met::No => {}
            }
        }
        if unknown { Met::Unknown } else { Met::No }
    };
    match (inside(&strs(l, "/includeLocations")), inside(&strs(l, "/excludeLocations"))) {
        (Met::No, _) | (_, Met::Yes) => Met::No,
        (Met::Yes, Met::No) => Met::Yes,
        _ => Met::Unknown,
    }
}

fn in_location(id: &str, locations: &[Value], s: &SignIn) -> Met {
    if id.eq_ignore_ascii_case("All") {
        return Met::Yes;
    }
    let trusted_ip = |l: &Value| l["isTrusted"] == json!(true) && ip_in(l, s) == Met::Yes;
    if id.eq_ignore_ascii_case("AllTrusted") {
        if s.ip.is_none() {
            return Met::Unknown;
        }
        return if locations.iter().any(trusted_ip) { Met::Yes } else { Met::Unknown };
    }
    let Some(loc) = locations.iter().find(|l| l["id"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(id))) else {
        return Met::Unknown; // a location this evaluator was not given
    };
    match loc["@odata.type"].as_str() {
        Some(t) if t.ends_with("ipNamedLocation") => ip_in(loc, s),
        Some(t) if t.ends_with("countryNamedLocation") => {
            if loc["countryLookupMethod"].as_str().is_some_and(|m| m != "clientIpAddress") {
                return Met::Unknown; // GPS-based lookup: not in a What If sign-in
            }
            match &s.country {
                None => met(loc["includeUnknownCountriesAndRegions"] == json!(true)),
                Some(cc) => met(has(&strs(loc, "/countriesAndRegions"), cc)),
            }
        }
        _ => Met::Unknown,
    }
}

fn ip_in(loc: &Value, s: &SignIn) -> Met {
    let Some(ip) = s.ip else { return Met::Unknown };
    let ranges = loc["ipRanges"].as_array().cloned().unwrap_or_default();
    met(ranges.iter().filter_map(|r| r["cidrAddress"].as_str()?.parse::<ipnet::IpNet>().ok()).any(|n| n.contains(&ip)))
}

/// What the sign-in meets, from the policies that apply: blocked (by enforced
/// policies), would be blocked (by report-only ones), the grant controls it
/// must satisfy, and the policies that could not be evaluated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    pub blocked_by: Vec<String>,
    pub report_only_blocked_by: Vec<String>,
    /// Policy name → its built-in controls (or `authenticationStrength`), enforced ones only.
    pub grants: Vec<(String, Vec<String>)>,
    pub undecided: Vec<String>,
}

impl Verdict {
    pub fn of(policies: &[Value], answers: &[Answer]) -> Verdict {
        let mut v = Verdict::default();
        for (p, a) in policies.iter().zip(answers) {
            if a.reason == Reason::NotEnoughInformation {
                v.undecided.push(a.name.clone());
            }
            if !a.applies {
                continue;
            }
            let mut controls = strs(p, "/grantControls/builtInControls");
            if set(p.pointer("/grantControls/authenticationStrength")) {
                controls.push("authenticationstrength".into());
            }
            if has(&controls, "block") {
                if a.report_only() {
                    v.report_only_blocked_by.push(a.name.clone())
                } else {
                    v.blocked_by.push(a.name.clone())
                }
            } else if !a.report_only() && !controls.is_empty() {
                v.grants.push((a.name.clone(), controls));
            }
        }
        v
    }
}

/// A user's groups and directory roles (template ids), by user id.
pub type MemberOf<'a> = dyn Fn(&str) -> (Vec<String>, Vec<String>) + 'a;

/// Parses What If's request body. `member_of` gives a user's groups and roles
/// (What If resolves them server-side; caguard and the simulator look them up).
pub fn parse_request(body: &Value, member_of: &MemberOf<'_>) -> Result<SignIn, String> {
    let id = &body["signInIdentity"];
    let identity = match id["@odata.type"].as_str().unwrap_or_default() {
        t if t.ends_with("servicePrincipalSignIn") => {
            let sp = id["servicePrincipalId"].as_str().ok_or("signInIdentity.servicePrincipalId is required.")?;
            Identity::ServicePrincipal { id: sp.to_ascii_lowercase() }
        }
        t if t.ends_with("userSignIn") => {
            let user = id["userId"].as_str().unwrap_or_default().to_ascii_lowercase();
            let external = id["externalUserType"]
                .as_str()
                .map(|k| (k.to_string(), id["externalTenantId"].as_str().map(str::to_ascii_lowercase)));
            if user.is_empty() && external.is_none() {
                return Err("signInIdentity needs a userId, or externalUserType and externalTenantId.".into());
            }
            let (groups, roles) = if user.is_empty() { (vec![], vec![]) } else { member_of(&user) };
            Identity::User { id: user, groups, roles, external }
        }
        other => return Err(format!("signInIdentity: unknown type '{other}'.")),
    };
    let ctx = &body["signInContext"];
    let target = match ctx["@odata.type"].as_str().unwrap_or_default() {
        t if t.ends_with("applicationContext") => Target::Apps(strs(ctx, "/includeApplications")),
        t if t.ends_with("userActionContext") => {
            Target::UserAction(ctx["userAction"].as_str().unwrap_or_default().to_string())
        }
        t if t.ends_with("authContext") => {
            Target::AuthContext(ctx["authenticationContextValue"].as_str().unwrap_or_default().to_string())
        }
        other => return Err(format!("signInContext: unknown type '{other}'.")),
    };
    let c = &body["signInConditions"];
    let text = |k: &str| c[k].as_str().map(str::to_string);
    let ip = match c["ipAddress"].as_str() {
        None => None,
        Some(t) => {
            Some(t.parse::<IpAddr>().map_err(|_| format!("signInConditions.ipAddress: '{t}' is not an IP address."))?)
        }
    };
    Ok(SignIn {
        identity,
        target,
        ip,
        country: text("country"),
        client_app: text("clientAppType"),
        platform: text("devicePlatform"),
        sign_in_risk: text("signInRiskLevel"),
        user_risk: text("userRiskLevel"),
        service_principal_risk: text("servicePrincipalRiskLevel"),
        insider_risk: text("insiderRiskLevel"),
        transfer_method: c.pointer("/authenticationFlow/transferMethod").and_then(Value::as_str).map(str::to_string),
    })
}

/// What If's answer: each policy (only those that apply with `appliedPoliciesOnly`)
/// as stored, with `policyApplies` and `analysisReasons`.
pub fn response_value(policies: &[Value], answers: &[Answer], applied_only: bool) -> Vec<Value> {
    policies
        .iter()
        .zip(answers)
        .filter(|(_, a)| a.applies || !applied_only)
        .map(|(p, a)| {
            let mut out = p.clone();
            out["policyApplies"] = json!(a.applies);
            out["analysisReasons"] = json!(a.reason.as_str());
            out
        })
        .collect()
}
