//! Access tokens per tenant, cached until shortly before expiry.
//!
//! Two grants, as CIPP uses them:
//! - client credentials (app-only, after the customer consented the app);
//! - refresh token (CIPP's delegated model: one partner refresh token exchanged per tenant).
//!
//! CIPP rotates its Key Vault secrets weekly, so on `invalid_client` or
//! `invalid_grant` the credentials are re-read from their source once and the
//! request is tried again before the error is reported.
//!
//! A *direct* tenant (one CIPP manages without GDAP) has a refresh token of its
//! own: CIPP's `Get-GraphToken.ps1` uses the Key Vault secret named after the
//! tenant's id for it, and `Start-UpdateTokensTimer.ps1` rotates it weekly. With
//! the refresh-token grant, a tenant marked direct ([`TokenCache::mark_direct`])
//! is asked with that token, re-read after `invalid_grant` like the others.

use super::GraphError;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// What the token endpoint is asked with.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    ClientSecret { client_id: String, client_secret: String },
    RefreshToken { client_id: String, client_secret: Option<String>, refresh_token: String },
}

impl fmt::Debug for Credentials {
    /// Never prints a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::ClientSecret { client_id, .. } => {
                write!(f, "ClientSecret {{ client_id: {client_id}, client_secret: *** }}")
            }
            Credentials::RefreshToken { client_id, .. } => {
                write!(f, "RefreshToken {{ client_id: {client_id}, refresh_token: *** }}")
            }
        }
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where credentials come from (Key Vault, app settings, environment, a test).
/// `load` is called at first use and again after the token endpoint rejects them.
pub trait CredentialSource: Send + Sync {
    fn load(&self) -> BoxFuture<'_, Result<Credentials, String>>;

    /// The refresh token of a direct tenant, `None` when the source has none for
    /// it. Called at the tenant's first token and again after `invalid_grant`.
    fn load_tenant(&self, _tenant: &str) -> BoxFuture<'_, Result<Option<String>, String>> {
        Box::pin(async { Ok(None) })
    }
}

/// Credentials fixed at start-up.
pub struct StaticCredentials(pub Credentials);

impl CredentialSource for StaticCredentials {
    fn load(&self) -> BoxFuture<'_, Result<Credentials, String>> {
        let c = self.0.clone();
        Box::pin(async move { Ok(c) })
    }
}

#[derive(Clone)]
struct Cached {
    token: String,
    expires_at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

pub(crate) struct TokenCache {
    http: reqwest::Client,
    login_base: String,
    source: Arc<dyn CredentialSource>,
    creds: tokio::sync::Mutex<Option<Credentials>>,
    slots: Mutex<HashMap<String, Slot>>,
    /// Direct tenants (lower case) and the refresh token last read or rotated for each.
    direct: tokio::sync::Mutex<HashMap<String, Option<String>>>,
    /// Renew this long before expiry.
    margin: Duration,
    scope: String,
    requests: std::sync::atomic::AtomicU64,
}

#[derive(Deserialize)]
struct TokenOk {
    access_token: String,
    expires_in: u64,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct TokenErr {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

impl TokenCache {
    pub fn new(
        http: reqwest::Client,
        login_base: String,
        source: Arc<dyn CredentialSource>,
        margin: Duration,
        scope: String,
    ) -> Self {
        TokenCache {
            http,
            login_base,
            source,
            creds: tokio::sync::Mutex::new(None),
            slots: Mutex::new(HashMap::new()),
            direct: Default::default(),
            margin,
            scope,
            requests: Default::default(),
        }
    }

    /// The app (client) id of the credentials in use, once loaded.
    pub async fn client_id(&self) -> Option<String> {
        match self.creds.lock().await.as_ref()? {
            Credentials::ClientSecret { client_id, .. } | Credentials::RefreshToken { client_id, .. } => {
                Some(client_id.clone())
            }
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn slot(&self, tenant: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(tenant.to_ascii_lowercase()).or_default().clone()
    }

    /// A valid token for the tenant; one fetch at a time per tenant.
    pub async fn get(&self, tenant: &str) -> Result<String, GraphError> {
        let slot = self.slot(tenant);
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| c.expires_at > Instant::now() + self.margin) {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch(tenant).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Forgets the tenant's token (after Graph said 401).
    pub async fn invalidate(&self, tenant: &str) {
        *self.slot(tenant).lock().await = None;
    }

    /// Marks a tenant as direct: with the refresh-token grant it is asked with its
    /// own refresh token from now on. Its cached token (the partner's) is dropped.
    pub async fn mark_direct(&self, tenant: &str) {
        let key = tenant.to_ascii_lowercase();
        let newly = self.direct.lock().await.insert(key.clone(), None).is_none();
        if !newly {
            return;
        }
        self.invalidate(&key).await;
    }

    async fn is_direct(&self, tenant: &str) -> bool {
        self.direct.lock().await.contains_key(&tenant.to_ascii_lowercase())
    }

    /// The credentials for `tenant`: the partner's, or for a direct tenant (refresh
    /// grant) the same app with the tenant's own refresh token.
    async fn credentials_for(&self, tenant: &str, reload: bool) -> Result<Credentials, GraphError> {
        let creds = self.credentials(tenant, reload).await?;
        let Credentials::RefreshToken { client_id, client_secret, .. } = &creds else { return Ok(creds) };
        if !self.is_direct(tenant).await {
            return Ok(creds);
        }
        let key = tenant.to_ascii_lowercase();
        let known = self.direct.lock().await.get(&key).cloned().flatten();
        let refresh_token = match known.filter(|_| !reload) {
            Some(t) => t,
            None => {
                // Not under the lock: a Key Vault read must not hold up other tenants.
                let loaded = self
                    .source
                    .load_tenant(&key)
                    .await
                    .map_err(|message| GraphError::Credentials { tenant: tenant.into(), message })?;
                let Some(t) = loaded.filter(|t| !t.is_empty()) else {
                    return Err(GraphError::Credentials {
                        tenant: tenant.into(),
                        message: format!(
                            "direct tenant {key} has no refresh token: CIPP keeps one per direct tenant, as the Key Vault secret named '{key}'"
                        ),
                    });
                };
                self.direct.lock().await.insert(key, Some(t.clone()));
                t
            }
        };
        Ok(Credentials::RefreshToken {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            refresh_token,
        })
    }

    async fn credentials(&self, tenant: &str, reload: bool) -> Result<Credentials, GraphError> {
        let mut creds = self.creds.lock().await;
        if reload || creds.is_none() {
            let loaded = self
                .source
                .load()
                .await
                .map_err(|message| GraphError::Credentials { tenant: tenant.into(), message })?;
            *creds = Some(loaded);
        }
        Ok(creds.clone().expect("just loaded"))
    }

    async fn fetch(&self, tenant: &str) -> Result<Cached, GraphError> {
        let creds = self.credentials_for(tenant, false).await?;
        match self.request(tenant, &creds).await {
            Err(GraphError::Token { code, .. }) if code == "invalid_client" || code == "invalid_grant" => {
                tracing::warn!(tenant, code, "token endpoint rejected the credentials; re-reading them once");
                let fresh = self.credentials_for(tenant, true).await?;
                self.request(tenant, &fresh).await
            }
            other => other,
        }
    }

    async fn request(&self, tenant: &str, creds: &Credentials) -> Result<Cached, GraphError> {
        // A tenant id goes into the token URL's path: only a GUID may.
        if !crate::config::is_guid(tenant) {
            let shown: String = tenant.chars().take(40).collect();
            return Err(GraphError::Token {
                tenant: shown.clone(),
                status: 0,
                code: "invalid_tenant".into(),
                description: format!("'{shown}' is not a tenant id (a GUID); no token is requested for it"),
            });
        }
        let url = format!("{}/{}/oauth2/v2.0/token", self.login_base.trim_end_matches('/'), tenant);
        let mut form: Vec<(&str, &str)> = vec![("scope", &self.scope)];
        match creds {
            Credentials::ClientSecret { client_id, client_secret } => {
                form.extend([
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    ("client_secret", client_secret),
                ]);
            }
            Credentials::RefreshToken { client_id, client_secret, refresh_token } => {
                form.extend([
                    ("grant_type", "refresh_token"),
                    ("client_id", client_id),
                    ("refresh_token", refresh_token),
                ]);
                if let Some(s) = client_secret {
                    form.push(("client_secret", s));
                }
            }
        }
        let mut attempt = 0u32;
        loop {
            self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let sent = self.http.post(&url).form(&form).send().await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) if attempt < 3 => {
                    attempt += 1;
                    tracing::debug!(tenant, error = %e, "token request failed in transport; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    continue;
                }
                Err(e) => return Err(GraphError::Transport { tenant: tenant.into(), url, message: e.to_string() }),
            };
            let status = resp.status().as_u16();
            if matches!(status, 429 | 500 | 502 | 503 | 504) && attempt < 3 {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                continue;
            }
            let body = resp.bytes().await.unwrap_or_default();
            if (200..300).contains(&status) {
                let ok: TokenOk = serde_json::from_slice(&body).map_err(|e| GraphError::Decode {
                    tenant: tenant.into(),
                    url: url.clone(),
                    request_id: String::new(),
                    message: format!("token response: {e}"),
                })?;
                if let Some(rotated) = ok.refresh_token {
                    self.remember_rotated(tenant, creds, rotated).await;
                }
                return Ok(Cached {
                    token: ok.access_token,
                    expires_at: Instant::now() + Duration::from_secs(ok.expires_in),
                });
            }
            let err: TokenErr = serde_json::from_slice(&body).unwrap_or_default();
            let description = err.error_description.lines().next().unwrap_or_default().to_string();
            let code = if err.error.is_empty() { format!("http_{status}") } else { err.error };
            return Err(GraphError::Token { tenant: tenant.into(), status, code, description });
        }
    }

    /// Keeps the newest refresh token the endpoint handed back (the direct
    /// tenant's own, or the partner's).
    async fn remember_rotated(&self, tenant: &str, used: &Credentials, rotated: String) {
        let Credentials::RefreshToken { refresh_token: used_token, .. } = used else { return };
        {
            let mut direct = self.direct.lock().await;
            if let Some(slot) = direct.get_mut(&tenant.to_ascii_lowercase()) {
                if slot.as_ref() == Some(used_token) {
                    *slot = Some(rotated);
                }
                return;
            }
        }
        let mut creds = self.creds.lock().await;
        if let Some(Credentials::RefreshToken { refresh_token, .. }) = creds.as_mut()
            && matches!(used, Credentials::RefreshToken { refresh_token: r, .. } if r == refresh_token)
        {
            *refresh_token = rotated;
        }
    }
}
