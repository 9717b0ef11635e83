//! Alerts: drift that was fixed, and enforcement that could not run.
//!
//! Every alert is a structured `error` log event (Application Insights alerts on
//! them). With channels configured it also goes to Microsoft Teams (a Workflows
//! webhook carrying an Adaptive Card), Slack, a generic JSON webhook (caguard's
//! schema, or CIPP's standardized webhook schema so it feeds the same pipeline),
//! and email through Graph `sendMail`. One alert per (tenant, object, control)
//! per window; the rest are counted, and the next window's alert carries the count.
//! Webhook URLs are secrets: they come from app settings and never reach a log line.
//! `docs/alerts.md` documents the payloads.

mod deliver;
pub mod format;
mod undelivered;

pub use deliver::{Alerter, Delivery, Email, RECORD, Retry, SLACK_URL, Schema, TEAMS_URL, WEBHOOK_URL};
use serde::{Deserialize, Serialize};
use serde_json::Value;
pub use undelivered::{ResendReport, UNDELIVERED, Undelivered, undelivered};

/// Alert kinds.
pub mod kind {
    pub const DRIFT_FIXED: &str = "drift-fixed";
    pub const DRIFT_REPORTED: &str = "drift-reported";
    pub const NO_LICENSE: &str = "no-license";
    pub const MISSING_ROLE: &str = "missing-gdap-role";
    pub const AUTH_FAILURE: &str = "token-or-consent-failure";
    pub const POISON: &str = "poison-message";
    pub const HELD: &str = "safety-hold";
    pub const FAILED: &str = "failed";
    pub const WITHHELD: &str = "withheld";
    pub const LOCKOUT_RISK: &str = "lockout-risk";
    pub const DISCOVERY_FAILED: &str = "discovery-failed";
    pub const NOTE: &str = "note";
    pub const PAUSED: &str = "paused";
    pub const PAUSE_EXPIRED: &str = "pause-expired";
    pub const PAUSE_EXPIRING: &str = "pause-expiring";
    pub const EMERGENCY_OVERRIDE: &str = "emergency-override";
    pub const TUG_OF_WAR: &str = "tug-of-war";
    /// Graph's What If and caguard's evaluator disagree: caguard's model of the tenant is wrong.
    pub const WHATIF_DISAGREEMENT: &str = "whatif-disagreement";
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Alert {
    pub tenant_id: String,
    pub tenant_name: String,
    /// The tenant's default domain, where observe read it (CIPP's schema names
    /// tenants by it).
    pub tenant_domain: Option<String>,
    /// One of [`kind`].
    pub kind: String,
    pub message: String,
    pub control: Option<String>,
    pub object_id: Option<String>,
    pub object_name: Option<String>,
    /// Who made the change, from the audit log.
    pub changed_by: Option<String>,
    pub changed_at: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// The alert a tenant's outcome calls for, if any: enforcement that could not run.
pub fn for_outcome(tenant: &str, name: &str, outcome: &crate::apply::Outcome) -> Option<Alert> {
    use crate::apply::Outcome;
    let (k, why) = match outcome {
        Outcome::Held(why) => (kind::HELD, why),
        Outcome::Failed(why) => (kind::FAILED, why),
        Outcome::Skipped(why) if why.contains("P1") => (kind::NO_LICENSE, why),
        Outcome::Skipped(why) if why.contains("GDAP relationship lacks") => (kind::MISSING_ROLE, why),
        Outcome::Skipped(why) if why.contains("consent, permissions or token") => (kind::AUTH_FAILURE, why),
        _ => return None,
    };
    Some(Alert {
        tenant_id: tenant.into(),
        tenant_name: name.into(),
        kind: k.into(),
        message: why.clone(),
        ..Default::default()
    })
}

/// One alert per planner note (duplicate names, a location of the wrong kind,
/// exclusions kept on purpose, an adoption …), deduped per note and window.
pub fn for_notes(plan: &crate::plan::TenantPlan) -> Vec<Alert> {
    plan.notes
        .iter()
        .map(|n| Alert {
            tenant_id: plan.tenant_id.clone(),
            tenant_name: plan.tenant_name.clone(),
            kind: kind::NOTE.into(),
            message: format!("{}: {}", n.control, n.message),
            control: Some(n.control.to_string()),
            // Distinct notes are distinct alerts; the key must be safe as a table key.
            object_id: Some(format!("note-{:016x}", fnv1a(&n.message))),
            ..Default::default()
        })
        .collect()
}

/// 64-bit FNV-1a: a stable, key-safe digest of a note.
pub(crate) fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The one alert a failed discovery raises (the customers it could not reach are
/// reported `unknown`, not alerted one by one).
pub fn for_discovery_failure(msp_tenant: &str, error: &str, unknown: usize) -> Alert {
    Alert {
        tenant_id: msp_tenant.into(),
        tenant_name: "MSP tenant".into(),
        kind: kind::DISCOVERY_FAILED.into(),
        message: format!(
            "GDAP tenant discovery failed: {error}. The MSP tenant was still reconciled; {unknown} customer tenant(s) last seen were not observed."
        ),
        ..Default::default()
    }
}

/// One alert per policy caguard left alone on purpose (a D1 write that would
/// exclude more than the MSP, a policy it cannot read), deduped per policy and control.
pub fn for_withheld(plan: &crate::plan::TenantPlan) -> Vec<Alert> {
    plan.withheld
        .iter()
        .map(|w| {
            let also = if w.would_also_exclude.is_empty() {
                String::new()
            } else {
                format!(" Writing it would also exclude: {}.", w.would_also_exclude.join("; "))
            };
            Alert {
                tenant_id: plan.tenant_id.clone(),
                tenant_name: plan.tenant_name.clone(),
                kind: kind::WITHHELD.into(),
                message: format!("{} \"{}\" {}.{also}", w.control, w.target, w.reason),
                control: Some(w.control.to_string()),
                object_id: Some(w.policy_id.clone()),
                object_name: Some(w.target.clone()),
                ..Default::default()
            }
        })
        .collect()
}

/// One alert per MSP policy that could lock out a break-glass account while A4 is
/// in `report` mode, so caguard may not add the exclusion: a person must.
pub fn for_lockout_risk(plan: &crate::plan::TenantPlan) -> Vec<Alert> {
    use crate::config::{Control, ControlMode};
    plan.actions
        .iter()
        .filter(|a| a.control == Control::A4 && a.mode == ControlMode::Report)
        .map(|a| Alert {
            tenant_id: plan.tenant_id.clone(),
            tenant_name: plan.tenant_name.clone(),
            kind: kind::LOCKOUT_RISK.into(),
            message: format!(
                "\"{}\" could lock out the break-glass accounts: {}. A4 is in report mode, so caguard did not add the exclusion; add it, or set A4 = \"enforce\".",
                a.target, a.reason
            ),
            control: Some(a.control.to_string()),
            object_id: match &a.op {
                crate::plan::Op::UpdatePolicy { id } => Some(id.clone()),
                _ => None,
            },
            object_name: Some(a.target.clone()),
            after: Some(a.body.clone()),
            before: Some(a.before.clone()),
            ..Default::default()
        })
        .collect()
}

impl Alert {
    /// The dedupe key: tenant, object and control (or kind, for tenant-level alerts).
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}",
            self.tenant_id.to_ascii_lowercase(),
            self.object_id.as_deref().unwrap_or("-"),
            self.control.as_deref().unwrap_or(&self.kind)
        )
    }

    pub fn title(&self) -> String {
        let what = match self.kind.as_str() {
            kind::DRIFT_FIXED => "Conditional Access drift restored",
            kind::DRIFT_REPORTED => "Conditional Access drift found",
            kind::NO_LICENSE => "Enforcement cannot run: no Entra ID P1",
            kind::MISSING_ROLE => "Enforcement cannot run: GDAP role missing",
            kind::AUTH_FAILURE => "Enforcement cannot run: token or consent failure",
            kind::POISON => "Reconcile gave up (poison message)",
            kind::HELD => "Change held for confirmation",
            kind::WITHHELD => "Policy left alone: caguard cannot add only the MSP's exclusion",
            kind::LOCKOUT_RISK => "Lockout risk: a policy can block the break-glass accounts",
            kind::DISCOVERY_FAILED => "Customer tenants could not be discovered",
            kind::NOTE => "Something to review (no write)",
            kind::PAUSED => "caguard paused",
            kind::EMERGENCY_OVERRIDE => "URGENT: an emergency change was left in place",
            kind::PAUSE_EXPIRED => "A pause expired: enforcement resumed",
            kind::PAUSE_EXPIRING => "A pause expires soon",
            kind::TUG_OF_WAR => "Tug-of-war: someone keeps reverting what caguard enforces",
            _ => "caguard alert",
        };
        format!("{what}: {}", self.tenant_name)
    }
}

/// Logs an alert as a structured event (always): expected, human-decided states
/// (a hold, a note, a withheld policy, a pause) as warnings, the rest as errors.
pub fn raise(alert: &Alert) {
    macro_rules! event {
        ($level:ident) => {
            tracing::$level!(
                alert = true,
                tenant = %alert.tenant_id,
                tenant_name = %alert.tenant_name,
                kind = %alert.kind,
                control = alert.control.as_deref().unwrap_or(""),
                object = alert.object_name.as_deref().unwrap_or(""),
                changed_by = alert.changed_by.as_deref().unwrap_or(""),
                "{}",
                alert.message
            )
        };
    }
    if alert.is_expected() {
        event!(warn);
    } else {
        event!(error);
    }
}

impl Alert {
    /// A human-decided state (a hold, a note, a withheld policy, a pause): a warning, not an error.
    pub fn is_expected(&self) -> bool {
        let expected =
            [kind::HELD, kind::NOTE, kind::WITHHELD, kind::PAUSED, kind::PAUSE_EXPIRING, kind::DRIFT_REPORTED];
        expected.contains(&self.kind.as_str())
    }

    /// The custom dimensions of this alert's Application Insights trace.
    pub fn dimensions(&self) -> serde_json::Map<String, Value> {
        crate::telemetry::dimensions(&[
            ("alert", "true"),
            ("kind", &self.kind),
            ("tenant", &self.tenant_id),
            ("tenantName", &self.tenant_name),
            ("control", self.control.as_deref().unwrap_or("")),
            ("object", self.object_name.as_deref().unwrap_or("")),
            ("changedBy", self.changed_by.as_deref().unwrap_or("")),
        ])
    }
}
