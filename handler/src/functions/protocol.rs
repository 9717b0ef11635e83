//! The Azure Functions custom-handler invocation protocol.
//!
//! The host POSTs `{"Data": {binding: value}, "Metadata": {…}}` to
//! `/{FunctionName}` and expects `{"Outputs": {…}, "Logs": […], "ReturnValue": …}`.
//! Shapes: <https://learn.microsoft.com/azure/azure-functions/functions-custom-handlers>
//! and the payloads in `tests/fixtures/functions/`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What the host sends.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InvocationRequest {
    #[serde(rename = "Data", default)]
    pub data: Map<String, Value>,
    #[serde(rename = "Metadata", default)]
    pub metadata: Map<String, Value>,
}

/// What the handler answers. Outputs are always JSON objects: the host
/// base64-decodes plain string outputs that happen to be valid base64.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InvocationResponse {
    #[serde(rename = "Outputs")]
    pub outputs: Map<String, Value>,
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    #[serde(rename = "ReturnValue")]
    pub return_value: Value,
}

/// The timer binding's value (`TimerInfo`). `ScheduleStatus` may be null.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimerInfo {
    #[serde(rename = "Schedule", default)]
    pub schedule: Option<Value>,
    #[serde(rename = "ScheduleStatus", default)]
    pub schedule_status: Option<ScheduleStatus>,
    #[serde(rename = "IsPastDue", default)]
    pub is_past_due: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleStatus {
    #[serde(rename = "Last", default)]
    pub last: Option<String>,
    #[serde(rename = "Next", default)]
    pub next: Option<String>,
    #[serde(rename = "LastUpdated", default)]
    pub last_updated: Option<String>,
}

/// A malformed invocation, with what is wrong.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct ProtocolError(pub String);

impl InvocationRequest {
    /// The trigger's value: the named binding, or the only one.
    pub fn trigger(&self, binding: &str) -> Result<&Value, ProtocolError> {
        if let Some(v) = self.data.get(binding) {
            return Ok(v);
        }
        match self.data.len() {
            1 => Ok(self.data.values().next().expect("one")),
            0 => Err(ProtocolError(format!("Data is empty; expected the '{binding}' binding"))),
            _ => Err(ProtocolError(format!(
                "Data has no '{binding}' binding (has {})",
                self.data.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// The timer's `TimerInfo`.
    pub fn timer(&self, binding: &str) -> Result<TimerInfo, ProtocolError> {
        let v = self.trigger(binding)?;
        let v = decode_nested(v);
        serde_json::from_value(v).map_err(|e| ProtocolError(format!("'{binding}' is not a TimerInfo: {e}")))
    }

    /// A queue message as `T`, whether the host passed it as JSON or as a JSON string inside JSON.
    pub fn queue_message<T: serde::de::DeserializeOwned>(&self, binding: &str) -> Result<T, ProtocolError> {
        let v = self.trigger(binding)?;
        serde_json::from_value(decode_nested(v))
            .map_err(|e| ProtocolError(format!("the '{binding}' queue message is not valid: {e}")))
    }

    /// `DequeueCount`, which the host sends as a number or a string.
    pub fn dequeue_count(&self) -> Result<u32, ProtocolError> {
        match self.metadata.get("DequeueCount") {
            None => Ok(1),
            Some(Value::Number(n)) => {
                n.as_u64().map(|n| n as u32).ok_or_else(|| ProtocolError(format!("DequeueCount {n} is not a count")))
            }
            Some(Value::String(s)) => s
                .trim()
                .trim_matches('"')
                .parse()
                .map_err(|_| ProtocolError(format!("DequeueCount '{s}' is not a count"))),
            Some(other) => Err(ProtocolError(format!("DequeueCount {other} is not a count"))),
        }
    }

    /// The function name the host states in `Metadata.sys.MethodName`. The
    /// documented HTTP example sends an empty `Metadata`, so routing never relies
    /// on it: the handler routes by the path the host POSTs to.
    pub fn method_name(&self) -> Option<&str> {
        self.metadata.get("sys")?.get("MethodName")?.as_str()
    }

    /// An HTTP trigger's request (`Data.req`, or the only binding).
    pub fn http(&self, binding: &str) -> Result<HttpData, ProtocolError> {
        let v = self.trigger(binding)?;
        let mut req: HttpData = serde_json::from_value(v.clone())
            .map_err(|e| ProtocolError(format!("'{binding}' is not an HTTP request: {e}")))?;
        // The reference shows `Query` as the JSON text "{}"; the host also sends an object.
        req.query = match decode_nested(&req.query) {
            Value::Null => Value::Object(Map::new()),
            q @ Value::Object(_) => q,
            other => return Err(ProtocolError(format!("'{binding}'.Query is not a query object: {other}"))),
        };
        Ok(req)
    }
}

/// An HTTP trigger's request as the host sends it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpData {
    #[serde(rename = "Url", default)]
    pub url: String,
    #[serde(rename = "Method", default)]
    pub method: String,
    /// Always an object once read through [`InvocationRequest::http`].
    #[serde(rename = "Query", default)]
    pub query: Value,
    #[serde(rename = "Headers", default)]
    pub headers: Map<String, Value>,
    #[serde(rename = "Params", default)]
    pub params: Map<String, Value>,
    /// The body as the host passed it (usually JSON text); absent for a GET.
    #[serde(rename = "Body", default)]
    pub body: Option<Value>,
}

/// A JSON string that itself holds JSON (an object or array) is decoded once.
fn decode_nested(v: &Value) -> Value {
    if let Value::String(s) = v {
        let t = s.trim_start();
        if (t.starts_with('{') || t.starts_with('['))
            && let Ok(inner) = serde_json::from_str::<Value>(s)
        {
            return inner;
        }
    }
    v.clone()
}

impl InvocationResponse {
    pub fn ok() -> Self {
        InvocationResponse { return_value: Value::Null, ..Default::default() }
    }

    pub fn log(mut self, line: impl Into<String>) -> Self {
        self.logs.push(line.into());
        self
    }

    /// Sets an output binding; values are wrapped so the host never sees a bare string.
    pub fn output(mut self, binding: &str, value: Value) -> Self {
        let value = match value {
            Value::String(s) => serde_json::json!({ "value": s }),
            Value::Array(items) => Value::Array(
                items.into_iter().map(|i| if i.is_string() { serde_json::json!({ "value": i }) } else { i }).collect(),
            ),
            other => other,
        };
        self.outputs.insert(binding.to_string(), value);
        self
    }
}
