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

use crate::graph::GraphClient;
use crate::store::Store;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;

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
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub tenant_id: String,
    pub tenant_name: String,
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

    fn title(&self) -> String {
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
    let expected = [kind::HELD, kind::NOTE, kind::WITHHELD, kind::PAUSED, kind::PAUSE_EXPIRING, kind::DRIFT_REPORTED];
    if expected.contains(&alert.kind.as_str()) {
        event!(warn);
    } else {
        event!(error);
    }
}

/// The JSON webhook's schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    Caguard,
    /// CIPP's standardized webhook schema (`schemaVersion` 1.0).
    Cipp,
}

#[derive(Clone)]
enum Channel {
    Teams(String),
    Slack(String),
    Webhook(String, Schema),
}

impl Channel {
    fn name(&self) -> &'static str {
        match self {
            Channel::Teams(_) => "teams",
            Channel::Slack(_) => "slack",
            Channel::Webhook(..) => "webhook",
        }
    }
}

/// Email through Graph `sendMail`, from a mailbox in the MSP tenant.
#[derive(Clone)]
pub struct Email {
    pub client: GraphClient,
    pub tenant: String,
    pub from: String,
    pub to: Vec<String>,
}

/// What happened to one alert.
#[derive(Clone, Debug, PartialEq)]
pub enum Delivery {
    /// Sent to these channels (the log always).
    Sent { channels: Vec<&'static str>, failed: Vec<String> },
    /// Already alerted in this window; counted.
    Suppressed { count: u32 },
}

/// Sends alerts to the configured channels, once per key per window.
#[derive(Clone)]
pub struct Alerter {
    channels: Vec<Channel>,
    email: Option<Email>,
    store: Arc<dyn Store>,
    window_minutes: i64,
    http: reqwest::Client,
}

/// App settings holding the channels' URLs (secrets: never in caguard.toml).
pub const TEAMS_URL: &str = "CAGUARD_TEAMS_WEBHOOK_URL";
pub const SLACK_URL: &str = "CAGUARD_SLACK_WEBHOOK_URL";
pub const WEBHOOK_URL: &str = "CAGUARD_ALERT_WEBHOOK_URL";

impl Alerter {
    /// Channels from URLs (`None` leaves a channel off).
    pub fn new(
        store: Arc<dyn Store>,
        window_minutes: i64,
        teams: Option<String>,
        slack: Option<String>,
        webhook: Option<(String, Schema)>,
        email: Option<Email>,
    ) -> Self {
        let mut channels = Vec::new();
        channels.extend(teams.map(Channel::Teams));
        channels.extend(slack.map(Channel::Slack));
        channels.extend(webhook.map(|(u, s)| Channel::Webhook(u, s)));
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().expect("client");
        let window_minutes = window_minutes.clamp(1, crate::config::MAX_ALERT_WINDOW_MINUTES);
        Alerter { channels, email, store, window_minutes, http }
    }

    /// Channels from app settings; the email channel when `[alerts]` names a mailbox.
    pub fn from_env(store: Arc<dyn Store>, config: &crate::config::Config, graph: &GraphClient) -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let a = &config.alerts;
        let email = a.email_from.clone().filter(|_| !a.email_to.is_empty()).map(|from| Email {
            client: graph.clone(),
            tenant: config.msp_tenant_id.clone(),
            from,
            to: a.email_to.clone(),
        });
        Self::new(
            store,
            a.window_minutes,
            get(TEAMS_URL),
            get(SLACK_URL),
            get(WEBHOOK_URL).map(|u| (u, a.webhook_schema)),
            email,
        )
    }

    /// Any channel beyond the log.
    fn has_channels(&self) -> bool {
        !self.channels.is_empty() || self.email.is_some()
    }

    fn window(&self, at: chrono::DateTime<chrono::Utc>) -> String {
        let minutes = at.timestamp() / 60;
        let start = minutes - minutes.rem_euclid(self.window_minutes);
        chrono::DateTime::from_timestamp(start * 60, 0).unwrap_or(at).format("%Y-%m-%dT%H:%M").to_string()
    }

    /// Logs, dedupes and delivers one alert. Never fails: channel errors are returned in `Delivery`.
    pub async fn send(&self, alert: &Alert) -> Delivery {
        raise(alert);
        if !self.has_channels() {
            // The log is the only channel: nothing to deliver, so nothing to dedupe.
            return Delivery::Sent { channels: vec!["log"], failed: Vec::new() };
        }
        let now = chrono::Utc::now();
        let window = self.window(now);
        let count = match self.store.count_alert(&alert.key(), &window).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("alert dedupe unavailable, sending anyway: {e}");
                1
            }
        };
        if count > 1 {
            return Delivery::Suppressed { count };
        }
        let previous = self.window(now - chrono::Duration::minutes(self.window_minutes));
        let earlier = self.store.alert_count(&alert.key(), &previous).await.unwrap_or(0);
        let mut sent = vec!["log"];
        let mut failed = Vec::new();
        for ch in &self.channels {
            let (url, body) = match ch {
                Channel::Teams(u) => (u, teams_card(alert, earlier)),
                Channel::Slack(u) => (u, slack_message(alert, earlier)),
                Channel::Webhook(u, Schema::Caguard) => (u, caguard_payload(alert, earlier, now)),
                Channel::Webhook(u, Schema::Cipp) => (u, cipp_payload(alert, earlier, now)),
            };
            // reqwest errors carry the URL, which carries the secret: strip it.
            let result = self.http.post(url).json(&body).send().await.map_err(|e| e.without_url().to_string());
            match result {
                Ok(r) if r.status().is_success() => sent.push(ch.name()),
                Ok(r) => failed.push(format!("{}: HTTP {}", ch.name(), r.status().as_u16())),
                Err(e) => failed.push(format!("{}: {e}", ch.name())),
            }
        }
        if let Some(e) = &self.email {
            match send_mail(e, alert, earlier).await {
                Ok(()) => sent.push("email"),
                Err(err) => failed.push(format!("email: {err}")),
            }
        }
        for f in &failed {
            tracing::warn!(channel_failure = %f, "an alert channel failed");
        }
        Delivery::Sent { channels: sent, failed }
    }
}

fn facts(a: &Alert, earlier: u32) -> Vec<(&'static str, String)> {
    let mut f = vec![("Tenant", format!("{} ({})", a.tenant_name, a.tenant_id)), ("Kind", a.kind.clone())];
    if let Some(c) = &a.control {
        f.push(("Control", c.clone()));
    }
    if let Some(o) = &a.object_name {
        f.push(("Object", o.clone()));
    }
    if let Some(w) = &a.changed_by {
        f.push(("Changed by", w.clone()));
    }
    if let Some(w) = &a.changed_at {
        f.push(("Changed at", w.clone()));
    }
    if earlier > 1 {
        f.push(("Earlier", format!("{earlier} times in the previous window")));
    }
    f
}

/// A Teams Workflows webhook message with an Adaptive Card.
pub fn teams_card(a: &Alert, earlier: u32) -> Value {
    let facts: Vec<Value> = facts(a, earlier).into_iter().map(|(t, v)| json!({"title": t, "value": v})).collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": a.title(), "wrap": true},
                    {"type": "FactSet", "facts": facts},
                    {"type": "TextBlock", "text": a.message, "wrap": true}
                ]
            }
        }]
    })
}

/// A Slack incoming-webhook message.
pub fn slack_message(a: &Alert, earlier: u32) -> Value {
    let fields: Vec<Value> =
        facts(a, earlier).into_iter().map(|(t, v)| json!({"type": "mrkdwn", "text": format!("*{t}*\n{v}")})).collect();
    json!({
        "text": format!("{}: {}", a.title(), a.message),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": a.title()}},
            {"type": "section", "fields": fields},
            {"type": "section", "text": {"type": "mrkdwn", "text": a.message}}
        ]
    })
}

/// caguard's own JSON schema (documented in docs/alerts.md).
pub fn caguard_payload(a: &Alert, earlier: u32, at: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "schema": "caguard.alert/1",
        "generatedAt": at.to_rfc3339(),
        "title": a.title(),
        "kind": a.kind,
        "tenant": {"id": a.tenant_id, "name": a.tenant_name},
        "control": a.control,
        "object": {"id": a.object_id, "name": a.object_name},
        "message": a.message,
        "changedBy": a.changed_by,
        "changedAt": a.changed_at,
        "diff": {"before": a.before, "after": a.after},
        "countPreviousWindow": earlier,
    })
}

/// CIPP's standardized webhook schema (see CIPP's New-CIPPStandardizedWebhookSchema).
pub fn cipp_payload(a: &Alert, earlier: u32, at: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "schemaVersion": "1.0",
        "source": "caguard",
        "invoking": a.kind,
        "title": a.title(),
        "tenant": a.tenant_id,
        "generatedAt": at.to_rfc3339(),
        "alertCount": earlier.max(1),
        "payload": [{
            "Title": a.title(),
            "ActionText": "Conditional Access",
            "RawData": {
                "Message": a.message,
                "TenantName": a.tenant_name,
                "Control": a.control,
                "ObjectId": a.object_id,
                "ObjectName": a.object_name,
                "ChangedBy": a.changed_by,
                "ChangedAt": a.changed_at,
                "Before": a.before,
                "After": a.after
            }
        }]
    })
}

async fn send_mail(e: &Email, a: &Alert, earlier: u32) -> Result<(), String> {
    let rows: String = facts(a, earlier)
        .into_iter()
        .map(|(t, v)| format!("<tr><th align=\"left\">{}</th><td>{}</td></tr>", html(t), html(&v)))
        .collect();
    let body = json!({
        "message": {
            "subject": a.title(),
            "body": {"contentType": "HTML", "content": format!("<p>{}</p><table>{rows}</table>", html(&a.message))},
            "toRecipients": e.to.iter().map(|t| json!({"emailAddress": {"address": t}})).collect::<Vec<_>>()
        },
        "saveToSentItems": false
    });
    let path =
        format!("/users/{}/sendMail", url::form_urlencoded::byte_serialize(e.from.as_bytes()).collect::<String>());
    e.client.post_no_content(&e.tenant, &path, &body).await.map_err(|err| err.to_string())
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
