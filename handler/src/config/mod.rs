//! `caguard.toml`: the desired state, validated before anything talks to Graph.
//!
//! Every error names the key and its line; problems that are safe to correct
//! (host bits, duplicates, overlaps) or merely suspicious (private ranges) are
//! warnings. `docs/configuration.md` documents every key.

use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use toml::Spanned;

mod policies;
mod service;
mod sites;
pub use policies::{
    AppMfa, DEFAULT_APP_POLICY, DEFAULT_BLOCK_POLICY, DEFAULT_SERVICE_POLICY, DEFAULT_SESSION_HOURS,
    DEFAULT_SYNCRO_BLOCK_POLICY, DEFAULT_SYNCRO_SERVICE_POLICY, Lockdown, ServiceAccount, Session,
};
pub use sites::non_public_reason;

/// How caguard reaches customer tenants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Through GDAP: customers exclude the MSP's service-provider users (D1).
    Gdap,
    /// Direct tenant mode: customers exclude the service account user (D2).
    Direct,
}

/// What caguard does about a control.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlMode {
    Enforce,
    Report,
    Off,
}

/// The controls caguard keeps (see the README's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Control {
    A1,
    A2,
    /// MFA on the app CIPP signs in with (CIPP's FAQ).
    A3,
    /// Break-glass accounts excluded from every MSP policy (Microsoft's emergency-access guidance).
    A4,
    B1,
    B2,
    C1,
    C2,
    D1,
    D2,
    /// Sessions that do not outlive a change of network (sign-in frequency, CAE strict location).
    S4,
}

impl Control {
    pub const ALL: [Control; 11] = [
        Control::A1,
        Control::A2,
        Control::A3,
        Control::A4,
        Control::B1,
        Control::B2,
        Control::C1,
        Control::C2,
        Control::D1,
        Control::D2,
        Control::S4,
    ];

    pub fn parse(s: &str) -> Option<Control> {
        Control::ALL.into_iter().find(|c| c.to_string().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Rollout of a technician block policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rollout {
    ReportOnly,
    Enabled,
    /// Report-only until the sign-in logs show, over `[rollout] window_days` and
    /// at least `min_sign_ins` technician sign-ins, that nothing unexpected would be
    /// blocked; then On, once (never back on its own).
    Auto,
}

/// `[rollout]`: the evidence `auto` waits for, and how often it reads the sign-in logs.
#[derive(Clone, Debug, PartialEq)]
pub struct Evidence {
    pub window_days: i64,
    pub min_sign_ins: usize,
    /// IPs (or ranges) a person has looked at: a would-block sign-in from one is expected.
    pub acknowledged: Vec<IpNet>,
    /// Read the sign-in logs at most this often (Graph allows ~5 reads per 10 s per tenant).
    pub read_every_minutes: i64,
}

impl Default for Evidence {
    fn default() -> Self {
        Evidence { window_days: 7, min_sign_ins: 20, acknowledged: vec![], read_every_minutes: 15 }
    }
}

/// A trusted site: its name and its (normalised, merged) ranges.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    pub name: String,
    pub ranges: Vec<IpNet>,
}

/// A validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub msp_tenant_id: String,
    pub mode: Mode,
    pub sites: Vec<Site>,
    /// The technician block policies (A2), at least one.
    pub lockdowns: Vec<Lockdown>,
    /// Object ids or UPNs.
    pub break_glass: Vec<String>,
    /// The service accounts (B1), at least one; exactly one is CIPP's.
    pub service_accounts: Vec<ServiceAccount>,
    /// A3: MFA on the app CIPP signs in with, when configured.
    pub cipp_app: Option<AppMfa>,
    /// Exclusions an MSP makes on purpose in caguard's own policies (object ids,
    /// lower case): kept and reported, never removed as drift.
    pub allowed_exclusions: Vec<String>,
    pub location_prefix: String,
    /// `names.adopt_existing`: a same-named policy with no record in the store is
    /// adopted instead of held.
    pub adopt_existing: bool,
    /// `emergency.operators_group`: members' changes (like break-glass accounts') are not reverted.
    pub emergency_group: Option<String>,
    /// `emergency.pause_hours`: how long an emergency change pauses its control (24 by default).
    pub emergency_pause_hours: i64,
    /// `[rollout]`: what `rollout = "auto"` waits for; also paces the sign-in log reads.
    pub evidence: Evidence,
    pub skip_tenants: Vec<String>,
    /// `[scope] accept_widening`: write D1 even where the existing guest exclusion
    /// makes it exclude more than the MSP's service-provider users (all tenants).
    pub accept_widening: bool,
    /// `[scope] accept_widening_tenants`: the same, for these tenants only.
    pub accept_widening_tenants: Vec<String>,
    /// Customer tenants in direct mode (GDAP mode discovers them).
    pub direct_tenants: Vec<String>,
    pub controls: BTreeMap<Control, ControlMode>,
    pub max_policies_per_tenant: usize,
    pub max_tenant_fraction: f64,
    /// CIPP's storage account (Part C), when configured.
    pub cipp: Option<CippStorage>,
    pub alerts: AlertsConfig,
    /// `[watch] rediscover_minutes`: how old the watch's tenant list may get before a
    /// tick lists GDAP relationships again. New tenants arrive sooner through Partner
    /// Center events and every sweep.
    pub watch_rediscover_minutes: i64,
    /// `[watch] concurrency`: tenants a `WatchTimer` tick lists at once (each still at
    /// most one CA request per second).
    pub watch_concurrency: usize,
}

/// The longest `[alerts] window_minutes`: a week. Longer would hide repeats for
/// longer than anyone would want, and far larger values overflow time arithmetic.
pub const MAX_ALERT_WINDOW_MINUTES: i64 = 10_080;

/// Graph's limit of ranges in one IP named location.
pub const MAX_SITE_RANGES: usize = 2000;

/// A status-page URL is shown in alerts: https, and never a function key.
fn check_status_url(u: &str) -> Result<(), String> {
    let parsed = url::Url::parse(u).map_err(|e| format!("not a URL ({e})"))?;
    if parsed.scheme() != "https" {
        return Err("must be an https:// URL".into());
    }
    if parsed.query_pairs().any(|(k, _)| k.eq_ignore_ascii_case("code")) {
        return Err("must not carry a function key (`code=`): alerts are read by many people".into());
    }
    Ok(())
}

/// Default for `[watch] rediscover_minutes`.
pub const DEFAULT_REDISCOVER_MINUTES: i64 = 15;
/// Default for `[watch] concurrency`.
pub const DEFAULT_WATCH_CONCURRENCY: usize = 64;

/// `[alerts]`: dedupe window, webhook schema, email. Webhook URLs are secrets and
/// come from app settings (`CAGUARD_TEAMS_WEBHOOK_URL`, `CAGUARD_SLACK_WEBHOOK_URL`,
/// `CAGUARD_ALERT_WEBHOOK_URL`), never from this file.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertsConfig {
    pub window_minutes: i64,
    pub webhook_schema: crate::alert::Schema,
    /// A mailbox in the MSP tenant to send from (needs Mail.Send).
    pub email_from: Option<String>,
    pub email_to: Vec<String>,
    /// caguard's status page (`https://<app>/api/ui`, no key), linked from
    /// CIPP-schema alerts as `ActionUrl`.
    pub status_url: Option<String>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            window_minutes: 60,
            webhook_schema: crate::alert::Schema::Caguard,
            email_from: None,
            email_to: vec![],
            status_url: None,
        }
    }
}

/// Where CIPP's tables are. The connection string (local runs) comes from the
/// environment (`CAGUARD_CIPP_CONNECTION_STRING`), never from this file.
#[derive(Clone, Debug, PartialEq)]
pub struct CippStorage {
    /// `https://<account>.table.core.windows.net`.
    pub table_endpoint: String,
    /// CIPP's App Service (its resource id), whose authentication settings say
    /// which API clients can call CIPP-API ([`crate::cipp::auth`]); `None`: not checked.
    pub site_id: Option<String>,
    /// ARM's endpoint (`https://management.azure.com`).
    pub arm_endpoint: String,
}

/// ARM, where CIPP's site settings are read.
pub const ARM_ENDPOINT: &str = "https://management.azure.com";

/// How the account of a direct tenant that has none configured is named: the
/// user caguard signs in as there (`GET /me`), whose refresh token CIPP keeps.
pub const SIGNED_IN_ACCOUNT: &str = "me";

impl Config {
    /// The accounts a direct tenant's policies exclude (D2), as configured: each
    /// service account's `direct_accounts` entry for the tenant; else, in direct
    /// mode, the account itself; else for CIPP's account (a direct tenant in a
    /// GDAP estate) [`SIGNED_IN_ACCOUNT`]. Another tool's account with no entry
    /// for the tenant is not there.
    pub fn direct_service_accounts(&self, tenant: &str) -> Vec<&str> {
        let t = tenant.to_ascii_lowercase();
        let mut out: Vec<&str> = Vec::new();
        for s in &self.service_accounts {
            let a = match s.direct_accounts.get(&t) {
                Some(a) => a.as_str(),
                None if self.mode == Mode::Direct => s.account.as_str(),
                None if s.cipp => SIGNED_IN_ACCOUNT,
                None => continue,
            };
            if !out.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                out.push(a);
            }
        }
        out
    }

    /// CIPP's service account: caguard signs in with its refresh token.
    pub fn cipp_service_account(&self) -> &ServiceAccount {
        self.service_accounts.iter().find(|s| s.cipp).unwrap_or(&self.service_accounts[0])
    }

    /// Every technician group of every lockdown policy.
    pub fn technician_groups(&self) -> Vec<&str> {
        let mut out: Vec<&str> =
            self.lockdowns.iter().flat_map(|l| l.technician_groups.iter().map(String::as_str)).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Every account caguard must resolve in the MSP tenant: break-glass, service
    /// accounts and the technicians named one by one, with the role each plays.
    pub fn msp_accounts(&self) -> Vec<(&'static str, &str)> {
        let mut out: Vec<(&'static str, &str)> =
            self.break_glass.iter().map(|a| ("break-glass account", a.as_str())).collect();
        out.extend(self.service_accounts.iter().map(|s| ("service account", s.account.as_str())));
        for l in &self.lockdowns {
            for u in l.technician_users.iter().filter(|u| !u.eq_ignore_ascii_case("All")) {
                if !out.iter().any(|(_, a)| a.eq_ignore_ascii_case(u)) {
                    out.push(("technician", u.as_str()));
                }
            }
        }
        out
    }

    /// The names of every policy caguard owns in the MSP tenant.
    pub fn owned_policy_names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for l in &self.lockdowns {
            out.push(&l.name);
            out.push(&l.session.policy_name);
        }
        out.extend(self.service_accounts.iter().map(|s| s.policy_name.as_str()));
        out.extend(self.cipp_app.iter().map(|a| a.policy_name.as_str()));
        out
    }

    /// S4's mode for one lockdown: its own setting, made more cautious by
    /// `[controls] S4` (and by a pause, which sets that to report).
    pub fn session_mode(&self, l: &Lockdown) -> ControlMode {
        l.session.mode.max(self.control(Control::S4))
    }

    pub fn control(&self, c: Control) -> ControlMode {
        self.controls.get(&c).copied().unwrap_or(ControlMode::Enforce)
    }

    /// The named location's display name for a site.
    pub fn location_name(&self, site: &Site) -> String {
        format!("{}{}", self.location_prefix, site.name)
    }

    /// The MSP knowingly accepts D1 writes that exclude more than its own users here.
    pub fn accepts_widening(&self, tenant: &str) -> bool {
        self.accept_widening || self.accept_widening_tenants.iter().any(|t| t.eq_ignore_ascii_case(tenant))
    }

    pub fn is_skipped(&self, tenant: &str) -> bool {
        self.skip_tenants.iter().any(|t| t.eq_ignore_ascii_case(tenant))
    }
}

/// A configuration error: the key, the line, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.key, self.message)
    }
}

/// Something accepted but worth a look (and what was done about it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    pub key: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.key, self.message)
    }
}

/// Every error found, not just the first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    msp_tenant_id: Spanned<String>,
    #[serde(default)]
    mode: Option<Spanned<String>>,
    #[serde(default)]
    sites: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    accounts: Spanned<RawAccounts>,
    #[serde(default)]
    apps: RawApps,
    #[serde(default)]
    names: RawNames,
    #[serde(default)]
    rollout: RawRollout,
    #[serde(default)]
    scope: RawScope,
    #[serde(default)]
    controls: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    safety: RawSafety,
    #[serde(default)]
    cipp: Option<RawCipp>,
    #[serde(default)]
    alerts: Option<RawAlerts>,
    #[serde(default)]
    watch: RawWatch,
    #[serde(default)]
    emergency: RawEmergency,
    #[serde(default)]
    lockdown: Vec<Spanned<policies::RawLockdown>>,
    #[serde(default)]
    service_account: Vec<Spanned<policies::RawServiceAccount>>,
    #[serde(default)]
    session: policies::RawSession,
    #[serde(default)]
    cipp_app: Option<Spanned<policies::RawCippApp>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEmergency {
    operators_group: Option<Spanned<String>>,
    pause_hours: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWatch {
    rediscover_minutes: Option<Spanned<i64>>,
    concurrency: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    window_minutes: Option<Spanned<i64>>,
    webhook_schema: Option<Spanned<String>>,
    email_from: Option<String>,
    #[serde(default)]
    email_to: Vec<String>,
    status_url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCipp {
    storage_account: Option<Spanned<String>>,
    table_endpoint: Option<Spanned<String>>,
    site_id: Option<Spanned<String>>,
    arm_endpoint: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccounts {
    #[serde(default)]
    technician_groups: Vec<String>,
    #[serde(default)]
    technician_users: Vec<String>,
    #[serde(default)]
    break_glass: Vec<String>,
    service_account: Option<Spanned<String>>,
    #[serde(default)]
    direct_service_accounts: BTreeMap<String, String>,
    /// The acknowledgement `technician_users = ["All"]` needs.
    #[serde(default)]
    all_users_are_technicians: bool,
    /// Object ids (users, groups, roles) an MSP excludes from caguard's own policies on purpose.
    #[serde(default)]
    allowed_exclusions: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApps {
    #[serde(default)]
    protected: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNames {
    location_prefix: Option<String>,
    block_policy: Option<String>,
    service_account_policy: Option<String>,
    /// Take over a same-named policy caguard has no record of creating.
    #[serde(default)]
    adopt_existing: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRollout {
    block_policy: Option<Spanned<String>>,
    window_days: Option<Spanned<i64>>,
    min_sign_ins: Option<Spanned<i64>>,
    #[serde(default)]
    acknowledged_ips: Vec<Spanned<String>>,
    read_every_minutes: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawScope {
    #[serde(default)]
    skip_tenants: Vec<String>,
    #[serde(default)]
    accept_widening: bool,
    #[serde(default)]
    accept_widening_tenants: Vec<Spanned<String>>,
    #[serde(default)]
    direct_tenants: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSafety {
    max_policies_per_tenant: Option<usize>,
    max_tenant_fraction: Option<Spanned<f64>>,
}

/// The named locations' prefix from the source documents ("Trusted - MSP Office").
pub const DEFAULT_LOCATION_PREFIX: &str = "Trusted - ";

struct Lines<'a>(&'a str);

impl Lines<'_> {
    fn at(&self, offset: usize) -> usize {
        self.0[..offset.min(self.0.len())].matches('\n').count() + 1
    }

    /// The line of `key = …`, for keys whose values are not spanned.
    fn of_key(&self, key: &str) -> usize {
        let quoted = format!("\"{key}\"");
        self.0
            .lines()
            .position(|l| {
                let t = l.trim_start();
                (t.starts_with(key) || t.starts_with(&quoted))
                    && t[if t.starts_with('"') { quoted.len() } else { key.len() }..].trim_start().starts_with('=')
            })
            .map_or(1, |i| i + 1)
    }
}

/// A GUID in its 8-4-4-4-12 form (tenant and object ids).
/// `[cipp]`: where CIPP's tables are, and optionally its site.
fn cipp_storage(c: &RawCipp, lines: &Lines, err: &mut impl FnMut(&str, usize, String)) -> Option<CippStorage> {
    let table_endpoint = match (&c.table_endpoint, &c.storage_account) {
        (Some(e), _) => e.get_ref().trim_end_matches('/').to_string(),
        (None, Some(a)) => {
            let name = a.get_ref().trim();
            if name.len() < 3 || name.len() > 24 || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            {
                err(
                    "cipp.storage_account",
                    lines.at(a.span().start),
                    format!("'{name}' is not a storage account name (3-24 lower-case letters and digits)"),
                );
            }
            format!("https://{name}.table.core.windows.net")
        }
        (None, None) => {
            err("cipp", lines.of_key("storage_account"), "set storage_account (or table_endpoint)".into());
            return None;
        }
    };
    let site_id = c.site_id.as_ref().and_then(|s| {
        crate::cipp::auth::parse_resource_id(s.get_ref())
            .map_err(|e| err("cipp.site_id", lines.at(s.span().start), e))
            .ok()
    });
    let arm_endpoint = c.arm_endpoint.clone().unwrap_or_else(|| ARM_ENDPOINT.into()).trim_end_matches('/').to_string();
    Some(CippStorage { table_endpoint, site_id, arm_endpoint })
}

pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().zip([8, 4, 4, 4, 12]).all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Parses and validates `caguard.toml`.
pub fn parse(src: &str) -> Result<(Config, Vec<ConfigWarning>), ConfigErrors> {
    let lines = Lines(src);
    let raw: Raw = toml::from_str(src).map_err(|e| {
        let line = e.span().map_or(1, |s| lines.at(s.start));
        let key = e.message().split('`').nth(1).unwrap_or("caguard.toml").to_string();
        ConfigErrors(vec![ConfigError { key, line, message: e.message().trim().to_string() }])
    })?;
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut err = |key: &str, line: usize, message: String| errors.push(ConfigError { key: key.into(), line, message });

    let tenant = raw.msp_tenant_id.get_ref().trim().to_ascii_lowercase();
    if !is_guid(&tenant) {
        err(
            "msp_tenant_id",
            lines.at(raw.msp_tenant_id.span().start),
            format!("'{tenant}' is not a tenant id (a GUID)"),
        );
    }

    let mode = match raw.mode.as_ref().map(|m| (m.get_ref().as_str(), m.span().start)) {
        None | Some(("gdap", _)) => Mode::Gdap,
        Some(("direct", _)) => Mode::Direct,
        Some((other, at)) => {
            err("mode", lines.at(at), format!("unknown mode '{other}'; expected \"gdap\" or \"direct\""));
            Mode::Gdap
        }
    };

    let sites = sites::parse(&raw.sites, &lines, &mut err, &mut warnings);
    if raw.sites.is_empty() {
        err("sites", 1, "at least one trusted site is required; the block policy needs a trusted set".into());
    }

    let accounts = raw.accounts.get_ref();
    let accounts_line = lines.at(raw.accounts.span().start);
    let clean = |v: &Vec<String>| v.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect::<Vec<_>>();
    let break_glass = clean(&accounts.break_glass);
    if break_glass.is_empty() {
        err("accounts.break_glass", lines.of_key("break_glass").max(accounts_line), "at least one break-glass account is required; it is excluded from every block policy so the MSP can never be locked out".into());
    }
    let allowed_exclusions = clean(&accounts.allowed_exclusions);
    for a in &allowed_exclusions {
        if !is_guid(a) {
            err(
                "accounts.allowed_exclusions",
                lines.of_key("allowed_exclusions"),
                format!("'{a}' is not an object id (a GUID) of a user, group or role"),
            );
        }
    }
    let short = policies::Short {
        technician_groups: &accounts.technician_groups,
        technician_users: &accounts.technician_users,
        all_users_are_technicians: accounts.all_users_are_technicians,
        apps: raw.apps.protected.as_ref(),
        block_name: raw.names.block_policy.as_deref(),
        rollout: raw.rollout.block_policy.as_ref(),
        service_account: accounts.service_account.as_ref(),
        service_name: raw.names.service_account_policy.as_deref(),
        direct_accounts: &accounts.direct_service_accounts,
    };
    let input = policies::Input {
        short,
        lockdowns: &raw.lockdown,
        service_accounts: &raw.service_account,
        session: &raw.session,
        cipp_app: raw.cipp_app.as_ref(),
        sites: &sites,
        break_glass: &break_glass,
        accounts_line,
    };
    let owned = policies::parse(&input, &lines, &mut err);

    let mut controls = BTreeMap::new();
    for (name, value) in &raw.controls {
        let line = lines.at(value.span().start);
        let Some(control) = Control::parse(name) else {
            err(
                &format!("controls.{name}"),
                line,
                format!("unknown control '{name}'; expected one of A1, A2, A3, A4, B1, B2, C1, C2, D1, D2, S4"),
            );
            continue;
        };
        let mode = match value.get_ref().as_str() {
            "enforce" => ControlMode::Enforce,
            "report" => ControlMode::Report,
            "off" => ControlMode::Off,
            other => {
                err(
                    &format!("controls.{name}"),
                    line,
                    format!("unknown setting '{other}'; expected \"enforce\", \"report\" or \"off\""),
                );
                continue;
            }
        };
        controls.insert(control, mode);
    }

    let max_tenant_fraction = match &raw.safety.max_tenant_fraction {
        None => 0.2,
        Some(f) if (0.0..=1.0).contains(f.get_ref()) && *f.get_ref() > 0.0 => *f.get_ref(),
        Some(f) => {
            err(
                "safety.max_tenant_fraction",
                lines.at(f.span().start),
                "must be a fraction above 0 and at most 1".into(),
            );
            0.2
        }
    };

    let cipp = raw.cipp.as_ref().and_then(|c| cipp_storage(c, &lines, &mut err));

    let mut alerts = AlertsConfig::default();
    if let Some(a) = &raw.alerts {
        if let Some(w) = &a.window_minutes {
            if !(1..=MAX_ALERT_WINDOW_MINUTES).contains(w.get_ref()) {
                let msg = format!("must be between 1 and {MAX_ALERT_WINDOW_MINUTES} (a week)");
                err("alerts.window_minutes", lines.at(w.span().start), msg);
            }
            alerts.window_minutes = *w.get_ref();
        }
        if let Some(sch) = &a.webhook_schema {
            alerts.webhook_schema = match sch.get_ref().as_str() {
                "caguard" => crate::alert::Schema::Caguard,
                "cipp" => crate::alert::Schema::Cipp,
                other => {
                    err(
                        "alerts.webhook_schema",
                        lines.at(sch.span().start),
                        format!("unknown schema '{other}'; expected \"caguard\" or \"cipp\""),
                    );
                    crate::alert::Schema::Caguard
                }
            };
        }
        alerts.email_from = a.email_from.clone();
        alerts.email_to = a.email_to.clone();
        if let Some(u) = &a.status_url {
            match check_status_url(u.get_ref()) {
                Ok(()) => alerts.status_url = Some(u.get_ref().clone()),
                Err(why) => err("alerts.status_url", lines.at(u.span().start), why),
            }
        }
    }

    let mut watch_rediscover_minutes = DEFAULT_REDISCOVER_MINUTES;
    if let Some(m) = &raw.watch.rediscover_minutes {
        if !(1..=1440).contains(m.get_ref()) {
            err("watch.rediscover_minutes", lines.at(m.span().start), "must be between 1 and 1440 (a day)".into());
        }
        watch_rediscover_minutes = *m.get_ref();
    }
    let mut watch_concurrency = DEFAULT_WATCH_CONCURRENCY;
    if let Some(c) = &raw.watch.concurrency {
        match usize::try_from(*c.get_ref()) {
            Ok(n @ 1..=1024) => watch_concurrency = n,
            _ => err("watch.concurrency", lines.at(c.span().start), "must be between 1 and 1024".into()),
        }
    }

    let mut accept_widening_tenants = Vec::new();
    for t in &raw.scope.accept_widening_tenants {
        let id = t.get_ref().trim().to_ascii_lowercase();
        if !is_guid(&id) {
            err(
                "scope.accept_widening_tenants",
                lines.at(t.span().start),
                format!("'{id}' is not a tenant id (a GUID)"),
            );
        }
        accept_widening_tenants.push(id);
    }

    // Tenant ids go into token and Graph URLs: each must be a GUID.
    let tenant_lists = [
        ("scope.skip_tenants", "skip_tenants", &raw.scope.skip_tenants),
        ("scope.direct_tenants", "direct_tenants", &raw.scope.direct_tenants),
    ];
    for (key, short, list) in tenant_lists {
        for t in list.iter().map(|t| t.trim()).filter(|t| !is_guid(t)) {
            let shown: String = t.chars().take(60).collect();
            err(key, lines.of_key(short), format!("'{shown}' is not a tenant id (a GUID)"));
        }
    }
    let emergency_group = raw.emergency.operators_group.as_ref().map(|g| {
        let id = g.get_ref().trim().to_ascii_lowercase();
        if !is_guid(&id) {
            err("emergency.operators_group", lines.at(g.span().start), format!("'{id}' is not a group object id"));
        }
        id
    });
    let emergency_pause_hours = match &raw.emergency.pause_hours {
        None => crate::pause::DEFAULT_HOURS,
        Some(h) if (1..=crate::pause::MAX_HOURS).contains(h.get_ref()) => *h.get_ref(),
        Some(h) => {
            let max = crate::pause::MAX_HOURS;
            err("emergency.pause_hours", lines.at(h.span().start), format!("must be between 1 and {max} hours"));
            crate::pause::DEFAULT_HOURS
        }
    };

    let evidence = evidence(&raw.rollout, &lines, &mut err);

    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let config = Config {
        msp_tenant_id: tenant,
        mode,
        sites,
        lockdowns: owned.lockdowns,
        break_glass,
        service_accounts: owned.service_accounts,
        cipp_app: owned.cipp_app,
        allowed_exclusions: allowed_exclusions.iter().map(|a| a.to_ascii_lowercase()).collect(),
        location_prefix: raw.names.location_prefix.clone().unwrap_or_else(|| DEFAULT_LOCATION_PREFIX.into()),
        adopt_existing: raw.names.adopt_existing,
        emergency_group,
        emergency_pause_hours,
        evidence,
        skip_tenants: raw.scope.skip_tenants.iter().map(|t| t.trim().to_ascii_lowercase()).collect(),
        accept_widening: raw.scope.accept_widening,
        accept_widening_tenants,
        direct_tenants: raw.scope.direct_tenants.iter().map(|t| t.trim().to_ascii_lowercase()).collect(),
        controls,
        max_policies_per_tenant: raw.safety.max_policies_per_tenant.unwrap_or(25),
        max_tenant_fraction,
        cipp,
        alerts,
        watch_rediscover_minutes,
        watch_concurrency,
    };
    Ok((config, warnings))
}

/// `[rollout]`'s evidence settings, each bounded.
fn evidence(r: &RawRollout, lines: &Lines, err: &mut impl FnMut(&str, usize, String)) -> Evidence {
    let mut e = Evidence::default();
    let mut bounded = |v: &Option<Spanned<i64>>, key: &str, range: std::ops::RangeInclusive<i64>| {
        let v = v.as_ref()?;
        if !range.contains(v.get_ref()) {
            err(key, lines.at(v.span().start), format!("must be between {} and {}", range.start(), range.end()));
            return None;
        }
        Some(*v.get_ref())
    };
    if let Some(d) = bounded(&r.window_days, "rollout.window_days", 1..=90) {
        e.window_days = d;
    }
    if let Some(n) = bounded(&r.min_sign_ins, "rollout.min_sign_ins", 0..=100_000) {
        e.min_sign_ins = n as usize;
    }
    if let Some(m) = bounded(&r.read_every_minutes, "rollout.read_every_minutes", 0..=1440) {
        e.read_every_minutes = m;
    }
    for ip in &r.acknowledged_ips {
        let text = ip.get_ref().trim();
        match text.parse::<IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from)) {
            Ok(n) => e.acknowledged.push(n.trunc()),
            Err(_) => err(
                "rollout.acknowledged_ips",
                lines.at(ip.span().start),
                format!("'{text}' is not an IP address or CIDR range"),
            ),
        }
    }
    e
}

/// Reads and validates a config file, naming the file in errors.
pub fn load(path: &std::path::Path) -> Result<(Config, Vec<ConfigWarning>), String> {
    let src = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&src).map_err(|e| e.0.iter().map(|e| format!("{}:{e}", path.display())).collect::<Vec<_>>().join("\n"))
}
