//! Delivery: every channel at once, each retried with backoff on 429 and 5xx
//! (honouring `Retry-After`), and what still fails kept as an undelivered alert
//! (channel and error, never the URL) that the next timer tick sends again.

use super::format::{self, Context};
use super::{Alert, raise};
use crate::graph::GraphClient;
use crate::store::Store;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The store kind keeping the full text of an alert some channel got cut.
pub const RECORD: &str = "alert-record";
/// The store kind of a channel switched off for a reason (email without `Mail.Send`).
const CHANNEL_STATE: &str = "alert-channel";
/// How long a disabled email channel stays off before it is tried again.
const EMAIL_RECHECK_HOURS: i64 = 6;

/// App settings holding the channels' URLs (secrets: never in caguard.toml).
pub const TEAMS_URL: &str = "CAGUARD_TEAMS_WEBHOOK_URL";
pub const SLACK_URL: &str = "CAGUARD_SLACK_WEBHOOK_URL";
pub const WEBHOOK_URL: &str = "CAGUARD_ALERT_WEBHOOK_URL";

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

    /// The URL and body, and whether a text had to be cut to fit.
    fn payload(&self, a: &Alert, cx: &Context) -> (&str, Value, bool) {
        match self {
            Channel::Teams(u) => {
                let (v, cut) = format::teams_card(a, cx);
                (u, v, cut)
            }
            Channel::Slack(u) => {
                let (v, cut) = format::slack_message(a, cx);
                (u, v, cut)
            }
            Channel::Webhook(u, Schema::Caguard) => (u, format::caguard_payload(a, cx), false),
            Channel::Webhook(u, Schema::Cipp) => (u, format::cipp_payload(a, cx), false),
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

/// How hard a channel is tried before the alert is stored undelivered.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Sends in all, the first included.
    pub attempts: u32,
    /// The first wait; each later one doubles.
    pub base: Duration,
    /// A `Retry-After` longer than this is not waited for: the alert is stored
    /// undelivered and the next timer tick sends it.
    pub max_wait: Duration,
    /// After a channel exhausted its retries, alerts for it within this long are
    /// stored undelivered straight away: one dead channel cannot stall a reconcile.
    pub cooldown: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 4,
            base: Duration::from_secs(1),
            max_wait: Duration::from_secs(30),
            cooldown: Duration::from_secs(60),
        }
    }
}

/// What happened to one alert.
#[derive(Clone, Debug, PartialEq)]
pub enum Delivery {
    /// Sent to `channels` (the log always); `failed` were stored undelivered;
    /// `skipped` are switched off for a reason said once (email without Mail.Send).
    Sent { channels: Vec<&'static str>, failed: Vec<String>, skipped: Vec<String> },
    /// Already alerted in this window; counted.
    Suppressed { count: u32 },
}

/// Sends alerts to the configured channels, once per key per window.
#[derive(Clone)]
pub struct Alerter {
    channels: Vec<Channel>,
    email: Option<Email>,
    pub(super) store: Arc<dyn Store>,
    window_minutes: i64,
    http: reqwest::Client,
    retry: Retry,
    pub(super) status_url: Option<String>,
    broken: Arc<Mutex<HashMap<&'static str, Instant>>>,
    telemetry: Option<crate::telemetry::Telemetry>,
}

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
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
        let window_minutes = window_minutes.clamp(1, crate::config::MAX_ALERT_WINDOW_MINUTES);
        Alerter {
            channels,
            email,
            store,
            window_minutes,
            http,
            retry: Retry::default(),
            status_url: None,
            broken: Arc::default(),
            telemetry: crate::telemetry::global().cloned(),
        }
    }

    /// Where alert traces go (tests point it at a stand-in).
    pub fn with_telemetry(mut self, telemetry: Option<crate::telemetry::Telemetry>) -> Self {
        self.telemetry = telemetry;
        self
    }

    async fn trace(&self, message: &str, severity: u8, dims: serde_json::Map<String, Value>) {
        if let Some(t) = &self.telemetry {
            t.trace(message, severity, dims).await;
        }
    }

    async fn trace_alert(&self, alert: &Alert) {
        let severity = if alert.is_expected() { crate::telemetry::WARNING } else { crate::telemetry::ERROR };
        self.trace(&format!("{}: {}", alert.title(), alert.message), severity, alert.dimensions()).await;
    }

    pub(super) async fn trace_undelivered(&self, channel: &str, alert: &Alert, what: &str) {
        let mut dims = alert.dimensions();
        dims.remove("alert");
        dims.extend(crate::telemetry::dimensions(&[("undelivered", "true"), ("channel", channel)]));
        self.trace(&format!("{what} ({channel}): {}", alert.title()), crate::telemetry::ERROR, dims).await;
    }

    /// The retry policy (tests shorten the waits).
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// caguard's status page, linked from CIPP-schema alerts.
    pub fn with_status_url(mut self, url: Option<String>) -> Self {
        self.status_url = url;
        self
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
        .with_status_url(a.status_url.clone())
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

    /// Logs, dedupes and delivers one alert. Never fails: what a channel did not
    /// take is stored undelivered and named in `Delivery`.
    pub async fn send(&self, alert: &Alert) -> Delivery {
        raise(alert);
        if !self.has_channels() {
            // The log is the only channel: nothing to deliver, so nothing to dedupe.
            self.trace_alert(alert).await;
            return Delivery::Sent { channels: vec!["log"], failed: Vec::new(), skipped: Vec::new() };
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
        self.trace_alert(alert).await;
        let previous = self.window(now - chrono::Duration::minutes(self.window_minutes));
        let earlier = self.store.alert_count(&alert.key(), &previous).await.unwrap_or(0);
        let record = format!("{:016x}", super::fnv1a(&format!("{}|{window}", alert.key())));
        let cx = Context { earlier, at: now, record, status_url: self.status_url.clone() };
        self.deliver(alert, &cx, None).await
    }

    /// Sends to every channel (or only `only`) at once and stores what failed.
    pub(super) async fn deliver(&self, alert: &Alert, cx: &Context, only: Option<&str>) -> Delivery {
        let wanted = |name: &str| only.is_none_or(|o| o == name);
        let posts = self.channels.iter().filter(|c| wanted(c.name())).map(|ch| async move {
            let (url, body, cut) = ch.payload(alert, cx);
            (ch.name(), self.post(ch.name(), url, &body).await, cut)
        });
        let email = async {
            match &self.email {
                Some(e) if wanted("email") => Some(self.email(e, alert, cx).await),
                _ => None,
            }
        };
        let (results, email) = futures_util::future::join(futures_util::future::join_all(posts), email).await;
        let mut sent = vec!["log"];
        let (mut failed, mut skipped, mut cut_any) = (Vec::new(), Vec::new(), false);
        let all = results.into_iter().chain(email.map(|(r, cut)| ("email", r, cut)));
        for (name, result, cut) in all {
            cut_any |= cut;
            match result {
                Ok(()) => sent.push(name),
                Err(Failure::Skipped(why)) => skipped.push(format!("{name}: {why}")),
                Err(Failure::Failed(why)) => {
                    tracing::warn!(channel_failure = %format!("{name}: {why}"), "an alert channel failed");
                    self.keep_undelivered(name, &why, alert, cx).await;
                    failed.push(format!("{name}: {why}"));
                }
            }
        }
        if cut_any {
            self.keep_full_text(alert, cx).await;
        }
        Delivery::Sent { channels: sent, failed, skipped }
    }

    /// One POST, retried on 429, 5xx and connection errors within [`Retry`].
    async fn post(&self, name: &'static str, url: &str, body: &Value) -> Result<(), Failure> {
        if let Some(at) = self.broken.lock().unwrap_or_else(|p| p.into_inner()).get(name)
            && at.elapsed() < self.retry.cooldown
        {
            return Err(Failure::Failed(format!("not sent: the channel failed {}s ago", at.elapsed().as_secs())));
        }
        let mut last = String::new();
        for attempt in 1..=self.retry.attempts.max(1) {
            let (retryable, retry_after) = match self.http.post(url).json(body).send().await {
                Ok(r) if r.status().is_success() => {
                    self.broken.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
                    return Ok(());
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    let after =
                        r.headers().get("retry-after").and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
                    let text = r.text().await.unwrap_or_default();
                    last = format!("HTTP {status} {}", crate::logging::bounded(text.trim())).trim_end().to_string();
                    (status == 429 || status >= 500, after.map(Duration::from_secs))
                }
                // reqwest errors carry the URL, which carries the secret: strip it.
                Err(e) => {
                    last = e.without_url().to_string();
                    (true, None)
                }
            };
            if !retryable || attempt == self.retry.attempts {
                break;
            }
            let wait = retry_after.unwrap_or(self.retry.base * 2u32.pow(attempt - 1));
            if wait > self.retry.max_wait {
                last.push_str(&format!(" (Retry-After {}s is longer than caguard waits)", wait.as_secs()));
                break;
            }
            tokio::time::sleep(wait).await;
        }
        self.broken.lock().unwrap_or_else(|p| p.into_inner()).insert(name, Instant::now());
        Err(Failure::Failed(last))
    }

    /// Email through Graph (which retries 429 and 5xx itself). Without `Mail.Send`
    /// (403) the channel is switched off, said once, and tried again hours later.
    async fn email(&self, e: &Email, a: &Alert, cx: &Context) -> (Result<(), Failure>, bool) {
        if let Some(why) = self.email_disabled().await {
            return (Err(Failure::Skipped(why)), false);
        }
        let (body, cut) = format::mail_body(a, cx, &e.to);
        let path =
            format!("/users/{}/sendMail", url::form_urlencoded::byte_serialize(e.from.as_bytes()).collect::<String>());
        let result = match e.client.post_no_content(&e.tenant, &path, &body).await {
            Ok(()) => Ok(()),
            Err(err) if err.status() == Some(403) => {
                let why = format!(
                    "switched off: sendMail from {} was refused (403: {err}). The app needs Mail.Send as an \
                     application permission, or a mailbox it may send from (docs/alerts.md); tried again in {EMAIL_RECHECK_HOURS} h",
                    e.from
                );
                tracing::error!(alert_channel = "email", "{why}");
                let state = json!({"disabledAt": chrono::Utc::now().to_rfc3339(), "reason": why});
                if let Err(err) = self.store.put_record(CHANNEL_STATE, "email", state).await {
                    tracing::warn!("could not record the email channel's state: {err}");
                }
                Err(Failure::Skipped(why))
            }
            Err(err) => Err(Failure::Failed(err.to_string())),
        };
        (result, cut)
    }

    /// Why email is off, while it is.
    async fn email_disabled(&self) -> Option<String> {
        let records = self.store.records(CHANNEL_STATE).await.ok()?;
        let (_, v) = records.into_iter().find(|(k, _)| k == "email")?;
        let at = chrono::DateTime::parse_from_rfc3339(v["disabledAt"].as_str()?).ok()?;
        let off = chrono::Utc::now() - at.with_timezone(&chrono::Utc) < chrono::Duration::hours(EMAIL_RECHECK_HOURS);
        off.then(|| v["reason"].as_str().unwrap_or("switched off").to_string())
    }

    async fn keep_full_text(&self, alert: &Alert, cx: &Context) {
        let value = json!({"at": cx.at.to_rfc3339(), "alert": alert});
        if let Err(e) = self.store.put_record(RECORD, &cx.record, value).await {
            tracing::warn!("the full text of alert record {} could not be stored: {e}", cx.record);
        }
    }
}

/// Why a channel did not take an alert.
enum Failure {
    /// Kept undelivered and sent again later.
    Failed(String),
    /// Switched off for a reason already said once.
    Skipped(String),
}
