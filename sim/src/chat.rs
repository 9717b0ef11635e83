//! Stand-ins for the chat channels caguard alerts to, as strict as the real ones
//! on what caguard sends, and no stricter:
//! - **Slack** incoming webhooks (api.slack.com/reference/block-kit/blocks): at
//!   most 50 blocks; a header is `plain_text` of at most 150 characters; a section
//!   has text of at most 3,000 characters or at most 10 fields of at most 2,000
//!   each. Anything else is `400 invalid_blocks`; a message with neither `text`
//!   nor `blocks` is `400 no_text`. Success is `200 ok`.
//! - **Teams** Workflows webhooks: a `message` whose attachments are Adaptive
//!   Cards (`application/vnd.microsoft.card.adaptive`, `content.type`
//!   `AdaptiveCard`, a `version` and a `body` list), at most 28 KB. Success is `202`.
//!
//! Either can be told to fail its next N requests with a status (and a
//! `Retry-After`), to test retries and undelivered alerts.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use std::sync::{Arc, Mutex};

pub const SLACK_HEADER_MAX: usize = 150;
pub const SLACK_SECTION_MAX: usize = 3000;
pub const SLACK_FIELD_MAX: usize = 2000;
pub const SLACK_MAX_FIELDS: usize = 10;
pub const SLACK_MAX_BLOCKS: usize = 50;
pub const TEAMS_MAX_BYTES: usize = 28 * 1024;

/// A fault: the next `times` requests to `channel` answer `status`.
#[derive(Clone, Debug)]
struct Fault {
    channel: String,
    status: u16,
    times: u32,
    retry_after: Option<u64>,
}

#[derive(Default)]
struct Inner {
    /// Every request: (channel, status answered, body).
    requests: Vec<(String, u16, Value)>,
    faults: Vec<Fault>,
}

/// A running stand-in for Slack and Teams.
#[derive(Clone)]
pub struct ChatStandIn {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl ChatStandIn {
    /// A webhook URL for `channel` ("slack" or "teams"); the path carries a secret like the real ones.
    pub fn url(&self, channel: &str) -> String {
        format!("{}/{channel}/T000-secret-token", self.base)
    }

    /// The next `times` requests to `channel` answer `status` (with `Retry-After` seconds).
    pub fn fail(&self, channel: &str, status: u16, times: u32, retry_after: Option<u64>) {
        let f = Fault { channel: channel.into(), status, times, retry_after };
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).faults.push(f);
    }

    /// Every request so far: (channel, status answered, body).
    pub fn requests(&self) -> Vec<(String, u16, Value)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).requests.clone()
    }

    /// The bodies `channel` accepted.
    pub fn accepted(&self, channel: &str) -> Vec<Value> {
        self.requests().into_iter().filter(|(c, s, _)| c == channel && *s < 300).map(|(_, _, b)| b).collect()
    }
}

/// Starts the stand-in on a free local port.
pub async fn serve() -> ChatStandIn {
    let inner: Arc<Mutex<Inner>> = Arc::default();
    let app = Router::new().route("/{channel}/{secret}", post(receive)).with_state(inner.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    ChatStandIn { base, inner }
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((channel, _)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut g = inner.lock().unwrap_or_else(|p| p.into_inner());
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(f) = g.faults.iter_mut().find(|f| f.channel == channel && f.times > 0) {
        f.times -= 1;
        let (status, after) = (f.status, f.retry_after);
        g.requests.push((channel, status, parsed));
        let mut headers = HeaderMap::new();
        if let Some(s) = after {
            headers.insert("retry-after", HeaderValue::from(s));
        }
        return (StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE), headers, "fault")
            .into_response();
    }
    let verdict = match channel.as_str() {
        "slack" => slack(&parsed),
        "teams" => teams(&parsed, body.len()),
        _ => Err((404, "no such channel".to_string())),
    };
    let (status, text) = match verdict {
        Ok(()) if channel == "teams" => (202, String::new()),
        Ok(()) => (200, "ok".to_string()),
        Err(e) => e,
    };
    g.requests.push((channel, status, parsed));
    (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), text).into_response()
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// Slack's checks on an incoming-webhook message.
pub fn slack(body: &Value) -> Result<(), (u16, String)> {
    let invalid = || Err((400, "invalid_blocks".to_string()));
    let blocks = body.get("blocks").and_then(Value::as_array);
    if body.get("text").and_then(Value::as_str).is_none_or(str::is_empty) && blocks.is_none_or(Vec::is_empty) {
        return Err((400, "no_text".into()));
    }
    let Some(blocks) = blocks else { return Ok(()) };
    if blocks.len() > SLACK_MAX_BLOCKS {
        return invalid();
    }
    for b in blocks {
        match b["type"].as_str() {
            Some("header") => {
                if b["text"]["type"] != "plain_text"
                    || chars(&b["text"]["text"]) == 0
                    || chars(&b["text"]["text"]) > SLACK_HEADER_MAX
                {
                    return invalid();
                }
            }
            Some("section") => {
                let text = b.get("text").map(|t| chars(&t["text"]));
                let fields = b.get("fields").and_then(Value::as_array);
                if text.is_none() && fields.is_none() {
                    return invalid();
                }
                if text.is_some_and(|n| n == 0 || n > SLACK_SECTION_MAX) {
                    return invalid();
                }
                if let Some(f) = fields
                    && (f.len() > SLACK_MAX_FIELDS
                        || f.iter().any(|x| chars(&x["text"]) == 0 || chars(&x["text"]) > SLACK_FIELD_MAX))
                {
                    return invalid();
                }
            }
            Some("divider" | "context" | "actions" | "image" | "rich_text") => {}
            _ => return invalid(),
        }
    }
    Ok(())
}

/// The Teams Workflows webhook's envelope and size.
pub fn teams(body: &Value, bytes: usize) -> Result<(), (u16, String)> {
    if bytes > TEAMS_MAX_BYTES {
        return Err((413, format!("message of {bytes} bytes exceeds the 28 KB limit")));
    }
    let bad = |why: &str| Err((400, format!("invalid message: {why}")));
    if body["type"] != "message" {
        return bad("type must be \"message\"");
    }
    let Some(atts) = body["attachments"].as_array().filter(|a| !a.is_empty()) else {
        return bad("attachments must be a non-empty list");
    };
    for a in atts {
        if a["contentType"] != "application/vnd.microsoft.card.adaptive" {
            return bad("contentType must be application/vnd.microsoft.card.adaptive");
        }
        let c = &a["content"];
        if c["type"] != "AdaptiveCard" || !c["version"].is_string() || !c["body"].is_array() {
            return bad("content must be an AdaptiveCard with a version and a body");
        }
    }
    Ok(())
}
