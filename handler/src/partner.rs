//! Partner Center webhooks: GDAP events, so a new customer is covered as soon as
//! its relationship is active, and a terminated one stops being enforced.
//!
//! Every event is verified before anything is done with it: an RSA-SHA256
//! signature over the raw body (`Authorization: Signature <base64>` or
//! `x-ms-signature`), checked with the certificate named in `X-MS-Certificate-Url`.
//! That certificate is fetched over https only from Microsoft's hosts, and its
//! subject must be Partner Center's notification dispatcher.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

/// Hosts the signing certificate may come from: Partner Center's API host and the
/// storage host in Microsoft's documented sample. Override with `CAGUARD_PC_CERT_HOSTS`.
pub const DEFAULT_CERT_HOSTS: &[&str] = &["api.partnercenter.microsoft.com", "3psostorageacct.blob.core.windows.net"];
/// The subject common name of Partner Center's signing certificate.
pub const CERT_SUBJECT: &str = "pcnotifications-dispatch.microsoft.com";

/// A Partner Center event (PascalCase; some events omit `ResourceUri` or `ResourceName`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Event {
    pub event_name: String,
    #[serde(default)]
    pub resource_uri: Option<String>,
    #[serde(default)]
    pub resource_name: Option<String>,
    #[serde(default)]
    pub audit_uri: Option<serde_json::Value>,
    #[serde(default)]
    pub resource_change_utc_date: Option<String>,
    /// Properties this version does not name.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Event {
    /// The GDAP relationship id from `ResourceUri` (`…/granularAdminRelationships/{id}[/…]`), when present.
    pub fn relationship_id(&self) -> Option<&str> {
        let uri = self.resource_uri.as_deref()?;
        let rest = uri.split("/granularAdminRelationships/").nth(1)?;
        let id = rest.split('/').next()?;
        (!id.is_empty() && !id.contains('{')).then_some(id)
    }
}

/// What an event calls for.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// A relationship became usable (or its roles changed): reconcile that customer.
    Onboard,
    /// The relationship ended: stop enforcing, record it.
    Offboard(&'static str),
    /// Test and unrelated events.
    Nothing,
}

pub fn effect(event_name: &str) -> Effect {
    match event_name {
        "granular-admin-relationship-approved" | "granular-admin-relationship-activated" => Effect::Onboard,
        n if n.starts_with("granular-admin-access-assignment-") => Effect::Onboard,
        "granular-admin-relationship-terminated" => Effect::Offboard("terminated"),
        "granular-admin-relationship-expired" => Effect::Offboard("expired"),
        _ => Effect::Nothing,
    }
}

/// Why a request was refused (answered 401).
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(pub String);

/// Verifies signatures, fetching and caching Partner Center's certificates.
pub struct Verifier {
    http: reqwest::Client,
    hosts: Vec<String>,
    subject: String,
    /// Certificate URL → the RSA public key (PKCS#1 DER).
    keys: Mutex<HashMap<String, Vec<u8>>>,
}

impl Verifier {
    pub fn new(http: reqwest::Client, hosts: Vec<String>, subject: &str) -> Self {
        Verifier { http, hosts, subject: subject.to_string(), keys: Mutex::new(HashMap::new()) }
    }

    /// Production settings (`CAGUARD_PC_CERT_HOSTS` may replace the hosts, comma-separated).
    pub fn from_env() -> Self {
        let hosts = std::env::var("CAGUARD_PC_CERT_HOSTS")
            .ok()
            .map(|h| h.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_else(|| DEFAULT_CERT_HOSTS.iter().map(|s| s.to_string()).collect());
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build().expect("client");
        Self::new(http, hosts, CERT_SUBJECT)
    }

    /// The signature header in either form.
    pub fn signature(headers: &axum::http::HeaderMap) -> Option<String> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Signature "))
            .map(str::to_string);
        auth.or_else(|| headers.get("x-ms-signature").and_then(|v| v.to_str().ok()).map(str::to_string))
    }

    /// Checks `body` was signed by Partner Center.
    pub async fn verify(&self, headers: &axum::http::HeaderMap, body: &[u8]) -> Result<(), Rejected> {
        use base64::Engine;
        let signature = Self::signature(headers)
            .ok_or_else(|| Rejected("no signature (Authorization: Signature … or x-ms-signature)".into()))?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| Rejected("the signature is not base64".into()))?;
        let cert_url = headers
            .get("x-ms-certificate-url")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Rejected("no X-MS-Certificate-Url".into()))?;
        let key = self.key(cert_url).await?;
        let public =
            aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256, key);
        public.verify(body, &signature).map_err(|_| Rejected("the signature does not match the body".into()))
    }

    async fn key(&self, cert_url: &str) -> Result<Vec<u8>, Rejected> {
        let url = url::Url::parse(cert_url).map_err(|_| Rejected(format!("'{cert_url}' is not a URL")))?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if url.scheme() != "https" || !self.hosts.contains(&host) {
            return Err(Rejected(format!("certificate host '{host}' is not Partner Center's")));
        }
        if let Some(k) = self.keys.lock().unwrap_or_else(|p| p.into_inner()).get(cert_url) {
            return Ok(k.clone());
        }
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| Rejected(format!("certificate fetch failed: {}", e.without_url())))?;
        if !resp.status().is_success() {
            return Err(Rejected(format!("certificate fetch answered HTTP {}", resp.status().as_u16())));
        }
        let bytes = resp.bytes().await.map_err(|e| Rejected(format!("certificate fetch failed: {e}")))?;
        let der = pem_or_der(&bytes);
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|_| Rejected("the certificate cannot be parsed".into()))?;
        let subject_ok = cert
            .subject()
            .iter_common_name()
            .any(|cn| cn.as_str().is_ok_and(|s| s.eq_ignore_ascii_case(&self.subject)));
        if !subject_ok {
            return Err(Rejected(format!("the certificate is not issued to {}", self.subject)));
        }
        if !cert.validity().is_valid() {
            return Err(Rejected("the certificate is expired or not yet valid".into()));
        }
        let key = cert.public_key().subject_public_key.data.to_vec();
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).insert(cert_url.to_string(), key.clone());
        Ok(key)
    }
}

/// `.cer` files come as DER or as base64 PEM.
fn pem_or_der(bytes: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let text = String::from_utf8_lossy(bytes);
    if text.contains("-----BEGIN CERTIFICATE-----") {
        let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        return base64::engine::general_purpose::STANDARD.decode(b64.trim()).unwrap_or_default();
    }
    bytes.to_vec()
}

/// The GDAP events caguard acts on (plus `test-created`, to test the registration).
pub const EVENTS: &[&str] = &[
    "test-created",
    "granular-admin-relationship-approved",
    "granular-admin-relationship-activated",
    "granular-admin-relationship-terminated",
    "granular-admin-relationship-expired",
    "granular-admin-access-assignment-created",
    "granular-admin-access-assignment-activated",
    "granular-admin-access-assignment-updated",
    "granular-admin-access-assignment-deleted",
];

/// A client for the Partner Center webhook API (`https://api.partnercenter.microsoft.com/webhooks/v1`).
pub fn client(
    base: &str,
    login_base: &str,
    credentials: std::sync::Arc<dyn crate::graph::CredentialSource>,
) -> Result<crate::graph::GraphClient, String> {
    let cfg = crate::graph::GraphConfig {
        graph_base: base.into(),
        login_base: login_base.into(),
        version: "webhooks/v1".into(),
        scope: "https://api.partnercenter.microsoft.com/.default".into(),
        ..Default::default()
    };
    crate::graph::GraphClient::new(cfg, credentials).map_err(|e| e.to_string())
}

/// Registers (or updates) the partner's webhook to `url` for [`EVENTS`]. Returns the registration.
pub async fn register(
    client: &crate::graph::GraphClient,
    partner_tenant: &str,
    url: &str,
) -> Result<serde_json::Value, String> {
    let body = serde_json::json!({ "WebhookUrl": url, "WebhookEvents": EVENTS });
    let existing = client.get::<serde_json::Value>(partner_tenant, "/registration").await;
    match existing {
        Ok(_) => client.put(partner_tenant, "/registration", &body).await.map_err(|e| e.to_string()),
        Err(e) if e.status() == Some(404) => {
            client.post(partner_tenant, "/registration", &body).await.map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}
