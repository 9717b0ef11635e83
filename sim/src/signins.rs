//! Sign-in logs (`auditLogs/signIns`): seeded and generated sign-ins, each with
//! its `appliedConditionalAccessPolicies` computed by caguard's evaluator against
//! the tenant's policies at the moment of the sign-in, as Entra records them.
//!
//! As Graph serves them (learn.microsoft.com, signIn and signIn-list):
//! - v1.0 lists interactive sign-ins only and has no `authenticationRequirement`,
//!   `authenticationDetails` or `signInEventTypes`; beta has them, and lists
//!   non-interactive sign-ins with `signInEventTypes/any(t: t eq 'nonInteractiveUser')`;
//! - the report-only results (`reportOnlySuccess`, `reportOnlyFailure`,
//!   `reportOnlyNotApplied`, `reportOnlyInterrupted`) are evolvable enum members:
//!   without `Prefer: include-unknown-enum-members` they read `unknownFutureValue`;
//! - newest first, paged, filtered by `createdDateTime`, `userId`, `appId`, `ipAddress`;
//! - about 5 requests per 10 seconds per tenant, beyond which Graph answers 429.

use crate::eval::{self, Identity, SignIn, Target};
use crate::graph::{Req, Resp, error};
use crate::state::{State, Tenant, new_guid};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::Duration;

/// How the sign-in's MFA went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mfa {
    /// Done with the Authenticator app.
    Done,
    /// Skipped: the IP is in the legacy MFA trusted IPs (or a trusted location).
    SkippedTrustedLocation,
    /// Not asked for at all.
    SingleFactor,
}

/// A sign-in to add to a tenant's log.
#[derive(Clone, Debug)]
pub struct SignInSpec {
    /// Object id or UPN of a user of the tenant.
    pub user: String,
    pub app_id: String,
    pub ip: IpAddr,
    pub interactive: bool,
    pub mfa: Mfa,
    /// When it happened (RFC 3339); now when absent.
    pub at: Option<String>,
}

/// Requests to the sign-in log Graph allows per tenant in [`WINDOW`].
pub const LIMIT: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(10);

const REPORT_ONLY_RESULTS: [&str; 4] =
    ["reportOnlySuccess", "reportOnlyFailure", "reportOnlyNotApplied", "reportOnlyInterrupted"];

/// Records a sign-in, evaluated against the tenant's policies now. Returns it.
pub(crate) fn record(t: &mut Tenant, spec: &SignInSpec) -> Result<Value, String> {
    let user = t
        .spec
        .users
        .iter()
        .find(|u| {
            u["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(&spec.user))
                || u["userPrincipalName"].as_str().is_some_and(|p| p.eq_ignore_ascii_case(&spec.user))
        })
        .cloned()
        .ok_or_else(|| format!("no user '{}' in this tenant", spec.user))?;
    let id = user["id"].as_str().unwrap_or_default().to_ascii_lowercase();
    let (groups, roles) = t.memberships(&id);
    let client_app = if spec.interactive { "browser" } else { "mobileAppsAndDesktopClients" };
    let sign_in = SignIn {
        identity: Identity::User { id: id.clone(), groups, roles, external: None },
        target: Target::Apps(vec![spec.app_id.clone()]),
        client_app: Some(client_app.into()),
        ..SignIn::user(&id, vec![], vec![], Some(spec.ip))
    };
    let policies = t.spec.policies.clone();
    let answers = eval::evaluate(&policies, &t.spec.named_locations, &sign_in);
    let applied: Vec<Value> = policies.iter().zip(&answers).map(|(p, a)| applied_policy(p, a, spec.mfa)).collect();
    let enforced: Vec<&str> =
        applied.iter().filter_map(|a| a["result"].as_str()).filter(|r| *r == "success" || *r == "failure").collect();
    let status = if enforced.contains(&"failure") {
        "failure"
    } else if enforced.is_empty() {
        "notApplied"
    } else {
        "success"
    };
    let at = spec.at.clone().unwrap_or_else(crate::state::now_stamp);
    let entry = json!({
        "id": new_guid(),
        "createdDateTime": at,
        "userDisplayName": user["displayName"],
        "userPrincipalName": user["userPrincipalName"],
        "userId": user["id"],
        "appId": spec.app_id,
        "appDisplayName": app_name(t, &spec.app_id),
        "ipAddress": spec.ip.to_string(),
        "clientAppUsed": if spec.interactive { "Browser" } else { "Mobile Apps and Desktop clients" },
        "isInteractive": spec.interactive,
        "signInEventTypes": [if spec.interactive { "interactiveUser" } else { "nonInteractiveUser" }],
        "conditionalAccessStatus": status,
        "status": if status == "failure" { json!({"errorCode": 53003, "failureReason": "Access has been blocked by Conditional Access policies."}) } else { json!({"errorCode": 0}) },
        "authenticationRequirement": if spec.mfa == Mfa::SingleFactor { "singleFactorAuthentication" } else { "multiFactorAuthentication" },
        "authenticationDetails": authentication_details(spec.mfa, &at),
        "appliedConditionalAccessPolicies": applied,
    });
    t.spec.sign_ins.insert(0, entry.clone()); // newest first
    Ok(entry)
}

fn app_name(t: &Tenant, app: &str) -> String {
    t.spec
        .service_principals
        .iter()
        .find(|s| s["appId"].as_str().is_some_and(|a| a.eq_ignore_ascii_case(app)))
        .and_then(|s| s["displayName"].as_str())
        .unwrap_or("Office 365 SharePoint Online")
        .to_string()
}

/// One `appliedConditionalAccessPolicy`: the policy's result for this sign-in.
fn applied_policy(p: &Value, a: &eval::Answer, mfa: Mfa) -> Value {
    let grants: Vec<String> = p
        .pointer("/grantControls/builtInControls")
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let blocks = grants.iter().any(|g| g == "block");
    let met = !blocks && (mfa != Mfa::SingleFactor || !grants.iter().any(|g| g == "mfa"));
    let result = match (a.state.as_str(), a.applies) {
        ("enabled", true) if met => "success",
        ("enabled", true) => "failure",
        ("enabled", false) => "notApplied",
        ("enabledForReportingButNotEnforced", true) if met => "reportOnlySuccess",
        ("enabledForReportingButNotEnforced", true) => "reportOnlyFailure",
        ("enabledForReportingButNotEnforced", false) => "reportOnlyNotApplied",
        _ => "notEnabled",
    };
    let shown: Vec<String> = grants
        .iter()
        .map(|g| match g.as_str() {
            "mfa" => "Mfa".into(),
            "block" => "Block".into(),
            other => other.to_string(),
        })
        .collect();
    json!({"id": a.policy_id, "displayName": a.name, "enforcedGrantControls": if a.applies { shown } else { vec![] },
           "enforcedSessionControls": [], "result": result})
}

/// The steps of authentication, as beta's `authenticationDetails` lists them.
fn authentication_details(mfa: Mfa, at: &str) -> Value {
    let password = json!({"authenticationStepDateTime": at, "authenticationMethod": "Password", "authenticationMethodDetail": "Password in the cloud",
                          "succeeded": true, "authenticationStepResultDetail": "Correct password", "authenticationStepRequirement": "Primary authentication"});
    match mfa {
        Mfa::SingleFactor => json!([password]),
        Mfa::Done => {
            json!([password, {"authenticationStepDateTime": at, "authenticationMethod": "Mobile app notification", "authenticationMethodDetail": null,
                                      "succeeded": true, "authenticationStepResultDetail": "MFA successfully completed", "authenticationStepRequirement": "Multifactor authentication"}])
        }
        Mfa::SkippedTrustedLocation => {
            json!([password, {"authenticationStepDateTime": at, "authenticationMethod": "Previously satisfied", "authenticationMethodDetail": null,
                                      "succeeded": true, "authenticationStepResultDetail": "MFA requirement skipped due to location", "authenticationStepRequirement": "Multifactor authentication"}])
        }
    }
}

/// The sign-ins a request sees: its version's, with report-only results as its
/// `Prefer` header allows. `None` when the tenant's sign-in limit is spent (429).
pub(crate) fn visible(state: &mut State, req: &Req) -> Result<Vec<Value>, Resp> {
    let now = req.at;
    let t = crate::graph::tenant(state, req);
    t.sign_in_reads.retain(|at| now.duration_since(*at) < WINDOW);
    if t.sign_in_reads.len() >= LIMIT {
        return Err(error(429, "TooManyRequests", "Too many requests to the sign-in logs; retry later."));
    }
    t.sign_in_reads.push(now);
    // Interactive sign-ins unless the (beta) filter names the event types it wants.
    let by_type = req.query.get("$filter").is_some_and(|f| f.contains("signInEventTypes"));
    if by_type && !req.beta {
        return Err(error(
            400,
            "BadRequest",
            "Invalid filter clause: 'signInEventTypes' is not a property of 'signIn' in v1.0.",
        ));
    }
    Ok(t.spec.sign_ins.iter().filter(|s| by_type || s["isInteractive"] == true).map(|s| as_read(s, req)).collect())
}

fn as_read(s: &Value, req: &Req) -> Value {
    let mut s = s.clone();
    if let Some(o) = s.as_object_mut()
        && !req.beta
    {
        for beta_only in ["authenticationRequirement", "authenticationDetails", "signInEventTypes"] {
            o.remove(beta_only);
        }
    }
    if !req.unknown_enums
        && let Some(applied) = s["appliedConditionalAccessPolicies"].as_array_mut()
    {
        for a in applied.iter_mut().filter(|a| a["result"].as_str().is_some_and(|r| REPORT_ONLY_RESULTS.contains(&r))) {
            a["result"] = json!("unknownFutureValue");
        }
    }
    s
}
