//! What a pass over CIPP's tables found and did: per row, and as alerts, drift
//! records and text.

use crate::config::Control;
use serde::Serialize;
use serde_json::Value;

/// How a row ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "camelCase")]
pub enum RowOutcome {
    Compliant,
    /// Drift reported, not changed (report mode, or a disabled client).
    Reported(String),
    Fixed(String),
    /// The row could not be read or written as CIPP writes it.
    Failed(String),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RowReport {
    pub control: Control,
    pub table: String,
    pub row_key: String,
    pub name: String,
    #[serde(flatten)]
    pub outcome: RowOutcome,
    /// The ranges column as read, and as it stands after a fix (CIPP's encoding).
    pub before: String,
    pub after: Option<String>,
    /// When the row was last written, before caguard touched it.
    pub last_written: Option<String>,
    /// Who saved it then, from CIPP's log ([`super::who_saved`]); `None` when unknown.
    pub changed_by: Option<String>,
    pub changed_at: Option<String>,
}

/// The result of one pass over CIPP's tables; table-level problems are in `errors`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CippReport {
    pub rows: Vec<RowReport>,
    pub errors: Vec<String>,
}

impl CippReport {
    pub fn drifted(&self) -> usize {
        self.rows.iter().filter(|r| !matches!(r.outcome, RowOutcome::Compliant)).count()
    }
}

/// The alerts a report calls for: every drift, fix and failure.
pub fn alerts(report: &CippReport) -> Vec<crate::alert::Alert> {
    use crate::alert::{Alert, kind};
    let mut out = Vec::new();
    for r in &report.rows {
        let (k, detail) = match &r.outcome {
            RowOutcome::Compliant => continue,
            RowOutcome::Reported(d) => (kind::DRIFT_REPORTED, d),
            RowOutcome::Fixed(d) => (kind::DRIFT_FIXED, d),
            RowOutcome::Failed(d) => (kind::FAILED, d),
        };
        out.push(Alert {
            tenant_id: "cipp".into(),
            tenant_name: "CIPP-API".into(),
            kind: k.into(),
            message: format!("{} {} \"{}\" ({}): {detail}", r.control, r.table, r.name, r.row_key),
            control: Some(r.control.to_string()),
            object_id: Some(r.row_key.clone()),
            object_name: Some(r.name.clone()),
            changed_by: r.changed_by.clone(),
            changed_at: r.changed_at.clone(),
            ..Default::default()
        });
    }
    for e in &report.errors {
        out.push(Alert {
            tenant_id: "cipp".into(),
            tenant_name: "CIPP-API".into(),
            kind: kind::FAILED.into(),
            message: e.clone(),
            ..Default::default()
        });
    }
    out
}

/// Drift records for every row that was not compliant, for the ledger.
pub fn drift_records(report: &CippReport, correlation_id: &str) -> Vec<crate::store::DriftRecord> {
    let now = chrono::Utc::now().to_rfc3339();
    report
        .rows
        .iter()
        .filter_map(|r| {
            let (action, result) = match &r.outcome {
                RowOutcome::Compliant => return None,
                RowOutcome::Reported(d) => ("reported", d.clone()),
                RowOutcome::Fixed(d) => ("restored", d.clone()),
                RowOutcome::Failed(d) => ("failed", d.clone()),
            };
            Some(crate::store::DriftRecord {
                tenant_id: "cipp".into(),
                tenant_name: "CIPP-API".into(),
                control: r.control.to_string(),
                object_id: format!("{}/{}", r.table, r.row_key),
                object_name: r.name.clone(),
                before: Value::String(r.before.clone()),
                after: r.after.clone().map_or(Value::Null, Value::String),
                changed_by: r.changed_by.clone().unwrap_or_else(|| "unknown".into()),
                changed_at: r.changed_at.clone(),
                action: action.into(),
                result,
                detected_at: now.clone(),
                correlation_id: correlation_id.to_string(),
            })
        })
        .collect()
}

/// A human-readable summary, one line per row that is not compliant.
pub fn text(report: &CippReport) -> String {
    let mut out = String::from("\nCIPP-API access (C1 clients, C2 roles)\n");
    for r in &report.rows {
        let (label, detail) = match &r.outcome {
            RowOutcome::Compliant => ("compliant", String::new()),
            RowOutcome::Reported(d) => ("drift", format!(": {d}")),
            RowOutcome::Fixed(d) => ("fixed", format!(": {d}")),
            RowOutcome::Failed(d) => ("failed", format!(": {d}")),
        };
        out.push_str(&format!("  {} \"{}\" ({})  {label}{detail}\n", r.control, r.name, r.row_key));
    }
    for e in &report.errors {
        out.push_str(&format!("  error: {e}\n"));
    }
    out
}
