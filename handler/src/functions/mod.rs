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
//! | `Status` | HTTP (function key) | each tenant's last result |

mod pause_api;
pub mod protocol;

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
        .route("/api/Status", get(status))
        .route("/api/Pause", post(pause_api::pause))
        .route("/api/Resume", post(pause_api::resume))
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

/// `SweepTimer`: one `reconcile` message per tenant through the queue output binding.
async fn sweep_timer(r: &Ready, request: &InvocationRequest) -> Result<InvocationResponse, Failure> {
    let timer = request.timer("timer")?;
    let mut resp = InvocationResponse::ok();
    if timer.is_past_due {
        resp = resp.log("SweepTimer is past due (the app was idle or busy); sweeping now");
    }
    let correlation_id = correlation(request);
    let customers = match observe::discover(&r.client, &r.config).await {
        Ok(found) => {
            remember_for_watch(r, &found).await;
            found
        }
        Err(e) => {
            resp = resp.log(discovery_failed(r, &e.to_string(), &correlation_id).await);
            vec![]
        }
    };
    let (active, inactive): (Vec<_>, Vec<_>) = customers.into_iter().partition(|c| c.active);
    let enforced: Vec<&Customer> = active.iter().filter(|c| !r.config.is_skipped(&c.tenant_id)).collect();
    let size = enforced.len() + 1;
    let mut messages = vec![ReconcileMessage {
        tenant_id: r.config.msp_tenant_id.clone(),
        tenant_name: Some("MSP tenant".into()),
        reason: "sweep".into(),
        correlation_id: correlation_id.clone(),
        msp: true,
        can_write_ca: None,
        sweep_size: Some(size),
    }];
    messages.extend(enforced.iter().map(|c| ReconcileMessage {
        tenant_id: c.tenant_id.clone(),
        tenant_name: Some(c.name.clone()),
        reason: "sweep".into(),
        correlation_id: correlation_id.clone(),
        msp: false,
        can_write_ca: c.can_write_ca,
        sweep_size: Some(size),
    }));
    for c in inactive.iter().chain(active.iter().filter(|c| r.config.is_skipped(&c.tenant_id))) {
        let reason = if c.active {
            "excluded by scope.skip_tenants".to_string()
        } else {
            format!("no active GDAP relationship (status: {})", c.status)
        };
        record(r, &c.tenant_id, &c.name, &Outcome::Skipped(reason), 0, &correlation_id).await;
    }
    let n = messages.len();
    let queue: Vec<Value> = messages.iter().map(|m| serde_json::to_value(m).expect("serializable")).collect();
    if let Some(summary) = run_cipp(r).await {
        resp = resp.log(summary);
    }
    Ok(resp
        .output(RECONCILE_BINDING, Value::Array(queue))
        .log(format!("sweep {correlation_id}: {n} tenants queued for reconcile, {} not enforced", inactive.len()))
        .with_return(json!({ "queued": n, "correlationId": correlation_id })))
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

/// `ReconcileTenant`: observe → plan → apply for one tenant. Idempotent.
async fn reconcile_tenant(r: &Ready, request: &InvocationRequest) -> Result<InvocationResponse, Failure> {
    let msg: ReconcileMessage = request.queue_message(RECONCILE_BINDING)?;
    if !crate::config::is_guid(&msg.tenant_id) {
        let shown: String = msg.tenant_id.chars().take(40).collect();
        return Err(ProtocolError(format!("reconcile message: tenant id '{shown}' is not a GUID")).into());
    }
    let attempt = request.dequeue_count()?;
    let name = msg.tenant_name.clone().unwrap_or_else(|| msg.tenant_id.clone());
    let result = reconcile(r, &msg).await;
    let (plan, result) = match result {
        Ok(pr) => pr,
        Err(e) => {
            let outcome = Outcome::Failed(e.clone());
            record(r, &msg.tenant_id, &name, &outcome, 0, &msg.correlation_id).await;
            return Err(Failure::Retry(format!("tenant {} (attempt {attempt}): {e}", msg.tenant_id)));
        }
    };
    record(r, &result.tenant_id, &name, &result.outcome, result.written, &msg.correlation_id).await;
    report_drift(r, &msg, &name, &plan, &result).await;
    if let Outcome::Failed(why) = &result.outcome {
        return Err(Failure::Retry(format!("tenant {} (attempt {attempt}): {why}", msg.tenant_id)));
    }
    let mut resp = InvocationResponse::ok();
    for n in &plan.notes {
        tracing::info!(tenant = %result.tenant_id, control = %n.control, "note: {}", n.message);
        resp = resp.log(format!("note {}: {}", n.control, n.message));
    }
    let line = format!(
        "{} ({}): {}{} — {} actions planned, {} written",
        name,
        result.tenant_id,
        result.outcome.label(),
        result.outcome.reason().map(|r| format!(": {r}")).unwrap_or_default(),
        plan.actions.len(),
        result.written
    );
    Ok(resp.log(line).with_return(serde_json::to_value(&result).expect("serializable")))
}

/// Drift records and alerts for what a reconcile wrote, with who changed each object.
async fn report_drift(r: &Ready, msg: &ReconcileMessage, name: &str, plan: &TenantPlan, result: &TenantResult) {
    if let Some(a) = crate::alert::for_outcome(&result.tenant_id, name, &result.outcome) {
        r.alerter.send(&a).await;
    }
    let own_app = r.client.app_id().await.unwrap_or_default();
    let per_policy = crate::alert::for_withheld(plan).into_iter().chain(crate::alert::for_lockout_risk(plan));
    for w in per_policy.chain(crate::alert::for_notes(plan)) {
        r.alerter.send(&w).await;
    }
    for action in result.written_actions(plan) {
        let object_id = match &action.op {
            crate::plan::Op::UpdatePolicy { id } | crate::plan::Op::UpdateLocation { id } => id.clone(),
            _ => String::new(),
        };
        let change = if object_id.is_empty() {
            None
        } else {
            crate::audit::who_changed(&r.client, &result.tenant_id, &object_id, &own_app).await.ok().flatten()
        };
        let (changed_by, changed_at) = change.map_or(("unknown".to_string(), None), |c| (c.who, Some(c.when)));
        let drift = DriftRecord {
            tenant_id: result.tenant_id.clone(),
            tenant_name: name.to_string(),
            control: action.control.to_string(),
            object_id: object_id.clone(),
            object_name: action.target.clone(),
            before: action.before.clone(),
            after: action.body.clone(),
            changed_by: changed_by.clone(),
            changed_at: changed_at.clone(),
            action: format!("{} {}", action.op.verb(), if action.op.is_policy() { "policy" } else { "named location" }),
            result: "restored".into(),
            detected_at: now(),
            correlation_id: msg.correlation_id.clone(),
        };
        if let Err(e) = r.store.record_drift(drift).await {
            tracing::error!(tenant = %result.tenant_id, "could not record drift: {e}");
        }
        let alert = Alert {
            tenant_id: result.tenant_id.clone(),
            tenant_name: name.to_string(),
            kind: kind::DRIFT_FIXED.into(),
            message: format!("{} \"{}\": {}; restored.", action.control, action.target, action.reason),
            control: Some(action.control.to_string()),
            object_id: Some(if object_id.is_empty() { action.target.clone() } else { object_id }),
            object_name: Some(action.target.clone()),
            changed_by: Some(changed_by),
            changed_at,
            before: Some(action.before.clone()),
            after: Some(action.body.clone()),
        };
        r.alerter.send(&alert).await;
    }
}

async fn reconcile(r: &Ready, msg: &ReconcileMessage) -> Result<(TenantPlan, TenantResult), String> {
    let is_msp = msg.msp || msg.tenant_id.eq_ignore_ascii_case(&r.config.msp_tenant_id);
    let observed = if is_msp {
        observe::msp(&r.client, &r.config, Some(r.store.as_ref())).await
    } else {
        let customer = match msg.can_write_ca {
            Some(_) => Customer {
                tenant_id: msg.tenant_id.to_ascii_lowercase(),
                name: msg.tenant_name.clone().unwrap_or_else(|| msg.tenant_id.clone()),
                active: true,
                status: "active".into(),
                can_write_ca: msg.can_write_ca,
            },
            None => lookup_customer(r, &msg.tenant_id).await?,
        };
        if !customer.active {
            let plan = TenantPlan {
                block: Some(Block::Skip(format!("no active GDAP relationship (status: {})", customer.status))),
                ..empty_plan(msg)
            };
            let outcome = Outcome::Skipped(format!("no active GDAP relationship (status: {})", customer.status));
            let result = TenantResult::new(&msg.tenant_id, &customer.name, outcome);
            return Ok((plan, result));
        }
        observe::customer(&r.client, &r.config, &customer).await
    };
    let observed = match observed {
        Ok(o) => o,
        Err(e) if e.is_auth_failure() => {
            let outcome = Outcome::Skipped(format!("cannot run here (consent, permissions or token): {e}"));
            let result = TenantResult::new(&msg.tenant_id, msg.tenant_name.as_deref().unwrap_or_default(), outcome);
            return Ok((empty_plan(msg), result));
        }
        Err(e) => return Err(e.to_string()),
    };
    let pauses = load_pauses(r).await;
    let mut plan = crate::sweep::planned(&r.config, &pauses, &observed, is_msp);
    let config = pauses.effective(&r.config, &observed.tenant_id);
    leave_emergency_changes(r, &mut plan, &observed).await;
    let mut plans = [plan];
    plan::apply_limits(&r.config, &mut plans, r.settings.confirm_large_plans);
    [plan] = plans;
    if plan.block.is_none() && plan.enforced().next().is_some() && !r.settings.confirm_large_plans {
        let size = msg.sweep_size.unwrap_or(1).max(1);
        let limit = ((r.config.max_tenant_fraction * size as f64).floor() as usize).max(1);
        let claimed =
            r.store.claim_change(&msg.correlation_id, &msg.tenant_id, limit).await.map_err(|e| e.to_string())?;
        if !claimed {
            plan.block = Some(Block::Hold(format!(
                "more than {limit} of {size} tenants changing in sweep {} exceeds the {:.0}% limit; set CAGUARD_CONFIRM_LARGE_PLANS=true or run `caguard apply --yes`",
                msg.correlation_id,
                r.config.max_tenant_fraction * 100.0
            )));
        }
    }
    let result = apply_tenant(&r.client, &config, &plan, &observed).await;
    if is_msp {
        crate::owned::record(r.store.as_ref(), &plan, &result, &observed).await;
    }
    Ok((plan, result))
}

fn empty_plan(msg: &ReconcileMessage) -> TenantPlan {
    let o = plan::Observed {
        tenant_id: msg.tenant_id.clone(),
        tenant_name: msg.tenant_name.clone().unwrap_or_default(),
        ..Default::default()
    };
    TenantPlan::new(&o, msg.msp)
}

/// Emergency override ([`crate::emergency`]): writes that would revert a change an
/// emergency actor made since the tenant was last in order are left out, their
/// control paused in this tenant, and one high-priority alert sent.
async fn leave_emergency_changes(r: &Ready, plan: &mut TenantPlan, observed: &plan::Observed) {
    if plan.block.is_some() || plan.enforced().next().is_none() {
        return;
    }
    let since = crate::emergency::last_in_order(r.store.as_ref(), &plan.tenant_id).await;
    if since.is_none() {
        return; // never in order (a first rollout): nothing to override
    }
    let actors = crate::emergency::actors(&r.client, &r.config, r.store.as_ref()).await;
    let overrides = crate::emergency::overrides(&r.client, plan, observed, &actors, since.as_deref()).await;
    for x in &overrides {
        let p = crate::emergency::pause_for(&r.config, &plan.tenant_id, x);
        if let Err(e) = crate::pause::pause(r.store.as_ref(), &p).await {
            tracing::error!(tenant = %plan.tenant_id, "{e}; the emergency change is left alone this run only");
        }
        r.alerter.send(&crate::emergency::alert(plan, x, &p)).await;
    }
    crate::emergency::honour(plan, &overrides);
}

/// The pauses in force; one that has expired is alerted (once: it is removed).
async fn load_pauses(r: &Ready) -> crate::pause::Pauses {
    let (pauses, expired) = crate::pause::load(Some(r.store.as_ref()), chrono::Utc::now()).await;
    for p in &expired {
        r.alerter.send(&crate::pause::expired_alert(p)).await;
    }
    for reminder in pauses.0.iter().filter_map(|p| crate::pause::expiring_alert(p, chrono::Utc::now())) {
        r.alerter.send(&reminder).await;
    }
    pauses
}

async fn lookup_customer(r: &Ready, tenant: &str) -> Result<Customer, String> {
    let all = observe::discover(&r.client, &r.config).await.map_err(|e| e.to_string())?;
    all.into_iter()
        .find(|c| c.tenant_id.eq_ignore_ascii_case(tenant))
        .ok_or_else(|| format!("tenant {tenant} has no GDAP relationship with the MSP"))
}

/// Part C (CIPP-API access lists), when configured: enforce and alert. `None` when not configured.
async fn run_cipp(r: &Ready) -> Option<String> {
    let client = match crate::cipp::table_client(&r.config, r.settings.cipp_connection_string.as_deref())? {
        Ok(c) => c,
        Err(e) => {
            let a = Alert {
                tenant_id: "cipp".into(),
                tenant_name: "CIPP-API".into(),
                kind: kind::FAILED.into(),
                message: e.clone(),
                ..Default::default()
            };
            r.alerter.send(&a).await;
            return Some(format!("CIPP-API: {e}"));
        }
    };
    let pauses = load_pauses(r).await;
    if let Some(p) = pauses.tenant("cipp") {
        return Some(format!("CIPP-API: {}", p.describe()));
    }
    let config = pauses.effective(&r.config, "cipp");
    let report = crate::cipp::run(&client, &config, &crate::cipp::Tables::default(), true).await;
    let correlation_id = format!("cipp-{}", chrono::Utc::now().timestamp_millis());
    for d in crate::cipp::drift_records(&report, &correlation_id) {
        if let Err(e) = r.store.record_drift(d).await {
            tracing::error!("could not record CIPP-API drift: {e}");
        }
    }
    for a in crate::cipp::alerts(&report) {
        r.alerter.send(&a).await;
    }
    Some(format!(
        "CIPP-API: {} rows checked, {} not compliant, {} table errors",
        report.rows.len(),
        report.drifted(),
        report.errors.len()
    ))
}

/// A failed discovery (#12): the sweep still reconciles the MSP tenant; each
/// customer last seen is recorded `unknown`, and one alert says so.
async fn discovery_failed(r: &Ready, error: &str, correlation_id: &str) -> String {
    tracing::error!("tenant discovery failed: {}", crate::logging::bounded(error));
    let known = crate::watch::last_known_tenants(r.store.as_ref()).await;
    let why = format!("discovery failed, so this tenant was not observed this run: {error}");
    for c in &known {
        record(r, &c.tenant_id, &c.name, &Outcome::Unknown(why.clone()), 0, correlation_id).await;
    }
    r.alerter.send(&crate::alert::for_discovery_failure(&r.config.msp_tenant_id, error, known.len())).await;
    format!(
        "tenant discovery failed ({error}); the MSP tenant is reconciled, {} customer(s) recorded unknown",
        known.len()
    )
}

/// Hands a fresh discovery to the watch, so its ticks need not list GDAP relationships.
async fn remember_for_watch(r: &Ready, customers: &[Customer]) {
    if let Err(e) = crate::watch::remember_tenants(r.store.as_ref(), customers).await {
        tracing::warn!("could not update the watch's tenant list (the watch rediscovers on its own): {e}");
    }
}

/// `WatchTimer`: the minute-level change check; a `reconcile` message for every
/// tenant whose CA objects changed since the last tick.
async fn watch_timer(r: &Ready, request: &InvocationRequest) -> Result<InvocationResponse, Failure> {
    let timer = request.timer("timer")?;
    let correlation_id = correlation(request);
    let tick = crate::watch::tick(&r.client, &r.config, &r.store, r.config.watch_concurrency, false)
        .await
        .map_err(|e| Failure::Retry(format!("watch tick failed: {e}")))?;
    // The change budget ("at most N% of tenants at once") is counted per tick, in the
    // store, under this correlation id: it needs the size of the estate watched.
    let estate = tick.changed.len() + tick.unchanged + tick.baseline + tick.errors.len();
    let messages: Vec<Value> = tick
        .changed
        .iter()
        .map(|c| {
            serde_json::to_value(ReconcileMessage {
                tenant_id: c.tenant_id.clone(),
                tenant_name: Some(c.name.clone()),
                reason: "drift".into(),
                correlation_id: correlation_id.clone(),
                msp: c.tenant_id.eq_ignore_ascii_case(&r.config.msp_tenant_id),
                can_write_ca: c.can_write_ca,
                sweep_size: Some(estate),
            })
            .expect("serializable")
        })
        .collect();
    let mut resp = InvocationResponse::ok().log(format!(
        "watch {correlation_id}: {} changed, {} unchanged, {} new, {} errors{}{}",
        tick.changed.len(),
        tick.unchanged,
        tick.baseline,
        tick.errors.len(),
        if tick.rediscovered { ", tenant list rediscovered" } else { "" },
        if timer.is_past_due { " (past due)" } else { "" }
    ));
    for (tenant, e) in &tick.errors {
        resp = resp.log(format!("watch: tenant {tenant}: {e}"));
    }
    Ok(resp.output(RECONCILE_BINDING, Value::Array(messages)))
}

/// `CippTimer`: Part C on its own schedule.
async fn cipp_timer(r: &Ready, request: &InvocationRequest) -> Result<InvocationResponse, Failure> {
    request.timer("timer")?;
    let line = run_cipp(r).await.unwrap_or_else(|| {
        "CIPP-API: not configured ([cipp] in caguard.toml or CAGUARD_CIPP_CONNECTION_STRING)".into()
    });
    Ok(InvocationResponse::ok().log(line))
}

/// `ReconcilePoison`: a reconcile that failed `maxDequeueCount` times. It is
/// alerted and recorded rather than left to vanish in the poison queue.
async fn reconcile_poison(r: &Ready, request: &InvocationRequest) -> Result<InvocationResponse, Failure> {
    let raw = request.trigger("poison")?.clone();
    let msg: Option<ReconcileMessage> = request.queue_message("poison").ok();
    let (tenant, name, correlation_id) = match &msg {
        Some(m) => (
            m.tenant_id.clone(),
            m.tenant_name.clone().unwrap_or_else(|| m.tenant_id.clone()),
            m.correlation_id.clone(),
        ),
        None => ("unknown".to_string(), "unreadable message".to_string(), String::new()),
    };
    let message = format!(
        "reconcile of tenant {tenant} failed {} times and was moved to the poison queue; its last result is in Status. Message: {raw}",
        r.settings.max_dequeue_count
    );
    let a = Alert {
        tenant_id: tenant.clone(),
        tenant_name: name.clone(),
        kind: kind::POISON.into(),
        message: message.clone(),
        ..Default::default()
    };
    r.alerter.send(&a).await;
    record(
        r,
        &tenant,
        &name,
        &Outcome::Failed(format!("poison: gave up after {} attempts", r.settings.max_dequeue_count)),
        0,
        &correlation_id,
    )
    .await;
    Ok(InvocationResponse::ok().log(message))
}

/// `RenewSubscriptionsTimer`: Graph subscriptions for the technician groups and the
/// break-glass and service accounts exist and do not expire within two days.
async fn renew_subscriptions(r: &Ready, request: &InvocationRequest) -> Result<InvocationResponse, Failure> {
    request.timer("timer")?;
    let Some(base) = r.settings.public_url.as_deref() else {
        return Err(Failure::Retry("no public URL for Graph to notify: set CAGUARD_PUBLIC_URL".into()));
    };
    let report = crate::notify::renew(&r.client, &r.config, r.store.as_ref(), base, chrono::Duration::days(2)).await;
    let line = format!(
        "subscriptions: {} created, {} renewed, {} kept, {} errors",
        report.created,
        report.renewed,
        report.kept,
        report.errors.len()
    );
    let mut resp = InvocationResponse::ok().log(line);
    for e in &report.errors {
        resp = resp.log(format!("subscription error: {e}"));
    }
    Ok(resp.with_return(serde_json::to_value(&report).expect("json")))
}

/// Queues a reconcile of the MSP tenant (from a push event).
async fn queue_msp_reconcile(r: &Ready, reason: &str) -> Result<(), String> {
    let queue = r.queue.as_ref().ok_or("no queue configured (AzureWebJobsStorage)")?;
    let msg = ReconcileMessage {
        tenant_id: r.config.msp_tenant_id.clone(),
        tenant_name: Some("MSP tenant".into()),
        reason: reason.into(),
        correlation_id: format!("{reason}-{}", chrono::Utc::now().timestamp_millis()),
        msp: true,
        can_write_ca: None,
        sweep_size: None,
    };
    queue.put(&r.settings.reconcile_queue, &serde_json::to_string(&msg).expect("json")).await
}

/// Graph's validation handshake: echo the decoded token as text/plain. Nothing else is ever echoed.
fn validation(q: &std::collections::HashMap<String, String>) -> Option<Response> {
    q.get("validationToken")
        .map(|t| (StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "text/plain")], t.clone()).into_response())
}

/// Graph has 3 s to hear back; caguard answers well within it.
const NOTIFICATION_BUDGET: std::time::Duration = std::time::Duration::from_millis(2500);

type Work<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send + 'a>>;

/// What Graph's notification endpoints share: the validation echo, the body, and
/// an answer within Graph's 3 s — 202 once the work is done or queued, 503 (so
/// Graph delivers again) when it is not.
async fn notification_endpoint(
    name: &str,
    app: &App,
    q: &std::collections::HashMap<String, String>,
    body: &[u8],
    work: impl for<'a> FnOnce(&'a Ready, crate::model::ChangeNotificationCollection) -> Work<'a>,
) -> Response {
    if let Some(echo) = validation(q) {
        return echo;
    }
    let Ok(r) = app.as_ref() else { return StatusCode::SERVICE_UNAVAILABLE.into_response() };
    let Ok(notes) = serde_json::from_slice::<crate::model::ChangeNotificationCollection>(body) else {
        return problem(StatusCode::BAD_REQUEST, format!("{name}: the body is not a notification collection"));
    };
    match tokio::time::timeout(NOTIFICATION_BUDGET, work(r, notes)).await {
        Ok(Ok(summary)) => {
            tracing::info!("{name}: {summary}");
            StatusCode::ACCEPTED.into_response()
        }
        Ok(Err(e)) => problem(StatusCode::SERVICE_UNAVAILABLE, format!("{name}: {e}")),
        Err(_) => problem(StatusCode::SERVICE_UNAVAILABLE, format!("{name}: took too long")),
    }
}

/// `GraphNotifications` (forwarded HTTP): change notifications for the watched users and groups.
async fn graph_notifications(
    State(app): State<App>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    body: Bytes,
) -> Response {
    notification_endpoint("GraphNotifications", &app, &q, &body, |r, notes| {
        Box::pin(async move {
            let subs = crate::notify::records(r.store.as_ref()).await?;
            let t = crate::notify::triage(&notes, &subs);
            if t.reconcile {
                queue_msp_reconcile(r, "membership-change").await?;
            }
            Ok(format!("{} accepted, {} dropped", t.accepted, t.dropped))
        })
    })
    .await
}

/// `GraphLifecycle` (forwarded HTTP): reauthorize, recreate, or reconcile in full after missed notifications.
async fn graph_lifecycle(
    State(app): State<App>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    body: Bytes,
) -> Response {
    notification_endpoint("GraphLifecycle", &app, &q, &body, |r, notes| {
        Box::pin(async move {
            let subs = crate::notify::records(r.store.as_ref()).await?;
            let (actions, dropped) = crate::notify::lifecycle(&notes, &subs);
            let base = r.settings.public_url.clone().unwrap_or_default();
            let (full, errors) = crate::notify::act(&r.client, &r.config, r.store.as_ref(), &base, actions).await;
            if full {
                queue_msp_reconcile(r, "missed-notifications").await?;
            }
            if !errors.is_empty() {
                // 503: Graph delivers the lifecycle notification again.
                return Err(format!("{dropped} dropped, {} failed actions: {}", errors.len(), errors.join("; ")));
            }
            Ok(format!("{dropped} dropped"))
        })
    })
    .await
}

/// `PartnerCenterEvents` (forwarded HTTP): GDAP events, verified before anything is done.
async fn partner_center_events(State(app): State<App>, headers: axum::http::HeaderMap, body: Bytes) -> Response {
    let Ok(r) = app.as_ref() else { return StatusCode::SERVICE_UNAVAILABLE.into_response() };
    if let Err(e) = r.partner.verify(&headers, &body).await {
        crate::logging::warn("PartnerCenterEvents", &format!("Partner Center event refused: {e}"));
        return (StatusCode::UNAUTHORIZED, e.0).into_response();
    }
    let event: crate::partner::Event = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => {
            return problem(StatusCode::BAD_REQUEST, format!("PartnerCenterEvents: not a Partner Center event: {e}"));
        }
    };
    let key = event.dedupe_key();
    if already_handled(r, &key).await {
        let line = format!("{}: a replay of an event already handled; ignored", event.event_name);
        tracing::info!(event = %event.event_name, "{line}");
        return (StatusCode::OK, line).into_response();
    }
    match handle_partner_event(r, &event).await {
        Ok(line) => {
            tracing::info!(event = %event.event_name, "{line}");
            remember_handled(r, &key).await;
            (StatusCode::OK, line).into_response()
        }
        // Not handled: Partner Center delivers again.
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, format!("PartnerCenterEvents {}: {e}", event.event_name)),
    }
}

/// Record kind of the Partner Center events already handled (key → when).
const HANDLED_EVENTS: &str = "pc-event";

/// An event with this key was handled within the replay window.
async fn already_handled(r: &Ready, key: &str) -> bool {
    let Ok(rows) = r.store.records(HANDLED_EVENTS).await else { return false };
    let window = chrono::Duration::hours(crate::partner::REPLAY_WINDOW_HOURS);
    rows.iter().any(|(k, v)| {
        k == key
            && v["at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| chrono::Utc::now() - t.to_utc() < window)
    })
}

/// Remembers a handled event, and forgets those older than the window.
async fn remember_handled(r: &Ready, key: &str) {
    let window = chrono::Duration::hours(crate::partner::REPLAY_WINDOW_HOURS);
    if let Ok(rows) = r.store.records(HANDLED_EVENTS).await {
        let old: Vec<String> = rows
            .into_iter()
            .filter(|(_, v)| {
                v["at"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .is_none_or(|t| chrono::Utc::now() - t.to_utc() >= window)
            })
            .map(|(k, _)| k)
            .collect();
        let _ = r.store.delete_records(HANDLED_EVENTS, old).await;
    }
    let at = chrono::Utc::now().to_rfc3339();
    if let Err(e) = r.store.put_record(HANDLED_EVENTS, key, serde_json::json!({"at": at})).await {
        tracing::warn!("could not record a handled Partner Center event (a replay would be handled again): {e}");
    }
}

async fn handle_partner_event(r: &Ready, event: &crate::partner::Event) -> Result<String, String> {
    use crate::partner::Effect;
    let effect = crate::partner::effect(&event.event_name);
    if effect == Effect::Nothing {
        return Ok(format!("{}: nothing to do", event.event_name));
    }
    // The event names the relationship, not the customer: look it up (or, without an id, all of them).
    let customers = observe::discover(&r.client, &r.config).await.map_err(|e| e.to_string())?;
    // A new tenant is watched from the next tick; a terminated one stops being polled.
    remember_for_watch(r, &customers).await;
    let targets: Vec<Customer> = match event.relationship_id() {
        Some(id) => {
            let path = format!("/tenantRelationships/delegatedAdminRelationships/{id}");
            let rel: crate::model::DelegatedAdminRelationship =
                r.client.get(&r.config.msp_tenant_id, &path).await.map_err(|e| e.to_string())?;
            let tenant = rel.customer_tenant_id().unwrap_or_default().to_ascii_lowercase();
            customers.into_iter().filter(|c| c.tenant_id == tenant).collect()
        }
        None => {
            // Backstop for events without ResourceUri: every customer caguard has no result for yet.
            let known: Vec<String> = r
                .store
                .statuses()
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|s| s.tenant_id.to_ascii_lowercase())
                .collect();
            customers.into_iter().filter(|c| !known.contains(&c.tenant_id)).collect()
        }
    };
    let mut done = Vec::new();
    for c in targets {
        match effect {
            Effect::Onboard if c.active && !r.config.is_skipped(&c.tenant_id) => {
                let msg = ReconcileMessage {
                    tenant_id: c.tenant_id.clone(),
                    tenant_name: Some(c.name.clone()),
                    reason: event.event_name.clone(),
                    correlation_id: format!("pc-{}", chrono::Utc::now().timestamp_millis()),
                    msp: false,
                    can_write_ca: c.can_write_ca,
                    sweep_size: None,
                };
                let queue = r.queue.as_ref().ok_or("no queue configured (AzureWebJobsStorage)")?;
                queue.put(&r.settings.reconcile_queue, &serde_json::to_string(&msg).expect("json")).await?;
                done.push(format!("{} queued", c.name));
            }
            Effect::Offboard(why) if !c.active => {
                let outcome = Outcome::Skipped(format!("GDAP relationship {why}: no longer enforced"));
                record(r, &c.tenant_id, &c.name, &outcome, 0, &event.event_name).await;
                done.push(format!("{} no longer enforced", c.name));
            }
            _ => done.push(format!("{}: nothing to do ({})", c.name, c.status)),
        }
    }
    Ok(format!(
        "{}: {}",
        event.event_name,
        if done.is_empty() { "no matching customer".into() } else { done.join("; ") }
    ))
}

/// `Status` (HTTP, function key): each tenant's last result.
async fn status(State(app): State<App>) -> Response {
    let ready = match app.as_ref() {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e.clone()),
    };
    let (pauses, _) = crate::pause::load(Some(ready.store.as_ref()), chrono::Utc::now()).await;
    match ready.store.statuses().await {
        Ok(list) => axum::Json(json!({ "pauses": pauses.0, "tenants": list })).into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
