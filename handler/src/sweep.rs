//! One full reconcile: discover → observe → plan → (apply). Every tenant ends
//! with exactly one result; one tenant's failure never stops another.

use crate::apply::{Outcome, TenantResult, apply_tenant, outcome_without_apply};
use crate::config::Config;
use crate::graph::{GraphClient, GraphError, Stats};
use crate::observe::{self, Customer};
use crate::pause::Pauses;
use crate::plan::{self, Observed, TenantPlan};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;

#[derive(Clone, Debug)]
pub struct SweepOptions {
    /// Write, not just plan.
    pub apply: bool,
    /// `--yes`: lift the safety holds on large plans.
    pub confirmed: bool,
    /// Tenants worked on at once.
    pub concurrency: usize,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Only these tenants (all when empty).
    pub only: Vec<String>,
    /// Where the ids of the objects caguard owns are kept ([`crate::owned`]);
    /// without one, owned objects are found by name.
    pub ledger: Ledger,
    /// CIPP's storage, whose `Tenants` table lists the direct tenants.
    pub cipp: Option<crate::cipp::Cipp>,
}

/// The store a sweep reads and records ownership in, if any.
#[derive(Clone, Default)]
pub struct Ledger(pub Option<Arc<dyn crate::store::Store>>);

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Ledger(store)" } else { "Ledger(none)" })
    }
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            apply: false,
            confirmed: false,
            concurrency: 64,
            progress: false,
            only: vec![],
            ledger: Ledger::default(),
            cipp: None,
        }
    }
}

impl SweepOptions {
    /// `--tenant` filters match an id, a prefix of it, or a display name.
    fn wants(&self, tenant: &str, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|f| filter_matches(f, tenant, name))
    }
}

fn filter_matches(filter: &str, tenant: &str, name: &str) -> bool {
    let f = filter.trim().trim_end_matches('…').to_ascii_lowercase();
    !f.is_empty() && (tenant.to_ascii_lowercase().starts_with(&f) || name.eq_ignore_ascii_case(filter.trim()))
}

/// Every `--tenant` filter matches exactly one tenant (an exact id or name may
/// match only itself); otherwise the error names the filter and what it matched.
fn check_filters(only: &[String], tenants: &[(String, String)]) -> Result<(), String> {
    for f in only {
        let hits: Vec<&(String, String)> = tenants.iter().filter(|(id, name)| filter_matches(f, id, name)).collect();
        match hits.len() {
            0 => {
                return Err(format!(
                    "--tenant '{f}' matches no tenant (give an id, a unique prefix or a display name)"
                ));
            }
            1 => {}
            n => {
                let shown: Vec<String> = hits.iter().take(5).map(|(id, name)| format!("{name} ({id})")).collect();
                return Err(format!("--tenant '{f}' matches {n} tenants: {}; give more of the id", shown.join(", ")));
            }
        }
    }
    Ok(())
}

/// The counts of a run, by outcome (`pending`: planned writes not applied).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub tenants: usize,
    pub compliant: usize,
    pub fixed: usize,
    pub pending: usize,
    pub held: usize,
    pub skipped: usize,
    pub failed: usize,
    pub unknown: usize,
}

/// One tenant's plan and, when known, its result.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantReport {
    pub plan: TenantPlan,
    /// `None` in plan mode for a tenant with writes pending.
    pub result: Option<TenantResult>,
    #[serde(skip)]
    pub observed: Option<Observed>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    /// The version of this JSON document's shape.
    pub schema_version: u32,
    pub summary: Summary,
    pub tenants: Vec<TenantReport>,
    /// Set when the customer tenants could not be discovered: the MSP tenant was
    /// still reconciled, and the last known customers are reported `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_error: Option<String>,
    /// Pauses found expired (and removed) at the start of this run: alerted once.
    #[serde(skip)]
    pub expired_pauses: Vec<crate::pause::Pause>,
    pub stats: Stats,
    pub elapsed_ms: u128,
}

impl SweepReport {
    fn new(
        tenants: Vec<TenantReport>,
        discovery_error: Option<String>,
        expired_pauses: Vec<crate::pause::Pause>,
        stats: Stats,
        started: Instant,
    ) -> Self {
        let mut report = SweepReport {
            schema_version: 1,
            summary: Summary::default(),
            tenants,
            discovery_error,
            expired_pauses,
            stats,
            elapsed_ms: started.elapsed().as_millis(),
        };
        report.summary = Summary {
            tenants: report.tenants.len(),
            compliant: report.count("compliant"),
            fixed: report.count("fixed"),
            pending: report.tenants.iter().filter(|t| t.result.is_none()).count(),
            held: report.count("held"),
            skipped: report.count("skipped"),
            failed: report.count("failed"),
            unknown: report.count("unknown"),
        };
        report
    }

    /// Tenants with writes planned (enforced or reported), held ones included.
    pub fn drifted(&self) -> usize {
        self.tenants.iter().filter(|t| !t.plan.actions.is_empty()).count()
    }

    pub fn count(&self, label: &str) -> usize {
        self.tenants.iter().filter(|t| t.result.as_ref().is_some_and(|r| r.outcome.label() == label)).count()
    }

    /// Tenants that could not be read or written: failed, not observed (discovery
    /// failed), or skipped because caguard has no token, consent or permissions there.
    pub fn unreadable(&self) -> usize {
        self.tenants
            .iter()
            .filter_map(|t| t.result.as_ref())
            .filter(|r| match &r.outcome {
                Outcome::Failed(_) | Outcome::Unknown(_) => true,
                Outcome::Skipped(why) => why.starts_with(CANNOT_RUN),
                _ => false,
            })
            .count()
    }

    /// An apply that needs a person: a tenant could not be read or written, was
    /// held, or discovery failed.
    pub fn needs_attention(&self) -> bool {
        self.unreadable() + self.count("held") > 0 || self.discovery_error.is_some()
    }

    pub fn result(&self, tenant: &str) -> Option<&TenantResult> {
        self.tenants.iter().find(|t| t.plan.tenant_id.eq_ignore_ascii_case(tenant)).and_then(|t| t.result.as_ref())
    }
}

/// How a tenant caguard cannot read (no token, consent or permissions) is reported.
pub const CANNOT_RUN: &str = "cannot run here";

fn failed_plan(tenant_id: &str, name: &str, msp: bool) -> TenantPlan {
    let o = Observed { tenant_id: tenant_id.into(), tenant_name: name.into(), ..Default::default() };
    TenantPlan::new(&o, msp)
}

/// A tenant that could not be read: skipped when a person must grant access, failed otherwise.
fn observe_error(e: &GraphError) -> Outcome {
    if e.is_auth_failure() {
        Outcome::Skipped(format!("{CANNOT_RUN} (consent, permissions or token): {e}"))
    } else {
        Outcome::Failed(e.to_string())
    }
}

fn report_only(plan: TenantPlan, outcome: Outcome) -> TenantReport {
    let result = TenantResult::new(&plan.tenant_id, &plan.tenant_name, outcome);
    TenantReport { plan, result: Some(result), observed: None }
}

fn progress_bar(show: bool, len: usize, msg: &'static str) -> indicatif::ProgressBar {
    if !show || len < 10 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>9} [{bar:40}] {pos}/{len} tenants ({elapsed})")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_message(msg);
    bar
}

/// Observes and plans every customer tenant, at most `concurrency` at once.
async fn observe_customers(
    client: &GraphClient,
    config: &Arc<Config>,
    customers: Vec<Customer>,
    opts: &SweepOptions,
    pauses: &Arc<Pauses>,
) -> Vec<TenantReport> {
    let bar = progress_bar(opts.progress, customers.len(), "observe");
    let gate = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, c) in customers.into_iter().enumerate() {
        let (client, config, gate, pauses) = (client.clone(), config.clone(), gate.clone(), pauses.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore open");
            let report = match observe::customer(&client, &config, &c).await {
                Ok(o) => {
                    let plan = planned(&config, &pauses, &o, false);
                    // What was observed is needed only to apply writes: let clean tenants' go now.
                    let observed = plan.enforced().next().is_some().then_some(o);
                    TenantReport { plan, result: None, observed }
                }
                Err(e) => report_only(failed_plan(&c.tenant_id, &c.name, false), observe_error(&e)),
            };
            (i, report)
        });
    }
    let mut out = Vec::new();
    while let Some(done) = tasks.join_next().await {
        out.push(done.expect("observe task does not panic"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// A tenant's plan under the pauses in force: paused controls are planned in
/// `report` mode; a paused tenant is skipped, its drift still shown.
pub fn planned(config: &Config, pauses: &Pauses, o: &Observed, msp: bool) -> TenantPlan {
    let cfg = pauses.effective(config, &o.tenant_id);
    let mut plan = if msp { plan::plan_msp(&cfg, o) } else { plan::plan_customer(&cfg, o) };
    if let Some(p) = pauses.tenant(&o.tenant_id) {
        plan.block = Some(plan::Block::Skip(p.describe()));
    }
    plan
}

/// Runs one sweep over the MSP tenant and every customer tenant.
pub async fn run(client: &GraphClient, config: &Config, opts: &SweepOptions) -> Result<SweepReport, GraphError> {
    let started = Instant::now();
    let config = Arc::new(config.clone());
    let (pauses, expired_pauses) = crate::pause::load(opts.ledger.0.as_deref(), chrono::Utc::now()).await;
    for p in &expired_pauses {
        tracing::warn!("a pause expired, enforcement resumes: {}", p.describe());
    }
    let pauses = Arc::new(pauses);
    let mut tenants = Vec::new();
    // The MSP tenant (two paced CA lists) is read while customers are discovered and read.
    let (msp, customers) = tokio::join!(observe_msp(client, &config, opts, &pauses), discover(client, &config, opts));
    tenants.extend(msp);
    let (customers, discovery_error) = match customers {
        Ok(found) => (found, None),
        Err(e) => {
            tenants.extend(not_observed(&e, opts).await);
            (vec![], Some(e.to_string()))
        }
    };
    if discovery_error.is_none() && !opts.only.is_empty() {
        let mut all: Vec<(String, String)> = vec![(config.msp_tenant_id.clone(), "MSP tenant".into())];
        all.extend(customers.iter().map(|c| (c.tenant_id.clone(), c.name.clone())));
        check_filters(&opts.only, &all)
            .map_err(|message| GraphError::Invalid { tenant: config.msp_tenant_id.clone(), message })?;
    }
    let customers: Vec<Customer> = customers.into_iter().filter(|c| opts.wants(&c.tenant_id, &c.name)).collect();
    let (active, inactive): (Vec<_>, Vec<_>) = customers.into_iter().partition(|c| c.active);
    let (skipped, active): (Vec<_>, Vec<_>) = active.into_iter().partition(|c| config.is_skipped(&c.tenant_id));
    tenants.extend(observe_customers(client, &config, active, opts, &pauses).await);
    tenants.extend(not_enforced(skipped, inactive));
    limit_plans(&config, &mut tenants, opts);
    if opts.apply {
        apply_all(client, &config, &mut tenants, opts, &pauses).await;
        after_apply(&config, &tenants, opts).await;
    }
    Ok(SweepReport::new(tenants, discovery_error, expired_pauses, client.stats(), started))
}

/// The MSP tenant observed, its rollout evidence read, planned and checked with
/// What If; `None` when the tenant filter leaves it out.
async fn observe_msp(
    client: &GraphClient,
    config: &Config,
    opts: &SweepOptions,
    pauses: &Pauses,
) -> Option<TenantReport> {
    if !opts.wants(&config.msp_tenant_id, "MSP tenant") {
        return None;
    }
    Some(match observe::msp(client, config, opts.ledger.0.as_deref()).await {
        Ok(mut o) => {
            let notes = crate::rollout::prepare(client, config, opts.ledger.0.as_deref(), &mut o).await;
            let mut plan = planned(config, pauses, &o, true);
            plan.notes.extend(notes);
            crate::whatif::preflight::run(client, config, &o, &mut plan).await;
            TenantReport { plan, result: None, observed: Some(o) }
        }
        Err(e) => report_only(failed_plan(&config.msp_tenant_id, "MSP tenant", true), observe_error(&e)),
    })
}

/// The customer tenants, remembered in the store for the day discovery fails.
async fn discover(client: &GraphClient, config: &Config, opts: &SweepOptions) -> Result<Vec<Customer>, GraphError> {
    let found = observe::discover(client, config, opts.cipp.as_ref()).await;
    if let (Ok(found), Some(store)) = (&found, &opts.ledger.0)
        && let Err(e) = crate::watch::remember_tenants(store.as_ref(), found).await
    {
        tracing::warn!("could not remember the tenant list: {e}");
    }
    found
}

/// When discovery fails, the customers last seen each get a result saying they
/// were not looked at, and the run fails (#12); the MSP tenant is reconciled all the same.
async fn not_observed(e: &GraphError, opts: &SweepOptions) -> Vec<TenantReport> {
    tracing::error!("tenant discovery failed: {e}");
    let known = match &opts.ledger.0 {
        Some(store) => crate::watch::last_known_tenants(store.as_ref()).await,
        None => vec![],
    };
    let why = format!("discovery failed, so this tenant was not observed this run: {e}");
    known
        .iter()
        .filter(|c| opts.wants(&c.tenant_id, &c.name))
        .map(|c| report_only(failed_plan(&c.tenant_id, &c.name, false), Outcome::Unknown(why.clone())))
        .collect()
}

/// Tenants skipped by scope, or without an active GDAP relationship: reported, never read.
fn not_enforced(skipped: Vec<Customer>, inactive: Vec<Customer>) -> Vec<TenantReport> {
    let skipped = skipped.into_iter().map(|c| {
        let plan = failed_plan(&c.tenant_id, &c.name, false);
        report_only(plan, Outcome::Skipped("excluded by scope.skip_tenants".into()))
    });
    let inactive = inactive.into_iter().map(|c| {
        let why = format!("no active GDAP relationship (status: {}); not enforced", c.status);
        report_only(failed_plan(&c.tenant_id, &c.name, false), Outcome::Skipped(why))
    });
    skipped.chain(inactive).collect()
}

/// The estate-wide safety limits applied to every plan; tenants with nothing to
/// write get their result now.
fn limit_plans(config: &Config, tenants: &mut [TenantReport], opts: &SweepOptions) {
    let mut plans: Vec<TenantPlan> = tenants.iter().map(|t| t.plan.clone()).collect();
    plan::apply_limits(config, &mut plans, opts.confirmed);
    for (t, p) in tenants.iter_mut().zip(plans) {
        t.plan = p;
        if t.result.is_none() {
            t.result = outcome_without_apply(&t.plan)
                .map(|outcome| TenantResult::new(&t.plan.tenant_id, &t.plan.tenant_name, outcome));
        }
        // Only tenants with writes pending need what was observed: keep memory flat at thousands
        // of tenants. The MSP tenant's stays: it holds the owned ids read from the ledger.
        if t.result.is_some() && !t.plan.msp {
            t.observed = None;
        }
    }
}

/// What an apply leaves in the store: the owned ids, the rollout's record, and
/// what was added to customers' policies (for uninstall).
async fn after_apply(config: &Config, tenants: &[TenantReport], opts: &SweepOptions) {
    record_owned(config, tenants, opts).await;
    for t in tenants.iter().filter(|t| t.plan.msp) {
        if let (Some(result), Some(o)) = (&t.result, &t.observed) {
            crate::rollout::after_apply(opts.ledger.0.as_deref(), &t.plan, result, o).await;
        }
    }
    if let Some(store) = &opts.ledger.0 {
        for t in tenants {
            if let Some(result) = t.result.as_ref().filter(|r| r.written > 0) {
                crate::uninstall::record_added(store.as_ref(), &t.plan, result).await;
            }
        }
    }
}

/// Records the ids of the MSP tenant's owned objects once they exist.
async fn record_owned(config: &Config, tenants: &[TenantReport], opts: &SweepOptions) {
    let Some(store) = &opts.ledger.0 else { return };
    let msp = tenants.iter().find(|t| t.plan.msp && t.plan.tenant_id.eq_ignore_ascii_case(&config.msp_tenant_id));
    if let Some(TenantReport { plan, result: Some(result), observed: Some(observed) }) = msp {
        crate::owned::record(store.as_ref(), plan, result, observed).await;
    }
}

async fn apply_all(
    client: &GraphClient,
    config: &Arc<Config>,
    tenants: &mut [TenantReport],
    opts: &SweepOptions,
    pauses: &Pauses,
) {
    let pending: Vec<usize> = (0..tenants.len()).filter(|i| tenants[*i].result.is_none()).collect();
    let bar = progress_bar(opts.progress, pending.len(), "apply");
    let gate = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in pending {
        let (client, gate) = (client.clone(), gate.clone());
        // The re-plan before each write runs with the same paused controls.
        let config = pauses.effective(config, &tenants[i].plan.tenant_id);
        let plan = tenants[i].plan.clone();
        let observed = tenants[i].observed.clone().unwrap_or_default();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore open");
            (i, apply_tenant(&client, &config, &plan, &observed).await)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (i, result) = done.expect("apply task does not panic");
        tenants[i].result = Some(result);
        bar.inc(1);
    }
    bar.finish_and_clear();
}
