//! JSON batching (`$batch`) and Graph's error body.

use super::graph_object;
use serde_json::Value;
use std::collections::BTreeMap;

/// Graph accepts at most this many requests in one `$batch`.
pub const MAX_BATCH: usize = 20;

graph_object! {
    /// The body POSTed to `/$batch`.
    pub struct BatchRequest {
        requests: Vec<BatchRequestItem>,
    }
}

graph_object! {
    /// One request inside a batch. `url` is relative to the version root.
    pub struct BatchRequestItem {
        id: String,
        method: String,
        url: String,
        depends_on: Vec<String>,
        headers: BTreeMap<String, String>,
        body: Value,
    }
}

graph_object! {
    /// The body `/$batch` answers with.
    pub struct BatchResponse {
        responses: Vec<BatchResponseItem>,
    }
}

graph_object! {
    /// One response inside a batch.
    pub struct BatchResponseItem {
        id: String,
        status: u16,
        headers: BTreeMap<String, String>,
        body: Value,
    }
}

graph_object! {
    /// Graph's error body: `{"error": {"code", "message", "innerError"}}`.
    pub struct GraphErrorBody {
        error: GraphErrorDetail,
    }
}

graph_object! {
    /// `error` inside Graph's error body.
    pub struct GraphErrorDetail {
        code: String,
        message: String,
        inner_error: GraphInnerError,
        details: Vec<Value>,
    }
}

graph_object! {
    /// `innerError`: carries the request id that Microsoft support asks for.
    pub struct GraphInnerError {
        code: String,
        message: String,
        date: String,
        #[serde(rename = "request-id")]
        request_id: String,
        #[serde(rename = "client-request-id")]
        client_request_id: String,
        status: String,
    }
}
