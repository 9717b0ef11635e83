//! The Graph endpoints: one dispatcher shared by direct requests and `$batch`
//! sub-requests, so both are authorised, throttled and journalled alike.

use crate::filter::Filter;
use crate::objects::{Kind, create_location, create_policy, object, read_items};
use crate::state::{Actor, State, is_ca_path, new_guid, now_stamp};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The CA endpoints' documented limit: 1 request per second per tenant.
pub const CA_WINDOW: Duration = Duration::from_secs(1);

pub(crate) struct Req<'a> {
    pub method: &'a str,
    /// Path below the version root, without a leading slash.
    pub path: &'a str,
    pub query: &'a HashMap<String, String>,
    pub body: Option<Value>,
    /// `http://host:port/v1.0`: where nextLinks point.
    pub base: &'a str,
    pub tenant: &'a str,
    pub actor: &'a Actor,
    /// The request's `User-Agent`, which directory audits keep in `additionalDetails`.
    pub user_agent: Option<&'a str>,
    /// Largest page a list answers with.
    pub page_size: usize,
    /// When the request arrived (replication lag is measured from it).
    pub at: Instant,
    /// Sent to `/beta` (else v1.0): beta-only properties are read and written there.
    pub beta: bool,
    /// `Prefer: include-unknown-enum-members`: evolvable enum members past
    /// `unknownFutureValue` are answered as themselves, not as `unknownFutureValue`.
    pub unknown_enums: bool,
}

#[derive(Debug)]
pub(crate) struct Resp {
    pub status: u16,
    pub body: Option<Value>,
    /// Graph sends `request-id` with every answer; a throttled CA answer has no Retry-After.
    pub request_id: String,
}

impl Resp {
    pub(crate) fn new(status: u16, body: Option<Value>) -> Resp {
        Resp { status, body, request_id: new_guid() }
    }
}

/// Graph's error body.
pub(crate) fn error(status: u16, code: &str, message: &str) -> Resp {
    let mut r = Resp::new(status, None);
    r.body = Some(json!({"error": {
        "code": code,
        "message": message,
        "innerError": {"date": now_stamp(), "request-id": r.request_id, "client-request-id": r.request_id}
    }}));
    r
}

pub(crate) fn not_found(what: &str) -> Resp {
    error(
        404,
        "Request_ResourceNotFound",
        &format!("Resource '{what}' does not exist or one of its queried reference-property objects are not present."),
    )
}

/// Authorises, throttles, injects faults and routes one request.
pub(crate) fn handle(state: &mut State, req: Req, arrived: Instant) -> Resp {
    let now = arrived;
    let Some(tenant) = state.tenants.get_mut(req.tenant) else {
        return error(401, "InvalidAuthenticationToken", "The tenant in the token does not exist.");
    };
    let ca = is_ca_path(&format!("/{}", req.path));
    if ca && tenant.spec.permissions_denied {
        return error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.");
    }
    if ca && state.faults.ca_throttling {
        let throttled = tenant.last_ca.is_some_and(|last| now.duration_since(last) < CA_WINDOW);
        if throttled {
            return error(429, "TooManyRequests", "Too many requests. Please retry again later.");
        }
        tenant.last_ca = Some(now);
    }
    if ca && state.storm_active(now) {
        return error(429, "TooManyRequests", "Too many requests. Please retry again later.");
    }
    let targeted = state.faults.error_paths.is_empty()
        || state
            .faults
            .error_paths
            .iter()
            .any(|p| req.path.trim_start_matches('/').starts_with(p.trim_start_matches('/')));
    if targeted && state.faults.error_rate > 0.0 && fastrand::f64() < state.faults.error_rate {
        return if fastrand::bool() {
            error(429, "TooManyRequests", "Too many requests. Please retry again later.")
        } else {
            error(503, "ServiceUnavailable", "The service is temporarily unavailable.")
        };
    }
    if state.faults.broken_next_links && req.query.contains_key("$skiptoken") {
        return error(404, "Request_ResourceNotFound", "The skip token has expired or is not valid.");
    }
    route(state, req)
}

/// Decodes `%XX` escapes in a path segment (UPNs arrive as `user%40domain`).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).and_then(|c| hex(*c)), b.get(i + 2).and_then(|c| hex(*c))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn route(state: &mut State, req: Req) -> Resp {
    let decoded: Vec<String> = req.path.trim_matches('/').split('/').map(percent_decode).collect();
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let m = req.method;
    match (m, l.as_slice()) {
        ("GET", ["identity", "conditionalaccess", "policies"]) => {
            // Not server-paged: every policy in one answer, and `$top` truncates with no
            // nextLink (seen by Micke-K/IntuneManagement#364, #379). A tenant holds at most
            // MAX_POLICIES, so one list is always the whole set.
            let items = read_items(state, &req, Kind::Policy);
            list_unpaged(items, &req, "identity/conditionalAccess/policies")
        }
        ("POST", ["identity", "conditionalaccess", "policies"]) => create_policy(state, &req),
        (_, ["identity", "conditionalaccess", "policies", _]) => object(state, &req, Kind::Policy, segs[3]),
        ("GET", ["identity", "conditionalaccess", "namedlocations"]) => {
            let items = read_items(state, &req, Kind::Location);
            list(items, &req, "identity/conditionalAccess/namedLocations")
        }
        ("POST", ["identity", "conditionalaccess", "namedlocations"]) => create_location(state, &req),
        (_, ["identity", "conditionalaccess", "namedlocations", _]) => object(state, &req, Kind::Location, segs[3]),
        ("POST", ["identity", "conditionalaccess", "evaluate"]) => evaluate(state, &req),
        (_, ["policies", "identitysecuritydefaultsenforcementpolicy"]) => security_defaults(state, &req),
        ("GET", ["tenantrelationships", "delegatedadminrelationships", rest @ ..]) => {
            crate::gdap::relationships(state, &req, rest)
        }
        ("GET", ["tenantrelationships", "delegatedadmincustomers"]) => crate::gdap::customers(state, &req),
        ("GET", ["auditlogs", "directoryaudits"]) => {
            let mut items = tenant(state, &req).spec.audits.clone();
            items.reverse(); // newest first, as Graph orders them
            list(items, &req, "auditLogs/directoryAudits")
        }
        ("GET", ["auditlogs", "signins"]) => match crate::signins::visible(state, &req) {
            Ok(items) => list(items, &req, "auditLogs/signIns"),
            Err(r) => r,
        },
        ("GET", ["organization"]) => {
            let spec = &tenant(state, &req).spec;
            list(vec![organization(spec)], &req, "organization")
        }
        ("GET", ["subscribedskus"]) => {
            let spec = &tenant(state, &req).spec;
            let items = skus(spec.p1, &spec.licence_status);
            list(items, &req, "subscribedSkus")
        }
        ("GET", ["users"]) => crate::directory::users(state, &req),
        ("GET", ["users", _]) => crate::directory::user(state, &req, segs[1]),
        ("POST", ["users", _, "sendmail"]) => send_mail(state, &req),
        ("GET", ["users", _, "transitivememberof"]) => crate::directory::transitive_member_of(state, &req, segs[1]),
        ("GET", ["me"]) => me(state, &req),
        ("GET", ["serviceprincipals"]) => {
            let items = tenant(state, &req).spec.service_principals.clone();
            list(items, &req, "servicePrincipals")
        }
        ("GET", ["groups"]) => crate::directory::groups(state, &req),
        ("GET", ["groups", _]) => crate::directory::group(state, &req, segs[1]),
        ("GET", ["groups", _, "members"]) => crate::directory::group_members(state, &req, segs[1]),
        ("GET", ["subscriptions"]) => {
            let items = tenant(state, &req).spec.subscriptions.clone();
            list(items, &req, "subscriptions")
        }
        (_, ["subscriptions", _]) => crate::subscriptions::subscription(state, &req, segs[1]),
        ("POST", ["subscriptions", _, "reauthorize"]) => {
            let found = find(&tenant(state, &req).spec.subscriptions, segs[1]).is_some();
            if found { Resp::new(204, None) } else { not_found(segs[1]) }
        }
        _ => error(400, "BadRequest", &format!("Resource not found for the segment '{}' ({m}).", req.path)),
    }
}

pub(crate) fn tenant<'s>(state: &'s mut State, req: &Req) -> &'s mut crate::state::Tenant {
    state.tenants.get_mut(req.tenant).expect("checked in handle")
}

pub(crate) fn find(items: &[Value], id: &str) -> Option<Value> {
    items.iter().find(|v| v["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(id))).cloned()
}

pub(crate) fn without_members(g: &Value) -> Value {
    let mut g = g.clone();
    if let Some(o) = g.as_object_mut() {
        o.remove("members");
    }
    g
}

fn skus(p1: bool, status: &str) -> Vec<Value> {
    let (part, plan) =
        if p1 { ("AAD_PREMIUM", "AAD_PREMIUM") } else { ("O365_BUSINESS_ESSENTIALS", "EXCHANGE_S_STANDARD") };
    vec![json!({
        "capabilityStatus": if status.is_empty() { "Enabled" } else { status }, "consumedUnits": 5, "id": new_guid(), "skuId": new_guid(),
        "skuPartNumber": part, "appliesTo": "User",
        "servicePlans": [{"servicePlanId": new_guid(), "servicePlanName": plan, "provisioningStatus": "Success", "appliesTo": "User"}]
    })]
}

/// Answers a collection with `$filter`, `$select`, `$top` and `$skiptoken` paging.
pub(crate) fn list(items: Vec<Value>, req: &Req, context: &str) -> Resp {
    list_paged(items, req, context, top(req).min(req.page_size).max(1))
}

/// `$top` as asked, or no limit.
fn top(req: &Req) -> usize {
    req.query.get("$top").and_then(|t| t.parse::<usize>().ok()).unwrap_or(usize::MAX)
}

/// The GDAP collections: "`$top` supports up to 300 objects" (Graph's reference for
/// delegatedAdminRelationships and delegatedAdminCustomers); without `$top`, the usual page.
/// `$orderby` on one property, `asc` (the default) or `desc`, is documented there too.
pub(crate) fn list_gdap(items: Vec<Value>, req: &Req, context: &str) -> Resp {
    let page = match req.query.get("$top").map(|t| t.parse::<usize>()) {
        None => req.page_size,
        Some(Ok(n)) if (1..=300).contains(&n) => n,
        Some(_) => return error(400, "BadRequest", "$top must be between 1 and 300."),
    };
    let mut items = items;
    if let Some(order) = req.query.get("$orderby") {
        let mut words = order.split_whitespace();
        let prop = words.next().unwrap_or_default().to_string();
        let desc = match words.next() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => return error(400, "BadRequest", &format!("Invalid $orderby direction '{other}'.")),
        };
        let key = |v: &Value| prop.split('/').try_fold(v, |v, seg| v.get(seg)).map(ToString::to_string);
        items.sort_by_key(|v| key(v));
        if desc {
            items.reverse();
        }
    }
    list_paged(items, req, context, page)
}

/// A collection the service answers whole: `$top` only truncates, with no nextLink.
fn list_unpaged(items: Vec<Value>, req: &Req, context: &str) -> Resp {
    let top = top(req);
    let mut resp = list_paged(items, req, context, usize::MAX);
    if let Some(Value::Object(body)) = resp.body.as_mut()
        && let Some(Value::Array(items)) = body.get_mut("value")
    {
        items.truncate(top);
    }
    resp
}

/// `page`: items per answer; more than that gets a nextLink.
fn list_paged(items: Vec<Value>, req: &Req, context: &str, page: usize) -> Resp {
    let mut items = items;
    if let Some(f) = req.query.get("$filter") {
        match Filter::parse(f) {
            Ok(filter) => items.retain(|i| filter.matches(i)),
            Err(e) => return error(400, "BadRequest", &format!("Invalid filter clause: {e}")),
        }
    }
    let skip = match req.query.get("$skiptoken").map(|s| s.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) if n <= items.len() => n,
        Some(_) => return error(400, "BadRequest", "The skip token is not valid."),
    };
    let select: Option<Vec<String>> =
        req.query.get("$select").map(|s| s.split(',').map(|p| p.trim().to_string()).collect());
    let page_items: Vec<Value> = items.iter().skip(skip).take(page).map(|i| project(i, select.as_deref())).collect();
    let mut body = Map::new();
    body.insert("@odata.context".into(), json!(format!("{}/$metadata#{context}", req.base)));
    if skip.saturating_add(page) < items.len() {
        // nextLink carries $top so every page keeps the size asked for.
        let mut q: Vec<(String, String)> =
            req.query.iter().filter(|(k, _)| *k != "$skiptoken").map(|(k, v)| (k.clone(), v.clone())).collect();
        q.push(("$skiptoken".into(), (skip + page).to_string()));
        q.sort();
        let qs = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(q).finish();
        body.insert("@odata.nextLink".into(), json!(format!("{}/{}?{qs}", req.base, req.path)));
    }
    body.insert("value".into(), Value::Array(page_items));
    Resp::new(200, Some(Value::Object(body)))
}

/// `$select`: only the named properties, plus `id` and `@odata.type` which Graph always returns.
fn project(item: &Value, select: Option<&[String]>) -> Value {
    let Some(select) = select else { return item.clone() };
    let Some(obj) = item.as_object() else { return item.clone() };
    let keep = |k: &str| k == "id" || k == "@odata.type" || select.iter().any(|s| s.eq_ignore_ascii_case(k));
    Value::Object(obj.iter().filter(|(k, _)| keep(k)).map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// Graph's PATCH: objects merge property by property, anything else is replaced.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

fn security_defaults(state: &mut State, req: &Req) -> Resp {
    let t = tenant(state, req);
    match req.method {
        "GET" => Resp::new(
            200,
            Some(json!({
                "@odata.context": format!("{}/$metadata#policies/identitySecurityDefaultsEnforcementPolicy/$entity", req.base),
                "id": "00000000-0000-0000-0000-000000000005",
                "displayName": "Security Defaults",
                "description": "Security defaults is a set of basic identity security mechanisms recommended by Microsoft.",
                "isEnabled": t.spec.security_defaults
            })),
        ),
        "PATCH" => match req.body.as_ref().and_then(|b| b.get("isEnabled")).and_then(Value::as_bool) {
            Some(on) => {
                t.spec.security_defaults = on;
                Resp::new(204, None)
            }
            None => error(400, "BadRequest", "isEnabled is required."),
        },
        _ => error(405, "BadRequest", "Method not allowed."),
    }
}

/// The tenant's organization object: its default (and initial) domain.
fn organization(spec: &crate::estate::TenantSpec) -> Value {
    json!({
        "id": spec.id,
        "displayName": spec.display_name,
        "verifiedDomains": [{
            "capabilities": "Email, OfficeCommunicationsOnline",
            "isDefault": true,
            "isInitial": true,
            "name": spec.default_domain,
            "type": "Managed"
        }]
    })
}

fn send_mail(state: &mut State, req: &Req) -> Resp {
    if tenant(state, req).spec.mail_send_denied {
        return error(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.");
    }
    let Some(body) = req.body.clone() else { return error(400, "BadRequest", "A request body is required.") };
    let has_recipient = body.pointer("/message/toRecipients").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    if !has_recipient {
        return error(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient is not valid., A message can't be sent because it contains no recipients.",
        );
    }
    let from = req.path.split('/').nth(1).unwrap_or_default().to_string();
    state.outbox.push(json!({"tenant": req.tenant, "from": from, "body": body}));
    Resp::new(202, None)
}

/// What If (`POST /identity/conditionalAccess/evaluate`), answered by caguard's
/// own evaluator over the tenant's policies and named locations. Groups and
/// directory roles come from the estate's.
fn evaluate(state: &mut State, req: &Req) -> Resp {
    let Some(body) = req.body.clone() else { return error(400, "BadRequest", "A request body is required.") };
    let flipped = state.faults.what_if_knows_better.clone();
    let t = tenant(state, req);
    let member_of = |user: &str| t.memberships(user);
    let sign_in = match crate::eval::parse_request(&body, &member_of) {
        Ok(s) => s,
        Err(e) => return error(400, "BadRequest", &e),
    };
    let mut policies = t.spec.policies.clone();
    policies.iter_mut().for_each(|p| crate::objects::as_version(p, req));
    let answers = crate::eval::evaluate(&policies, &t.spec.named_locations, &sign_in);
    let applied_only = body["appliedPoliciesOnly"] == json!(true);
    let answers: Vec<crate::eval::Answer> = answers
        .into_iter()
        .map(|mut a| {
            if flipped.contains(&a.name) {
                a.applies = !a.applies;
                a.reason = if a.applies { crate::eval::Reason::NotSet } else { crate::eval::Reason::Users };
            }
            a
        })
        .collect();
    let value = crate::eval::response_value(&policies, &answers, applied_only);
    Resp::new(
        200,
        Some(
            json!({"@odata.context": format!("{}/$metadata#Collection(microsoft.graph.whatIfAnalysisResult)", req.base), "value": value}),
        ),
    )
}

/// `GET /me`: the signed-in user; app-only tokens have none, and Graph answers 400.
fn me(state: &mut State, req: &Req) -> Resp {
    let Actor::User { id, display_name, user_principal_name } = req.actor else {
        return error(400, "BadRequest", "/me request is only valid with delegated authentication flow.");
    };
    let stored = tenant(state, req).spec.users.iter().find(|u| u["id"].as_str() == Some(id)).cloned();
    let user = stored
        .unwrap_or_else(|| json!({"id": id, "displayName": display_name, "userPrincipalName": user_principal_name}));
    Resp::new(200, Some(user))
}
