//! The simulator's HTTP front: the router, Graph routes and `$batch`. The token
//! endpoint, subscriptions, Partner Center and the `/_sim` admin API have their
//! own modules.

use crate::admin;
use crate::estate::{Estate, TenantSpec};
use crate::graph::{self, Req, Resp};
use crate::partner_center;
use crate::state::{Actor, Faults, JournalEntry, State};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How the simulator starts.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub faults: Faults,
    /// `expires_in` of issued access tokens.
    pub token_lifetime_secs: u64,
    /// Largest page a list answers with before it pages with nextLink.
    pub page_size: usize,
    /// Where to listen; port 0 picks a free port.
    pub bind: SocketAddr,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            faults: Faults { ca_throttling: true, ..Faults::default() },
            token_lifetime_secs: 3599,
            page_size: 100,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

pub(crate) type Shared = Arc<Mutex<State>>;

/// A running simulator. Dropping it stops the server.
pub struct SimHandle {
    /// `http://127.0.0.1:PORT`: both the Graph base and the login base.
    pub base_url: String,
    pub addr: SocketAddr,
    state: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Starts the simulator on `opts.bind` with `estate` loaded.
pub async fn start(estate: Estate, opts: SimOptions) -> std::io::Result<SimHandle> {
    let state: Shared = Arc::new(Mutex::new(State::new(estate, opts.faults, opts.token_lifetime_secs, opts.page_size)));
    let listener = tokio::net::TcpListener::bind(opts.bind).await?;
    let addr = listener.local_addr()?;
    let app = router(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(SimHandle { base_url: format!("http://{addr}"), addr, state, shutdown: Some(tx) })
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub(crate) fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl SimHandle {
    pub fn journal(&self) -> Vec<JournalEntry> {
        lock(&self.state).journal.clone()
    }
    pub fn clear_journal(&self) {
        lock(&self.state).journal.clear();
    }
    pub fn faults(&self) -> Faults {
        lock(&self.state).faults.clone()
    }
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.state).set_faults(faults);
    }
    /// The estate as it is now (policies, locations, audits, …).
    pub fn export(&self) -> Estate {
        lock(&self.state).export()
    }
    pub fn tenant(&self, id: &str) -> Option<TenantSpec> {
        lock(&self.state).tenants.get(id).map(|t| t.spec.clone())
    }
    /// Mails sent through `sendMail`.
    pub fn outbox(&self) -> Vec<Value> {
        lock(&self.state).outbox.clone()
    }
    /// Replaces a CIPP site's authentication settings (as CIPP's `Set-CippApiAuth` does).
    pub fn set_cipp_auth_settings(&self, resource_id: &str, settings: Value) {
        let mut st = lock(&self.state);
        if let Some(site) = st.cipp_sites.iter_mut().find(|s| s.resource_id.eq_ignore_ascii_case(resource_id)) {
            site.auth_settings = settings;
        }
    }
    /// A sign-in to `tenant`, evaluated against its policies now and added to its
    /// sign-in log (`auditLogs/signIns`). Returns the entry, or why it could not be made.
    pub fn sign_in(&self, tenant: &str, spec: &crate::signins::SignInSpec) -> Result<Value, String> {
        let mut st = lock(&self.state);
        let t = st.tenants.get_mut(tenant).ok_or_else(|| format!("no tenant {tenant}"))?;
        crate::signins::record(t, spec)
    }
    pub fn add_tenant(&self, spec: TenantSpec) {
        lock(&self.state).tenants.insert(spec.id.clone(), crate::state::Tenant::new(spec));
    }
    /// Adds or replaces (by `id`) a GDAP relationship of the MSP tenant.
    pub fn upsert_relationship(&self, rel: Value) {
        admin::upsert_relationship(&mut lock(&self.state), rel);
    }
    /// An out-of-band change made in the portal by `actor`, audited as theirs.
    /// `path` is below the version root, e.g. `identity/conditionalAccess/policies/{id}`.
    pub fn portal_edit(
        &self,
        tenant: &str,
        actor: &Actor,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Option<Value>) {
        let mut st = lock(&self.state);
        admin::portal_edit(&mut st, &self.base_url, tenant, actor, None, method, path, body)
    }
    /// The same change made by a tool that sends `user_agent` (CIPP names its
    /// standard or task there), which the audit record keeps.
    pub fn tool_edit(
        &self,
        tenant: &str,
        actor: &Actor,
        user_agent: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Option<Value>) {
        let mut st = lock(&self.state);
        admin::portal_edit(&mut st, &self.base_url, tenant, actor, Some(user_agent), method, path, body)
    }
}

fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok())
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(crate::token::token))
        .route("/v1.0/$batch", post(batch))
        .route("/beta/$batch", post(batch))
        .route("/v1.0/{*rest}", any(graph_request))
        .route("/beta/{*rest}", any(graph_request))
        .route(
            "/webhooks/v1/registration",
            get(partner_center::pc_registration)
                .post(partner_center::pc_registration)
                .put(partner_center::pc_registration),
        )
        .route("/subscriptions/{*rest}", any(crate::arm::request))
        .merge(admin::routes())
        .with_state(state)
}

fn parse_query(raw: Option<&str>) -> HashMap<String, String> {
    raw.map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

pub(crate) fn host_base(headers: &HeaderMap, version: &str) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    format!("http://{host}/{version}")
}

pub(crate) fn to_response(r: Resp, malformed: bool) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = match r.body {
        Some(body) if malformed => {
            let text = body.to_string();
            (status, [(header::CONTENT_TYPE, "application/json")], text[..text.len() / 2].to_string()).into_response()
        }
        Some(body) => (status, Json(body)).into_response(),
        None => status.into_response(),
    };
    if let Ok(v) = r.request_id.parse() {
        resp.headers_mut().insert("request-id", v);
    }
    resp
}

#[allow(clippy::too_many_arguments)]
async fn process(
    s: &Shared,
    tenant: &str,
    actor: &Actor,
    user_agent: Option<&str>,
    method: &str,
    path: &str,
    query: &HashMap<String, String>,
    body: Option<Value>,
    base: &str,
    arrived: Instant,
    version: (bool, bool),
) -> Resp {
    let is_sub_create = method == "POST" && path.trim_matches('/').eq_ignore_ascii_case("subscriptions");
    if is_sub_create {
        return crate::subscriptions::create_subscription(s, tenant, actor, body, base).await;
    }
    let mut st = lock(s);
    let page_size = st.page_size;
    let (beta, unknown_enums) = version;
    let at = Instant::now();
    let req = Req { method, path, query, body, base, tenant, actor, user_agent, page_size, at, beta, unknown_enums };
    graph::handle(&mut st, req, arrived)
}

async fn graph_request(
    AxState(s): AxState<Shared>,
    method: Method,
    uri: axum::http::Uri,
    Path(rest): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();
    let beta = uri.path().starts_with("/beta/");
    let version = if beta { "beta" } else { "v1.0" };
    let prefer = headers.get("prefer").and_then(|v| v.to_str().ok()).map(str::to_string);
    let unknown_enums =
        prefer.as_deref().is_some_and(|p| p.to_ascii_lowercase().contains("include-unknown-enum-members"));
    let base = host_base(&headers, version);
    let query = parse_query(raw.as_deref());
    let full_path = format!("/{version}/{rest}");
    let latency = lock(&s).faults.latency_ms;
    tokio::time::sleep(Duration::from_millis(latency)).await;
    let auth = crate::token::authenticate(&lock(&s), crate::token::bearer(&headers).as_deref());
    let (tenant, resp) = match auth {
        Err(r) => (None, r),
        Ok((tenant, actor)) => {
            let parsed = if body.is_empty() { Ok(None) } else { serde_json::from_slice::<Value>(&body).map(Some) };
            let resp = match parsed {
                Err(e) => graph::error(400, "BadRequest", &format!("Unable to read JSON request payload: {e}")),
                Ok(json) => {
                    let ua = user_agent(&headers);
                    let version = (beta, unknown_enums);
                    process(&s, &tenant, &actor, ua, method.as_str(), &rest, &query, json, &base, arrived, version)
                        .await
                }
            };
            (Some(tenant), resp)
        }
    };
    let mut st = lock(&s);
    st.record(
        arrived,
        tenant.as_deref(),
        method.as_str(),
        &full_path,
        raw.as_deref().unwrap_or(""),
        resp.status,
        false,
        "graph",
    );
    if let Some(last) = st.journal.last_mut() {
        last.prefer = prefer;
    }
    let malformed = method == Method::GET && resp.status == 200 && st.faults.malformed_responses > 0;
    if malformed {
        st.faults.malformed_responses -= 1;
    }
    to_response(resp, malformed)
}

#[derive(Deserialize)]
struct BatchIn {
    requests: Vec<BatchItemIn>,
}

#[derive(Deserialize)]
struct BatchItemIn {
    id: String,
    method: String,
    url: String,
    #[serde(default)]
    body: Option<Value>,
}

/// `$batch`: at most 20 requests, each authorised, throttled and journalled on its own.
async fn batch(AxState(s): AxState<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let arrived = Instant::now();
    let base = host_base(&headers, "v1.0");
    let latency = lock(&s).faults.latency_ms;
    tokio::time::sleep(Duration::from_millis(latency)).await;
    let auth = crate::token::authenticate(&lock(&s), crate::token::bearer(&headers).as_deref());
    let (tenant, actor) = match auth {
        Ok(a) => a,
        Err(r) => {
            lock(&s).record(arrived, None, "POST", "/v1.0/$batch", "", r.status, false, "batch");
            return to_response(r, false);
        }
    };
    let parsed: Result<BatchIn, _> = serde_json::from_slice(&body);
    let items = match parsed {
        Ok(b) if b.requests.len() > 20 => {
            Err(graph::error(400, "BadRequest", "The number of requests in a batch cannot exceed 20."))
        }
        Ok(b) => Ok(b.requests),
        Err(e) => Err(graph::error(400, "BadRequest", &format!("Invalid batch payload: {e}"))),
    };
    let items = match items {
        Ok(i) => i,
        Err(r) => {
            lock(&s).record(arrived, Some(&tenant), "POST", "/v1.0/$batch", "", r.status, false, "batch");
            return to_response(r, false);
        }
    };
    let mut responses = Vec::new();
    for item in items {
        // Each request in a batch is throttled on its own, as of the batch's arrival.
        let sub_arrived = arrived;
        let url = item.url.trim_start_matches('/');
        let (path, raw_q) = url.split_once('?').map_or((url, None), |(p, q)| (p, Some(q)));
        let query = parse_query(raw_q);
        let r = process(
            &s,
            &tenant,
            &actor,
            user_agent(&headers),
            &item.method.to_ascii_uppercase(),
            path,
            &query,
            item.body,
            &base,
            sub_arrived,
            (false, false),
        )
        .await;
        lock(&s).record(
            sub_arrived,
            Some(&tenant),
            &item.method.to_ascii_uppercase(),
            &format!("/v1.0/{path}"),
            raw_q.unwrap_or(""),
            r.status,
            true,
            "graph",
        );
        let mut out = json!({"id": item.id, "status": r.status, "headers": {"Content-Type": "application/json", "request-id": r.request_id}});
        if let Some(b) = r.body {
            out["body"] = b;
        }
        responses.push(out);
    }
    lock(&s).record(arrived, Some(&tenant), "POST", "/v1.0/$batch", "", 200, false, "batch");
    (StatusCode::OK, Json(json!({"responses": responses}))).into_response()
}
