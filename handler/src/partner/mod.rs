//! Partner Center webhooks: GDAP events, so a new customer is covered as soon as
//! its relationship is active, and a terminated one stops being enforced.
//!
//! Every event is verified before anything is done with it ([`verify`]), and
//! handled once: a replay of an event already handled is acknowledged, not
//! acted on again ([`dedupe_key`]).

mod verify;

pub use verify::{CERT_SUBJECT, DEFAULT_CERT_HOSTS, MAX_CACHED, Rejected, Verifier};

use serde::{Deserialize, Serialize};

/// How long a handled event is remembered, so a replay of it is ignored.
pub const REPLAY_WINDOW_HOURS: i64 = 24;

/// A Partner Center event (PascalCase; some events omit `ResourceUri` or `ResourceName`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Event {
    pub event_name: String,
    #[serde(default)]
    pub resource_uri: Option<String>,
    #[serde(default)]
    pub resource_name: Option<String>,
    #[serde(default)]
    pub audit_uri: Option<serde_json::Value>,
    #[serde(default)]
    pub resource_change_utc_date: Option<String>,
    /// Properties this version does not name.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Event {
    /// The identity of an event for replay detection: its name, resource and
    /// change time (Partner Center's events carry no id of their own).
    pub fn dedupe_key(&self) -> String {
        let id = format!(
            "{}|{}|{}|{}",
            self.event_name,
            self.resource_uri.as_deref().unwrap_or_default(),
            self.resource_name.as_deref().unwrap_or_default(),
            self.resource_change_utc_date.as_deref().unwrap_or_default()
        );
        format!("pc-{:016x}", crate::alert::fnv1a(&id.to_ascii_lowercase()))
    }

    /// The GDAP relationship id from `ResourceUri` (`…/granularAdminRelationships/{id}[/…]`), when present.
    pub fn relationship_id(&self) -> Option<&str> {
        let uri = self.resource_uri.as_deref()?;
        let rest = uri.split("/granularAdminRelationships/").nth(1)?;
        let id = rest.split('/').next()?;
        // It goes into a Graph URL path: hex digits and dashes only (GDAP ids are `<guid>-<guid>`).
        let safe = !id.is_empty() && id.len() <= 100 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        safe.then_some(id)
    }
}

/// What an event calls for.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// A relationship became usable (or its roles changed): reconcile that customer.
    Onboard,
    /// The relationship ended: stop enforcing, record it.
    Offboard(&'static str),
    /// Test and unrelated events.
    Nothing,
}

pub fn effect(event_name: &str) -> Effect {
    match event_name {
        "granular-admin-relationship-approved" | "granular-admin-relationship-activated" => Effect::Onboard,
        n if n.starts_with("granular-admin-access-assignment-") => Effect::Onboard,
        "granular-admin-relationship-terminated" => Effect::Offboard("terminated"),
        "granular-admin-relationship-expired" => Effect::Offboard("expired"),
        _ => Effect::Nothing,
    }
}

/// The GDAP events caguard acts on (plus `test-created`, to test the registration).
pub const EVENTS: &[&str] = &[
    "test-created",
    "granular-admin-relationship-approved",
    "granular-admin-relationship-activated",
    "granular-admin-relationship-terminated",
    "granular-admin-relationship-expired",
    "granular-admin-access-assignment-created",
    "granular-admin-access-assignment-activated",
    "granular-admin-access-assignment-updated",
    "granular-admin-access-assignment-deleted",
];

/// A client for the Partner Center webhook API (`https://api.partnercenter.microsoft.com/webhooks/v1`).
pub fn client(
    base: &str,
    login_base: &str,
    credentials: std::sync::Arc<dyn crate::graph::CredentialSource>,
) -> Result<crate::graph::GraphClient, String> {
    let cfg = crate::graph::GraphConfig {
        graph_base: base.into(),
        login_base: login_base.into(),
        version: "webhooks/v1".into(),
        scope: "https://api.partnercenter.microsoft.com/.default".into(),
        ..Default::default()
    };
    crate::graph::GraphClient::new(cfg, credentials).map_err(|e| e.to_string())
}

/// What `register` found and did.
#[derive(Clone, Debug, PartialEq)]
pub enum Registered {
    /// There was none: caguard's was created (POST).
    Created(serde_json::Value),
    /// caguard's own (same URL) was updated (PUT).
    Updated(serde_json::Value),
    /// Another URL's registration was replaced, as `--replace` asked (PUT).
    Replaced { previous: String, registration: serde_json::Value },
}

/// Registers the partner's webhook to `url` for [`EVENTS`].
///
/// Partner Center keeps **one** registration per partner: its Create call refuses
/// a second one, and a PUT replaces whatever is there (Partner Center REST
/// reference, "Create/Update a webhook registration"). CIPP registers its own URL
/// to onboard new GDAP customers, so a registration that points anywhere else is
/// never replaced unless `replace` says so: the call fails naming the URL it
/// found, and writes nothing. caguard does not need the registration; the watch
/// finds new relationships on every tick ([`crate::watch`]).
pub async fn register(
    client: &crate::graph::GraphClient,
    partner_tenant: &str,
    url: &str,
    replace: bool,
) -> Result<Registered, String> {
    let body = serde_json::json!({ "WebhookUrl": url, "WebhookEvents": EVENTS });
    let existing = match client.get::<serde_json::Value>(partner_tenant, "/registration").await {
        Ok(v) => v,
        Err(e) if e.status() == Some(404) => {
            let created = client.post(partner_tenant, "/registration", &body).await.map_err(|e| e.to_string())?;
            return Ok(Registered::Created(created));
        }
        Err(e) => return Err(e.to_string()),
    };
    let found = existing.get("WebhookUrl").and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
    let ours = found.trim_end_matches('/').eq_ignore_ascii_case(url.trim_end_matches('/'));
    if !ours && !replace {
        return Err(format!(
            "Partner Center already has this partner's one webhook registration, pointing at {found}. \
             It is most likely CIPP's, which onboards new GDAP customers through it; caguard left it alone \
             and wrote nothing. caguard does not need it: the watch finds new GDAP relationships on every \
             tick. To replace it anyway (CIPP's onboarding then stops), run again with --replace."
        ));
    }
    let updated = client.put(partner_tenant, "/registration", &body).await.map_err(|e| e.to_string())?;
    Ok(if ours {
        Registered::Updated(updated)
    } else {
        Registered::Replaced { previous: found, registration: updated }
    })
}
