//! The `/_sim` admin API the tests drive (journal, faults, estate export, new
//! tenants and relationships) and the out-of-band "portal edits": a change made
//! as a named person, which goes through the same Graph routes and audit log.

use crate::estate::{Estate, TenantSpec};
use crate::graph::{self, Req};
use crate::server::{Shared, host_base, lock};
use crate::state::{Actor, Faults, JournalEntry, State};
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Instant;

/// The `/_sim` routes, merged into the simulator's router.
pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/_sim/journal", get(admin_journal).delete(admin_clear_journal))
        .route("/_sim/faults", get(admin_faults).put(admin_set_faults))
        .route("/_sim/estate", get(admin_estate))
        .route("/_sim/outbox", get(admin_outbox))
        .route("/_sim/tenants", post(admin_add_tenant))
        .route("/_sim/relationships", post(admin_upsert_relationship))
        .route("/_sim/tenants/{tenant}/edit", post(admin_edit))
}

/// A relationship created or changed now: Graph stamps `lastModifiedDateTime`
/// (read-only, set by the service on every change).
pub(crate) fn upsert_relationship(st: &mut State, mut rel: Value) {
    rel["lastModifiedDateTime"] = json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    let id = rel["id"].clone();
    match st.relationships.iter_mut().find(|r| r["id"] == id) {
        Some(r) => *r = rel,
        None => st.relationships.push(rel),
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn portal_edit(
    st: &mut State,
    base: &str,
    tenant: &str,
    actor: &Actor,
    user_agent: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Option<Value>) {
    if !st.tenants.contains_key(tenant) {
        return (404, Some(json!({"error": format!("no tenant {tenant}")})));
    }
    let query = HashMap::new();
    let page_size = st.page_size;
    let base = format!("{base}/v1.0");
    let at = Instant::now();
    let req = Req {
        method,
        path,
        query: &query,
        body,
        base: &base,
        tenant,
        actor,
        user_agent,
        page_size,
        at,
        beta: false,
        unknown_enums: false,
    };
    let r = graph::route(st, req);
    (r.status, r.body)
}

async fn admin_journal(AxState(s): AxState<Shared>) -> Json<Vec<JournalEntry>> {
    Json(lock(&s).journal.clone())
}

async fn admin_clear_journal(AxState(s): AxState<Shared>) -> StatusCode {
    lock(&s).journal.clear();
    StatusCode::NO_CONTENT
}

async fn admin_faults(AxState(s): AxState<Shared>) -> Json<Faults> {
    Json(lock(&s).faults.clone())
}

async fn admin_set_faults(AxState(s): AxState<Shared>, Json(f): Json<Faults>) -> StatusCode {
    lock(&s).set_faults(f);
    StatusCode::NO_CONTENT
}

async fn admin_estate(AxState(s): AxState<Shared>) -> Json<Estate> {
    Json(lock(&s).export())
}

async fn admin_outbox(AxState(s): AxState<Shared>) -> Json<Vec<Value>> {
    Json(lock(&s).outbox.clone())
}

async fn admin_add_tenant(AxState(s): AxState<Shared>, Json(spec): Json<TenantSpec>) -> StatusCode {
    lock(&s).tenants.insert(spec.id.clone(), crate::state::Tenant::new(spec));
    StatusCode::NO_CONTENT
}

async fn admin_upsert_relationship(AxState(s): AxState<Shared>, Json(rel): Json<Value>) -> StatusCode {
    upsert_relationship(&mut lock(&s), rel);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct PortalEdit {
    actor: Actor,
    /// The `User-Agent` of the tool that made the change, kept by the audit record.
    #[serde(default, rename = "userAgent")]
    user_agent: Option<String>,
    method: String,
    path: String,
    #[serde(default)]
    body: Option<Value>,
}

async fn admin_edit(
    AxState(s): AxState<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Json(e): Json<PortalEdit>,
) -> Response {
    let base = host_base(&headers, "").trim_end_matches('/').to_string();
    let (status, body) = portal_edit(
        &mut lock(&s),
        &base,
        &tenant,
        &e.actor,
        e.user_agent.as_deref(),
        &e.method.to_ascii_uppercase(),
        &e.path,
        e.body,
    );
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match body {
        Some(b) => (status, Json(b)).into_response(),
        None => status.into_response(),
    }
}
