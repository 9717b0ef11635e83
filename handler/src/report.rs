//! Human-readable plan and result tables.

use crate::config::ControlMode;
use crate::plan::{Block, TenantPlan};
use crate::sweep::SweepReport;
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
        let _ = writeln!(out, "      send: {}", a.body);
        if !a.before.is_null() {
            let _ = writeln!(out, "      was:  {}", a.before);
        }
    }
    if p.actions.len() > shown {
        let _ = writeln!(out, "  … and {} more actions like these", p.actions.len() - shown);
    }
    withheld_text(p, out);
    for n in &p.notes {
        let _ = writeln!(out, "  note {}: {}", n.control, n.message);
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
