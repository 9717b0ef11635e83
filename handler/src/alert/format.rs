//! Each channel's payload, inside that channel's documented limits and escaped
//! for that channel's markup. A text that does not fit is cut with a visible
//! "…" and a pointer to the alert record that keeps the full text.
//!
//! Limits relied on:
//! - Slack Block Kit: a header's `plain_text` at most 150 characters, a section's
//!   text at most 3,000, each of at most 10 fields at most 2,000; over that Slack
//!   answers 400 `invalid_blocks` (api.slack.com/reference/block-kit/blocks).
//!   `&`, `<` and `>` are Slack's control characters and are sent as `&amp;`,
//!   `&lt;`, `&gt;` (api.slack.com/reference/surfaces/formatting#escaping).
//! - Teams: a message posted through a webhook is limited to 28 KB; caguard keeps
//!   its card under [`TEAMS_MAX_BYTES`]. TextBlock text is a Markdown subset, so
//!   `*`, `_`, `[`, `]` and `\` are backslash-escaped; Adaptive Cards render no HTML.
//! - Email: HTML-escaped; Graph's `sendMail` takes messages far larger than an alert.

use super::Alert;
use serde_json::{Value, json};

pub const SLACK_HEADER_MAX: usize = 150;
pub const SLACK_SECTION_MAX: usize = 3000;
pub const SLACK_FIELD_MAX: usize = 2000;
pub const SLACK_MAX_FIELDS: usize = 10;
/// Teams refuses webhook messages over 28 KB; caguard stays well under it.
pub const TEAMS_MAX_BYTES: usize = 24 * 1024;
/// An email carries the message in full up to this many characters.
pub const EMAIL_MESSAGE_MAX: usize = 100_000;

/// What a payload needs besides the alert.
#[derive(Clone, Debug)]
pub struct Context {
    /// How many times this alert was raised in the previous window.
    pub earlier: u32,
    pub at: chrono::DateTime<chrono::Utc>,
    /// The alert record that keeps the full text (named where text is cut).
    pub record: String,
    /// caguard's status page, for CIPP's `ActionUrl` (omitted when not configured).
    pub status_url: Option<String>,
}

impl Context {
    fn cut_note(&self) -> String {
        format!(" [truncated; full text in caguard alert record {}]", self.record)
    }
}

/// `text` escaped by `escape`, at most `max` characters after escaping. When it
/// does not fit it is cut on a character boundary (never inside an entity) and
/// ends with "…" and `note`. Returns the text and whether it was cut.
pub fn fit(text: &str, max: usize, escape: fn(char, &mut String), note: &str) -> (String, bool) {
    let mut whole = String::new();
    for c in text.chars() {
        escape(c, &mut whole);
    }
    if whole.chars().count() <= max {
        return (whole, false);
    }
    let tail = format!("…{note}");
    let budget = max.saturating_sub(tail.chars().count());
    let mut out = String::new();
    let mut used = 0;
    let mut piece = String::new();
    for c in text.chars() {
        piece.clear();
        escape(c, &mut piece);
        let n = piece.chars().count();
        if used + n > budget {
            break;
        }
        used += n;
        out.push_str(&piece);
    }
    // A note longer than the limit itself is cut too: the limit always holds.
    out.push_str(&tail);
    (out.chars().take(max).collect(), true)
}

pub fn plain(c: char, out: &mut String) {
    out.push(c);
}

/// Slack mrkdwn: `&`, `<`, `>` as HTML entities, nothing else.
pub fn slack(c: char, out: &mut String) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        c => out.push(c),
    }
}

/// Adaptive Card TextBlock Markdown: its control characters backslash-escaped.
pub fn teams(c: char, out: &mut String) {
    if matches!(c, '\\' | '*' | '_' | '[' | ']') {
        out.push('\\');
    }
    out.push(c);
}

/// HTML text.
pub fn html(c: char, out: &mut String) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&#39;"),
        c => out.push(c),
    }
}

/// The alert's facts as (label, value) pairs.
pub fn facts(a: &Alert, earlier: u32) -> Vec<(&'static str, String)> {
    let mut f = vec![("Tenant", format!("{} ({})", a.tenant_name, a.tenant_id)), ("Kind", a.kind.clone())];
    if let Some(d) = &a.tenant_domain {
        f.push(("Domain", d.clone()));
    }
    let optional = [
        ("Control", &a.control),
        ("Object", &a.object_name),
        ("Changed by", &a.changed_by),
        ("Changed at", &a.changed_at),
    ];
    f.extend(optional.into_iter().filter_map(|(t, v)| v.clone().map(|v| (t, v))));
    if earlier > 1 {
        f.push(("Earlier", format!("{earlier} times in the previous window")));
    }
    f
}

/// A Slack incoming-webhook message (header, fields, text), within Block Kit's limits.
pub fn slack_message(a: &Alert, cx: &Context) -> (Value, bool) {
    let note = cx.cut_note();
    let title = a.title();
    let (header, cut_h) = fit(&title, SLACK_HEADER_MAX, plain, "");
    let mut cut = cut_h;
    let fields: Vec<Value> = facts(a, cx.earlier)
        .into_iter()
        .take(SLACK_MAX_FIELDS)
        .map(|(t, v)| {
            let (v, c) = fit(&v, SLACK_FIELD_MAX - t.len() - 3, slack, "");
            cut |= c;
            json!({"type": "mrkdwn", "text": format!("*{t}*\n{v}")})
        })
        .collect();
    let (message, cut_m) = fit(&a.message, SLACK_SECTION_MAX, slack, &note);
    let (fallback, _) = fit(&format!("{title}: {}", a.message), SLACK_SECTION_MAX, slack, &note);
    let body = json!({
        "text": fallback,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": header}},
            {"type": "section", "fields": fields},
            {"type": "section", "text": {"type": "mrkdwn", "text": message}}
        ]
    });
    (body, cut || cut_m)
}

/// A Teams Workflows webhook message with an Adaptive Card, under [`TEAMS_MAX_BYTES`].
pub fn teams_card(a: &Alert, cx: &Context) -> (Value, bool) {
    let note = cx.cut_note();
    // A card is read in a chat: a long message is cut (the record keeps it whole).
    let mut budget = 4_000;
    loop {
        let mut cut = false;
        let facts: Vec<Value> = facts(a, cx.earlier)
            .into_iter()
            .map(|(t, v)| {
                let (v, c) = fit(&v, 1000, teams, "");
                cut |= c;
                json!({"title": t, "value": v})
            })
            .collect();
        let (title, c1) = fit(&a.title(), 400, teams, "");
        let (message, c2) = fit(&a.message, budget, teams, &note);
        let card = json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": title, "wrap": true},
                        {"type": "FactSet", "facts": facts},
                        {"type": "TextBlock", "text": message, "wrap": true}
                    ]
                }
            }]
        });
        // Multi-byte text can weigh more than its characters: shrink until it fits.
        if card.to_string().len() <= TEAMS_MAX_BYTES || budget < 500 {
            return (card, cut || c1 || c2);
        }
        budget /= 2;
    }
}

/// caguard's own JSON schema (documented in docs/alerts.md): the full text.
pub fn caguard_payload(a: &Alert, cx: &Context) -> Value {
    json!({
        "schema": "caguard.alert/1",
        "generatedAt": cx.at.to_rfc3339(),
        "title": a.title(),
        "kind": a.kind,
        "tenant": {"id": a.tenant_id, "name": a.tenant_name, "domain": a.tenant_domain},
        "control": a.control,
        "object": {"id": a.object_id, "name": a.object_name},
        "message": a.message,
        "changedBy": a.changed_by,
        "changedAt": a.changed_at,
        "diff": {"before": a.before, "after": a.after},
        "countPreviousWindow": cx.earlier,
        "record": cx.record,
    })
}

/// CIPP's standardized webhook schema, as CIPP itself fills it
/// (CyberDrain/CIPP `backend/Modules/CIPPCore/Public/New-CIPPStandardizedWebhookSchema.ps1`):
/// `alertCount` is the number of `payload` items; `tenant` is CIPP's tenant filter,
/// the tenant's default domain (Invoke-CIPPWebhookProcessing passes
/// `$Tenant.defaultDomainName`), with the id in the payload; `ActionText` goes with
/// `ActionUrl` (Get-SlackAlertBlocks makes a button of the pair), or neither.
pub fn cipp_payload(a: &Alert, cx: &Context) -> Value {
    let mut item = json!({
        "Title": a.title(),
        "RawData": {
            "Message": a.message,
            "Kind": a.kind,
            "TenantId": a.tenant_id,
            "TenantName": a.tenant_name,
            "Control": a.control,
            "ObjectId": a.object_id,
            "ObjectName": a.object_name,
            "ChangedBy": a.changed_by,
            "ChangedAt": a.changed_at,
            "Before": a.before,
            "After": a.after,
            "CountPreviousWindow": cx.earlier,
            "Record": cx.record
        }
    });
    if let Some(url) = &cx.status_url {
        item["ActionUrl"] = json!(url);
        item["ActionText"] = json!("Open caguard status");
    }
    let payload = vec![item];
    json!({
        "schemaVersion": "1.0",
        "source": "caguard",
        "invoking": a.kind,
        "title": a.title(),
        "tenant": a.tenant_domain.clone().unwrap_or_else(|| a.tenant_id.clone()),
        "generatedAt": cx.at.to_rfc3339(),
        "alertCount": payload.len(),
        "payload": payload,
    })
}

/// The `sendMail` body: subject, the message and an HTML table of the facts.
pub fn mail_body(a: &Alert, cx: &Context, to: &[String]) -> (Value, bool) {
    let esc = |s: &str| fit(s, usize::MAX, html, "").0;
    let rows: String = facts(a, cx.earlier)
        .into_iter()
        .map(|(t, v)| format!("<tr><th align=\"left\">{t}</th><td>{}</td></tr>", esc(&v)))
        .collect();
    let (message, cut) = fit(&a.message, EMAIL_MESSAGE_MAX, html, &cx.cut_note());
    let body = json!({
        "message": {
            "subject": fit(&a.title(), 255, plain, "").0,
            "body": {"contentType": "HTML", "content": format!("<p>{message}</p><table>{rows}</table>")},
            "toRecipients": to.iter().map(|t| json!({"emailAddress": {"address": t}})).collect::<Vec<_>>()
        },
        "saveToSentItems": false
    });
    (body, cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_never_cuts_inside_an_entity_and_keeps_the_limit() {
        let text = "<&>".repeat(2000);
        let (out, cut) = fit(&text, 100, slack, " [more]");
        assert!(cut);
        assert!(out.chars().count() <= 100, "{}", out.chars().count());
        assert!(out.ends_with("… [more]"));
        let body = out.trim_end_matches("… [more]");
        assert!(body.replace("&lt;", "").replace("&amp;", "").replace("&gt;", "").is_empty(), "{body}");
        assert_eq!(fit("short & sweet", 100, slack, "x"), ("short &amp; sweet".to_string(), false));
    }

    #[test]
    fn teams_escapes_markdown_controls() {
        assert_eq!(fit("a*b_c[d]\\", 100, teams, "").0, "a\\*b\\_c\\[d\\]\\\\");
    }
}
