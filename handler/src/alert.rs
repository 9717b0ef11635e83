//! Alerts: enforcement that needs a person's attention.
//!
//! Today alerts go to the log as structured `error` events (which Application
//! Insights turns into alertable traces). Teams, Slack, webhook and email
//! channels, deduplication and the drift ledger arrive with the watch issue.

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub tenant_id: String,
    pub tenant_name: String,
    /// `poison`, `held`, `failed`, `safety`, …
    pub kind: String,
    pub message: String,
}

/// Raises an alert.
pub fn raise(alert: &Alert) {
    tracing::error!(
        alert = true,
        tenant = %alert.tenant_id,
        tenant_name = %alert.tenant_name,
        kind = %alert.kind,
        "{}",
        alert.message
    );
}
