//! Graph change notifications for the objects whose change can weaken the
//! lockdown: the technician groups (membership), the break-glass accounts and the
//! service account. (Graph does not notify on CA policies or named locations; the
//! watch covers those.)
//!
//! Lifecycle: subscriptions are created and renewed by `RenewSubscriptionsTimer`;
//! `reauthorizationRequired` → reauthorize, `subscriptionRemoved` → recreate,
//! `missed` → full reconcile of the MSP tenant. Each subscription has its own
//! random `clientState`, compared in constant time: a mismatch is logged and dropped.

use crate::config::Config;
use crate::graph::{GraphClient, GraphError};
use crate::model::{ChangeNotificationCollection, LifecycleEvent, Subscription, User};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The store kind subscriptions are kept under.
pub const KIND: &str = "subscription";

/// A subscription caguard made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionRecord {
    pub id: String,
    pub resource: String,
    pub change_type: String,
    /// The shared secret Graph echoes back in every notification.
    pub client_state: String,
    pub expiration: String,
}

/// Equal, without revealing where they differ through timing.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn new_client_state() -> String {
    (0..32).map(|_| format!("{:02x}", fastrand::u8(..))).collect()
}

/// Users and groups have a maximum subscription lifetime of 41,760 minutes; caguard asks for 28 days.
fn expiry(from: chrono::DateTime<chrono::Utc>) -> String {
    (from + chrono::Duration::days(28)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The resources to watch: each technician group, each break-glass account and the service account.
pub async fn wanted(client: &GraphClient, config: &Config) -> Result<Vec<(String, &'static str)>, GraphError> {
    let mut out: Vec<(String, &'static str)> =
        config.technician_groups().into_iter().map(|g| (format!("groups/{g}"), "updated")).collect();
    let services = config.service_accounts.iter().map(|s| &s.account);
    for u in config.break_glass.iter().chain(services) {
        let path =
            format!("/users/{}?$select=id", url::form_urlencoded::byte_serialize(u.as_bytes()).collect::<String>());
        let user: User = client.get(&config.msp_tenant_id, &path).await?;
        if let Some(id) = user.id.into_option() {
            out.push((format!("users/{id}"), "updated,deleted"));
        }
    }
    Ok(out)
}

/// What a renewal pass did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RenewReport {
    pub created: usize,
    pub renewed: usize,
    pub kept: usize,
    pub errors: Vec<String>,
}

async fn create(
    client: &GraphClient,
    config: &Config,
    store: &dyn Store,
    base: &str,
    resource: &str,
    change_type: &str,
) -> Result<(), String> {
    let client_state = new_client_state();
    let body = json!({
        "changeType": change_type,
        "notificationUrl": format!("{base}/api/GraphNotifications"),
        "lifecycleNotificationUrl": format!("{base}/api/GraphLifecycle"),
        "resource": resource,
        "expirationDateTime": expiry(chrono::Utc::now()),
        "clientState": client_state,
        "latestSupportedTlsVersion": "v1_2"
    });
    let sub: Subscription =
        client.post(&config.msp_tenant_id, "/subscriptions", &body).await.map_err(|e| e.to_string())?;
    let record = SubscriptionRecord {
        id: sub.id.into_option().unwrap_or_default(),
        resource: resource.to_string(),
        change_type: change_type.to_string(),
        client_state,
        expiration: body["expirationDateTime"].as_str().unwrap_or_default().to_string(),
    };
    store.put_record(KIND, &record.id, serde_json::to_value(&record).expect("json")).await.map_err(|e| e.to_string())
}

pub async fn records(store: &dyn Store) -> Result<Vec<SubscriptionRecord>, String> {
    let all = store.records(KIND).await.map_err(|e| e.to_string())?;
    Ok(all.into_iter().filter_map(|(_, v)| serde_json::from_value(v).ok()).collect())
}

/// Creates missing subscriptions and renews those expiring within `renew_within`.
pub async fn renew(
    client: &GraphClient,
    config: &Config,
    store: &dyn Store,
    base: &str,
    renew_within: chrono::Duration,
) -> RenewReport {
    let mut report = RenewReport::default();
    let wanted = match wanted(client, config).await {
        Ok(w) => w,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };
    let existing = match records(store).await {
        Ok(r) => r,
        Err(e) => {
            report.errors.push(e);
            return report;
        }
    };
    let now = chrono::Utc::now();
    for (resource, change_type) in wanted {
        let result = match existing.iter().find(|r| r.resource == resource) {
            None => create(client, config, store, base, &resource, change_type).await.map(|()| report.created += 1),
            Some(r) => {
                let expires = chrono::DateTime::parse_from_rfc3339(&r.expiration)
                    .map(|d| d.with_timezone(&chrono::Utc))
                    .unwrap_or(now);
                if expires - now > renew_within {
                    report.kept += 1;
                    Ok(())
                } else {
                    let new_expiry = expiry(now);
                    let patched = client
                        .patch(
                            &config.msp_tenant_id,
                            &format!("/subscriptions/{}", r.id),
                            &json!({"expirationDateTime": new_expiry}),
                        )
                        .await;
                    match patched {
                        Ok(()) => {
                            let renewed = SubscriptionRecord { expiration: new_expiry, ..r.clone() };
                            report.renewed += 1;
                            store
                                .put_record(KIND, &r.id, serde_json::to_value(&renewed).expect("json"))
                                .await
                                .map_err(|e| e.to_string())
                        }
                        // Gone on Graph's side: make a new one.
                        Err(e) if e.status() == Some(404) => {
                            let _ = store.delete_record(KIND, &r.id).await;
                            create(client, config, store, base, &resource, change_type)
                                .await
                                .map(|()| report.created += 1)
                        }
                        Err(e) => Err(e.to_string()),
                    }
                }
            }
        };
        if let Err(e) = result {
            report.errors.push(format!("{resource}: {e}"));
        }
    }
    report
}

/// What to do about a batch of notifications.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Triage {
    /// Valid notifications: the MSP tenant needs a reconcile.
    pub reconcile: bool,
    /// Notifications dropped (unknown subscription or wrong clientState).
    pub dropped: usize,
    pub accepted: usize,
}

/// Checks each notification's clientState against its subscription's.
pub fn triage(body: &ChangeNotificationCollection, subs: &[SubscriptionRecord]) -> Triage {
    let mut t = Triage::default();
    for n in body.value.as_ref().map(Vec::as_slice).unwrap_or_default() {
        let id = n.subscription_id.as_ref().map(String::as_str).unwrap_or_default();
        let state = n.client_state.as_ref().map(String::as_str).unwrap_or_default();
        let known = subs.iter().find(|s| s.id == id);
        match known {
            Some(s) if constant_time_eq(&s.client_state, state) => {
                t.accepted += 1;
                t.reconcile = true;
            }
            _ => t.dropped += 1,
        }
    }
    if t.dropped > 0 {
        // One line per request, rate-limited: a flood of forged notifications cannot fill the logs.
        crate::logging::warn(
            "GraphNotifications",
            &format!("{} notification(s) dropped: unknown subscription or clientState mismatch", t.dropped),
        );
    }
    t
}

/// What a lifecycle notification calls for.
#[derive(Clone, Debug, PartialEq)]
pub enum Lifecycle {
    Reauthorize(String),
    Recreate(SubscriptionRecord),
    /// Notifications were lost: reconcile the MSP tenant in full.
    FullReconcile,
}

/// Lifecycle notifications, each checked against its subscription's clientState.
pub fn lifecycle(body: &ChangeNotificationCollection, subs: &[SubscriptionRecord]) -> (Vec<Lifecycle>, usize) {
    let mut out = Vec::new();
    let mut dropped = 0;
    for n in body.value.as_ref().map(Vec::as_slice).unwrap_or_default() {
        let id = n.subscription_id.as_ref().map(String::as_str).unwrap_or_default();
        let state = n.client_state.as_ref().map(String::as_str).unwrap_or_default();
        let Some(sub) = subs.iter().find(|s| s.id == id && constant_time_eq(&s.client_state, state)) else {
            dropped += 1;
            continue;
        };
        match n.lifecycle_event.as_ref() {
            Some(LifecycleEvent::ReauthorizationRequired) => out.push(Lifecycle::Reauthorize(sub.id.clone())),
            Some(LifecycleEvent::SubscriptionRemoved) => out.push(Lifecycle::Recreate(sub.clone())),
            Some(LifecycleEvent::Missed) => out.push(Lifecycle::FullReconcile),
            _ => dropped += 1,
        }
    }
    if dropped > 0 {
        crate::logging::warn(
            "GraphLifecycle",
            &format!(
                "{dropped} lifecycle notification(s) dropped: unknown subscription, clientState mismatch or unknown event"
            ),
        );
    }
    (out, dropped)
}

/// Carries out the lifecycle actions that talk to Graph; returns whether a full reconcile is due.
pub async fn act(
    client: &GraphClient,
    config: &Config,
    store: &dyn Store,
    base: &str,
    actions: Vec<Lifecycle>,
) -> (bool, Vec<String>) {
    let mut full = false;
    let mut errors = Vec::new();
    for a in actions {
        let r = match a {
            Lifecycle::Reauthorize(id) => client
                .post_no_content(&config.msp_tenant_id, &format!("/subscriptions/{id}/reauthorize"), &json!({}))
                .await
                .map_err(|e| e.to_string()),
            // The new one first: the old record is forgotten only once its replacement
            // is stored, so a recreate that fails or is cut short (Graph slow past the
            // 3 s budget) leaves the record, and Graph's redelivery is recognised.
            Lifecycle::Recreate(old) => {
                match create(client, config, store, base, &old.resource, &old.change_type).await {
                    Ok(()) => store.delete_record(KIND, &old.id).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                }
            }
            Lifecycle::FullReconcile => {
                full = true;
                Ok(())
            }
        };
        if let Err(e) = r {
            errors.push(e);
        }
    }
    (full, errors)
}
