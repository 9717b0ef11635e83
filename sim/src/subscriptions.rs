//! Graph change-notification subscriptions: creation (with Graph's validation
//! handshake against the notification URL, which is async), reads, renewals and
//! deletes, and Graph's lifetime rules.

use crate::graph::{self, Req, Resp, error, merge, not_found, tenant};
use crate::server::{Shared, lock};
use crate::state::{Actor, State, new_guid};
use serde_json::{Value, json};
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
    if let Err(e) = check_expiry(&resource, sub["expirationDateTime"].as_str().unwrap_or_default()) {
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
    insert_subscription(&mut lock(s), tenant, &app_id, sub, base)
}

/// Subscription GET / PATCH / DELETE.
pub(crate) fn subscription(state: &mut State, req: &Req, id: &str) -> Resp {
    let subs = &mut tenant(state, req).spec.subscriptions;
    let Some(idx) = subs.iter().position(|s| s["id"].as_str() == Some(id)) else { return not_found(id) };
    match req.method {
        "GET" => Resp::new(200, Some(subs[idx].clone())),
        "PATCH" => {
            let Some(exp) = req.body.as_ref().and_then(|b| b.get("expirationDateTime")).and_then(Value::as_str) else {
                return error(400, "BadRequest", "expirationDateTime is required.");
            };
            let resource = subs[idx]["resource"].as_str().unwrap_or_default().to_string();
            if let Err(e) = check_expiry(&resource, exp) {
                return error(400, "ExtensionError", &e);
            }
            subs[idx]["expirationDateTime"] = json!(exp);
            Resp::new(200, Some(subs[idx].clone()))
        }
        "DELETE" => {
            subs.remove(idx);
            Resp::new(204, None)
        }
        _ => error(405, "BadRequest", "Method not allowed."),
    }
}

/// Graph's subscription lifetime rules: in the future, and at most 41,760
/// minutes (29 days) for users and groups, 4,230 minutes otherwise.
pub(crate) fn check_expiry(resource: &str, exp: &str) -> Result<(), String> {
    let at = chrono::DateTime::parse_from_rfc3339(exp)
        .map_err(|_| format!("expirationDateTime '{exp}' is not a valid date."))?;
    let now = chrono::Utc::now();
    let max_minutes = if resource.trim_start_matches('/').to_ascii_lowercase().starts_with("users")
        || resource.trim_start_matches('/').to_ascii_lowercase().starts_with("groups")
    {
        41_760
    } else {
        4_230
    };
    if at < now {
        return Err(format!("Subscription expiration '{exp}' is in the past."));
    }
    if at > now + chrono::Duration::minutes(max_minutes) {
        return Err(format!("Subscription expiration can only be {max_minutes} minutes in the future."));
    }
    Ok(())
}

/// Stores a subscription whose handshake succeeded.
pub(crate) fn insert_subscription(
    state: &mut State,
    tenant_id: &str,
    app_id: &str,
    mut sub: Value,
    base: &str,
) -> Resp {
    sub["id"] = json!(new_guid());
    sub["applicationId"] = json!(app_id);
    sub["creatorId"] = json!(new_guid());
    if sub.get("latestSupportedTlsVersion").is_none() {
        sub["latestSupportedTlsVersion"] = json!("v1_2");
    }
    sub["notificationContentType"] = json!("application/json");
    // Graph answers with every property, defaulted when not sent.
    for (k, v) in [
        ("clientState", Value::Null),
        ("lifecycleNotificationUrl", Value::Null),
        ("encryptionCertificate", Value::Null),
        ("encryptionCertificateId", Value::Null),
        ("includeResourceData", json!(false)),
    ] {
        if sub.get(k).is_none() {
            sub[k] = v;
        }
    }
    if let Some(t) = state.tenants.get_mut(tenant_id) {
        t.spec.subscriptions.push(sub.clone());
    }
    let mut body = json!({"@odata.context": format!("{base}/$metadata#subscriptions/$entity")});
    merge(&mut body, &sub);
    Resp::new(201, Some(body))
}
