//! GDAP as the partner tenant sees it: `delegatedAdminRelationships` (with their
//! access assignments at their own path) and `delegatedAdminCustomers`.

use crate::graph::{Req, Resp, error, find, list_gdap, not_found};
use crate::state::State;
use serde_json::{Value, json};

/// `GET tenantRelationships/delegatedAdminRelationships[/{id}[/accessAssignments]]`.
pub(crate) fn relationships(state: &mut State, req: &Req, rest: &[&str]) -> Resp {
    if req.tenant != state.msp_tenant_id {
        return error(403, "Authorization_RequestDenied", "Only the partner tenant has delegated admin relationships.");
    }
    // The simulator keeps each relationship's access assignments beside it
    // (`accessAssignments`); Graph serves them only at their own path.
    let strip = |mut r: Value| {
        if let Some(o) = r.as_object_mut() {
            o.remove("accessAssignments");
        }
        r
    };
    let items: Vec<Value> = state.relationships.iter().cloned().map(strip).collect();
    match rest {
        [] => list_gdap(items, req, "tenantRelationships/delegatedAdminRelationships"),
        [id] => find(&items, id).map_or_else(|| not_found(id), |v| Resp::new(200, Some(v))),
        [id, "accessassignments"] => match find(&state.relationships, id) {
            Some(r) => {
                let list = r["accessAssignments"].as_array().cloned().unwrap_or_default();
                list_gdap(list, req, "tenantRelationships/delegatedAdminRelationships/accessAssignments")
            }
            None => not_found(id),
        },
        _ => not_found(req.path),
    }
}

/// `GET tenantRelationships/delegatedAdminCustomers`: one per customer of any relationship.
pub(crate) fn customers(state: &mut State, req: &Req) -> Resp {
    let mut seen = std::collections::BTreeMap::new();
    for r in &state.relationships {
        if let (Some(t), Some(n)) = (r.pointer("/customer/tenantId"), r.pointer("/customer/displayName")) {
            seen.insert(t.as_str().unwrap_or_default().to_string(), n.clone());
        }
    }
    let items = seen
        .into_iter()
        .map(|(t, n)| json!({"@odata.type": "#microsoft.graph.delegatedAdminCustomer", "id": t, "tenantId": t, "displayName": n}))
        .collect();
    list_gdap(items, req, "tenantRelationships/delegatedAdminCustomers")
}
