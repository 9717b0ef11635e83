//! Apply: executes a tenant's plan through the Graph client.
//!
//! Only `enforce` actions are written, in plan order (locations before the
//! policy that uses them). Graph is eventually consistent, so each write
//! (see [`write`]) re-reads a policy and re-plans it from the fresh copy
//! before a PATCH, retries a reference to a just-created named location, and
//! reads back until its change is visible. A failed write stops only the
//! writes that depend on it; every other write in the tenant is still tried.

pub mod write;

use crate::config::{Config, ControlMode};
use crate::graph::GraphClient;
use crate::plan::{Action, Block, Observed, Op, TenantPlan};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// How one tenant ended. Every tenant ends with exactly one.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "camelCase")]
pub enum Outcome {
    /// Nothing to do.
    Compliant,
    /// Every planned write succeeded.
    Fixed,
    Failed(String),
    Held(String),
    Skipped(String),
    /// Not observed at all: the tenant list could not be discovered this run.
    Unknown(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Compliant => "compliant",
            Outcome::Fixed => "fixed",
            Outcome::Failed(_) => "failed",
            Outcome::Held(_) => "held",
            Outcome::Skipped(_) => "skipped",
            Outcome::Unknown(_) => "unknown",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Failed(r) | Outcome::Held(r) | Outcome::Skipped(r) | Outcome::Unknown(r) => Some(r),
            _ => None,
        }
    }
}

/// A tenant's result: its outcome and the writes made.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantResult {
    pub tenant_id: String,
    pub tenant_name: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub written: usize,
    /// Objects this apply created: the plan's placeholder (`location:<name>`,
    /// `policy:<name>`) → the id Graph gave it. The sweep records them as owned.
    #[serde(skip)]
    pub created: BTreeMap<String, String>,
    /// Indices into the plan's `actions` of the writes made (a failed write
    /// does not stop the others, so they need not be the first ones).
    #[serde(skip)]
    pub wrote: Vec<usize>,
    /// Each write's object id and when it was sent and answered, for the ledger of
    /// caguard's own writes ([`crate::own`]).
    #[serde(skip)]
    pub spans: Vec<(String, write::Span)>,
}

impl TenantResult {
    pub fn new(tenant_id: &str, tenant_name: &str, outcome: Outcome) -> Self {
        TenantResult {
            tenant_id: tenant_id.into(),
            tenant_name: tenant_name.into(),
            outcome,
            written: 0,
            created: BTreeMap::new(),
            wrote: vec![],
            spans: vec![],
        }
    }

    /// The actions this apply wrote.
    pub fn written_actions<'p>(&self, plan: &'p TenantPlan) -> impl Iterator<Item = &'p Action> {
        self.wrote.iter().filter_map(|i| plan.actions.get(*i))
    }
}

/// The outcome a plan has without applying it.
pub fn outcome_without_apply(plan: &TenantPlan) -> Option<Outcome> {
    match &plan.block {
        Some(Block::Skip(r)) => return Some(Outcome::Skipped(r.clone())),
        Some(Block::Hold(r)) => return Some(Outcome::Held(r.clone())),
        None => {}
    }
    if plan.actions.is_empty() {
        return Some(Outcome::Compliant);
    }
    if plan.enforced().next().is_none() {
        return Some(Outcome::Skipped(format!(
            "report mode: {} deviation(s) reported, not enforced",
            plan.actions.len()
        )));
    }
    None
}

/// Applies one tenant's plan.
pub async fn apply_tenant(
    client: &GraphClient,
    config: &Config,
    plan: &TenantPlan,
    observed: &Observed,
) -> TenantResult {
    let mut result = TenantResult::new(&plan.tenant_id, &plan.tenant_name, Outcome::Compliant);
    if let Some(o) = outcome_without_apply(plan) {
        result.outcome = o;
        return result;
    }
    let mut failed: Vec<String> = Vec::new();
    let mut held: Vec<String> = Vec::new();
    let mut missing: Vec<String> = Vec::new(); // placeholders whose create failed
    let enforced = plan.actions.iter().enumerate().filter(|(_, a)| a.mode == ControlMode::Enforce);
    for (index, action) in enforced {
        let what = format!("{} \"{}\"", action.control, action.target);
        if let Some(dep) = missing.iter().find(|m| mentions(&action.body, m)) {
            let name = dep.trim_start_matches("location:");
            failed.push(format!("{what}: not attempted, because the location \"{name}\" it needs was not created"));
            continue;
        }
        let ctx = write::Context { client, config, plan, observed, created: &result.created };
        match write::one(&ctx, action).await {
            Ok(write::Done::Written(created, span)) => {
                result.written += 1;
                result.wrote.push(index);
                let id = match (&action.op, &created) {
                    (Op::UpdatePolicy { id } | Op::UpdateLocation { id }, _) => id.clone(),
                    (_, created) => created.clone().unwrap_or_default(),
                };
                result.spans.push((id, span));
                if let Some(id) = created {
                    result.created.insert(placeholder(action), id);
                }
            }
            Ok(write::Done::Unneeded) => {}
            Err(write::Stop::Held(e)) => {
                tracing::warn!(tenant = %plan.tenant_id, target = %action.target, "lockout safety stopped a write: {e}");
                held.push(format!("lockout safety stopped the write to \"{}\": {e}", action.target));
            }
            Err(write::Stop::Failed(e)) => {
                if action.op == Op::CreateLocation {
                    missing.push(placeholder(action));
                }
                failed.push(format!("{what}: {e}"));
            }
        }
    }
    result.outcome = if !failed.is_empty() {
        Outcome::Failed(failed.into_iter().chain(held).collect::<Vec<_>>().join("; "))
    } else if !held.is_empty() {
        Outcome::Held(held.join("; "))
    } else if result.written > 0 {
        Outcome::Fixed
    } else {
        Outcome::Compliant
    };
    result
}

/// The name the plan uses for an object before it exists.
fn placeholder(action: &Action) -> String {
    match action.op {
        Op::CreateLocation => format!("location:{}", action.target),
        _ => format!("policy:{}", action.target),
    }
}

/// True when `body` refers to `placeholder` anywhere.
fn mentions(body: &Value, placeholder: &str) -> bool {
    match body {
        Value::String(s) => s == placeholder,
        Value::Array(a) => a.iter().any(|v| mentions(v, placeholder)),
        Value::Object(o) => o.values().any(|v| mentions(v, placeholder)),
        _ => false,
    }
}
