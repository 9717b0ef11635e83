//! The HTTP API behind the function key: `Status` (each tenant's last result and
//! the pauses in force), and `Pause` / `Resume`, the on-call's stop from anywhere
//! the Functions app's key reaches ([`crate::pause`]).

use super::{App, problem};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PauseRequest {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    control: Option<String>,
    reason: String,
    /// 24 by default, at most a week.
    #[serde(default)]
    hours: Option<i64>,
    /// Who asks (recorded as given: the function key is the authority).
    #[serde(default)]
    by: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ResumeRequest {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    control: Option<String>,
}

fn body<T: serde::de::DeserializeOwned>(name: &str, bytes: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(bytes).map_err(|e| problem(StatusCode::BAD_REQUEST, format!("{name}: {e}")))
}

/// `POST /api/Pause` `{"tenant"?, "control"?, "reason", "hours"?, "by"?}`.
pub(super) async fn pause(State(app): State<App>, bytes: axum::body::Bytes) -> Response {
    let Ok(r) = app.as_ref() else { return StatusCode::SERVICE_UNAVAILABLE.into_response() };
    let req: PauseRequest = match body("Pause", &bytes) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let made = crate::pause::Scope::parse(req.tenant.as_deref(), req.control.as_deref()).and_then(|scope| {
        let by = format!("{} (HTTP)", req.by.as_deref().unwrap_or("function key holder"));
        let hours = req.hours.unwrap_or(crate::pause::DEFAULT_HOURS);
        crate::pause::Pause::new(scope, &req.reason, &by, hours, chrono::Utc::now())
    });
    let p = match made {
        Ok(p) => p,
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("Pause: {e}")),
    };
    if let Err(e) = crate::pause::pause(r.store.as_ref(), &p).await {
        return problem(StatusCode::SERVICE_UNAVAILABLE, format!("Pause: {e}"));
    }
    r.alerter.send(&paused_alert(&p)).await;
    tracing::warn!("{}", p.describe());
    axum::Json(p).into_response()
}

/// `POST /api/Resume` `{"tenant"?, "control"?}`: 404 when nothing is paused for that scope.
pub(super) async fn resume(State(app): State<App>, bytes: axum::body::Bytes) -> Response {
    let Ok(r) = app.as_ref() else { return StatusCode::SERVICE_UNAVAILABLE.into_response() };
    let req: ResumeRequest = match body("Resume", &bytes) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let scope = match crate::pause::Scope::parse(req.tenant.as_deref(), req.control.as_deref()) {
        Ok(s) => s,
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("Resume: {e}")),
    };
    match crate::pause::resume(r.store.as_ref(), &scope).await {
        Ok(true) => {
            tracing::warn!("resumed {scope}");
            (StatusCode::OK, format!("resumed {scope}")).into_response()
        }
        Ok(false) => problem(StatusCode::NOT_FOUND, format!("Resume: nothing is paused for {scope}")),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, format!("Resume: {e}")),
    }
}

/// The alert a new pause raises: everyone on the channel knows caguard stopped.
pub(crate) fn paused_alert(p: &crate::pause::Pause) -> crate::alert::Alert {
    crate::alert::Alert {
        tenant_id: p.scope.tenant.clone().unwrap_or_else(|| "all".into()),
        tenant_name: p.scope.to_string(),
        kind: crate::alert::kind::PAUSED.into(),
        message: p.describe(),
        control: p.scope.control.map(|c| c.to_string()),
        ..Default::default()
    }
}

/// `Status` (HTTP, function key): each tenant's last result.
pub(super) async fn status(State(app): State<App>) -> Response {
    let ready = match app.as_ref() {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e.clone()),
    };
    let (pauses, _) = crate::pause::load(Some(ready.store.as_ref()), chrono::Utc::now()).await;
    let undelivered = crate::alert::undelivered(ready.store.as_ref()).await;
    let undelivered: Vec<serde_json::Value> = undelivered.iter().map(crate::alert::Undelivered::summary).collect();
    match ready.store.statuses().await {
        Ok(list) => {
            axum::Json(json!({ "pauses": pauses.0, "undeliveredAlerts": undelivered, "tenants": list })).into_response()
        }
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /api/plans`: the plans held for a person, with their diffs.
pub(super) async fn plans(State(app): State<App>) -> Response {
    let Ok(r) = app.as_ref() else { return StatusCode::SERVICE_UNAVAILABLE.into_response() };
    match crate::approval::held(r.store.as_ref()).await {
        Ok(list) => axum::Json(json!({ "plans": list })).into_response(),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, format!("Plans: {e}")),
    }
}

/// `POST /api/plans/{id}/approve` `{"by"?}`: the next reconcile of that tenant
/// applies exactly this plan; a tenant that changed since is re-planned instead.
pub(super) async fn approve(
    State(app): State<App>,
    axum::extract::Path(id): axum::extract::Path<String>,
    bytes: axum::body::Bytes,
) -> Response {
    let Ok(r) = app.as_ref() else { return StatusCode::SERVICE_UNAVAILABLE.into_response() };
    let by = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["by"].as_str().map(str::to_string))
        .unwrap_or_else(|| "function key holder".into());
    match crate::approval::approve(r.store.as_ref(), &id, &crate::logging::bounded(&by)).await {
        Ok(p) => {
            tracing::warn!(tenant = %p.tenant_id, "plan {} approved by {by}", p.id);
            axum::Json(
                json!({"approved": p.id, "tenantId": p.tenant_id, "appliedBy": "the next reconcile of this tenant"}),
            )
            .into_response()
        }
        Err(e) => problem(StatusCode::NOT_FOUND, format!("ApprovePlan: {e}")),
    }
}
