//! Conditional Access policies and named locations: create, read (with Graph's
//! replication lag), PATCH and DELETE, each validated as Graph validates it and
//! audited with who made it.

use crate::graph::{Req, Resp, error, merge, not_found, tenant};
use crate::state::{State, new_guid, now_stamp};
use crate::validate;
use serde_json::{Value, json};

/// The policies or named locations as a read sees them, replication lag included.
pub(crate) fn read_items(state: &mut State, req: &Req, kind: Kind) -> Vec<Value> {
    let lag = state.faults.replication_lag_ms;
    let t = tenant(state, req);
    let items = match kind {
        Kind::Policy => &t.spec.policies,
        Kind::Location => &t.spec.named_locations,
    };
    let mut read = t.as_read(lag, items, req.at);
    if kind == Kind::Policy {
        read.iter_mut().for_each(|p| as_version(p, req));
    }
    read
}

/// A policy as the request's version shows it. `sessionControls.continuousAccessEvaluation`
/// exists in beta only (v1.0's `conditionalAccessSessionControls` has no such
/// property, so a v1.0 read omits it, and keeps it stored). Its `strictLocation`
/// mode comes after `unknownFutureValue` in the evolvable enum: without
/// `Prefer: include-unknown-enum-members` a beta read answers `unknownFutureValue`
/// (learn.microsoft.com, continuousAccessEvaluationSessionControl, beta).
pub(crate) fn as_version(p: &mut Value, req: &Req) {
    let Some(session) = p.get_mut("sessionControls").and_then(Value::as_object_mut) else { return };
    if !req.beta {
        session.remove("continuousAccessEvaluation");
        return;
    }
    if let Some(mode) = session.get_mut("continuousAccessEvaluation").and_then(|c| c.get_mut("mode"))
        && mode == "strictLocation"
        && !req.unknown_enums
    {
        *mode = json!("unknownFutureValue");
    }
}

/// The injected refusal of a write to an object named in `refuseWritesTo`.
fn refused_write(state: &State, name: Option<&str>) -> Option<Resp> {
    let name = name?;
    state
        .faults
        .refuse_writes_to
        .iter()
        .any(|n| n == name)
        .then(|| error(400, "BadRequest", &format!("Injected fault: writes to '{name}' are refused.")))
}

/// Graph refuses a policy that references a named location it has not replicated
/// yet: "1040: NamedLocation with id … does not exist in the directory." (the text
/// CIPP logs in KelvinTegelaar/CIPP#4194; the code inside `innerError` is the simulator's).
fn unreplicated_location(state: &State, req: &Req, policy: &Value) -> Option<Resp> {
    let lag = state.faults.replication_lag_ms;
    let t = state.tenants.get(req.tenant)?;
    let ids = ["/conditions/locations/includeLocations", "/conditions/locations/excludeLocations"]
        .iter()
        .filter_map(|ptr| policy.pointer(ptr).and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str);
    for id in ids {
        if t.replicating(lag, id, req.at).is_some_and(|r| r.before.is_none()) {
            let mut r =
                error(400, "BadRequest", &format!("1040: NamedLocation with id {id} does not exist in the directory."));
            if let Some(inner) = r.body.as_mut().and_then(|b| b.pointer_mut("/error/innerError")) {
                inner["code"] = json!("1040");
            }
            return Some(r);
        }
    }
    None
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Policy,
    Location,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Policy => "conditional access policy",
            Kind::Location => "named location",
        }
    }
    fn property(self) -> &'static str {
        match self {
            Kind::Policy => "ConditionalAccessPolicy",
            Kind::Location => "NamedLocation",
        }
    }
    fn validate(self, v: &mut Value) -> Result<(), String> {
        match self {
            Kind::Policy => validate::policy(v),
            Kind::Location => validate::named_location(v),
        }
    }
    fn items(self, t: &mut crate::state::Tenant) -> &mut Vec<Value> {
        match self {
            Kind::Policy => &mut t.spec.policies,
            Kind::Location => &mut t.spec.named_locations,
        }
    }
}

/// Why a CA write is refused in this tenant, if it is.
fn write_refusal(t: &crate::state::Tenant, kind: Kind) -> Option<Resp> {
    if !t.spec.p1 || matches!(t.spec.licence_status.as_str(), "Suspended" | "LockedOut" | "Deleted") {
        return Some(error(
            403,
            "AccessDenied",
            "Conditional Access requires a Microsoft Entra ID P1 or P2 license in this tenant.",
        ));
    }
    if kind == Kind::Policy && t.spec.security_defaults {
        return Some(error(
            400,
            "BadRequest",
            "Security defaults are enabled in this tenant. Disable security defaults before using Conditional Access policies.",
        ));
    }
    None
}

/// Entra enforces at most 195 Conditional Access policies per tenant
/// (learn.microsoft.com, "Plan a Conditional Access deployment"; MicrosoftDocs/azure-docs#81685).
/// The error text is the simulator's own: Graph's exact wording is not documented.
pub const MAX_POLICIES: usize = 195;

pub(crate) fn create_policy(state: &mut State, req: &Req) -> Resp {
    let Some(mut p) = req.body.clone().filter(Value::is_object) else {
        return error(400, "BadRequest", "A request body is required.");
    };
    if let Some(r) = write_refusal(tenant(state, req), Kind::Policy) {
        return r;
    }
    if let Some(r) = refused_write(state, p["displayName"].as_str()) {
        return r;
    }
    if tenant(state, req).spec.policies.len() >= MAX_POLICIES {
        return error(
            400,
            "BadRequest",
            &format!("This tenant already has the maximum of {MAX_POLICIES} Conditional Access policies."),
        );
    }
    normalize_policy(&mut p);
    if let Err(e) = validate::policy(&mut p) {
        return error(400, "BadRequest", &e);
    }
    if let Some(r) = unreplicated_location(state, req, &p) {
        return r;
    }
    insert(state, req, Kind::Policy, p, "identity/conditionalAccess/policies")
}

pub(crate) fn create_location(state: &mut State, req: &Req) -> Resp {
    let Some(mut l) = req.body.clone().filter(Value::is_object) else {
        return error(400, "BadRequest", "A request body is required.");
    };
    if let Some(r) = write_refusal(tenant(state, req), Kind::Location) {
        return r;
    }
    if let Some(r) = refused_write(state, l["displayName"].as_str()) {
        return r;
    }
    if let Err(e) = validate::named_location(&l) {
        return error(400, "BadRequest", &e);
    }
    if l["@odata.type"] == "#microsoft.graph.ipNamedLocation" && l.get("isTrusted").is_none() {
        l["isTrusted"] = json!(false);
    }
    insert(state, req, Kind::Location, l, "identity/conditionalAccess/namedLocations")
}

fn insert(state: &mut State, req: &Req, kind: Kind, mut obj: Value, context: &str) -> Resp {
    let id = new_guid();
    let stamp = now_stamp();
    obj["id"] = json!(id);
    obj["createdDateTime"] = json!(stamp);
    obj["modifiedDateTime"] = if kind == Kind::Policy { Value::Null } else { json!(stamp) };
    audit(state, req, kind, "Add", &id, None, Some(&obj));
    let lag = state.faults.replication_lag_ms;
    let t = tenant(state, req);
    t.wrote(lag, &id, None, req.at);
    kind.items(t).push(obj.clone());
    let mut body = json!({"@odata.context": format!("{}/$metadata#{context}/$entity", req.base)});
    merge(&mut body, &obj);
    Resp::new(201, Some(body))
}

/// GET / PATCH / DELETE of one policy or named location.
pub(crate) fn object(state: &mut State, req: &Req, kind: Kind, id: &str) -> Resp {
    let items = kind.items(tenant(state, req));
    let Some(idx) = items.iter().position(|v| v["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(id))) else {
        return not_found(id);
    };
    let name = items[idx]["displayName"].as_str().map(str::to_string);
    if req.method != "GET"
        && let Some(r) = refused_write(state, name.as_deref())
    {
        return r;
    }
    match req.method {
        "GET" => {
            let current = kind.items(tenant(state, req))[idx].clone();
            let lag = state.faults.replication_lag_ms;
            let mut read = match tenant(state, req).replicating(lag, id, req.at) {
                Some(r) => match r.before.clone() {
                    Some(b) => b,
                    None => return not_found(id),
                },
                None => current,
            };
            if kind == Kind::Policy {
                as_version(&mut read, req);
            }
            Resp::new(200, Some(read))
        }
        "PATCH" => {
            let Some(patch) = req.body.clone().filter(Value::is_object) else {
                return error(400, "BadRequest", "A request body is required.");
            };
            if kind == Kind::Location && patch.get("@odata.type").is_none() {
                return error(
                    400,
                    "BadRequest",
                    "The '@odata.type' property is required when updating a named location.",
                );
            }
            if let Some(r) = write_refusal(tenant(state, req), kind) {
                return r;
            }
            let items = kind.items(tenant(state, req));
            let before = items[idx].clone();
            let mut after = before.clone();
            merge(&mut after, &patch);
            if kind == Kind::Location && before.get("@odata.type") != after.get("@odata.type") {
                return error(400, "BadRequest", "The '@odata.type' of a named location cannot be changed.");
            }
            if let Err(e) = kind.validate(&mut after) {
                return error(400, "BadRequest", &e);
            }
            if kind == Kind::Policy
                && let Some(r) = unreplicated_location(state, req, &after)
            {
                return r;
            }
            after["modifiedDateTime"] = json!(now_stamp());
            let lag = state.faults.replication_lag_ms;
            let t = tenant(state, req);
            t.wrote(lag, id, Some(before.clone()), req.at);
            kind.items(t)[idx] = after.clone();
            audit(state, req, kind, "Update", id, Some(&before), Some(&after));
            Resp::new(204, None)
        }
        "DELETE" => {
            if kind == Kind::Location && location_in_use(&tenant(state, req).spec.policies, id) {
                return error(
                    400,
                    "BadRequest",
                    "The named location is referenced by one or more Conditional Access policies.",
                );
            }
            let lag = state.faults.replication_lag_ms;
            let t = tenant(state, req);
            let removed = kind.items(t).remove(idx);
            t.wrote(lag, id, Some(removed.clone()), req.at);
            audit(state, req, kind, "Delete", id, Some(&removed), None);
            Resp::new(204, None)
        }
        _ => error(405, "BadRequest", "Method not allowed."),
    }
}

fn location_in_use(policies: &[Value], id: &str) -> bool {
    policies.iter().any(|p| {
        ["/conditions/locations/includeLocations", "/conditions/locations/excludeLocations"]
            .iter()
            .filter_map(|ptr| p.pointer(ptr).and_then(Value::as_array))
            .flatten()
            .any(|v| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(id)))
    })
}

/// Fills the defaults Graph adds to a created policy (see the POST response fixtures).
fn normalize_policy(p: &mut Value) {
    let defaults = json!({
        "sessionControls": null,
        "conditions": {
            "signInRiskLevels": [], "clientAppTypes": ["all"], "platforms": null, "locations": null,
            "applications": {"includeApplications": [], "excludeApplications": [], "includeUserActions": []},
            "users": {"includeUsers": [], "excludeUsers": [], "includeGroups": [], "excludeGroups": [],
                      "includeRoles": [], "excludeRoles": []}
        },
        "grantControls": {"customAuthenticationFactors": [], "termsOfUse": []}
    });
    let mut filled = defaults;
    if p.get("grantControls").is_some_and(Value::is_null) {
        filled["grantControls"] = Value::Null;
    }
    merge(&mut filled, p);
    *p = filled;
}

pub(crate) fn audit(
    state: &mut State,
    req: &Req,
    kind: Kind,
    verb: &str,
    id: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) {
    let name = after.or(before).and_then(|v| v["displayName"].as_str()).unwrap_or_default().to_string();
    let text = |v: Option<&Value>| v.map_or(Value::Null, |v| json!(v.to_string()));
    let record = json!({
        "id": format!("Directory_{}", new_guid()),
        "category": "Policy",
        "correlationId": new_guid(),
        "result": "success",
        "resultReason": "",
        "activityDisplayName": format!("{verb} {}", kind.noun()),
        "activityDateTime": now_stamp(),
        "loggedByService": "Conditional Access",
        "operationType": verb,
        "initiatedBy": req.actor.initiated_by(),
        "targetResources": [{
            "id": id, "displayName": name, "type": "Policy",
            "modifiedProperties": [{"displayName": kind.property(), "oldValue": text(before), "newValue": text(after)}]
        }],
        "additionalDetails": req.user_agent.map_or(json!([]), |ua| json!([{"key": "User-Agent", "value": ua}]))
    });
    if let Some(t) = state.tenants.get_mut(req.tenant) {
        t.spec.audits.push(record);
    }
}
