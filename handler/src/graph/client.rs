use super::token::{CredentialSource, TokenCache};
use super::{GraphError, Pacer, is_ca_url};
use crate::model::{Collection, GraphErrorBody};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bounded retries for 429/503/504.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_retries: u32,
    /// First backoff when no Retry-After is sent; doubles each retry.
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_retries: 6, base: Duration::from_millis(1000), cap: Duration::from_secs(32) }
    }
}

impl RetryPolicy {
    /// Exponential backoff with jitter in [½, 1] of the step, so tenants that
    /// failed together do not retry together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let step = self.base.saturating_mul(1u32 << attempt.min(16)).min(self.cap);
        step.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// Where Graph and the login endpoint are, and how politely to call them.
#[derive(Clone, Debug)]
pub struct GraphConfig {
    /// `https://graph.microsoft.com`, or the simulator.
    pub graph_base: String,
    /// `https://login.microsoftonline.com`, or the simulator.
    pub login_base: String,
    /// `v1.0`.
    pub version: String,
    /// Spacing of one tenant's CA requests. Graph allows 1/s; the margin absorbs
    /// the jitter between our clock and Graph's.
    pub ca_interval: Duration,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    /// Renew a token this long before it expires.
    pub token_margin: Duration,
    /// The token scope (`https://graph.microsoft.com/.default`; Partner Center's for its API).
    pub scope: String,
    /// Graph is eventually consistent: how long to wait, and how often to look
    /// again, for a write to become visible or a new named location referenceable.
    pub consistency: RetryPolicy,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            graph_base: "https://graph.microsoft.com".into(),
            login_base: "https://login.microsoftonline.com".into(),
            version: "v1.0".into(),
            ca_interval: Duration::from_millis(1100),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(60),
            token_margin: Duration::from_secs(300),
            scope: "https://graph.microsoft.com/.default".into(),
            // 0.5 + 1 + 2 + 4 + 8 + 8 + 8 s at the most: ~30 s, then the write is reported as failed.
            consistency: RetryPolicy { max_retries: 7, base: Duration::from_millis(500), cap: Duration::from_secs(8) },
        }
    }
}

impl GraphConfig {
    /// Graph and login both served at `base` (the simulator).
    pub fn for_base(base: &str) -> Self {
        GraphConfig { graph_base: base.into(), login_base: base.into(), ..Default::default() }
    }
}

/// Counters since the client was made.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    /// HTTP requests sent to Graph (a `$batch` counts once).
    pub requests: u64,
    pub reads: u64,
    pub writes: u64,
    /// Retries after 429/503/504 or a transport error.
    pub retries: u64,
    /// 429s received (including inside batches).
    pub throttled: u64,
    pub token_requests: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) requests: AtomicU64,
    pub(super) reads: AtomicU64,
    pub(super) writes: AtomicU64,
    pub(super) retries: AtomicU64,
    pub(super) throttled: AtomicU64,
}

pub(super) struct Inner {
    pub(super) http: reqwest::Client,
    pub(super) cfg: GraphConfig,
    pub(super) tokens: TokenCache,
    pub(super) pacer: Pacer,
    pub(super) counters: Counters,
}

/// The header that makes Graph answer evolvable enum members past
/// `unknownFutureValue` as themselves (Graph's "evolvable enumerations").
pub const PREFER_UNKNOWN_ENUMS: &str = "include-unknown-enum-members";

/// A Graph client shared by every task of a sweep (cheap to clone).
#[derive(Clone)]
pub struct GraphClient {
    pub(super) inner: Arc<Inner>,
}

/// A successful answer: status, request id and body.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) request_id: String,
    pub(super) body: bytes::Bytes,
}

fn request_id(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get("request-id")
        .or_else(|| headers.get("client-request-id"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

pub(super) fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 503 | 504)
}

impl GraphClient {
    /// How long writes wait for Graph's replication (see [`GraphConfig::consistency`]).
    pub fn consistency(&self) -> &RetryPolicy {
        &self.inner.cfg.consistency
    }

    pub fn new(cfg: GraphConfig, credentials: Arc<dyn CredentialSource>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .pool_max_idle_per_host(256)
            .user_agent(concat!("caguard/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let tokens =
            TokenCache::new(http.clone(), cfg.login_base.clone(), credentials, cfg.token_margin, cfg.scope.clone());
        let pacer = Pacer::new(cfg.ca_interval);
        Ok(GraphClient { inner: Arc::new(Inner { http, cfg, tokens, pacer, counters: Counters::default() }) })
    }

    /// Marks a tenant CIPP manages directly: with the refresh-token grant, its
    /// tokens come from its own refresh token (see [`super::token`]).
    pub async fn mark_direct(&self, tenant: &str) {
        self.inner.tokens.mark_direct(tenant).await;
    }

    /// caguard's own app id (once a token was fetched): its writes in audit logs are not drift.
    pub async fn app_id(&self) -> Option<String> {
        self.inner.tokens.client_id().await
    }

    pub fn config(&self) -> &GraphConfig {
        &self.inner.cfg
    }

    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        Stats {
            requests: c.requests.load(Ordering::Relaxed),
            reads: c.reads.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            throttled: c.throttled.load(Ordering::Relaxed),
            token_requests: self.inner.tokens.requests(),
        }
    }

    /// `path` below the version root (`/identity/...`), or an absolute nextLink.
    pub(super) fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            return path.to_string();
        }
        let base = self.inner.cfg.graph_base.trim_end_matches('/');
        format!("{base}/{}/{}", self.inner.cfg.version, path.trim_start_matches('/'))
    }

    /// `path` below the beta root: for the few properties v1.0 lacks (S4's
    /// `continuousAccessEvaluation`). Always sent with [`PREFER_UNKNOWN_ENUMS`].
    fn beta_url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            return path.to_string(); // a nextLink
        }
        let base = self.inner.cfg.graph_base.trim_end_matches('/');
        format!("{base}/beta/{}", path.trim_start_matches('/'))
    }

    /// Sends one request with pacing, token handling and bounded retries.
    pub(super) async fn send(
        &self,
        tenant: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, GraphError> {
        self.send_to(tenant, method, self.url(path), body, false).await
    }

    async fn send_to(
        &self,
        tenant: &str,
        method: Method,
        url: String,
        body: Option<&Value>,
        prefer_unknown_enums: bool,
    ) -> Result<Answer, GraphError> {
        let ca = is_ca_url(&url);
        let c = &self.inner.counters;
        let mut retries = 0u32;
        let mut reauthenticated = false;
        loop {
            // Token first: a slow token fetch must not eat into the paced slot.
            let token = self.inner.tokens.get(tenant).await?;
            if ca {
                self.inner.pacer.wait(tenant).await;
            }
            c.requests.fetch_add(1, Ordering::Relaxed);
            // What If's `evaluate` is a POST that only reads.
            let read = method == Method::GET || url.ends_with("/conditionalAccess/evaluate");
            let counter = if read { &c.reads } else { &c.writes };
            counter.fetch_add(1, Ordering::Relaxed);
            let mut req = self.inner.http.request(method.clone(), &url).bearer_auth(&token);
            if prefer_unknown_enums {
                req = req.header("Prefer", PREFER_UNKNOWN_ENUMS);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let sent = req.send().await;
            if ca {
                self.inner.pacer.completed(tenant);
            }
            let resp = match sent {
                Ok(r) => r,
                Err(e) if retries < self.inner.cfg.retry.max_retries && (e.is_timeout() || e.is_connect()) => {
                    retries += 1;
                    c.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(self.inner.cfg.retry.backoff(retries - 1)).await;
                    continue;
                }
                Err(e) => return Err(GraphError::Transport { tenant: tenant.into(), url, message: e.to_string() }),
            };
            let status = resp.status();
            let rid = request_id(resp.headers());
            if status.is_success() {
                let body = resp.bytes().await.map_err(|e| GraphError::Transport {
                    tenant: tenant.into(),
                    url: url.clone(),
                    message: e.to_string(),
                })?;
                return Ok(Answer { status, request_id: rid, body });
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                c.throttled.fetch_add(1, Ordering::Relaxed);
            }
            if status == StatusCode::UNAUTHORIZED && !reauthenticated {
                // An expired or revoked token: fetch a new one once.
                reauthenticated = true;
                self.inner.tokens.invalidate(tenant).await;
                continue;
            }
            if retryable(status) && retries < self.inner.cfg.retry.max_retries {
                let wait = retry_after(resp.headers()).unwrap_or_else(|| self.inner.cfg.retry.backoff(retries));
                retries += 1;
                c.retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(tenant, %url, status = status.as_u16(), ?wait, "retrying");
                tokio::time::sleep(wait).await;
                continue;
            }
            let bytes = resp.bytes().await.unwrap_or_default();
            return Err(api_error(tenant, &method, &url, status, rid, &bytes, retries));
        }
    }

    pub(super) fn decode<T: DeserializeOwned>(tenant: &str, url: &str, a: &Answer) -> Result<T, GraphError> {
        serde_json::from_slice(&a.body).map_err(|e| GraphError::Decode {
            tenant: tenant.into(),
            url: url.into(),
            request_id: a.request_id.clone(),
            message: e.to_string(),
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, tenant: &str, path: &str) -> Result<T, GraphError> {
        let a = self.send(tenant, Method::GET, path, None).await?;
        Self::decode(tenant, &self.url(path), &a)
    }

    /// Every item of a collection, following `@odata.nextLink`.
    pub async fn list<T: DeserializeOwned>(&self, tenant: &str, path: &str) -> Result<Vec<T>, GraphError> {
        let mut out = Vec::new();
        let mut next = Some(path.to_string());
        while let Some(p) = next.take() {
            let page: Collection<T> = self.get(tenant, &p).await?;
            out.extend(page.value);
            next = page.next_link.into_option();
        }
        Ok(out)
    }

    /// POST, decoding the created object.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        tenant: &str,
        path: &str,
        body: &B,
    ) -> Result<T, GraphError> {
        let body = json_body(tenant, body)?;
        let a = self.send(tenant, Method::POST, path, Some(&body)).await?;
        if a.body.is_empty() {
            return Self::decode(tenant, &self.url(path), &Answer { body: bytes::Bytes::from_static(b"null"), ..a });
        }
        Self::decode(tenant, &self.url(path), &a)
    }

    /// POST whose answer has no body we need (for example `sendMail`, 202).
    pub async fn post_no_content<B: Serialize>(&self, tenant: &str, path: &str, body: &B) -> Result<(), GraphError> {
        let body = json_body(tenant, body)?;
        self.send(tenant, Method::POST, path, Some(&body)).await.map(|_| ())
    }

    /// PUT, decoding the answer.
    pub async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        tenant: &str,
        path: &str,
        body: &B,
    ) -> Result<T, GraphError> {
        let body = json_body(tenant, body)?;
        let a = self.send(tenant, Method::PUT, path, Some(&body)).await?;
        Self::decode(tenant, &self.url(path), &a)
    }

    /// PATCH: only the properties in `body` change.
    pub async fn patch(&self, tenant: &str, path: &str, body: &Value) -> Result<(), GraphError> {
        self.send(tenant, Method::PATCH, path, Some(body)).await.map(|_| ())
    }

    /// GET from beta, with `Prefer: include-unknown-enum-members` (evolvable enum
    /// members such as CAE's `strictLocation` are otherwise `unknownFutureValue`).
    pub async fn get_beta<T: DeserializeOwned>(&self, tenant: &str, path: &str) -> Result<T, GraphError> {
        let url = self.beta_url(path);
        let a = self.send_to(tenant, Method::GET, url.clone(), None, true).await?;
        Self::decode(tenant, &url, &a)
    }

    /// Every item of a beta collection (with the Prefer header), following `@odata.nextLink`.
    pub async fn list_beta<T: DeserializeOwned>(&self, tenant: &str, path: &str) -> Result<Vec<T>, GraphError> {
        let mut out = Vec::new();
        let mut next = Some(path.to_string());
        while let Some(p) = next.take() {
            let page: Collection<T> = self.get_beta(tenant, &p).await?;
            out.extend(page.value);
            next = page.next_link.into_option();
        }
        Ok(out)
    }

    /// POST to beta (with the Prefer header), decoding the created object.
    pub async fn post_beta<T: DeserializeOwned>(
        &self,
        tenant: &str,
        path: &str,
        body: &Value,
    ) -> Result<T, GraphError> {
        let url = self.beta_url(path);
        let a = self.send_to(tenant, Method::POST, url.clone(), Some(body), true).await?;
        Self::decode(tenant, &url, &a)
    }

    /// PATCH to beta (with the Prefer header).
    pub async fn patch_beta(&self, tenant: &str, path: &str, body: &Value) -> Result<(), GraphError> {
        self.send_to(tenant, Method::PATCH, self.beta_url(path), Some(body), true).await.map(|_| ())
    }

    pub async fn delete(&self, tenant: &str, path: &str) -> Result<(), GraphError> {
        self.send(tenant, Method::DELETE, path, None).await.map(|_| ())
    }
}

/// A request body as JSON, or an error naming the tenant.
fn json_body<B: Serialize>(tenant: &str, body: &B) -> Result<Value, GraphError> {
    serde_json::to_value(body).map_err(|e| GraphError::Invalid { tenant: tenant.into(), message: e.to_string() })
}

fn api_error(
    tenant: &str,
    method: &Method,
    url: &str,
    status: StatusCode,
    header_rid: String,
    body: &[u8],
    retries: u32,
) -> GraphError {
    let parsed: Option<GraphErrorBody> = serde_json::from_slice(body).ok();
    let detail = parsed.and_then(|b| b.error.into_option());
    let code = detail
        .as_ref()
        .and_then(|d| d.code.as_ref().cloned())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").replace(' ', ""));
    let message = detail
        .as_ref()
        .and_then(|d| d.message.as_ref().cloned())
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
    let body_rid = detail.as_ref().and_then(|d| d.inner_error.as_ref()).and_then(|i| i.request_id.as_ref().cloned());
    GraphError::Api {
        tenant: tenant.into(),
        method: method.to_string(),
        url: url.into(),
        status: status.as_u16(),
        code,
        message,
        request_id: if header_rid.is_empty() { body_rid.unwrap_or_default() } else { header_rid },
        retries,
    }
}
