//! The MSP's own policies as configured: lockdown (block) policies (A2, with
//! their session controls S4), service accounts (B1, B2, D2) and the CIPP app's
//! MFA policy (A3).
//!
//! Two forms say the same thing. The short form (`[accounts]`, `[apps]`,
//! `[names]`, `[rollout]`) describes one lockdown policy and one service account,
//! as caguard always has. The list form (`[[lockdown]]`, `[[service_account]]`)
//! describes several, as an MSP running CIPP and Syncro needs. Both parse to the
//! same [`Lockdown`] and [`ServiceAccount`] values, and they cannot be mixed.

use super::{ControlMode, Lines, Rollout, Site, is_guid};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// Names from the source documents (the KB article, the Syncro article, CIPP's FAQ).
pub const DEFAULT_BLOCK_POLICY: &str = "Block CIPP Access - Outside Trusted IPs";
pub const DEFAULT_SYNCRO_BLOCK_POLICY: &str = "Block Syncro - Outside Trusted IPs";
pub const DEFAULT_SERVICE_POLICY: &str = "CIPP Service Account Conditional Access Policy";
pub const DEFAULT_SYNCRO_SERVICE_POLICY: &str = "Syncro Service Account MFA Policy";
pub const DEFAULT_APP_POLICY: &str = "CIPP app: require MFA";
/// S4's sign-in frequency when none is configured (the Dynamics 365 document's example).
pub const DEFAULT_SESSION_HOURS: u32 = 8;

/// One technician block policy (A2): who, which apps, which sites it trusts.
#[derive(Clone, Debug, PartialEq)]
pub struct Lockdown {
    /// The policy's display name; also how caguard's store knows it.
    pub name: String,
    /// Group object ids.
    pub technician_groups: Vec<String>,
    /// Object ids or UPNs, or `All` (acknowledged).
    pub technician_users: Vec<String>,
    /// `All`, or app ids.
    pub apps: Vec<String>,
    /// The sites (names as in `[sites]`) whose locations this policy trusts.
    pub sites: Vec<String>,
    pub rollout: Rollout,
    pub session: Session,
}

impl Lockdown {
    /// The policy targets every user in the MSP tenant (the Syncro article's scope).
    pub fn all_users(&self) -> bool {
        self.technician_users.iter().any(|u| u.eq_ignore_ascii_case("All"))
    }

    pub fn trusts(&self, site: &Site) -> bool {
        self.sites.iter().any(|s| s.eq_ignore_ascii_case(&site.name))
    }
}

/// S4: sessions that do not outlive a change of network. A policy of its own
/// on the lockdown's technicians and apps: a sign-in frequency, and (beta,
/// preview) continuous access evaluation with strict location enforcement.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub mode: ControlMode,
    pub policy_name: String,
    pub sign_in_frequency_hours: u32,
    pub strict_location: bool,
}

/// A service account (B1): its own MFA-every-time policy, excluded everywhere else.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceAccount {
    /// Object id or UPN in the MSP tenant.
    pub account: String,
    pub policy_name: String,
    /// Direct mode: tenant id (lower case) → this account's user there.
    pub direct_accounts: BTreeMap<String, String>,
    /// CIPP's own account: the one whose refresh token caguard signs in with, and
    /// the one a direct tenant without a configured account falls back to.
    pub cipp: bool,
}

/// A3: MFA on the app CIPP signs in with.
#[derive(Clone, Debug, PartialEq)]
pub struct AppMfa {
    pub policy_name: String,
    pub app_id: String,
    /// An authentication strength id instead of plain MFA.
    pub authentication_strength: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSession {
    mode: Option<Spanned<String>>,
    policy: Option<String>,
    sign_in_frequency_hours: Option<Spanned<i64>>,
    strict_location: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLockdown {
    name: Option<Spanned<String>>,
    tool: Option<Spanned<String>>,
    #[serde(default)]
    technician_groups: Vec<String>,
    #[serde(default)]
    technician_users: Vec<String>,
    #[serde(default)]
    all_users_are_technicians: bool,
    apps: Option<Spanned<Vec<String>>>,
    sites: Option<Spanned<Vec<String>>>,
    rollout: Option<Spanned<String>>,
    session: Option<RawSession>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServiceAccount {
    pub(super) account: Spanned<String>,
    pub(super) tool: Option<Spanned<String>>,
    pub(super) policy: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) direct_accounts: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCippApp {
    pub(super) app_id: Spanned<String>,
    pub(super) policy: Option<String>,
    pub(super) authentication_strength: Option<Spanned<String>>,
}

/// The short form's keys, as read from `[accounts]`, `[apps]`, `[names]`, `[rollout]`.
pub(super) struct Short<'a> {
    pub technician_groups: &'a [String],
    pub technician_users: &'a [String],
    pub all_users_are_technicians: bool,
    pub apps: Option<&'a Spanned<Vec<String>>>,
    pub block_name: Option<&'a str>,
    pub rollout: Option<&'a Spanned<String>>,
    pub service_account: Option<&'a Spanned<String>>,
    pub service_name: Option<&'a str>,
    pub direct_accounts: &'a BTreeMap<String, String>,
}

/// Everything this module reads, and where errors go.
pub(super) struct Input<'a> {
    pub short: Short<'a>,
    pub lockdowns: &'a [Spanned<RawLockdown>],
    pub service_accounts: &'a [Spanned<RawServiceAccount>],
    pub session: &'a RawSession,
    pub cipp_app: Option<&'a Spanned<RawCippApp>>,
    pub sites: &'a [Site],
    pub break_glass: &'a [String],
    pub accounts_line: usize,
}

pub(super) struct Parsed {
    pub lockdowns: Vec<Lockdown>,
    pub service_accounts: Vec<ServiceAccount>,
    pub cipp_app: Option<AppMfa>,
}

pub(super) type Err<'e> = dyn FnMut(&str, usize, String) + 'e;

pub(super) fn clean(v: &[String]) -> Vec<String> {
    v.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

pub(super) fn parse(i: &Input, lines: &Lines, err: &mut Err) -> Parsed {
    let mut names = Vec::new();
    let lockdowns = lockdowns(i, lines, err, &mut names);
    let service_accounts = super::service::service_accounts(i, lines, err, &mut names);
    let cipp_app = i.cipp_app.map(|a| super::service::cipp_app(a, lines, err, &mut names));
    super::service::check_accounts(i, &lockdowns, &service_accounts, lines, err);
    check_names(&names, err);
    Parsed { lockdowns, service_accounts, cipp_app }
}

fn lockdowns(i: &Input, lines: &Lines, err: &mut Err, names: &mut Vec<Named>) -> Vec<Lockdown> {
    let s = &i.short;
    let short_keys = [
        ("accounts.technician_groups", "technician_groups", !s.technician_groups.is_empty()),
        ("accounts.technician_users", "technician_users", !s.technician_users.is_empty()),
        ("apps.protected", "protected", s.apps.is_some()),
        ("names.block_policy", "block_policy", s.block_name.is_some()),
        ("rollout.block_policy", "block_policy", s.rollout.is_some()),
    ];
    if i.lockdowns.is_empty() {
        let short = RawLockdown {
            name: Some(Spanned::new(0..0, s.block_name.unwrap_or(DEFAULT_BLOCK_POLICY).to_string())),
            tool: None,
            technician_groups: s.technician_groups.to_vec(),
            technician_users: s.technician_users.to_vec(),
            all_users_are_technicians: s.all_users_are_technicians,
            apps: s.apps.cloned(),
            sites: None,
            rollout: s.rollout.cloned(),
            session: None,
        };
        let keys = Keys {
            entry: "accounts".into(),
            users: "accounts".into(),
            apps: "apps.protected".into(),
            rollout: "rollout.block_policy".into(),
            name: "names.block_policy".into(),
        };
        let name_line = if s.block_name.is_some() { lines.of_key("block_policy") } else { 1 };
        let l = lockdown(&short, &keys, i, i.accounts_line, lines, err);
        names.push((keys.name, name_line, l.name.clone()));
        names.push(("session.policy".into(), lines.of_key("policy"), l.session.policy_name.clone()));
        return vec![l];
    }
    for (key, short, set) in short_keys {
        if set {
            err(
                key,
                lines.of_key(short),
                "the short form cannot be mixed with [[lockdown]] entries; move it into an entry".into(),
            );
        }
    }
    let mut out = Vec::new();
    for (n, raw) in i.lockdowns.iter().enumerate() {
        let entry = format!("lockdown[{}]", n + 1);
        let keys = Keys {
            users: entry.clone(),
            apps: format!("{entry}.apps"),
            rollout: format!("{entry}.rollout"),
            name: format!("{entry}.name"),
            entry,
        };
        let line = lines.at(raw.span().start);
        let l = lockdown(raw.get_ref(), &keys, i, line, lines, err);
        let name_line = raw.get_ref().name.as_ref().map_or(line, |n| lines.at(n.span().start));
        names.push((keys.name.clone(), name_line, l.name.clone()));
        names.push((format!("{}.session.policy", keys.entry), line, l.session.policy_name.clone()));
        out.push(l);
    }
    out
}

/// How errors name one lockdown's keys (`accounts…` in the short form, `lockdown[N]…` in the list).
struct Keys {
    entry: String,
    users: String,
    apps: String,
    rollout: String,
    name: String,
}

/// An owned policy's name, with the key and line that set it.
pub(super) type Named = (String, usize, String);

fn lockdown(raw: &RawLockdown, keys: &Keys, i: &Input, line: usize, lines: &Lines, err: &mut Err) -> Lockdown {
    let tool = raw.tool.as_ref().and_then(|t| tool(t, &keys.entry, lines, err));
    let name = match (&raw.name, tool) {
        (Some(n), _) => n.get_ref().trim().to_string(),
        (None, Some(Tool::Syncro)) => DEFAULT_SYNCRO_BLOCK_POLICY.into(),
        (None, Some(Tool::Cipp)) => DEFAULT_BLOCK_POLICY.into(),
        (None, None) => {
            err(
                &keys.entry,
                line,
                "name the policy (name = \"…\"), or set tool = \"cipp\" or \"syncro\" for the source documents' name"
                    .into(),
            );
            String::new()
        }
    };
    let technician_groups = clean(&raw.technician_groups);
    let technician_users = clean(&raw.technician_users);
    for g in technician_groups.iter().filter(|g| !is_guid(g)) {
        err(
            &format!("{}.technician_groups", keys.users),
            lines.of_key("technician_groups").max(line),
            format!("'{g}' is not a group object id"),
        );
    }
    if technician_users.iter().any(|u| u.eq_ignore_ascii_case("All")) && !raw.all_users_are_technicians {
        err(
            &format!("{}.technician_users", keys.users),
            lines.of_key("technician_users").max(line),
            "\"All\" makes every user in the MSP tenant a technician the block policy applies to; if that is meant, \
             also set all_users_are_technicians = true"
                .into(),
        );
    }
    if technician_groups.is_empty() && technician_users.is_empty() {
        err(&keys.users, line, "name the technicians: technician_groups and/or technician_users".into());
    }
    let apps = apps(raw.apps.as_ref(), &keys.apps, lines, err, tool == Some(Tool::Syncro), line);
    let sites = match &raw.sites {
        None => i.sites.iter().map(|s| s.name.clone()).collect(),
        Some(list) => trusted_sites(list, &format!("{}.sites", keys.entry), i.sites, lines, err),
    };
    let rollout = rollout(raw.rollout.as_ref(), &keys.rollout, lines, err);
    let session = session(&name, raw.session.as_ref(), i.session, &keys.entry, lines, err);
    let technician_users = if technician_users.iter().any(|u| u.eq_ignore_ascii_case("All")) {
        vec!["All".to_string()]
    } else {
        technician_users
    };
    Lockdown { name, technician_groups, technician_users, apps, sites, rollout, session }
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Tool {
    Cipp,
    Syncro,
}

pub(super) fn tool(t: &Spanned<String>, entry: &str, lines: &Lines, err: &mut Err) -> Option<Tool> {
    match t.get_ref().to_ascii_lowercase().as_str() {
        "cipp" => Some(Tool::Cipp),
        "syncro" => Some(Tool::Syncro),
        other => {
            err(
                &format!("{entry}.tool"),
                lines.at(t.span().start),
                format!("unknown tool '{other}'; expected \"cipp\" or \"syncro\""),
            );
            None
        }
    }
}

/// `All`, or app ids (GUIDs). Syncro's OIDC app is registered per MSP, so a
/// Syncro entry must name it.
fn apps(
    raw: Option<&Spanned<Vec<String>>>,
    key: &str,
    lines: &Lines,
    err: &mut Err,
    syncro: bool,
    line: usize,
) -> Vec<String> {
    let Some(p) = raw else {
        if syncro {
            err(
                key,
                line,
                "a Syncro lockdown protects the Syncro OIDC app registered in your tenant: list its app id".into(),
            );
        }
        return vec!["All".to_string()];
    };
    let at = lines.at(p.span().start);
    let apps = clean(p.get_ref());
    if apps.is_empty() {
        err(key, at, "list \"All\" or at least one app id".into());
    }
    for a in apps.iter().filter(|a| !a.eq_ignore_ascii_case("All") && !is_guid(a)) {
        err(key, at, format!("'{a}' is neither \"All\" nor an app id (a GUID)"));
    }
    if apps.iter().any(|a| a.eq_ignore_ascii_case("All")) { vec!["All".to_string()] } else { apps }
}

fn trusted_sites(list: &Spanned<Vec<String>>, key: &str, sites: &[Site], lines: &Lines, err: &mut Err) -> Vec<String> {
    let at = lines.at(list.span().start);
    let mut out = Vec::new();
    for name in clean(list.get_ref()) {
        match sites.iter().find(|s| s.name.eq_ignore_ascii_case(&name)) {
            Some(s) => out.push(s.name.clone()),
            None => err(key, at, format!("'{name}' is not a site in [sites]")),
        }
    }
    if list.get_ref().is_empty() {
        err(key, at, "a block policy needs at least one trusted site (omit the key to trust them all)".into());
    }
    out
}

fn rollout(raw: Option<&Spanned<String>>, key: &str, lines: &Lines, err: &mut Err) -> Rollout {
    match raw.map(|r| (r.get_ref().as_str(), r.span().start)) {
        None | Some(("reportOnly", _)) => Rollout::ReportOnly,
        Some(("enabled", _)) => Rollout::Enabled,
        Some(("auto", _)) => Rollout::Auto,
        Some((other, at)) => {
            err(
                key,
                lines.at(at),
                format!("unknown rollout '{other}'; expected \"reportOnly\", \"enabled\" or \"auto\""),
            );
            Rollout::ReportOnly
        }
    }
}

/// S4 for one lockdown: its own `session` keys over the file's `[session]`.
fn session(
    name: &str,
    own: Option<&RawSession>,
    file: &RawSession,
    entry: &str,
    lines: &Lines,
    err: &mut Err,
) -> Session {
    let pick = |f: fn(&RawSession) -> bool| own.is_some_and(f);
    let mode_raw = if pick(|s| s.mode.is_some()) { own.and_then(|s| s.mode.as_ref()) } else { file.mode.as_ref() };
    let mode = match mode_raw.map(|m| (m.get_ref().as_str(), m.span().start)) {
        None | Some(("report", _)) => ControlMode::Report,
        Some(("enforce", _)) => ControlMode::Enforce,
        Some(("off", _)) => ControlMode::Off,
        Some((other, at)) => {
            let key = if pick(|s| s.mode.is_some()) { format!("{entry}.session.mode") } else { "session.mode".into() };
            err(&key, lines.at(at), format!("unknown setting '{other}'; expected \"enforce\", \"report\" or \"off\""));
            ControlMode::Report
        }
    };
    let hours_raw = own.and_then(|s| s.sign_in_frequency_hours.as_ref()).or(file.sign_in_frequency_hours.as_ref());
    let sign_in_frequency_hours = match hours_raw {
        None => DEFAULT_SESSION_HOURS,
        Some(h) => match u32::try_from(*h.get_ref()) {
            // Entra's sign-in frequency in hours runs from 1 to 23 (longer is set in days).
            Ok(n @ 1..=23) => n,
            _ => {
                let key = if own.is_some_and(|s| s.sign_in_frequency_hours.is_some()) {
                    format!("{entry}.session.sign_in_frequency_hours")
                } else {
                    "session.sign_in_frequency_hours".into()
                };
                err(&key, lines.at(h.span().start), "must be between 1 and 23 hours (Entra's range for hours)".into());
                DEFAULT_SESSION_HOURS
            }
        },
    };
    let strict_location = own.and_then(|s| s.strict_location).or(file.strict_location).unwrap_or(true);
    let policy_name = own.and_then(|s| s.policy.clone()).unwrap_or_else(|| format!("{name} - Session limits"));
    Session { mode, policy_name, sign_in_frequency_hours, strict_location }
}

/// Every policy caguard owns has its own name (ignoring case): two would overwrite each other.
fn check_names(names: &[Named], err: &mut Err) {
    for (n, (key, line, name)) in names.iter().enumerate() {
        if name.trim().is_empty() {
            continue;
        }
        if let Some((other, _, _)) = names[..n].iter().find(|(_, _, o)| o.trim().eq_ignore_ascii_case(name.trim())) {
            err(
                key,
                *line,
                format!(
                    "\"{name}\" is also the name set by {other} (ignoring case); the two policies would overwrite each other"
                ),
            );
        }
    }
}
