//! A small Queue Storage client: enough for HTTP functions that are forwarded as
//! raw requests (and so cannot use output bindings) to queue their work.
//! Messages are base64-encoded, as the Functions queue trigger expects by default.

use super::table::Auth;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::Method;
use sha2::Sha256;

const VERSION: &str = "2020-12-06";

#[derive(Clone, Debug)]
pub struct QueueClient {
    http: reqwest::Client,
    /// `https://<account>.queue.core.windows.net` or `http://127.0.0.1:10001/devstoreaccount1`.
    endpoint: String,
    auth: Auth,
}

impl QueueClient {
    pub fn new(endpoint: &str, auth: Auth) -> Self {
        QueueClient { http: super::http_client(), endpoint: endpoint.trim_end_matches('/').to_string(), auth }
    }

    /// From a connection string (`QueueEndpoint=…` or derived from the account).
    pub fn from_connection_string(cs: &str) -> Result<Self, String> {
        let (endpoint, auth) = super::parse_connection_string(cs, "queue", 10001)?;
        Ok(Self::new(&endpoint, auth))
    }

    async fn send(&self, method: Method, path: &str, body: Option<String>) -> Result<reqwest::Response, String> {
        let url = format!("{}/{}", self.endpoint, path.trim_start_matches('/'));
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let content_type = if body.is_some() { "application/xml" } else { "" };
        let mut req =
            self.http.request(method.clone(), &url).header("x-ms-date", &date).header("x-ms-version", VERSION);
        req = match &self.auth {
            Auth::SharedKey { account, key } => {
                // SharedKeyLite for the Queue service.
                let endpoint_path = url::Url::parse(&self.endpoint)
                    .map(|u| u.path().trim_end_matches('/').to_string())
                    .unwrap_or_default();
                let resource = format!(
                    "/{account}{endpoint_path}/{}",
                    path.split('?').next().unwrap_or("").trim_start_matches('/')
                );
                let to_sign =
                    format!("{method}\n\n{content_type}\n\nx-ms-date:{date}\nx-ms-version:{VERSION}\n{resource}");
                let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|e| e.to_string())?;
                mac.update(to_sign.as_bytes());
                let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
                req.header("Authorization", format!("SharedKeyLite {account}:{sig}"))
            }
            Auth::Token(c) => {
                let token =
                    c.get_token(&["https://storage.azure.com/.default"], None).await.map_err(|e| e.to_string())?;
                req.bearer_auth(token.token.secret())
            }
        };
        if let Some(b) = body {
            req = req.header("Content-Type", content_type).body(b);
        }
        let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            Err(format!("queue {path}: HTTP {status}: {}", text.chars().take(200).collect::<String>()))
        }
    }

    pub async fn create_queue(&self, queue: &str) -> Result<(), String> {
        self.send(Method::PUT, queue, None).await.map(|_| ())
    }

    /// Queues a message (base64-encoded text).
    pub async fn put(&self, queue: &str, text: &str) -> Result<(), String> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        let body = format!("<QueueMessage><MessageText>{b64}</MessageText></QueueMessage>");
        self.send(Method::POST, &format!("{queue}/messages"), Some(body)).await.map(|_| ())
    }

    /// Takes up to 32 messages (decoded), deleting nothing: they reappear after 30 s. For tests and tools.
    pub async fn receive(&self, queue: &str) -> Result<Vec<String>, String> {
        let resp =
            self.send(Method::GET, &format!("{queue}/messages?numofmessages=32&visibilitytimeout=30"), None).await?;
        let xml = resp.text().await.map_err(|e| e.to_string())?;
        Ok(xml
            .split("<MessageText>")
            .skip(1)
            .filter_map(|part| part.split("</MessageText>").next())
            .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .collect())
    }
}
