//! Users, groups and memberships. The estate's groups and directory roles hold
//! users directly, so direct membership is also transitive membership.

use crate::graph::{Req, Resp, find, list, not_found, tenant, without_members};
use crate::state::State;
use serde_json::{Value, json};

pub(crate) fn users(state: &mut State, req: &Req) -> Resp {
    let items = tenant(state, req).spec.users.clone();
    list(items, req, "users")
}

/// `GET users/{id or userPrincipalName}`.
pub(crate) fn user(state: &mut State, req: &Req, key: &str) -> Resp {
    let t = tenant(state, req);
    let hit = t.spec.users.iter().find(|u| {
        u["id"].as_str() == Some(key) || u["userPrincipalName"].as_str().is_some_and(|p| p.eq_ignore_ascii_case(key))
    });
    hit.cloned().map_or_else(|| not_found(key), |u| Resp::new(200, Some(u)))
}

/// `GET users/{id}/transitiveMemberOf`: groups and directory roles, typed.
pub(crate) fn transitive_member_of(state: &mut State, req: &Req, user: &str) -> Resp {
    let t = tenant(state, req);
    let typed = |o: &Value, kind: &str| {
        let mut o = without_members(o);
        o["@odata.type"] = json!(kind);
        o
    };
    let groups = t.groups_of(user).into_iter().map(|g| typed(g, "#microsoft.graph.group"));
    let roles = t.roles_of(user).into_iter().map(|r| typed(r, "#microsoft.graph.directoryRole"));
    list(groups.chain(roles).collect(), req, "directoryObjects")
}

pub(crate) fn groups(state: &mut State, req: &Req) -> Resp {
    let items = tenant(state, req).spec.groups.iter().map(without_members).collect();
    list(items, req, "groups")
}

pub(crate) fn group(state: &mut State, req: &Req, id: &str) -> Resp {
    let hit = find(&tenant(state, req).spec.groups, id);
    hit.map_or_else(|| not_found(id), |g| Resp::new(200, Some(without_members(&g))))
}

/// `GET groups/{id}/members`: the member users.
pub(crate) fn group_members(state: &mut State, req: &Req, id: &str) -> Resp {
    let t = tenant(state, req);
    let Some(g) = find(&t.spec.groups, id) else { return not_found(id) };
    let ids: Vec<&str> =
        g["members"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let items = t.spec.users.iter().filter(|u| u["id"].as_str().is_some_and(|i| ids.contains(&i))).cloned().collect();
    list(items, req, "directoryObjects")
}
