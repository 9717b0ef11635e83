//! Human-readable plan and result tables.

use crate::config::ControlMode;
use crate::plan::{Block, TenantPlan};
use crate::sweep::SweepReport;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Renders one tenant's plan: what will be written, why, and exactly what is sent.
/// `limit` shortens long plans to their first actions (the demo); `None` shows all.
pub fn plan_text(p: &TenantPlan, out: &mut String, limit: Option<usize>) {
    let enforced = p.enforced().count();
    let reported = p.actions.len() - enforced;
    let head = match &p.block {
        Some(Block::Skip(r)) => format!("skipped: {r}"),
        Some(Block::Hold(r)) if enforced > 0 => format!("HELD ({enforced} writes): {r}"),
        Some(Block::Hold(r)) => format!("HELD: {r}"),
        None if p.actions.is_empty() && !p.withheld.is_empty() => format!("compliant, {} withheld", p.withheld.len()),
        None if p.actions.is_empty() => "compliant".to_string(),
        None => format!("{enforced} to write, {reported} report-only"),
    };
    let _ = writeln!(out, "{} ({}…)  {head}", p.tenant_name, short(&p.tenant_id));
    let shown = limit.unwrap_or(usize::MAX);
    for a in p.actions.iter().take(shown) {
        let mode = if a.mode == ControlMode::Report { " [report]" } else { "" };
        let kind = if a.op.is_policy() { "policy" } else { "named location" };
        let _ = writeln!(out, "  {} {} {kind} \"{}\"{mode}: {}", a.control, a.op.verb(), a.target, a.reason);
        for line in diff(&a.before, &a.body, &p.labels) {
            let _ = writeln!(out, "      {line}");
        }
        let _ = writeln!(out, "      send: {}", a.body);
    }
    if p.actions.len() > shown {
        let _ = writeln!(out, "  … and {} more actions like these", p.actions.len() - shown);
    }
    withheld_text(p, out);
    for c in &p.what_if {
        let mark = if c.ok { "ok" } else { "FAILED" };
        let _ = writeln!(
            out,
            "  what-if {mark}: {} from {} must be {}: {}; Graph: {}",
            c.who, c.ip, c.expect, c.after, c.graph
        );
        if let Some(d) = &c.disagreement {
            let _ = writeln!(out, "      disagreement: {d}");
        }
    }
    for n in &p.notes {
        let _ = writeln!(out, "  note {}: {}", n.control, n.message);
    }
}

/// The change an action makes, property by property: `+` added, `-` removed,
/// `~` changed; string lists as the items added and removed; every id followed by
/// what it is (`p.labels`).
pub fn diff(before: &Value, body: &Value, labels: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    walk(before, body, "", labels, &mut out);
    out
}

fn walk(before: &Value, body: &Value, path: &str, labels: &BTreeMap<String, String>, out: &mut Vec<String>) {
    let old = |k: &str| before.get(k).unwrap_or(&Value::Null);
    match body {
        Value::Object(o) => {
            for (k, v) in o {
                let sub = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                walk(old(k), v, &sub, labels, out);
            }
        }
        Value::Array(new)
            if new.iter().all(Value::is_string) && before.as_array().is_none_or(|a| a.iter().all(Value::is_string)) =>
        {
            let was: Vec<&Value> = before.as_array().map(|a| a.iter().collect()).unwrap_or_default();
            let has = |list: &[&Value], x: &Value| list.iter().any(|y| same_str(y, x));
            let new_refs: Vec<&Value> = new.iter().collect();
            for x in new.iter().filter(|x| !has(&was, x)) {
                out.push(format!("+ {path}: {}", labelled(x, labels)));
            }
            for x in was.iter().filter(|x| !has(&new_refs, x)) {
                out.push(format!("- {path}: {}", labelled(x, labels)));
            }
        }
        _ if body == before => {}
        _ if before.is_null() => out.push(format!("+ {path} = {}", labelled(body, labels))),
        Value::Null => out.push(format!("- {path} (was {})", labelled(before, labels))),
        _ => out.push(format!("~ {path}: {} → {}", labelled(before, labels), labelled(body, labels))),
    }
}

fn same_str(a: &Value, b: &Value) -> bool {
    matches!((a.as_str(), b.as_str()), (Some(x), Some(y)) if x.eq_ignore_ascii_case(y))
}

/// A value as shown: a string with its label when it is a known id, else compact JSON.
fn labelled(v: &Value, labels: &BTreeMap<String, String>) -> String {
    match v.as_str() {
        Some(s) => match labels.get(s) {
            Some(l) => format!("{s} ({l})"),
            None => s.to_string(),
        },
        None => {
            let text = v.to_string();
            if text.len() > 160 {
                format!("{}…", &text[..text.char_indices().nth(160).map_or(text.len(), |(i, _)| i)])
            } else {
                text
            }
        }
    }
}

/// Policies caguard leaves alone, and why: never a failure, always said.
fn withheld_text(p: &TenantPlan, out: &mut String) {
    for w in &p.withheld {
        let _ = writeln!(out, "  {} WITHHELD policy \"{}\": {}", w.control, w.target, w.reason);
        if !w.would_also_exclude.is_empty() {
            let _ = writeln!(out, "      writing it would also exclude: {}", w.would_also_exclude.join("; "));
        }
    }
}

/// The whole plan, tenant by tenant, then a summary line.
pub fn sweep_text(r: &SweepReport, applied: bool, limit: Option<usize>) -> String {
    let mut out = String::new();
    for t in &r.tenants {
        match (&t.result, applied) {
            (Some(res), true) => {
                let reason = res.outcome.reason().map(|r| format!(": {r}")).unwrap_or_default();
                let writes = match res.written {
                    0 => String::new(),
                    1 => " (1 write)".to_string(),
                    n => format!(" ({n} writes)"),
                };
                let _ = writeln!(
                    out,
                    "{} ({}…)  {}{writes}{reason}",
                    t.plan.tenant_name,
                    short(&t.plan.tenant_id),
                    res.outcome.label()
                );
                withheld_text(&t.plan, &mut out);
                if res.written > 0 || !t.plan.notes.is_empty() {
                    for a in res.written_actions(&t.plan).take(limit.unwrap_or(usize::MAX)) {
                        let _ = writeln!(out, "  {} {} \"{}\": {}", a.control, a.op.verb(), a.target, a.reason);
                    }
                    if res.written > limit.unwrap_or(usize::MAX) {
                        let _ = writeln!(out, "  … and {} more writes", res.written - limit.unwrap_or(0));
                    }
                    for n in &t.plan.notes {
                        let _ = writeln!(out, "  note {}: {}", n.control, n.message);
                    }
                }
            }
            (Some(res), false) if res.outcome.reason().is_some() => {
                let _ = writeln!(
                    out,
                    "{} ({}…)  {}: {}",
                    t.plan.tenant_name,
                    short(&t.plan.tenant_id),
                    res.outcome.label(),
                    res.outcome.reason().unwrap_or_default()
                );
                if !t.plan.actions.is_empty() {
                    let mut inner = String::new();
                    plan_text(&t.plan, &mut inner, limit);
                    out.extend(inner.lines().skip(1).map(|l| format!("{l}\n")));
                }
            }
            _ => plan_text(&t.plan, &mut out, limit),
        }
    }
    if let Some(e) = &r.discovery_error {
        let _ = writeln!(
            out,
            "\nDISCOVERY FAILED: {e}\n  the MSP tenant was reconciled; the customers last seen are reported unknown"
        );
    }
    let unknown = match r.count("unknown") {
        0 => String::new(),
        n => format!(", {n} unknown"),
    };
    let s = &r.stats;
    let _ = writeln!(
        out,
        "\n{} tenants: {} compliant, {} fixed, {} with changes planned, {} held, {} skipped, {} failed{unknown}. {} Graph requests ({} reads, {} writes, {} retries, {} throttled) in {:.1}s.",
        r.tenants.len(),
        r.count("compliant"),
        r.count("fixed"),
        r.tenants.iter().filter(|t| t.result.is_none()).count(),
        r.count("held"),
        r.count("skipped"),
        r.count("failed"),
        s.requests,
        s.reads,
        s.writes,
        s.retries,
        s.throttled,
        r.elapsed_ms as f64 / 1000.0
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_diff_shows_added_removed_and_changed_properties_with_labels() {
        let labels = BTreeMap::from([("bg".to_string(), "bg1@contoso".to_string())]);
        let before = json!({"state": "disabled", "conditions": {"users": {"excludeUsers": ["a", "b"]}, "platforms": {"includePlatforms": ["android"]}}});
        let body = json!({"state": "enabled", "conditions": {"users": {"excludeUsers": ["a", "bg"]}, "platforms": null}, "displayName": "X"});
        let lines = diff(&before, &body, &labels);
        assert_eq!(
            lines,
            [
                "~ state: disabled → enabled",
                "+ conditions.users.excludeUsers: bg (bg1@contoso)",
                "- conditions.users.excludeUsers: b",
                "- conditions.platforms (was {\"includePlatforms\":[\"android\"]})",
                "+ displayName = X",
            ]
        );
    }
}
