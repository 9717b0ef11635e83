//! A stand-in for the one Azure Resource Manager call caguard makes: reading
//! CIPP's App Service authentication settings,
//! `POST /subscriptions/{id}/resourceGroups/{rg}/providers/Microsoft.Web/sites/{name}/config/authsettingsV2/list`
//! (Web Apps - List Auth Settings V2; CIPP's `Get-CippApiAuth.ps1` makes the same call).
//! ARM's errors as ARM words them: 401 `AuthenticationFailed` without a token,
//! 403 `AuthorizationFailed` for an identity without the action, 404
//! `ResourceNotFound` for an unknown site, 400 `MissingApiVersionParameter`.

use crate::server::{Shared, lock};
use axum::Json;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Instant;

const SUFFIX: &str = "/config/authsettingsV2/list";

fn arm_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

pub(crate) async fn request(
    AxState(s): AxState<Shared>,
    method: Method,
    Path(rest): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let arrived = Instant::now();
    let path = format!("/subscriptions/{rest}");
    let resp = answer(&s, &method, &path, raw.as_deref().unwrap_or(""), &headers);
    let status = resp.status().as_u16();
    lock(&s).record(arrived, None, method.as_str(), &path, raw.as_deref().unwrap_or(""), status, false, "arm");
    resp
}

fn answer(s: &Shared, method: &Method, path: &str, query: &str, headers: &HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let Some(token) = bearer else {
        return arm_error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        );
    };
    if !url::form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == "api-version" && !v.is_empty()) {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    }
    let Some(site_id) = path.strip_suffix(SUFFIX).filter(|_| method == Method::POST) else {
        return arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "The stand-in serves only POST .../config/authsettingsV2/list.",
        );
    };
    let st = lock(s);
    let Some(site) = st.cipp_sites.iter().find(|c| c.resource_id.eq_ignore_ascii_case(site_id)) else {
        let name = site_id.rsplit('/').next().unwrap_or_default();
        return arm_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!("The Resource 'Microsoft.Web/sites/{name}' under resource group was not found."),
        );
    };
    if site.reader_token != token {
        return arm_error(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            &format!(
                "The client does not have authorization to perform action \
                 'Microsoft.Web/sites/config/list/action' over scope '{site_id}/config/authsettingsV2'."
            ),
        );
    }
    let body = json!({
        "id": format!("{}/config/authsettingsV2", site.resource_id),
        "name": "authsettingsV2",
        "type": "Microsoft.Web/sites/config",
        "properties": site.auth_settings,
    });
    (StatusCode::OK, Json(body)).into_response()
}
