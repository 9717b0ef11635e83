//! Alerts as Application Insights traces with custom dimensions (`alert`,
//! `kind`, `tenant`, `control`, `undelivered`, `channel`), so the scheduled query
//! rules in `infra/main.bicep` can select them by dimension rather than by text.
//!
//! Lines a custom handler writes reach Application Insights only as message text
//! (and invocation-response `Logs` only at Information: azure-functions-host
//! `DefaultHttpWorkerService.ProcessLogsFromHttpResponse`), so caguard sends
//! these few events itself, through the ingestion endpoint of the app's
//! `APPLICATIONINSIGHTS_CONNECTION_STRING` (`{IngestionEndpoint}/v2.1/track`),
//! with an Entra token for `https://monitor.azure.com/` when
//! `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` says `Authorization=AAD` (the
//! Bicep disables local auth and grants the identity Monitoring Metrics Publisher).
//! Sending never fails a caller: a failure is one warning line.

use serde_json::{Map, Value, json};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Severity levels of Application Insights' MessageData.
pub const WARNING: u8 = 2;
pub const ERROR: u8 = 3;

#[derive(Clone)]
pub struct Telemetry {
    endpoint: String,
    ikey: String,
    credential: Option<Arc<dyn azure_core::credentials::TokenCredential>>,
    http: reqwest::Client,
}

/// The process's telemetry sender, from the environment; `None` outside Azure
/// (no connection string).
pub fn global() -> Option<&'static Telemetry> {
    static T: OnceLock<Option<Telemetry>> = OnceLock::new();
    T.get_or_init(Telemetry::from_env).as_ref()
}

/// `Key=Value;…` pairs of a connection string.
fn part<'a>(cs: &'a str, key: &str) -> Option<&'a str> {
    cs.split(';')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(key))
        .map(|(_, v)| v.trim())
}

impl Telemetry {
    pub fn from_env() -> Option<Telemetry> {
        let cs = std::env::var("APPLICATIONINSIGHTS_CONNECTION_STRING").ok()?;
        let auth = std::env::var("APPLICATIONINSIGHTS_AUTHENTICATION_STRING").unwrap_or_default();
        let credential = if part(&auth, "Authorization").is_some_and(|a| a.eq_ignore_ascii_case("AAD")) {
            match crate::secrets::azure_credential() {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!("Application Insights: no credential for its ingestion ({e}); alert telemetry off");
                    return None;
                }
            }
        } else {
            None
        };
        Telemetry::new(&cs, credential)
    }

    /// From a connection string; `None` when it lacks a key or endpoint.
    pub fn new(
        connection_string: &str,
        credential: Option<Arc<dyn azure_core::credentials::TokenCredential>>,
    ) -> Option<Telemetry> {
        let ikey = part(connection_string, "InstrumentationKey")?.to_string();
        let endpoint = part(connection_string, "IngestionEndpoint")
            .unwrap_or("https://dc.services.visualstudio.com/")
            .trim_end_matches('/')
            .to_string();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().ok()?;
        Some(Telemetry { endpoint, ikey, credential, http })
    }

    /// One trace with `properties` as its custom dimensions.
    pub async fn trace(&self, message: &str, severity: u8, properties: Map<String, Value>) {
        let envelope = json!([{
            "name": format!("Microsoft.ApplicationInsights.{}.Message", self.ikey.replace('-', "")),
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "iKey": self.ikey,
            "tags": {"ai.cloud.role": "caguard"},
            "data": {"baseType": "MessageData", "baseData": {
                "ver": 2,
                "message": crate::logging::bounded(message),
                "severityLevel": severity,
                "properties": properties
            }}
        }]);
        let mut req = self.http.post(format!("{}/v2.1/track", self.endpoint)).json(&envelope);
        if let Some(c) = &self.credential {
            match c.get_token(&["https://monitor.azure.com//.default"], None).await {
                Ok(t) => req = req.bearer_auth(t.token.secret()),
                Err(e) => {
                    tracing::warn!("Application Insights: no token for its ingestion: {e}");
                    return;
                }
            }
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!("Application Insights ingestion answered HTTP {}", r.status().as_u16()),
            Err(e) => tracing::warn!("Application Insights ingestion failed: {}", e.without_url()),
        }
    }
}

/// String dimensions from pairs, empty values left out.
pub fn dimensions(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect()
}
