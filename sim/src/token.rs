//! The identity platform's side: the token endpoint (client credentials and
//! refresh tokens, with Entra's error codes) and the bearer check on every
//! Graph request.

use crate::graph::{self, Resp};
use crate::server::{Shared, lock};
use crate::state::{Actor, State, TokenInfo, new_guid};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn oauth_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}", new_guid(), new_guid(), crate::state::now_stamp()),
        "error_codes": [code],
        "timestamp": crate::state::now_stamp(),
        "trace_id": new_guid(),
        "correlation_id": new_guid()
    });
    (status, Json(body)).into_response()
}

/// A JWT-shaped opaque token carrying `tid`, so a reader can see which tenant it is for.
fn mint(tenant: &str, app: &str) -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        b64(json!({"typ": "JWT", "alg": "none"})),
        b64(json!({"tid": tenant, "appid": app, "jti": new_guid()})),
        "sim"
    )
}

pub(crate) async fn token(AxState(s): AxState<Shared>, Path(tenant): Path<String>, body: Bytes) -> Response {
    let arrived = Instant::now();
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let latency = lock(&s).faults.latency_ms;
    tokio::time::sleep(Duration::from_millis(latency)).await;
    let mut st = lock(&s);
    let resp = issue_token(&mut st, &tenant, &form);
    let status = resp.status().as_u16();
    st.record(arrived, Some(&tenant), "POST", &format!("/{tenant}/oauth2/v2.0/token"), "", status, false, "token");
    resp
}

fn issue_token(st: &mut State, tenant: &str, form: &HashMap<String, String>) -> Response {
    if let Some(injected) = injected_token_failure(st, tenant) {
        return injected;
    }
    let Some(t) = st.tenants.get(tenant) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    };
    let consented = t.spec.consented;
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    let Some(app) = st.apps.iter().find(|a| a.client_id == client_id).cloned() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory."),
        );
    };
    let (actor, new_refresh) = match grant(st, tenant, &app, form, consented) {
        Ok(granted) => granted,
        Err(refused) => return *refused,
    };
    let access = mint(tenant, &client_id);
    let lifetime = st.token_lifetime_secs;
    st.tokens.insert(
        access.clone(),
        TokenInfo { tenant: tenant.to_string(), actor, expires: Instant::now() + Duration::from_secs(lifetime) },
    );
    let mut body =
        json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access});
    if let Some(rt) = new_refresh {
        body["refresh_token"] = json!(rt);
        body["scope"] = json!("https://graph.microsoft.com/.default");
    }
    (StatusCode::OK, Json(body)).into_response()
}

/// The token failure a test injected (`/_sim/faults`), while it lasts.
fn injected_token_failure(st: &mut State, tenant: &str) -> Option<Response> {
    if let Some(f) = st.faults.token_failure.clone() {
        let applies = f.tenant.as_deref().is_none_or(|t| t == tenant) && f.remaining != Some(0);
        if applies {
            if let Some(n) = st.faults.token_failure.as_mut().and_then(|f| f.remaining.as_mut()) {
                *n -= 1;
            }
            let (status, code) = if f.error == "invalid_client" {
                (StatusCode::UNAUTHORIZED, 7000215)
            } else {
                (StatusCode::BAD_REQUEST, 700082)
            };
            return Some(oauth_error(status, &f.error, code, "Injected token failure."));
        }
    }
    None
}

/// Who the grant makes the caller, and the rotated refresh token a
/// `refresh_token` grant returns; `Err` is the OAuth error Entra answers.
fn grant(
    st: &mut State,
    tenant: &str,
    app: &crate::estate::App,
    form: &HashMap<String, String>,
    consented: bool,
) -> Result<(Actor, Option<String>), Box<Response>> {
    let client_id = app.client_id.as_str();
    let grant = form.get("grant_type").map(String::as_str).unwrap_or_default();
    let granted = match grant {
        "client_credentials" => {
            if form.get("client_secret") != Some(&app.client_secret) {
                return Err(Box::new(oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided.",
                )));
            }
            if !consented {
                return Err(Box::new(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "unauthorized_client",
                    700016,
                    &format!(
                        "Application with identifier '{client_id}' was not found in the directory '{tenant}'. The tenant administrator has not consented."
                    ),
                )));
            }
            (Actor::App { app_id: app.client_id.clone(), display_name: app.display_name.clone() }, None)
        }
        "refresh_token" => {
            let offered = form.get("refresh_token").cloned().unwrap_or_default();
            let Some(rt) = st.refresh_tokens.iter().find(|r| r.token == offered && r.client_id == client_id).cloned()
            else {
                return Err(Box::new(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    70000,
                    "The provided grant is invalid or expired.",
                )));
            };
            if let Some(err) = refresh_token_reach(st, &rt, tenant) {
                return Err(Box::new(err));
            }
            let rotated = crate::estate::RefreshTokenSpec { token: format!("rt-{}", new_guid()), ..rt.clone() };
            st.refresh_tokens.push(rotated.clone());
            (
                Actor::User {
                    id: rt.user_id.clone(),
                    display_name: "CIPP service account".into(),
                    user_principal_name: rt.user_principal_name.clone(),
                },
                Some(rotated.token),
            )
        }
        other => {
            return Err(Box::new(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{other}'."),
            )));
        }
    };
    Ok(granted)
}

/// Refuses a refresh token outside the tenants its user can reach: a direct tenant's
/// token only its own tenant, the partner's token the MSP tenant and active GDAP customers.
fn refresh_token_reach(st: &State, rt: &crate::estate::RefreshTokenSpec, tenant: &str) -> Option<Response> {
    let refusal = match rt.tenant_id.as_deref() {
        Some(home) if home == tenant => return None,
        Some(home) => format!("User account from tenant '{home}' does not exist in tenant '{tenant}'."),
        None => {
            let reachable = tenant == st.msp_tenant_id
                || st.relationships.iter().any(|r| {
                    r.pointer("/customer/tenantId").and_then(Value::as_str) == Some(tenant) && r["status"] == "active"
                });
            if reachable {
                return None;
            }
            format!("User account does not have access to tenant '{tenant}' (no active GDAP relationship).")
        }
    };
    Some(oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", 50020, &refusal))
}

// ---------- Graph ----------

pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(str::to_string)
}

/// Who the token belongs to, or Graph's 401.
pub(crate) fn authenticate(st: &State, token: Option<&str>) -> Result<(String, Actor), Resp> {
    let Some(token) = token else {
        return Err(graph::error(401, "InvalidAuthenticationToken", "Access token is empty."));
    };
    let Some(info) = st.tokens.get(token) else {
        return Err(graph::error(
            401,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.",
        ));
    };
    if Instant::now() >= info.expires {
        return Err(graph::error(
            401,
            "InvalidAuthenticationToken",
            "Lifetime validation failed, the token is expired.",
        ));
    }
    Ok((info.tenant.clone(), info.actor.clone()))
}
