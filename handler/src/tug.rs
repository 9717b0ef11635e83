//! Tug-of-war: the same actor reverting the same object again and again (most
//! often CIPP's CA template standard, which rewrites whole policies every 12 hours
//! in remediate mode). caguard keeps enforcing, and says once a day what would end it.

use crate::alert::Alert;
use crate::store::Store;
use serde_json::json;

/// The store kind, one per tenant (`revert-{tenant}`): one record per (object, actor).
pub fn kind(tenant: &str) -> String {
    format!("revert-{}", tenant.to_ascii_lowercase())
}
/// Reverts within [`WINDOW_HOURS`] that make a tug-of-war.
pub const THRESHOLD: usize = 3;
pub const WINDOW_HOURS: i64 = 24;

/// One revert of caguard's setting, as a drift record found it.
pub struct Revert<'a> {
    pub tenant_id: &'a str,
    pub tenant_name: &'a str,
    pub object_id: &'a str,
    pub object_name: &'a str,
    pub control: &'a str,
    pub actor: &'a str,
    pub by_cipp: bool,
    /// What in CIPP made the change, when its audit record says.
    pub cipp_source: Option<&'a crate::audit::CippSource>,
}

/// Records a revert; returns the tug-of-war alert when this is the third (or later)
/// in 24 hours and none was sent for this pair in the last 24 hours.
pub async fn revert(store: &dyn Store, r: &Revert<'_>) -> Option<Alert> {
    if r.actor.is_empty() || r.actor == "unknown" {
        return None;
    }
    let key = format!("{:016x}", crate::alert::fnv1a(&format!("{}|{}|{}", r.tenant_id, r.object_id, r.actor)));
    let now = chrono::Utc::now();
    let window = chrono::Duration::hours(WINDOW_HOURS);
    let kind = kind(r.tenant_id);
    let all = store.records(&kind).await.ok()?;
    let old = all.into_iter().find(|(k, _)| *k == key).map(|(_, v)| v).unwrap_or(json!({}));
    let parse = |t: &serde_json::Value| t.as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let mut times: Vec<_> =
        old["at"].as_array().into_iter().flatten().filter_map(parse).filter(|t| now - t.to_utc() < window).collect();
    times.push(now.into());
    let last_alert = parse(&old["alertedAt"]).filter(|t| now - t.to_utc() < window);
    let due = times.len() >= THRESHOLD && last_alert.is_none();
    let alerted = if due { Some(now.to_rfc3339()) } else { last_alert.map(|t| t.to_rfc3339()) };
    let at: Vec<String> = times.iter().map(|t| t.to_rfc3339()).collect();
    let value = json!({"tenant": r.tenant_id, "object": r.object_id, "actor": r.actor, "at": at, "alertedAt": alerted});
    if let Err(e) = store.put_record(&kind, &key, value).await {
        tracing::warn!("a revert could not be recorded: {e}");
    }
    due.then(|| alert(r, times.len()))
}

fn alert(r: &Revert<'_>, count: usize) -> Alert {
    use crate::audit::CippSource;
    let template = match r.cipp_source {
        Some(CippSource::Standard { template_id }) => format!(" (the one standards template {template_id} deploys)"),
        _ => String::new(),
    };
    let remedy = match (r.by_cipp, r.control) {
        (true, "D1") => format!(
            "add the service-provider exclusion (guest type serviceProvider, the MSP's tenant id) to the CIPP \
             Conditional Access template its standard deploys here{template}, or take this tenant out of that \
             standard's remediation"
        ),
        (true, _) => "change the CIPP standard or template that deploys this object so it matches what caguard \
                      enforces, or take this tenant out of that standard's remediation"
            .to_string(),
        _ => format!("ask {} why, then fix the process behind it, or pause this control", r.actor),
    };
    Alert {
        tenant_id: r.tenant_id.into(),
        tenant_name: r.tenant_name.into(),
        kind: crate::alert::kind::TUG_OF_WAR.into(),
        message: format!(
            "{} \"{}\" was reverted {count} times in {WINDOW_HOURS} hours by {}; caguard restored it each time \
             and keeps enforcing. To stop the tug-of-war: {remedy}.",
            r.control, r.object_name, r.actor
        ),
        control: Some(r.control.into()),
        object_id: Some(format!("tug-{}", r.object_id)),
        object_name: Some(r.object_name.into()),
        changed_by: Some(r.actor.into()),
        ..Default::default()
    }
}
