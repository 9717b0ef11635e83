//! The forwarded webhooks: Graph change and lifecycle notifications, and Partner
//! Center's GDAP events (verified, handled once).

use super::*;

/// Graph's validation handshake: echo the decoded token as text/plain. Nothing else is ever echoed.
pub(super) fn validation(q: &std::collections::HashMap<String, String>) -> Option<Response> {
    q.get("validationToken")
        .map(|t| (StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "text/plain")], t.clone()).into_response())
}

/// Graph has 3 s to hear back; caguard answers well within it.
pub(super) const NOTIFICATION_BUDGET: std::time::Duration = std::time::Duration::from_millis(2500);

pub(super) type Work<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send + 'a>>;

/// What Graph's notification endpoints share: the validation echo, the body, and
/// an answer within Graph's 3 s — 202 once the work is done or queued, 503 (so
/// Graph delivers again) when it is not.
pub(super) async fn notification_endpoint(
    name: &str,
    app: &App,
    q: &std::collections::HashMap<String, String>,
    body: &[u8],
    work: impl for<'a> FnOnce(&'a Ready, crate::model::ChangeNotificationCollection) -> Work<'a>,
) -> Response {
    if let Some(echo) = validation(q) {
        return echo;
    }
    let Ok(r) = app.as_ref() else { return StatusCode::SERVICE_UNAVAILABLE.into_response() };
    let Ok(notes) = serde_json::from_slice::<crate::model::ChangeNotificationCollection>(body) else {
        return problem(StatusCode::BAD_REQUEST, format!("{name}: the body is not a notification collection"));
    };
    match tokio::time::timeout(NOTIFICATION_BUDGET, work(r, notes)).await {
        Ok(Ok(summary)) => {
            tracing::info!("{name}: {summary}");
            StatusCode::ACCEPTED.into_response()
        }
        Ok(Err(e)) => problem(StatusCode::SERVICE_UNAVAILABLE, format!("{name}: {e}")),
        Err(_) => problem(StatusCode::SERVICE_UNAVAILABLE, format!("{name}: took too long")),
    }
}

/// `GraphNotifications` (forwarded HTTP): change notifications for the watched users and groups.
pub(super) async fn graph_notifications(
    State(app): State<App>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    body: Bytes,
) -> Response {
    notification_endpoint("GraphNotifications", &app, &q, &body, |r, notes| {
        Box::pin(async move {
            let subs = crate::notify::records(r.store.as_ref()).await?;
            let t = crate::notify::triage(&notes, &subs);
            if t.reconcile {
                queue_msp_reconcile(r, "membership-change").await?;
            }
            Ok(format!("{} accepted, {} dropped", t.accepted, t.dropped))
        })
    })
    .await
}

/// `GraphLifecycle` (forwarded HTTP): reauthorize, recreate, or reconcile in full after missed notifications.
pub(super) async fn graph_lifecycle(
    State(app): State<App>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    body: Bytes,
) -> Response {
    notification_endpoint("GraphLifecycle", &app, &q, &body, |r, notes| {
        Box::pin(async move {
            let subs = crate::notify::records(r.store.as_ref()).await?;
            let (actions, dropped) = crate::notify::lifecycle(&notes, &subs);
            let base = r.settings.public_url.clone().unwrap_or_default();
            let (full, errors) = crate::notify::act(&r.client, &r.config, r.store.as_ref(), &base, actions).await;
            if full {
                queue_msp_reconcile(r, "missed-notifications").await?;
            }
            if !errors.is_empty() {
                // 503: Graph delivers the lifecycle notification again.
                return Err(format!("{dropped} dropped, {} failed actions: {}", errors.len(), errors.join("; ")));
            }
            Ok(format!("{dropped} dropped"))
        })
    })
    .await
}

/// `PartnerCenterEvents` (forwarded HTTP): GDAP events, verified before anything is done.
pub(super) async fn partner_center_events(
    State(app): State<App>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(r) = app.as_ref() else { return StatusCode::SERVICE_UNAVAILABLE.into_response() };
    if let Err(e) = r.partner.verify(&headers, &body).await {
        crate::logging::warn("PartnerCenterEvents", &format!("Partner Center event refused: {e}"));
        return (StatusCode::UNAUTHORIZED, e.0).into_response();
    }
    let event: crate::partner::Event = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => {
            return problem(StatusCode::BAD_REQUEST, format!("PartnerCenterEvents: not a Partner Center event: {e}"));
        }
    };
    let key = event.dedupe_key();
    if already_handled(r, &key).await {
        let line = format!("{}: a replay of an event already handled; ignored", event.event_name);
        tracing::info!(event = %event.event_name, "{line}");
        return (StatusCode::OK, line).into_response();
    }
    match handle_partner_event(r, &event).await {
        Ok(line) => {
            tracing::info!(event = %event.event_name, "{line}");
            remember_handled(r, &key).await;
            (StatusCode::OK, line).into_response()
        }
        // Not handled: Partner Center delivers again.
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, format!("PartnerCenterEvents {}: {e}", event.event_name)),
    }
}

/// Record kind of the Partner Center events already handled (key → when).
pub(super) const HANDLED_EVENTS: &str = "pc-event";

/// An event with this key was handled within the replay window.
pub(super) async fn already_handled(r: &Ready, key: &str) -> bool {
    let Ok(rows) = r.store.records(HANDLED_EVENTS).await else { return false };
    let window = chrono::Duration::hours(crate::partner::REPLAY_WINDOW_HOURS);
    rows.iter().any(|(k, v)| {
        k == key
            && v["at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| chrono::Utc::now() - t.to_utc() < window)
    })
}

/// Remembers a handled event, and forgets those older than the window.
pub(super) async fn remember_handled(r: &Ready, key: &str) {
    let window = chrono::Duration::hours(crate::partner::REPLAY_WINDOW_HOURS);
    if let Ok(rows) = r.store.records(HANDLED_EVENTS).await {
        let old: Vec<String> = rows
            .into_iter()
            .filter(|(_, v)| {
                v["at"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .is_none_or(|t| chrono::Utc::now() - t.to_utc() >= window)
            })
            .map(|(k, _)| k)
            .collect();
        let _ = r.store.delete_records(HANDLED_EVENTS, old).await;
    }
    let at = chrono::Utc::now().to_rfc3339();
    if let Err(e) = r.store.put_record(HANDLED_EVENTS, key, serde_json::json!({"at": at})).await {
        tracing::warn!("could not record a handled Partner Center event (a replay would be handled again): {e}");
    }
}

pub(super) async fn handle_partner_event(r: &Ready, event: &crate::partner::Event) -> Result<String, String> {
    use crate::partner::Effect;
    let effect = crate::partner::effect(&event.event_name);
    if effect == Effect::Nothing {
        return Ok(format!("{}: nothing to do", event.event_name));
    }
    // The event names the relationship, not the customer: look it up (or, without an id, all of them).
    let customers = r.discover().await?;
    // A new tenant is watched from the next tick; a terminated one stops being polled.
    remember_for_watch(r, &customers).await;
    let targets: Vec<Customer> = match event.relationship_id() {
        Some(id) => {
            let path = format!("/tenantRelationships/delegatedAdminRelationships/{id}");
            let rel: crate::model::DelegatedAdminRelationship =
                r.client.get(&r.config.msp_tenant_id, &path).await.map_err(|e| e.to_string())?;
            let tenant = rel.customer_tenant_id().unwrap_or_default().to_ascii_lowercase();
            customers.into_iter().filter(|c| c.tenant_id == tenant).collect()
        }
        None => {
            // Backstop for events without ResourceUri: every customer caguard has no result for yet.
            let known: Vec<String> = r
                .store
                .statuses()
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|s| s.tenant_id.to_ascii_lowercase())
                .collect();
            customers.into_iter().filter(|c| !known.contains(&c.tenant_id)).collect()
        }
    };
    let mut done = Vec::new();
    for c in targets {
        match effect {
            Effect::Onboard if c.active && !r.config.is_skipped(&c.tenant_id) => {
                let msg = ReconcileMessage {
                    tenant_id: c.tenant_id.clone(),
                    tenant_name: Some(c.name.clone()),
                    reason: event.event_name.clone(),
                    correlation_id: format!("pc-{}", chrono::Utc::now().timestamp_millis()),
                    msp: false,
                    can_write_ca: c.can_write_ca,
                    direct: c.direct,
                    sweep_size: None,
                };
                let queue = r.queue.as_ref().ok_or("no queue configured (AzureWebJobsStorage)")?;
                queue.put(&r.settings.reconcile_queue, &serde_json::to_string(&msg).expect("json")).await?;
                done.push(format!("{} queued", c.name));
            }
            Effect::Offboard(why) if !c.active => {
                let outcome = Outcome::Skipped(format!("GDAP relationship {why}: no longer enforced"));
                record(r, &c.tenant_id, &c.name, &outcome, 0, &event.event_name).await;
                done.push(format!("{} no longer enforced", c.name));
            }
            _ => done.push(format!("{}: nothing to do ({})", c.name, c.status)),
        }
    }
    Ok(format!(
        "{}: {}",
        event.event_name,
        if done.is_empty() { "no matching customer".into() } else { done.join("; ") }
    ))
}
