//! caguard as an Azure Functions custom handler (`caguard serve`).
//!
//! The Functions host starts the binary, polls `GET /` until it answers, then
//! POSTs each invocation to `/{FunctionName}`. HTTP-triggered functions are
//! forwarded as they arrived (`enableForwardingHttpRequest`) to `/api/{route}`.
//!
//! | function | trigger | does |
//! |---|---|---|
//! | `SweepTimer` | timer | discovers tenants, emits one `reconcile` queue message per tenant |
//! | `ReconcileTenant` | queue | observes, plans and applies one tenant; records its result |
//! | `ReconcilePoison` | queue (poison) | a message that failed `maxDequeueCount` times: alert, record |
//! | `WatchTimer` | timer (every minute) | one cheap list per tenant; a `reconcile` message for each tenant that changed |
//! | `CippTimer` | timer | Part C: CIPP-API clients and roles limited to the trusted ranges (also run by `SweepTimer`) |
//! | `Status` | HTTP (function key) | each tenant's last result, and the pauses in force |
//! | `Pause` / `Resume` | HTTP (function key) | the on-call's stop ([`crate::pause`]) |
//! | `Plans` / `ApprovePlan` | HTTP (function key) | held plans with their diffs; approve one ([`crate::approval`]) |
//! | `Ui` | HTTP (function key) | the read-only status page (`/api/ui`) |
//!
//! One module per family: `timers`, `queue`, `webhooks` and `api` (HTTP behind
//! the function key); the wire format is `protocol`.

mod api;
pub mod protocol;
mod queue;
mod timers;
mod ui;
mod webhooks;

use queue::*;
use timers::*;
use webhooks::*;

use crate::alert::{Alert, Alerter, kind};
use crate::apply::{Outcome, TenantResult, apply_tenant};
use crate::config::Config;
use crate::graph::{GraphClient, GraphConfig};
use crate::observe::{self, Customer};
use crate::plan::{self, Block, TenantPlan};
use crate::store::{DriftRecord, Store, TenantStatus};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use protocol::{InvocationRequest, InvocationResponse, ProtocolError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

/// The queue output binding of `SweepTimer` and the trigger of `ReconcileTenant`.
pub const RECONCILE_BINDING: &str = "reconcile";

/// One tenant to reconcile. Processing is idempotent, so redelivery is safe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileMessage {
    pub tenant_id: String,
    #[serde(default)]
    pub tenant_name: Option<String>,
    /// `sweep`, `drift`, `gdap-activated`, …
    pub reason: String,
    pub correlation_id: String,
    #[serde(default)]
    pub msp: bool,
    /// From the GDAP relationship; looked up when absent.
    #[serde(default)]
    pub can_write_ca: Option<bool>,
    /// A tenant CIPP manages directly ([`Customer::direct`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub direct: bool,
    /// Tenants in the sweep that sent this, for the "% of tenants at once" limit.
    #[serde(default)]
    pub sweep_size: Option<usize>,
}

/// Settings read from app settings at start-up.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `CAGUARD_CONFIRM_LARGE_PLANS=true`: the `--yes` of the Functions app (for a first rollout).
    pub confirm_large_plans: bool,
    /// `maxDequeueCount` of the queue extension (host.json); 5 by default.
    pub max_dequeue_count: u32,
    /// `CAGUARD_CIPP_CONNECTION_STRING`: CIPP's storage by connection string (local runs).
    pub cipp_connection_string: Option<String>,
    /// This app's public base URL, for Graph subscriptions (`CAGUARD_PUBLIC_URL`, else `https://$WEBSITE_HOSTNAME`).
    pub public_url: Option<String>,
    /// The queue `ReconcileTenant` listens on (must match its function.json): `caguard-reconcile`.
    pub reconcile_queue: String,
}

/// Everything an invocation needs, built once at start-up without touching the network.
pub struct Ready {
    pub config: Config,
    pub client: GraphClient,
    pub store: Arc<dyn Store>,
    pub alerter: Alerter,
    /// Where forwarded HTTP functions queue their work (the app's own storage).
    pub queue: Option<crate::storage::QueueClient>,
    /// Verifies Partner Center's signatures.
    pub partner: Arc<crate::partner::Verifier>,
    pub settings: Settings,
}

impl Ready {
    /// CIPP's storage, when configured (Part C, and the direct tenants CIPP lists).
    pub fn cipp(&self) -> Result<Option<crate::cipp::Cipp>, String> {
        crate::cipp::Cipp::from_config(&self.config, self.settings.cipp_connection_string.as_deref()).transpose()
    }

    /// Discovery as every function does it: GDAP relationships plus the direct
    /// tenants of the config and of CIPP's `Tenants` table.
    pub async fn discover(&self) -> Result<Vec<Customer>, String> {
        let cipp = self.cipp()?;
        observe::discover(&self.client, &self.config, cipp.as_ref()).await.map_err(|e| e.to_string())
    }
}

/// The app: ready, or the reason it is not (answered to every invocation).
pub type App = Arc<Result<Ready, String>>;

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

/// Builds the app from app settings. Fails soft: the server still starts and
/// answers readiness, and every invocation says what is missing.
pub fn app_from_env() -> App {
    Arc::new(ready_from_env())
}

fn ready_from_env() -> Result<Ready, String> {
    let config_text = match (env("CAGUARD_CONFIG"), env("CAGUARD_CONFIG_PATH")) {
        (Some(inline), _) => inline,
        (None, path) => {
            let path = path.unwrap_or_else(|| "caguard.toml".into());
            std::fs::read_to_string(&path).map_err(|e| {
                format!("caguard is not configured: set CAGUARD_CONFIG or CAGUARD_CONFIG_PATH ({path}: {e})")
            })?
        }
    };
    let (config, warnings) = crate::config::parse(&config_text).map_err(|e| format!("caguard.toml: {e}"))?;
    for w in warnings {
        tracing::warn!("caguard.toml: {w}");
    }
    let mut graph = GraphConfig::default();
    if let Some(u) = env("CAGUARD_GRAPH_URL") {
        graph.graph_base = u;
    }
    if let Some(u) = env("CAGUARD_LOGIN_URL") {
        graph.login_base = u;
    }
    let client = GraphClient::new(graph, crate::secrets::from_env()?).map_err(|e| e.to_string())?;
    let store = crate::store::from_env()?;
    let settings = Settings {
        confirm_large_plans: env("CAGUARD_CONFIRM_LARGE_PLANS").is_some_and(|v| v.eq_ignore_ascii_case("true")),
        max_dequeue_count: env("CAGUARD_MAX_DEQUEUE_COUNT").and_then(|v| v.parse().ok()).unwrap_or(5),
        cipp_connection_string: crate::cipp::connection_string_from_env(),
        public_url: env("CAGUARD_PUBLIC_URL").or_else(|| env("WEBSITE_HOSTNAME").map(|h| format!("https://{h}"))),
        reconcile_queue: RECONCILE_QUEUE.into(),
    };
    let queue = queue_from_env()?;
    let alerter = Alerter::from_env(store.clone(), &config, &client);
    Ok(Ready {
        config,
        client,
        store,
        alerter,
        queue,
        partner: Arc::new(crate::partner::Verifier::from_env()),
        settings,
    })
}

/// The queue of the app's own storage account: `AzureWebJobsStorage` as a connection
/// string, or `AzureWebJobsStorage__accountName` with the managed identity.
fn queue_from_env() -> Result<Option<crate::storage::QueueClient>, String> {
    if let Some(cs) = env("AzureWebJobsStorage") {
        return crate::storage::QueueClient::from_connection_string(&cs)
            .map(Some)
            .map_err(|e| format!("AzureWebJobsStorage: {e}"));
    }
    match env("AzureWebJobsStorage__accountName") {
        Some(account) => Ok(Some(crate::storage::QueueClient::new(
            &format!("https://{account}.queue.core.windows.net"),
            crate::storage::Auth::Token(crate::secrets::azure_credential()?),
        ))),
        None => Ok(None),
    }
}

/// The queue `ReconcileTenant` listens on.
pub const RECONCILE_QUEUE: &str = "caguard-reconcile";

/// The routes the Functions host calls.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(|| async { "caguard ready" }))
        .route("/api/Status", get(api::status))
        .route("/api/Pause", post(api::pause))
        .route("/api/Resume", post(api::resume))
        .route("/api/plans", get(api::plans))
        .route("/api/plans/{id}/approve", post(api::approve))
        .route("/api/ui", get(ui::page))
        .route("/api/GraphNotifications", post(graph_notifications))
        .route("/api/GraphLifecycle", post(graph_lifecycle))
        .route("/api/PartnerCenterEvents", post(partner_center_events))
        .route("/{function}", post(invoke))
        .fallback(unknown)
        .layer(axum::middleware::from_fn(read_within))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BODY))
        .with_state(app)
}

/// Request bodies larger than this are refused (413) before they are read.
pub const MAX_REQUEST_BODY: usize = 4 * 1024 * 1024;
/// How long a request body may take to arrive (a slow sender holds nothing longer).
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Reads the whole request body within [`BODY_READ_TIMEOUT`] (408 otherwise), so
/// a client that trickles its body cannot hold a connection and a task open.
/// Handling then runs as long as the function needs.
async fn read_within(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, MAX_REQUEST_BODY)).await {
        Ok(Ok(bytes)) => next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await,
        Ok(Err(_)) => problem(StatusCode::PAYLOAD_TOO_LARGE, "request: the body is too large or broken".into()),
        Err(_) => problem(StatusCode::REQUEST_TIMEOUT, "request: the body did not arrive in time".into()),
    }
}

/// Serves on `127.0.0.1:port` until the process is stopped.
pub async fn serve(port: u16) -> std::io::Result<()> {
    let app = app_from_env();
    if let Err(e) = app.as_ref() {
        tracing::error!("caguard started unconfigured: {e}");
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!(port, "caguard custom handler listening");
    axum::serve(listener, router(app)).await
}

fn problem(status: StatusCode, message: String) -> Response {
    // Messages may carry request input: bounded, and rate-limited per endpoint.
    let message = crate::logging::bounded(&message);
    let source = message.split([':', ' ']).next().unwrap_or("request").to_string();
    crate::logging::warn(&source, &format!("{} {message}", status.as_u16()));
    let body = InvocationResponse {
        logs: vec![message.clone()],
        return_value: json!({ "error": message }),
        ..Default::default()
    };
    (status, axum::Json(body)).into_response()
}

async fn unknown(uri: axum::http::Uri) -> Response {
    problem(StatusCode::NOT_FOUND, format!("unknown function or route '{}'", uri.path()))
}

async fn invoke(State(app): State<App>, Path(function): Path<String>, body: Bytes) -> Response {
    let request: InvocationRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!("{function}: the invocation body is not a Functions invocation (Data/Metadata JSON): {e}"),
            );
        }
    };
    const FUNCTIONS: &[&str] =
        &["SweepTimer", "ReconcileTenant", "ReconcilePoison", "CippTimer", "WatchTimer", "RenewSubscriptionsTimer"];
    if !FUNCTIONS.contains(&function.as_str()) {
        // 404 whether or not caguard is configured: the name is wrong, not the app.
        return problem(StatusCode::NOT_FOUND, format!("unknown function '{function}'"));
    }
    let ready = match app.as_ref() {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, format!("{function}: {e}")),
    };
    let result = match function.as_str() {
        "SweepTimer" => sweep_timer(ready, &request).await,
        "ReconcileTenant" => reconcile_tenant(ready, &request).await,
        "ReconcilePoison" => reconcile_poison(ready, &request).await,
        "CippTimer" => cipp_timer(ready, &request).await,
        "WatchTimer" => watch_timer(ready, &request).await,
        "RenewSubscriptionsTimer" => renew_subscriptions(ready, &request).await,
        other => return problem(StatusCode::NOT_FOUND, format!("unknown function '{other}'")),
    };
    match result {
        Ok(resp) => (StatusCode::OK, axum::Json(resp)).into_response(),
        Err(Failure::BadInput(e)) => problem(StatusCode::BAD_REQUEST, format!("{function}: {e}")),
        // A 500 makes the host retry a queue message (at-least-once) and log the failure.
        Err(Failure::Retry(e)) => problem(StatusCode::INTERNAL_SERVER_ERROR, format!("{function}: {e}")),
    }
}

enum Failure {
    BadInput(String),
    Retry(String),
}

impl From<ProtocolError> for Failure {
    fn from(e: ProtocolError) -> Self {
        Failure::BadInput(e.0)
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

fn correlation(request: &InvocationRequest) -> String {
    request
        .metadata
        .get("sys")
        .and_then(|s| s.get("RandGuid"))
        .and_then(Value::as_str)
        .map_or_else(|| format!("sweep-{}", chrono::Utc::now().timestamp_millis()), str::to_string)
}

impl InvocationResponse {
    fn with_return(mut self, v: Value) -> Self {
        self.return_value = v;
        self
    }
}

async fn record(r: &Ready, tenant_id: &str, name: &str, outcome: &Outcome, written: usize, correlation_id: &str) {
    let status = TenantStatus {
        tenant_id: tenant_id.to_string(),
        tenant_name: name.to_string(),
        outcome: outcome.label().to_string(),
        reason: outcome.reason().map(str::to_string),
        written,
        at: now(),
        correlation_id: correlation_id.to_string(),
    };
    if let Err(e) = r.store.put_status(status).await {
        tracing::error!(tenant = tenant_id, "could not record the result: {e}");
    }
}
