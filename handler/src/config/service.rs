//! `[[service_account]]` entries (or the short form's `accounts.service_account`)
//! and `[cipp_app]`: parsed and checked, every error naming its key and line.

use super::policies::{
    AppMfa, DEFAULT_APP_POLICY, DEFAULT_SERVICE_POLICY, DEFAULT_SYNCRO_SERVICE_POLICY, Err, Input, Lockdown, Named,
    RawCippApp, RawServiceAccount, ServiceAccount, Tool, tool,
};
use super::{Lines, is_guid};
use toml::Spanned;

pub(super) fn service_accounts(i: &Input, lines: &Lines, err: &mut Err, names: &mut Vec<Named>) -> Vec<ServiceAccount> {
    if i.service_accounts.is_empty() {
        return short_service_account(i, lines, err, names).into_iter().collect();
    }
    let s = &i.short;
    let mixed = [
        ("accounts.service_account", "service_account", s.service_account.is_some()),
        ("accounts.direct_service_accounts", "direct_service_accounts", !s.direct_accounts.is_empty()),
        ("names.service_account_policy", "service_account_policy", s.service_name.is_some()),
    ];
    for (key, short, _) in mixed.iter().filter(|(_, _, set)| *set) {
        let msg = "the short form cannot be mixed with [[service_account]] entries; move it into an entry";
        err(key, lines.of_key(short), msg.into());
    }
    let is_cipp = |r: &Spanned<RawServiceAccount>| {
        r.get_ref().tool.as_ref().is_some_and(|t| t.get_ref().eq_ignore_ascii_case("cipp"))
    };
    let cipp_at = i.service_accounts.iter().position(is_cipp).unwrap_or(0);
    if let Some(second) = i.service_accounts.iter().filter(|r| is_cipp(r)).nth(1) {
        let msg = "only one service account is CIPP's (tool = \"cipp\")";
        err("service_account.tool", lines.at(second.span().start), msg.into());
    }
    let entries = i.service_accounts.iter().enumerate();
    entries.map(|(n, raw)| service_account_entry(n, raw, n == cipp_at, lines, err, names)).collect()
}

/// The short form's one account (`[accounts] service_account`): CIPP's.
fn short_service_account(i: &Input, lines: &Lines, err: &mut Err, names: &mut Vec<Named>) -> Option<ServiceAccount> {
    let s = &i.short;
    let Some(account) = s.service_account else {
        let msg = "the service account (object id or UPN) is required, here or as [[service_account]] entries";
        err("accounts.service_account", i.accounts_line, msg.into());
        return None;
    };
    let raw = RawServiceAccount {
        account: account.clone(),
        tool: None,
        policy: Some(Spanned::new(0..0, s.service_name.unwrap_or(DEFAULT_SERVICE_POLICY).to_string())),
        direct_accounts: s.direct_accounts.clone(),
    };
    let sa = service_account(&raw, "accounts.service_account", "accounts.direct_service_accounts", true, lines, err);
    let line = if s.service_name.is_some() { lines.of_key("service_account_policy") } else { 1 };
    names.push(("names.service_account_policy".into(), line, sa.policy_name.clone()));
    Some(sa)
}

/// `[[service_account]]` entry `n` (from 0); its policy is named by `policy`,
/// else by its tool (the source documents' names), else it is an error unless
/// it is CIPP's.
fn service_account_entry(
    n: usize,
    raw: &Spanned<RawServiceAccount>,
    is_cipp: bool,
    lines: &Lines,
    err: &mut Err,
    names: &mut Vec<Named>,
) -> ServiceAccount {
    let entry = format!("service_account[{}]", n + 1);
    let line = lines.at(raw.span().start);
    let r = raw.get_ref();
    let tool = r.tool.as_ref().and_then(|t| tool(t, &entry, lines, err));
    let default = |name: &str| Some(Spanned::new(0..0, name.to_string()));
    let policy = match (&r.policy, tool) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(Tool::Syncro)) => default(DEFAULT_SYNCRO_SERVICE_POLICY),
        (None, Some(Tool::Cipp)) => default(DEFAULT_SERVICE_POLICY),
        (None, None) if is_cipp => default(DEFAULT_SERVICE_POLICY),
        (None, None) => {
            let msg = "name its policy (policy = \"…\"), or set tool = \"syncro\" for the source documents' name";
            err(&entry, line, msg.into());
            None
        }
    };
    let raw = RawServiceAccount {
        account: r.account.clone(),
        tool: None,
        policy,
        direct_accounts: r.direct_accounts.clone(),
    };
    let keys = (format!("{entry}.account"), format!("{entry}.direct_accounts"));
    let sa = service_account(&raw, &keys.0, &keys.1, is_cipp, lines, err);
    let name_line = r.policy.as_ref().map_or(line, |p| lines.at(p.span().start));
    names.push((format!("{entry}.policy"), name_line, sa.policy_name.clone()));
    sa
}

fn service_account(
    raw: &RawServiceAccount,
    key: &str,
    direct_key: &str,
    cipp: bool,
    lines: &Lines,
    err: &mut Err,
) -> ServiceAccount {
    let account = raw.account.get_ref().trim().to_string();
    if account.is_empty() {
        err(key, lines.at(raw.account.span().start), "the service account (object id or UPN) is required".into());
    }
    for t in raw.direct_accounts.keys().filter(|t| !is_guid(t.trim())) {
        let shown: String = t.chars().take(60).collect();
        let short = direct_key.rsplit('.').next().unwrap_or(direct_key);
        err(direct_key, lines.of_key(short), format!("'{shown}' is not a tenant id (a GUID)"));
    }
    let direct_accounts =
        raw.direct_accounts.iter().map(|(t, a)| (t.trim().to_ascii_lowercase(), a.trim().to_string())).collect();
    let policy_name = raw.policy.as_ref().map(|p| p.get_ref().trim().to_string()).unwrap_or_default();
    ServiceAccount { account, policy_name, direct_accounts, cipp }
}

pub(super) fn cipp_app(raw: &Spanned<RawCippApp>, lines: &Lines, err: &mut Err, names: &mut Vec<Named>) -> AppMfa {
    let r = raw.get_ref();
    let app_id = r.app_id.get_ref().trim().to_ascii_lowercase();
    if !is_guid(&app_id) {
        err("cipp_app.app_id", lines.at(r.app_id.span().start), format!("'{app_id}' is not an app id (a GUID)"));
    }
    let authentication_strength = r.authentication_strength.as_ref().map(|s| {
        let id = s.get_ref().trim().to_ascii_lowercase();
        if !is_guid(&id) {
            err(
                "cipp_app.authentication_strength",
                lines.at(s.span().start),
                format!("'{id}' is not an authentication strength id (a GUID)"),
            );
        }
        id
    });
    let policy_name = r.policy.clone().unwrap_or_else(|| DEFAULT_APP_POLICY.into());
    names.push(("cipp_app.policy".into(), lines.at(raw.span().start), policy_name.clone()));
    AppMfa { policy_name, app_id, authentication_strength }
}

/// A service account is never a technician or a break-glass account, and never listed twice.
pub(super) fn check_accounts(
    i: &Input,
    lockdowns: &[Lockdown],
    accounts: &[ServiceAccount],
    lines: &Lines,
    err: &mut Err,
) {
    for (n, sa) in accounts.iter().enumerate().filter(|(_, s)| !s.account.is_empty()) {
        let key = if i.service_accounts.is_empty() {
            "accounts.service_account".to_string()
        } else {
            format!("service_account[{}].account", n + 1)
        };
        let line = match i.service_accounts.get(n) {
            Some(r) => lines.at(r.get_ref().account.span().start),
            None => i.short.service_account.map_or(i.accounts_line, |s| lines.at(s.span().start)),
        };
        let same = |a: &str| a.trim().eq_ignore_ascii_case(&sa.account);
        if lockdowns.iter().any(|l| l.technician_users.iter().any(|u| same(u))) {
            err(
                &key,
                line,
                format!(
                    "'{}' is also listed in technician_users; a service account must not be blocked with technicians",
                    sa.account
                ),
            );
        }
        if i.break_glass.iter().any(|b| same(b)) {
            err(
                &key,
                line,
                format!(
                    "'{}' is also listed in accounts.break_glass; break-glass accounts must be separate",
                    sa.account
                ),
            );
        }
        if accounts[..n].iter().any(|o| same(&o.account)) {
            err(&key, line, format!("'{}' is listed as a service account twice", sa.account));
        }
    }
}
