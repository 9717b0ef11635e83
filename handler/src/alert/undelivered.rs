//! Undelivered alerts: what a channel did not take is kept in the store (channel
//! and error, never the URL) and sent again on every timer tick until it is
//! delivered or expires.

use super::Alert;
use super::deliver::{Alerter, Delivery};
use super::format::Context;
use crate::store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The store kind undelivered alerts are kept under.
pub const UNDELIVERED: &str = "undelivered-alert";
/// How long an undelivered alert is re-sent before it is dropped (and logged).
pub const UNDELIVERED_HOURS: i64 = 24;

/// An alert a channel did not take, kept until it is delivered or expires.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Undelivered {
    pub channel: String,
    /// The last error (a status and Slack's or Graph's error text; never the URL).
    pub error: String,
    pub attempts: u32,
    pub first_failed_at: String,
    pub last_tried_at: String,
    pub expires_at: String,
    pub earlier: u32,
    pub record: String,
    pub alert: Alert,
}

impl Undelivered {
    /// As `status` and the Status API show it: which channel, what, why (no URL, no diff).
    pub fn summary(&self) -> Value {
        json!({
            "channel": self.channel,
            "kind": self.alert.kind,
            "tenant": self.alert.tenant_name,
            "title": self.alert.title(),
            "error": crate::logging::bounded(&self.error),
            "attempts": self.attempts,
            "firstFailedAt": self.first_failed_at,
            "expiresAt": self.expires_at,
        })
    }
}

/// What a resend pass did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ResendReport {
    pub delivered: usize,
    pub still_undelivered: usize,
    pub expired: usize,
}

impl Alerter {
    pub(super) async fn keep_undelivered(&self, channel: &str, error: &str, alert: &Alert, cx: &Context) {
        let key = format!("{channel}-{}", cx.record);
        let now = chrono::Utc::now();
        let existing = self.undelivered().await.into_iter().find(|u| u.channel == channel && u.record == cx.record);
        let record = match existing {
            Some(u) => {
                Undelivered { error: error.into(), attempts: u.attempts + 1, last_tried_at: now.to_rfc3339(), ..u }
            }
            None => Undelivered {
                channel: channel.into(),
                error: error.into(),
                attempts: 1,
                first_failed_at: now.to_rfc3339(),
                last_tried_at: now.to_rfc3339(),
                expires_at: (now + chrono::Duration::hours(UNDELIVERED_HOURS)).to_rfc3339(),
                earlier: cx.earlier,
                record: cx.record.clone(),
                alert: alert.clone(),
            },
        };
        if record.attempts == 1 {
            self.trace_undelivered(channel, alert, "an alert was not delivered").await;
        }
        let value = serde_json::to_value(&record).expect("json");
        if let Err(e) = self.store.put_record(UNDELIVERED, &key, value).await {
            tracing::error!(alert = true, "an undelivered {channel} alert could not be stored either: {e}");
        }
    }

    /// The undelivered alerts in the store.
    pub async fn undelivered(&self) -> Vec<Undelivered> {
        undelivered(self.store.as_ref()).await
    }

    /// Sends each undelivered alert again, to the channel that missed it; drops
    /// (and logs) those past their expiry. Called on every timer tick.
    pub async fn resend_undelivered(&self) -> ResendReport {
        let mut report = ResendReport::default();
        let now = chrono::Utc::now();
        for u in self.undelivered().await {
            let key = format!("{}-{}", u.channel, u.record);
            let expired = chrono::DateTime::parse_from_rfc3339(&u.expires_at).map_or(true, |t| t < now);
            if expired {
                let (title, text) = (u.alert.title(), crate::logging::bounded(&u.alert.message));
                tracing::error!(channel = %u.channel, "an alert was never delivered and expired: {title}: {text}");
                self.trace_undelivered(&u.channel, &u.alert, "an alert was never delivered and expired").await;
                let _ = self.store.delete_record(UNDELIVERED, &key).await;
                report.expired += 1;
                continue;
            }
            let cx =
                Context { earlier: u.earlier, at: now, record: u.record.clone(), status_url: self.status_url.clone() };
            match self.deliver(&u.alert, &cx, Some(&u.channel)).await {
                Delivery::Sent { channels, .. } if channels.iter().any(|c| *c == u.channel) => {
                    let _ = self.store.delete_record(UNDELIVERED, &key).await;
                    report.delivered += 1;
                }
                Delivery::Sent { failed, skipped, .. } if failed.is_empty() && skipped.is_empty() => {
                    // The channel is no longer configured: nobody is left to send it to.
                    tracing::warn!(channel = %u.channel, "an undelivered alert was dropped: its channel is no longer configured");
                    let _ = self.store.delete_record(UNDELIVERED, &key).await;
                    report.expired += 1;
                }
                _ => report.still_undelivered += 1,
            }
        }
        report
    }
}

/// The undelivered alerts in `store` (for `status` and the status page).
pub async fn undelivered(store: &dyn Store) -> Vec<Undelivered> {
    let all = store.records(UNDELIVERED).await.unwrap_or_default();
    let mut out: Vec<Undelivered> = all.into_iter().filter_map(|(_, v)| serde_json::from_value(v).ok()).collect();
    out.sort_by(|a, b| a.first_failed_at.cmp(&b.first_failed_at));
    out
}
