//! `GET /api/ui`: a read-only status page, server-rendered HTML and CSS (no
//! script, no build step), behind the function key like the rest of the API:
//! every tenant's result with the next step, held plans as diffs, drift history
//! with who changed what, and the pauses in force.

use super::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use std::fmt::Write;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// What a person can do about a result.
fn next_step(outcome: &str, reason: &str) -> &'static str {
    match outcome {
        "failed" => "Read the reason; caguard retries on the next run.",
        "held" if reason.contains("confirm") || reason.contains("limit") => {
            "Review the held plan below and approve it."
        }
        "held" => "Fix what the reason names (config or tenant); caguard does not write until then.",
        "unknown" => "Discovery failed: check the MSP tenant's GDAP access.",
        "skipped" if reason.contains("paused") => "Paused: resume when the incident is over.",
        "skipped" if reason.contains("consent") || reason.contains("token") => {
            "Grant consent or the GDAP roles caguard needs."
        }
        "skipped" if reason.contains("P1") => "The tenant needs Entra ID P1 for Conditional Access.",
        "skipped" => "Nothing to do unless that is unexpected.",
        _ => "",
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;width:100%;margin-bottom:2rem}\
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}th{background:#f3f3f3}\
.fixed,.compliant{color:#1a7f37}.failed,.held,.unknown{color:#b42318}.skipped{color:#8a6100}\
pre{background:#f8f8f8;padding:.5rem;overflow-x:auto}.add{color:#1a7f37}.del{color:#b42318}.chg{color:#8a6100}";

fn diff_html(lines: &[String]) -> String {
    let mut out = String::from("<pre>");
    for l in lines {
        let class = match l.get(..2) {
            Some("+ ") => "add",
            Some("- ") => "del",
            _ => "chg",
        };
        let _ = writeln!(out, "<span class=\"{class}\">{}</span>", esc(l));
    }
    out.push_str("</pre>");
    out
}

pub(super) async fn page(State(app): State<App>) -> Response {
    let Ok(r) = app.as_ref() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "caguard is not configured").into_response();
    };
    let store = r.store.as_ref();
    let statuses = store.statuses().await.unwrap_or_default();
    let held = crate::approval::held(store).await.unwrap_or_default();
    let drift = store.drift_records(None).await.unwrap_or_default();
    let (pauses, _) = crate::pause::load(Some(store), chrono::Utc::now()).await;
    let undelivered = crate::alert::undelivered(store).await;
    let mut h = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>caguard status</title><style>{STYLE}</style></head><body><h1>caguard status</h1>"
    );
    pauses_html(&mut h, &pauses.0);
    undelivered_html(&mut h, &undelivered);
    tenants_html(&mut h, &statuses);
    held_html(&mut h, &held);
    drift_html(&mut h, &drift);
    h.push_str("</body></html>");
    Html(h).into_response()
}

fn pauses_html(h: &mut String, pauses: &[crate::pause::Pause]) {
    let _ = write!(h, "<h2>Pauses ({})</h2>", pauses.len());
    if pauses.is_empty() {
        h.push_str("<p>None: caguard enforces every control it is configured to.</p>");
    }
    for p in pauses {
        let _ = write!(h, "<p class=\"skipped\">{}</p>", esc(&p.describe()));
    }
}

fn undelivered_html(h: &mut String, undelivered: &[crate::alert::Undelivered]) {
    let _ = write!(h, "<h2>Undelivered alerts ({})</h2>", undelivered.len());
    if undelivered.is_empty() {
        h.push_str("<p>None: every alert reached every channel.</p>");
        return;
    }
    h.push_str("<table><tr><th>Channel</th><th>Alert</th><th>Error</th><th>Tries</th><th>Since</th></tr>");
    for u in undelivered {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"failed\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&u.channel),
            esc(&u.alert.title()),
            esc(&crate::logging::bounded(&u.error)),
            u.attempts,
            esc(&u.first_failed_at)
        );
    }
    h.push_str("</table>");
}

fn tenants_html(h: &mut String, statuses: &[crate::store::TenantStatus]) {
    let _ = write!(
        h,
        "<h2>Tenants ({})</h2><table><tr><th>Tenant</th><th>Result</th><th>Reason</th><th>Next step</th><th>At</th></tr>",
        statuses.len()
    );
    for s in statuses {
        let reason = s.reason.as_deref().unwrap_or("");
        let _ = write!(
            h,
            "<tr><td>{} <small>{}</small></td><td class=\"{o}\">{o}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.tenant_name),
            esc(&s.tenant_id),
            esc(reason),
            next_step(&s.outcome, reason),
            esc(&s.at),
            o = esc(&s.outcome)
        );
    }
    h.push_str("</table>");
}

fn held_html(h: &mut String, held: &[crate::approval::HeldPlan]) {
    let _ = write!(h, "<h2>Held plans ({})</h2>", held.len());
    for p in held {
        let _ = write!(
            h,
            "<h3>{} <small>{}</small></h3><p>{}</p><p>Approve: <code>POST /api/plans/{}/approve</code></p>",
            esc(&p.tenant_name),
            esc(&p.tenant_id),
            esc(&p.reason),
            esc(&p.id)
        );
        for a in &p.actions {
            let _ = write!(h, "<h4>{}</h4>{}", esc(&a.headline), diff_html(&a.diff));
        }
    }
}

fn drift_html(h: &mut String, drift: &[crate::store::DriftRecord]) {
    let _ = write!(
        h,
        "<h2>Drift history ({})</h2><table><tr><th>When</th><th>Tenant</th><th>Control</th><th>Object</th><th>Changed by</th><th>Result</th></tr>",
        drift.len()
    );
    for d in drift.iter().take(200) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.detected_at),
            esc(&d.tenant_name),
            esc(&d.control),
            esc(&d.object_name),
            esc(&d.changed_by),
            esc(&d.result)
        );
    }
    h.push_str("</table>");
}
