//! Report-only validated from the sign-in logs, and promoted on evidence (#15
//! items 3 and 4), in the MSP tenant only.
//!
//! Each read takes the sign-ins since the last one (a cursor in the store), at
//! most every `[rollout] read_every_minutes` (Graph allows about 5 sign-in log
//! requests per 10 s per tenant): two beta requests, interactive and
//! non-interactive, with `Prefer: include-unknown-enum-members` so report-only
//! results read as themselves. From them:
//!
//! - per `rollout = "auto"` lockdown, the technicians' sign-ins to its apps are
//!   counted per day, and those the report-only policy would have blocked
//!   (`reportOnlyFailure`) from an IP outside every trusted site and not
//!   acknowledged are listed (user, IP, app, count, last seen). The policy is
//!   switched On once the window has passed with no such sign-in and enough
//!   technician sign-ins ([`promotions`]); the planner does it, the What If
//!   checks run first, and caguard never switches it back;
//! - each service account's sign-ins without MFA (single factor, or MFA skipped
//!   because of a trusted location or the legacy trusted IPs) are noted, with the
//!   likely cause.

use crate::config::{Config, Control, Lockdown, Rollout};
use crate::graph::{GraphClient, GraphError};
use crate::plan::Observed;
use crate::store::Store;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;

const KIND: &str = "rollout";
const CURSOR: &str = "signins-cursor";

/// A sign-in the report-only policy would have blocked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WouldBlock {
    pub user: String,
    pub ip: String,
    pub app: String,
    pub count: usize,
    pub last_seen: String,
}

/// What the sign-in logs have shown about one lockdown policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LockdownEvidence {
    pub lockdown: String,
    /// Technician sign-ins to its apps per day (`YYYY-MM-DD`).
    pub days: BTreeMap<String, usize>,
    pub would_block: Vec<WouldBlock>,
    /// When caguard switched it On, and why (recorded once the write succeeded).
    pub promoted_at: Option<String>,
    pub why: Option<String>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Cursor {
    /// The newest sign-in read.
    since: Option<String>,
    read_at: Option<String>,
}

/// What a read found: notes for the plan, and the evidence per lockdown.
#[derive(Default)]
pub struct Found {
    pub notes: Vec<(Control, String)>,
    pub evidence: Vec<LockdownEvidence>,
    /// Sign-in log requests made.
    pub requests: usize,
}

fn key(name: &str) -> String {
    format!("lockdown-{:016x}", crate::alert::fnv1a(&name.to_ascii_lowercase()))
}

/// Loads the evidence so far, reads the sign-ins since the last read when it is
/// time, and records both. Without a store nothing accumulates: nothing is read.
pub async fn gather(client: &GraphClient, config: &Config, store: Option<&dyn Store>, o: &Observed) -> Found {
    let mut found = Found::default();
    let Some(store) = store else { return found };
    let now = Utc::now();
    // One read of the records: the cursor and every lockdown's evidence.
    let rows = store.records(KIND).await.unwrap_or_default();
    let cursor: Cursor = find(&rows, CURSOR).unwrap_or_default();
    let mut evidence: Vec<LockdownEvidence> = Vec::new();
    for l in config.lockdowns.iter().filter(|l| l.rollout == Rollout::Auto) {
        let e = find(&rows, &key(&l.name))
            .unwrap_or_else(|| LockdownEvidence { lockdown: l.name.clone(), ..Default::default() });
        evidence.push(e);
    }
    let due = cursor
        .read_at
        .as_deref()
        .and_then(parse)
        .is_none_or(|at| now - at >= Duration::minutes(config.evidence.read_every_minutes));
    if due {
        let since = cursor.since.clone().unwrap_or_else(|| stamp(now - Duration::days(config.evidence.window_days)));
        match read(client, &config.msp_tenant_id, &since).await {
            Ok((sign_ins, requests)) => {
                found.requests = requests;
                let technicians = technicians(client, config, o).await;
                for (l, e) in config.lockdowns.iter().filter(|l| l.rollout == Rollout::Auto).zip(evidence.iter_mut()) {
                    tally(config, l, o, &technicians, &sign_ins, e);
                }
                found.notes.extend(service_accounts(config, o, &sign_ins));
                let newest = sign_ins.iter().filter_map(|s| s["createdDateTime"].as_str()).max().map(str::to_string);
                let next = Cursor { since: newest.or(Some(since)), read_at: Some(stamp(now)) };
                save(store, CURSOR, &next).await;
            }
            Err(e) => found.notes.push((
                Control::A2,
                format!("the sign-in logs could not be read ({e}); grant AuditLog.Read.All and Directory.Read.All"),
            )),
        }
    }
    for e in &evidence {
        save(store, &key(&e.lockdown), e).await;
    }
    found.evidence = evidence;
    found
}

/// Before the MSP tenant is planned: the evidence read and weighed, promotions
/// set on `o`, and the notes the plan should carry.
pub async fn prepare(
    client: &GraphClient,
    config: &Config,
    store: Option<&dyn Store>,
    o: &mut Observed,
) -> Vec<crate::plan::Note> {
    let mut found = gather(client, config, store, o).await;
    o.promote = promotions(config, o, &mut found);
    found.notes.into_iter().map(|(control, message)| crate::plan::Note { control, message }).collect()
}

/// After the MSP tenant was applied: the promotions that were written, recorded.
pub async fn after_apply(
    store: Option<&dyn Store>,
    plan: &crate::plan::TenantPlan,
    result: &crate::apply::TenantResult,
    o: &Observed,
) {
    if let Some(store) = store
        && result.outcome == crate::apply::Outcome::Fixed
        && !o.promote.is_empty()
    {
        record_promotions(store, plan, &o.promote).await;
    }
}

/// The lockdowns whose evidence holds now, with why (for [`Observed::promote`]),
/// and a note for each that is still waiting on a would-block sign-in.
pub fn promotions(config: &Config, o: &Observed, found: &mut Found) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let now = Utc::now();
    for e in &found.evidence {
        let Some(l) = config.lockdowns.iter().find(|l| l.name == e.lockdown) else { continue };
        let Some(policy) = o.policies.iter().find(|p| p.name().eq_ignore_ascii_case(&l.name)) else { continue };
        if crate::plan::to_value(policy)["state"] != "enabledForReportingButNotEnforced" || e.promoted_at.is_some() {
            continue;
        }
        let open: Vec<&WouldBlock> = e.would_block.iter().filter(|w| !expected(config, l, &w.ip)).collect();
        let created = crate::plan::to_value(policy)["createdDateTime"].as_str().and_then(parse).unwrap_or(now);
        let clean_since = open.iter().filter_map(|w| parse(&w.last_seen)).fold(created, DateTime::max);
        let counted: usize = e
            .days
            .iter()
            .filter(|(d, _)| d.as_str() >= &clean_since.format("%Y-%m-%d").to_string()[..])
            .map(|(_, n)| n)
            .sum();
        let window = Duration::days(config.evidence.window_days);
        if !open.is_empty() {
            let list: Vec<String> = open
                .iter()
                .map(|w| format!("{} from {} to {} ({}×, last {})", w.user, w.ip, w.app, w.count, w.last_seen))
                .collect();
            found.notes.push((
                Control::A2,
                format!(
                    "\"{}\" stays report-only: {} technician sign-in(s) would be blocked: {}. Add the site to [sites], or list the IP in [rollout] acknowledged_ips",
                    l.name,
                    open.iter().map(|w| w.count).sum::<usize>(),
                    list.join("; ")
                ),
            ));
        } else if now - clean_since >= window && counted >= config.evidence.min_sign_ins {
            let why = format!(
                "{counted} technician sign-ins since {}, over at least {} days, none of them blocked by it outside the trusted sites (or acknowledged IPs)",
                stamp(clean_since),
                config.evidence.window_days
            );
            out.insert(l.name.clone(), why);
        }
    }
    out
}

/// After a successful apply: the promotions it carried out, recorded once, with why.
pub async fn record_promotions(store: &dyn Store, plan: &crate::plan::TenantPlan, promoted: &BTreeMap<String, String>) {
    for (name, why) in promoted {
        let switched =
            plan.enforced().any(|a| a.control == Control::A2 && &a.target == name && a.body["state"] == "enabled");
        if !switched {
            continue;
        }
        let mut e: LockdownEvidence = load(store, &key(name)).await.unwrap_or_default();
        e.lockdown = name.clone();
        e.promoted_at = Some(stamp(Utc::now()));
        e.why = Some(why.clone());
        save(store, &key(name), &e).await;
    }
}

/// Every lockdown's evidence, for `caguard status`.
pub async fn all(store: &dyn Store) -> Vec<LockdownEvidence> {
    let rows = store.records(KIND).await.unwrap_or_default();
    rows.into_iter()
        .filter(|(k, _)| k.starts_with("lockdown-"))
        .filter_map(|(_, v)| serde_json::from_value(v).ok())
        .collect()
}

/// The sign-in is expected outside the policy: its IP is now in a trusted site of
/// this lockdown (a site was added), or acknowledged in config.
fn expected(config: &Config, l: &Lockdown, ip: &str) -> bool {
    let Ok(ip) = ip.parse::<IpAddr>() else { return false };
    config.sites.iter().filter(|s| l.trusts(s)).flat_map(|s| &s.ranges).any(|r| r.contains(&ip))
        || config.evidence.acknowledged.iter().any(|r| r.contains(&ip))
}

/// Interactive and non-interactive sign-ins since `since` (beta, with the Prefer header).
async fn read(client: &GraphClient, tenant: &str, since: &str) -> Result<(Vec<Value>, usize), GraphError> {
    let base = format!("/auditLogs/signIns?$filter=createdDateTime gt {since}");
    let mut all: Vec<Value> = client.list_beta(tenant, &base).await?;
    let non_interactive = format!("{base} and signInEventTypes/any(t: t eq 'nonInteractiveUser')");
    all.extend(client.list_beta::<Value>(tenant, &non_interactive).await?);
    Ok((all, 2))
}

/// The ids of each auto lockdown's technicians (`None`: All users).
async fn technicians(client: &GraphClient, config: &Config, o: &Observed) -> BTreeMap<String, Option<Vec<String>>> {
    let mut out = BTreeMap::new();
    for l in config.lockdowns.iter().filter(|l| l.rollout == Rollout::Auto) {
        if l.all_users() {
            out.insert(l.name.clone(), None);
            continue;
        }
        let mut ids: Vec<String> =
            l.technician_users.iter().filter_map(|u| o.account(u)).map(str::to_ascii_lowercase).collect();
        for g in &l.technician_groups {
            let members: Vec<Value> = client
                .list(&config.msp_tenant_id, &format!("/groups/{g}/members?$select=id"))
                .await
                .unwrap_or_default();
            ids.extend(members.iter().filter_map(|m| m["id"].as_str()).map(str::to_ascii_lowercase));
        }
        out.insert(l.name.clone(), Some(ids));
    }
    out
}

/// Adds the new sign-ins to one lockdown's evidence.
fn tally(
    config: &Config,
    l: &Lockdown,
    o: &Observed,
    technicians: &BTreeMap<String, Option<Vec<String>>>,
    sign_ins: &[Value],
    e: &mut LockdownEvidence,
) {
    let Some(policy) = o.policies.iter().find(|p| p.name().eq_ignore_ascii_case(&l.name)) else { return };
    let is_technician = |user: &str| match technicians.get(&l.name) {
        Some(None) => !config
            .break_glass
            .iter()
            .chain(config.service_accounts.iter().map(|s| &s.account))
            .any(|a| o.account(a).is_some_and(|id| id.eq_ignore_ascii_case(user))),
        Some(Some(ids)) => ids.iter().any(|i| i.eq_ignore_ascii_case(user)),
        None => false,
    };
    let protects = |app: &str| l.apps.iter().any(|a| a.eq_ignore_ascii_case("All") || a.eq_ignore_ascii_case(app));
    for s in sign_ins {
        let (user, app) = (s["userId"].as_str().unwrap_or_default(), s["appId"].as_str().unwrap_or_default());
        let result = s["appliedConditionalAccessPolicies"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["id"].as_str().is_some_and(|id| id.eq_ignore_ascii_case(policy.id()))))
            .and_then(|p| p["result"].as_str());
        let Some(result) = result else { continue }; // before the policy existed
        if !is_technician(user) || !protects(app) {
            continue;
        }
        let at = s["createdDateTime"].as_str().unwrap_or_default().to_string();
        *e.days.entry(at.get(..10).unwrap_or_default().to_string()).or_default() += 1;
        if result == "reportOnlyFailure" {
            let (upn, ip) = (
                s["userPrincipalName"].as_str().unwrap_or(user).to_string(),
                s["ipAddress"].as_str().unwrap_or_default().to_string(),
            );
            let app_name = s["appDisplayName"].as_str().unwrap_or(app).to_string();
            match e.would_block.iter_mut().find(|w| w.user == upn && w.ip == ip && w.app == app_name) {
                Some(w) => {
                    w.count += 1;
                    w.last_seen = w.last_seen.clone().max(at);
                }
                None => e.would_block.push(WouldBlock { user: upn, ip, app: app_name, count: 1, last_seen: at }),
            }
        }
    }
    // Days older than the window are no longer evidence.
    let oldest = (Utc::now() - Duration::days(config.evidence.window_days * 2)).format("%Y-%m-%d").to_string();
    e.days.retain(|d, _| *d >= oldest);
}

/// B1 checked where it happens: each service account's sign-ins without MFA,
/// with the likely cause; and the MSP policies that rely on `AllTrusted`.
fn service_accounts(config: &Config, o: &Observed, sign_ins: &[Value]) -> Vec<(Control, String)> {
    let mut notes = Vec::new();
    for sa in &config.service_accounts {
        let Some(id) = o.account(&sa.account) else { continue };
        let mine: Vec<&Value> =
            sign_ins.iter().filter(|s| s["userId"].as_str().is_some_and(|u| u.eq_ignore_ascii_case(id))).collect();
        let mut causes: BTreeMap<String, usize> = BTreeMap::new();
        for s in mine {
            if let Some(cause) = without_mfa(o, sa, s) {
                *causes.entry(cause).or_default() += 1;
            }
        }
        for (cause, n) in causes {
            notes.push((
                Control::B1,
                format!("service account '{}' signed in {n} time(s) without MFA: {cause}", sa.account),
            ));
        }
    }
    let all_trusted: Vec<&str> = o
        .policies
        .iter()
        .filter(|p| {
            crate::plan::to_value(*p)
                .pointer("/conditions/locations")
                .is_some_and(|l| l.to_string().contains("\"AllTrusted\""))
        })
        .map(|p| p.name())
        .collect();
    if !all_trusted.is_empty() {
        notes.push((
            Control::B1,
            format!(
                "{} rel{} on AllTrusted, which includes the legacy MFA trusted IPs caguard cannot read or control: {}",
                if all_trusted.len() == 1 { "this policy" } else { "these policies" },
                if all_trusted.len() == 1 { "ies" } else { "y" },
                all_trusted.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    notes
}

/// Why this sign-in went without MFA, or `None` when it did MFA.
fn without_mfa(o: &Observed, sa: &crate::config::ServiceAccount, s: &Value) -> Option<String> {
    let details = s["authenticationDetails"].as_array().cloned().unwrap_or_default();
    let skipped_for_location = details.iter().any(|d| {
        let t = d["authenticationStepResultDetail"].as_str().unwrap_or_default().to_ascii_lowercase();
        t.contains("skipped") && (t.contains("location") || t.contains("trusted"))
    });
    let single = s["authenticationRequirement"] == "singleFactorAuthentication";
    if !skipped_for_location && !single {
        return None;
    }
    let ip = s["ipAddress"].as_str().unwrap_or("?");
    let own = s["appliedConditionalAccessPolicies"]
        .as_array()
        .and_then(|a| {
            a.iter().find(|p| p["displayName"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&sa.policy_name)))
        })
        .and_then(|p| p["result"].as_str())
        .unwrap_or("absent");
    let in_trusted_location = ip.parse::<IpAddr>().is_ok_and(|ip| {
        o.locations
            .iter()
            .filter(|l| l.is_trusted.as_ref() == Some(&true))
            .any(|l| l.cidrs().iter().filter_map(|c| c.parse::<ipnet::IpNet>().ok()).any(|n| n.contains(&ip)))
    });
    Some(if own != "success" && own != "failure" {
        format!(
            "its policy \"{}\" did not apply ({own}) from {ip}: a policy or setting excludes the account",
            sa.policy_name
        )
    } else if skipped_for_location && !in_trusted_location {
        format!(
            "MFA was skipped because of the location ({ip}), which is in no trusted named location: the classic MFA trusted IPs (legacy per-user MFA settings) — remove them, as CIPP's best practices say"
        )
    } else if skipped_for_location {
        format!("MFA was skipped because {ip} is in a trusted location (AllTrusted)")
    } else {
        format!("single-factor sign-in from {ip}")
    })
}

async fn load<T: serde::de::DeserializeOwned>(store: &dyn Store, key: &str) -> Option<T> {
    find(&store.records(KIND).await.ok()?, key)
}

fn find<T: serde::de::DeserializeOwned>(rows: &[(String, Value)], key: &str) -> Option<T> {
    rows.iter().find(|(k, _)| k == key).and_then(|(_, v)| serde_json::from_value(v.clone()).ok())
}

async fn save<T: Serialize>(store: &dyn Store, key: &str, value: &T) {
    if let Ok(v) = serde_json::to_value(value)
        && let Err(e) = store.put_record(KIND, key, v).await
    {
        tracing::warn!("could not record the rollout evidence: {e}");
    }
}

fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|d| d.with_timezone(&Utc))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
