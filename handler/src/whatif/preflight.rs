//! What If before risky writes (#15 item 2). Before a block policy is created
//! or enabled, and before a service account's policy is written, caguard asks:
//!
//! - each break-glass account, from an IP outside every trusted range: not blocked;
//! - each service account, from outside: its own MFA policy, and nothing else;
//! - one technician of the lockdown, from inside each site it trusts: not blocked.
//!
//! Graph's What If can only evaluate policies that exist, so each sign-in is
//! asked of Graph against the tenant as it is now, and compared with caguard's
//! own evaluation of the same state: a disagreement means caguard's model of the
//! tenant is wrong, and holds the plan. caguard's evaluator then answers for the
//! tenant as the plan will leave it. A failing answer holds the plan, with the
//! answer in the hold (and so in the alert). Each What If request is a
//! Conditional Access request, paced like the others (1 per second per tenant).

use super::eval::{self, Answer, Reason, SignIn, Verdict};
use crate::config::{Config, Control, Lockdown};
use crate::graph::{GraphClient, GraphError};
use crate::plan::{Block, Observed, Op, TenantPlan, merge_patch, to_value};
use serde::Serialize;
use serde_json::{Value, json};
use std::net::IpAddr;

/// What caguard asks What If for a sign-in when the lockdown protects "All" apps.
pub const SAMPLE_APP: &str = "00000003-0000-0ff1-ce00-000000000000";

/// One check and its answer, shown in `plan` and recorded with the plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// Who signs in (`break-glass bg1@…`, `service account …`, `technician … at site …`).
    pub who: String,
    pub ip: String,
    /// What must hold: `not blocked`, or `only its own MFA policy`.
    pub expect: String,
    pub ok: bool,
    /// caguard's answer for the tenant as the plan leaves it.
    pub after: String,
    /// Graph's answer for the tenant as it is now, and where it disagreed with caguard's.
    pub graph: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disagreement: Option<String>,
}

/// The sign-in to check and what it must meet.
struct Wanted {
    who: String,
    user_id: String,
    ip: IpAddr,
    app: String,
    expect: Expect,
}

#[derive(Clone, PartialEq)]
enum Expect {
    /// Blocked by no policy at all (break-glass accounts).
    NotBlocked,
    /// Not blocked by this lockdown policy (a technician in the office; what
    /// other policies do to them is not caguard's to judge here).
    NotBlockedBy(String),
    OnlyOwnMfa(String),
}

/// Runs the checks a plan's risky writes need; holds the plan when one fails.
pub async fn run(client: &GraphClient, config: &Config, o: &Observed, plan: &mut TenantPlan) {
    if plan.block.is_some() || !plan.msp {
        return;
    }
    let wanted = match wanted(client, config, o, plan).await {
        Ok(w) => w,
        Err(e) => return hold(plan, format!("What If could not be prepared: {e}")),
    };
    if wanted.is_empty() {
        return;
    }
    let (now_policies, now_locations) = current(o);
    let (after_policies, after_locations) = after(o, plan);
    for w in wanted {
        let check = match ask(client, o, &w, (&now_policies, &now_locations), (&after_policies, &after_locations)).await
        {
            Ok(c) => c,
            Err(e) => Check {
                who: w.who.clone(),
                ip: w.ip.to_string(),
                expect: describe(&w.expect),
                ok: false,
                after: String::new(),
                graph: format!("What If failed: {e}"),
                disagreement: None,
            },
        };
        plan.what_if.push(check);
    }
    let failed: Vec<String> = plan.what_if.iter().filter(|c| !c.ok).map(summary).collect();
    if !failed.is_empty() {
        hold(plan, format!("What If: {}", failed.join("; ")));
    }
}

fn hold(plan: &mut TenantPlan, why: String) {
    plan.block = Some(Block::Hold(why));
}

fn summary(c: &Check) -> String {
    match &c.disagreement {
        Some(d) => format!(
            "{} from {}: Graph and caguard disagree ({d}), so caguard's model of this tenant is wrong",
            c.who, c.ip
        ),
        None if c.after.is_empty() => format!("{} from {}: {}", c.who, c.ip, c.graph),
        None => format!("{} from {} must be {}, but {}", c.who, c.ip, c.expect, c.after),
    }
}

fn describe(e: &Expect) -> String {
    match e {
        Expect::NotBlocked => "not blocked".into(),
        Expect::NotBlockedBy(name) => format!("not blocked by \"{name}\""),
        Expect::OnlyOwnMfa(name) => format!("met only by \"{name}\" (MFA)"),
    }
}

/// The sign-ins this plan's risky writes need checked.
async fn wanted(
    client: &GraphClient,
    config: &Config,
    o: &Observed,
    plan: &TenantPlan,
) -> Result<Vec<Wanted>, GraphError> {
    let risky_lockdowns: Vec<&Lockdown> =
        config.lockdowns.iter().filter(|l| creates_or_enables(plan, &l.name)).collect();
    let risky_services: Vec<_> = config
        .service_accounts
        .iter()
        .filter(|s| plan.enforced().any(|a| a.control == Control::B1 && a.target == s.policy_name))
        .collect();
    let outside = outside_ip(config);
    let mut out = Vec::new();
    if !risky_lockdowns.is_empty() {
        for bg in &config.break_glass {
            let Some(id) = o.account(bg) else { continue };
            let app = first_app(risky_lockdowns[0]);
            out.push(Wanted {
                who: format!("break-glass {bg}"),
                user_id: id.into(),
                ip: outside,
                app,
                expect: Expect::NotBlocked,
            });
        }
    }
    for s in risky_services {
        let Some(id) = o.account(&s.account) else { continue };
        let expect = Expect::OnlyOwnMfa(s.policy_name.clone());
        out.push(Wanted {
            who: format!("service account {}", s.account),
            user_id: id.into(),
            ip: outside,
            app: SAMPLE_APP.into(),
            expect,
        });
    }
    // Each lockdown's technician, read once and only when a check needs it. An
    // All-users lockdown has none of its own: any other lockdown's will do.
    let mut found: Vec<(&str, Option<(String, String)>)> = Vec::new();
    for l in risky_lockdowns {
        let candidates: Vec<&Lockdown> = if l.all_users() { config.lockdowns.iter().collect() } else { vec![l] };
        let mut tech = None;
        for c in candidates {
            let known = found.iter().find(|(name, _)| *name == c.name).map(|(_, t)| t.clone());
            let t = match known {
                Some(t) => t,
                None => {
                    let t = technician(client, &config.msp_tenant_id, c, o).await?;
                    found.push((&c.name, t.clone()));
                    t
                }
            };
            if t.is_some() {
                tech = t;
                break;
            }
        }
        let Some(tech) = tech else { continue };
        for site in config.sites.iter().filter(|s| l.trusts(s)) {
            let Some(ip) = site.ranges.first().map(|r| r.network()) else { continue };
            let who = format!("technician {} of \"{}\" at site \"{}\"", tech.1, l.name, site.name);
            let expect = Expect::NotBlockedBy(l.name.clone());
            out.push(Wanted { who, user_id: tech.0.clone(), ip, app: first_app(l), expect });
        }
    }
    Ok(out)
}

/// The plan creates this block policy, or switches it to enabled.
fn creates_or_enables(plan: &TenantPlan, name: &str) -> bool {
    plan.enforced()
        .filter(|a| a.control == Control::A2 && a.target == name)
        .any(|a| a.op == Op::CreatePolicy || a.body.get("state").and_then(Value::as_str) == Some("enabled"))
}

fn first_app(l: &Lockdown) -> String {
    l.apps.iter().find(|a| !a.eq_ignore_ascii_case("All")).cloned().unwrap_or_else(|| SAMPLE_APP.into())
}

/// An address outside every trusted range (from a fixed list of public ones).
fn outside_ip(config: &Config) -> IpAddr {
    const CANDIDATES: [&str; 5] = ["198.51.100.123", "192.0.2.123", "203.0.113.123", "20.20.20.20", "1.1.1.1"];
    let inside = |ip: &IpAddr| config.sites.iter().flat_map(|s| &s.ranges).any(|r| r.contains(ip));
    CANDIDATES
        .iter()
        .filter_map(|c| c.parse::<IpAddr>().ok())
        .find(|ip| !inside(ip))
        .unwrap_or(IpAddr::from([1, 0, 0, 1]))
}

/// One technician of the lockdown: a configured user, else a member of its first group.
async fn technician(
    client: &GraphClient,
    msp: &str,
    l: &Lockdown,
    o: &Observed,
) -> Result<Option<(String, String)>, GraphError> {
    if let Some(u) = l.technician_users.iter().find(|u| !u.eq_ignore_ascii_case("All"))
        && let Some(id) = o.account(u)
    {
        return Ok(Some((id.to_string(), u.clone())));
    }
    for g in &l.technician_groups {
        let members: Vec<Value> =
            client.list(msp, &format!("/groups/{g}/members?$select=id,userPrincipalName")).await?;
        if let Some(m) = members.iter().find(|m| m["id"].is_string()) {
            let upn = m["userPrincipalName"].as_str().unwrap_or(m["id"].as_str().unwrap_or_default());
            return Ok(Some((m["id"].as_str().unwrap_or_default().to_string(), upn.to_string())));
        }
    }
    Ok(None)
}

/// Asks Graph about the tenant now, compares with caguard's own answer for it,
/// and judges the tenant as the plan leaves it.
async fn ask(
    client: &GraphClient,
    o: &Observed,
    w: &Wanted,
    now: (&[Value], &[Value]),
    after: (&[Value], &[Value]),
) -> Result<Check, GraphError> {
    let (groups, roles) = super::graph::memberships(client, &o.tenant_id, &w.user_id).await?;
    let sign_in = SignIn {
        identity: eval::Identity::User { id: w.user_id.clone(), groups, roles, external: None },
        ..SignIn::user(&w.user_id, vec![], vec![w.app.clone()], Some(w.ip))
    };
    let graph = super::graph::evaluate(client, &o.tenant_id, &request(w)).await?;
    let mine_now = eval::evaluate(now.0, now.1, &sign_in);
    let disagreement = super::graph::disagreement(&graph, &mine_now);
    let mine_after = eval::evaluate(after.0, after.1, &sign_in);
    let verdict = Verdict::of(after.0, &mine_after);
    let (ok, said) = judge(&w.expect, &verdict, &mine_after);
    Ok(Check {
        who: w.who.clone(),
        ip: w.ip.to_string(),
        expect: describe(&w.expect),
        ok: ok && disagreement.is_none(),
        after: said,
        graph: super::graph::summary(&graph),
        disagreement,
    })
}

/// The What If request for a check's sign-in.
fn request(w: &Wanted) -> Value {
    json!({
        "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": w.user_id},
        "signInContext": {"@odata.type": "#microsoft.graph.applicationContext", "includeApplications": [w.app]},
        "signInConditions": {"devicePlatform": "windows", "clientAppType": "browser", "ipAddress": w.ip.to_string()},
        "appliedPoliciesOnly": false
    })
}

fn judge(expect: &Expect, v: &Verdict, answers: &[Answer]) -> (bool, String) {
    let blocked: Vec<&String> = v.blocked_by.iter().chain(&v.report_only_blocked_by).collect();
    match expect {
        Expect::NotBlocked if !blocked.is_empty() => (false, format!("blocked by {}", quoted(&blocked))),
        Expect::NotBlocked if !v.undecided.is_empty() => {
            (false, format!("undecided for {}", quoted(&v.undecided.iter().collect::<Vec<_>>())))
        }
        Expect::NotBlocked => (true, "not blocked".into()),
        Expect::NotBlockedBy(name) => match answers.iter().find(|a| &a.name == name) {
            Some(a) if a.applies => (false, format!("\"{name}\" applies")),
            Some(a) if a.reason == Reason::NotEnoughInformation => (false, format!("\"{name}\" is undecided")),
            _ => (true, format!("\"{name}\" does not apply")),
        },
        Expect::OnlyOwnMfa(own) => {
            let applying: Vec<&String> = answers
                .iter()
                .filter(|a| a.applies || a.reason == Reason::NotEnoughInformation)
                .map(|a| &a.name)
                .collect();
            let mfa = v.grants.iter().any(|(n, c)| n == own && c.iter().any(|x| x == "mfa"));
            if applying.len() == 1 && applying[0] == own && mfa {
                (true, format!("only \"{own}\" (MFA)"))
            } else {
                (false, format!("met by {}", if applying.is_empty() { "no policy".into() } else { quoted(&applying) }))
            }
        }
    }
}

fn quoted(names: &[&String]) -> String {
    names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
}

/// The tenant's policies and named locations as observed.
fn current(o: &Observed) -> (Vec<Value>, Vec<Value>) {
    (o.policies.iter().map(to_value).collect(), o.locations.iter().map(to_value).collect())
}

/// The tenant's policies and named locations as the plan's enforced writes will
/// leave them (a location still to be created gets a stand-in id).
pub fn after(o: &Observed, plan: &TenantPlan) -> (Vec<Value>, Vec<Value>) {
    let (mut policies, mut locations) = current(o);
    let stand_in = |v: &Value| -> Value {
        let text = v.to_string().replace("\"location:", "\"planned-location:");
        serde_json::from_str(&text).unwrap_or_else(|_| v.clone())
    };
    for a in plan.enforced() {
        let body = stand_in(&a.body);
        match &a.op {
            Op::CreateLocation => {
                let mut l = body;
                l["id"] = json!(format!("planned-location:{}", a.target));
                locations.push(l);
            }
            Op::CreatePolicy => {
                let mut p = body;
                p["id"] = json!(format!("planned-policy:{}", a.target));
                policies.push(p);
            }
            Op::UpdatePolicy { id } => {
                if let Some(p) =
                    policies.iter_mut().find(|p| p["id"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(id)))
                {
                    merge_patch(p, &body);
                }
            }
            Op::UpdateLocation { id } => {
                if let Some(l) =
                    locations.iter_mut().find(|l| l["id"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(id)))
                {
                    merge_patch(l, &body);
                }
            }
        }
    }
    (policies, locations)
}
