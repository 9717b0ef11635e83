//! Partner Center's webhook registration (one per partner; CIPP owns it).

use crate::server::{Shared, lock, to_response};
use crate::state::new_guid;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::time::Instant;

/// Partner Center's webhook registration: GET (404 when none), POST (201), PUT (200).
pub(crate) async fn pc_registration(
    AxState(s): AxState<Shared>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();
    let auth = crate::token::authenticate(&lock(&s), crate::token::bearer(&headers).as_deref());
    let (tenant, _) = match auth {
        Ok(a) => a,
        Err(r) => return to_response(r, false),
    };
    let mut st = lock(&s);
    let existing = st.pc_registrations.get(&tenant).cloned();
    let (status, out) = match (method.as_str(), existing) {
        ("GET", Some(r)) => (200, Some(r)),
        ("GET", None) => (404, Some(json!({"code": 404, "description": "Registration not found"}))),
        ("POST", Some(_)) => (409, Some(json!({"code": 409, "description": "Registration already exists; use PUT"}))),
        ("POST" | "PUT", prior) => match serde_json::from_slice::<Value>(&body) {
            Ok(mut reg) if reg.get("WebhookUrl").and_then(Value::as_str).is_some_and(|u| u.starts_with("https://")) => {
                reg["SubscriberId"] = json!(new_guid());
                st.pc_registrations.insert(tenant.clone(), reg.clone());
                (if prior.is_some() { 200 } else { 201 }, Some(reg))
            }
            _ => (400, Some(json!({"code": 400, "description": "WebhookUrl must be an https URL"}))),
        },
        _ => (405, None),
    };
    st.record(arrived, Some(&tenant), method.as_str(), "/webhooks/v1/registration", "", status, false, "graph");
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    match out {
        Some(b) => (code, Json(b)).into_response(),
        None => code.into_response(),
    }
}
