//! The operational sections: `[controls]`, `[safety]`, `[cipp]`, `[alerts]`,
//! `[watch]`, `[scope]`, `[emergency]` and `[rollout]`'s evidence. Each reads its
//! raw section, reports what is wrong to `err` with key and line, and returns
//! a usable value (the default where the setting was refused).

use super::raw::{Lines, RawAccounts, RawAlerts, RawCipp, RawEmergency, RawRollout, RawSafety, RawScope, RawWatch};
use super::{
    ARM_ENDPOINT, AlertsConfig, CippStorage, Control, ControlMode, DEFAULT_REDISCOVER_MINUTES,
    DEFAULT_WATCH_CONCURRENCY, Evidence, MAX_ALERT_WINDOW_MINUTES, Mode, is_guid,
};
use ipnet::IpNet;
use std::collections::BTreeMap;
use toml::Spanned;

/// `msp_tenant_id`: a GUID, lower-cased.
pub(super) fn msp_tenant(raw: &Spanned<String>, lines: &Lines, err: &mut impl FnMut(&str, usize, String)) -> String {
    let tenant = raw.get_ref().trim().to_ascii_lowercase();
    if !is_guid(&tenant) {
        err("msp_tenant_id", lines.at(raw.span().start), format!("'{tenant}' is not a tenant id (a GUID)"));
    }
    tenant
}

/// `mode`: `gdap` (the default) or `direct`.
pub(super) fn mode(raw: Option<&Spanned<String>>, lines: &Lines, err: &mut impl FnMut(&str, usize, String)) -> Mode {
    match raw.map(|m| (m.get_ref().as_str(), m.span().start)) {
        None | Some(("gdap", _)) => Mode::Gdap,
        Some(("direct", _)) => Mode::Direct,
        Some((other, at)) => {
            err("mode", lines.at(at), format!("unknown mode '{other}'; expected \"gdap\" or \"direct\""));
            Mode::Gdap
        }
    }
}

/// `[accounts]`'s `break_glass` (at least one, so no block policy can lock the
/// MSP out) and `allowed_exclusions` (object ids), blanks dropped.
pub(super) fn account_lists(
    accounts: &RawAccounts,
    accounts_line: usize,
    lines: &Lines,
    err: &mut impl FnMut(&str, usize, String),
) -> (Vec<String>, Vec<String>) {
    let clean = |v: &Vec<String>| v.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect::<Vec<_>>();
    let break_glass = clean(&accounts.break_glass);
    if break_glass.is_empty() {
        let msg = "at least one break-glass account is required; it is excluded from every block policy so the MSP \
                   can never be locked out";
        err("accounts.break_glass", lines.of_key("break_glass").max(accounts_line), msg.into());
    }
    let allowed_exclusions = clean(&accounts.allowed_exclusions);
    for a in allowed_exclusions.iter().filter(|a| !is_guid(a)) {
        let msg = format!("'{a}' is not an object id (a GUID) of a user, group or role");
        err("accounts.allowed_exclusions", lines.of_key("allowed_exclusions"), msg);
    }
    (break_glass, allowed_exclusions)
}

/// `[controls]`: each control's `enforce`, `report` or `off`.
pub(super) fn controls(
    raw: &BTreeMap<String, Spanned<String>>,
    lines: &Lines,
    err: &mut impl FnMut(&str, usize, String),
) -> BTreeMap<Control, ControlMode> {
    let mut controls = BTreeMap::new();
    for (name, value) in raw {
        let (key, line) = (format!("controls.{name}"), lines.at(value.span().start));
        let Some(control) = Control::parse(name) else {
            let msg = format!("unknown control '{name}'; expected one of A1, A2, A3, A4, B1, B2, C1, C2, D1, D2, S4");
            err(&key, line, msg);
            continue;
        };
        let mode = match value.get_ref().as_str() {
            "enforce" => ControlMode::Enforce,
            "report" => ControlMode::Report,
            "off" => ControlMode::Off,
            other => {
                err(&key, line, format!("unknown setting '{other}'; expected \"enforce\", \"report\" or \"off\""));
                continue;
            }
        };
        controls.insert(control, mode);
    }
    controls
}

/// `[safety] max_tenant_fraction`: above 0, at most 1; 0.2 by default.
pub(super) fn max_tenant_fraction(raw: &RawSafety, lines: &Lines, err: &mut impl FnMut(&str, usize, String)) -> f64 {
    match &raw.max_tenant_fraction {
        None => 0.2,
        Some(f) if (0.0..=1.0).contains(f.get_ref()) && *f.get_ref() > 0.0 => *f.get_ref(),
        Some(f) => {
            let msg = "must be a fraction above 0 and at most 1".to_string();
            err("safety.max_tenant_fraction", lines.at(f.span().start), msg);
            0.2
        }
    }
}

/// `[alerts]`: the dedupe window, the webhook schema, email and the status page.
pub(super) fn alerts(
    raw: Option<&RawAlerts>,
    lines: &Lines,
    err: &mut impl FnMut(&str, usize, String),
) -> AlertsConfig {
    let mut alerts = AlertsConfig::default();
    let Some(a) = raw else { return alerts };
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
                let msg = format!("unknown schema '{other}'; expected \"caguard\" or \"cipp\"");
                err("alerts.webhook_schema", lines.at(sch.span().start), msg);
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
    alerts
}

/// `[watch]`: how often tenants are rediscovered (minutes), and how many are
/// watched at once.
pub(super) fn watch(raw: &RawWatch, lines: &Lines, err: &mut impl FnMut(&str, usize, String)) -> (i64, usize) {
    let mut rediscover_minutes = DEFAULT_REDISCOVER_MINUTES;
    if let Some(m) = &raw.rediscover_minutes {
        if !(1..=1440).contains(m.get_ref()) {
            err("watch.rediscover_minutes", lines.at(m.span().start), "must be between 1 and 1440 (a day)".into());
        }
        rediscover_minutes = *m.get_ref();
    }
    let mut concurrency = DEFAULT_WATCH_CONCURRENCY;
    if let Some(c) = &raw.concurrency {
        match usize::try_from(*c.get_ref()) {
            Ok(n @ 1..=1024) => concurrency = n,
            _ => err("watch.concurrency", lines.at(c.span().start), "must be between 1 and 1024".into()),
        }
    }
    (rediscover_minutes, concurrency)
}

/// `[scope]`'s tenant lists, each id a GUID (they go into token and Graph
/// URLs); returns `accept_widening_tenants`, lower-cased.
pub(super) fn scope_tenants(raw: &RawScope, lines: &Lines, err: &mut impl FnMut(&str, usize, String)) -> Vec<String> {
    let mut accept_widening_tenants = Vec::new();
    for t in &raw.accept_widening_tenants {
        let id = t.get_ref().trim().to_ascii_lowercase();
        if !is_guid(&id) {
            let msg = format!("'{id}' is not a tenant id (a GUID)");
            err("scope.accept_widening_tenants", lines.at(t.span().start), msg);
        }
        accept_widening_tenants.push(id);
    }
    let tenant_lists = [
        ("scope.skip_tenants", "skip_tenants", &raw.skip_tenants),
        ("scope.direct_tenants", "direct_tenants", &raw.direct_tenants),
    ];
    for (key, short, list) in tenant_lists {
        for t in list.iter().map(|t| t.trim()).filter(|t| !is_guid(t)) {
            let shown: String = t.chars().take(60).collect();
            err(key, lines.of_key(short), format!("'{shown}' is not a tenant id (a GUID)"));
        }
    }
    accept_widening_tenants
}

/// `[emergency]`: the operators' group (lower-cased) and the default pause.
pub(super) fn emergency(
    raw: &RawEmergency,
    lines: &Lines,
    err: &mut impl FnMut(&str, usize, String),
) -> (Option<String>, i64) {
    let group = raw.operators_group.as_ref().map(|g| {
        let id = g.get_ref().trim().to_ascii_lowercase();
        if !is_guid(&id) {
            err("emergency.operators_group", lines.at(g.span().start), format!("'{id}' is not a group object id"));
        }
        id
    });
    let pause_hours = match &raw.pause_hours {
        None => crate::pause::DEFAULT_HOURS,
        Some(h) if (1..=crate::pause::MAX_HOURS).contains(h.get_ref()) => *h.get_ref(),
        Some(h) => {
            let max = crate::pause::MAX_HOURS;
            err("emergency.pause_hours", lines.at(h.span().start), format!("must be between 1 and {max} hours"));
            crate::pause::DEFAULT_HOURS
        }
    };
    (group, pause_hours)
}

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

/// `[cipp]`: where CIPP's tables are, and optionally its site.
pub(super) fn cipp_storage(
    c: &RawCipp,
    lines: &Lines,
    err: &mut impl FnMut(&str, usize, String),
) -> Option<CippStorage> {
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

/// `[rollout]`'s evidence settings, each bounded.
pub(super) fn evidence(r: &RawRollout, lines: &Lines, err: &mut impl FnMut(&str, usize, String)) -> Evidence {
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
