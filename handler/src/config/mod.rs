//! `caguard.toml`: the desired state, validated before anything talks to Graph.
//!
//! Every error names the key and its line; problems that are safe to correct
//! (host bits, duplicates, overlaps) or merely suspicious (private ranges) are
//! warnings. `docs/configuration.md` documents every key.

use ipnet::IpNet;
use std::collections::BTreeMap;
use std::fmt;

mod policies;
mod raw;
mod service;
mod settings;
mod sites;
pub use policies::{
    AppMfa, DEFAULT_APP_POLICY, DEFAULT_BLOCK_POLICY, DEFAULT_SERVICE_POLICY, DEFAULT_SESSION_HOURS,
    DEFAULT_SYNCRO_BLOCK_POLICY, DEFAULT_SYNCRO_SERVICE_POLICY, Lockdown, ServiceAccount, Session,
};
use raw::{Lines, Raw};
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

/// The named locations' prefix from the source documents ("Trusted - MSP Office").
pub const DEFAULT_LOCATION_PREFIX: &str = "Trusted - ";

/// A GUID in its 8-4-4-4-12 form (tenant and object ids).
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

    let tenant = settings::msp_tenant(&raw.msp_tenant_id, &lines, &mut err);
    let mode = settings::mode(raw.mode.as_ref(), &lines, &mut err);

    let sites = sites::parse(&raw.sites, &lines, &mut err, &mut warnings);
    if raw.sites.is_empty() {
        err("sites", 1, "at least one trusted site is required; the block policy needs a trusted set".into());
    }

    let accounts = raw.accounts.get_ref();
    let accounts_line = lines.at(raw.accounts.span().start);
    let (break_glass, allowed_exclusions) = settings::account_lists(accounts, accounts_line, &lines, &mut err);
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

    let controls = settings::controls(&raw.controls, &lines, &mut err);
    let max_tenant_fraction = settings::max_tenant_fraction(&raw.safety, &lines, &mut err);
    let cipp = raw.cipp.as_ref().and_then(|c| settings::cipp_storage(c, &lines, &mut err));
    let alerts = settings::alerts(raw.alerts.as_ref(), &lines, &mut err);
    let (watch_rediscover_minutes, watch_concurrency) = settings::watch(&raw.watch, &lines, &mut err);
    let accept_widening_tenants = settings::scope_tenants(&raw.scope, &lines, &mut err);
    let (emergency_group, emergency_pause_hours) = settings::emergency(&raw.emergency, &lines, &mut err);
    let evidence = settings::evidence(&raw.rollout, &lines, &mut err);

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

/// Reads and validates a config file, naming the file in errors.
pub fn load(path: &std::path::Path) -> Result<(Config, Vec<ConfigWarning>), String> {
    let src = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&src).map_err(|e| e.0.iter().map(|e| format!("{}:{e}", path.display())).collect::<Vec<_>>().join("\n"))
}
