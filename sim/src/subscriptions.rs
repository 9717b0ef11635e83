//! Graph change-notification subscriptions: creation needs Graph's validation
//! handshake against the notification URL, which is async and so lives here
//! rather than in the synchronous `graph` routes.

use crate::graph::{self, Resp};
use crate::server::{Shared, lock};
use crate::state::{Actor, new_guid};
use serde_json::Value;
use std::time::Duration;

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Graph's validation handshake: POST `?validationToken=…` and expect the token
/// echoed as text/plain within 10 s. Only loopback endpoints can be reached from
/// here; others are accepted without a handshake (documented in estate-format.md).
async fn handshake(url: &str) -> Result<(), String> {
    let u = url::Url::parse(url).map_err(|_| format!("'{url}' is not a valid URL."))?;
    let loopback = is_loopback(&u);
    if u.scheme() != "https" && !loopback {
        return Err(format!("Subscription notification URL '{url}' must use https."));
    }
    if !loopback {
        return Ok(());
    }
    let token =
        format!("Validation: Testing client application reachability for subscription Request-Id: {}", new_guid());
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
    let resp = client
        .post(u)
        .query(&[("validationToken", &token)])
        .send()
        .await
        .map_err(|e| format!("Subscription validation request failed: {e}"))?;
    let ok = resp.status() == reqwest::StatusCode::OK;
    let text = resp.text().await.unwrap_or_default();
    if ok && text == token {
        Ok(())
    } else {
        Err("Subscription validation request failed. Response must exactly match validationToken query parameter."
            .into())
    }
}

pub(crate) async fn create_subscription(
    s: &Shared,
    tenant: &str,
    actor: &Actor,
    body: Option<Value>,
    base: &str,
) -> Resp {
    let Some(sub) = body.filter(Value::is_object) else {
        return graph::error(400, "BadRequest", "A request body is required.");
    };
    for key in ["changeType", "notificationUrl", "resource", "expirationDateTime"] {
        if sub.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
            return graph::error(400, "BadRequest", &format!("{key} is required."));
        }
    }
    let resource = sub["resource"].as_str().unwrap_or_default().to_string();
    if let Err(e) = graph::check_expiry(&resource, sub["expirationDateTime"].as_str().unwrap_or_default()) {
        return graph::error(400, "ExtensionError", &e);
    }
    for key in ["notificationUrl", "lifecycleNotificationUrl"] {
        if let Some(url) = sub.get(key).and_then(Value::as_str)
            && let Err(e) = handshake(url).await
        {
            return graph::error(400, "ValidationError", &e);
        }
    }
    let app_id = match actor {
        Actor::App { app_id, .. } => app_id.clone(),
        Actor::User { .. } => String::new(),
    };
    graph::insert_subscription(&mut lock(s), tenant, &app_id, sub, base)
}
