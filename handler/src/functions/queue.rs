//! The queue functions: `ReconcileTenant` (observe → plan → apply one tenant,
//! honouring pauses and emergency changes) and `ReconcilePoison`.

use super::*;

/// `ReconcileTenant`: observe → plan → apply for one tenant. Idempotent.
pub(super) async fn reconcile_tenant(r: &Ready, request: &InvocationRequest) -> Result<InvocationResponse, Failure> {
    let msg: ReconcileMessage = request.queue_message(RECONCILE_BINDING)?;
    if !crate::config::is_guid(&msg.tenant_id) {
        let shown: String = msg.tenant_id.chars().take(40).collect();
        return Err(ProtocolError(format!("reconcile message: tenant id '{shown}' is not a GUID")).into());
    }
    let attempt = request.dequeue_count()?;
    let name = msg.tenant_name.clone().unwrap_or_else(|| msg.tenant_id.clone());
    let result = reconcile(r, &msg).await;
    let (plan, result) = match result {
        Ok(pr) => pr,
        Err(e) => {
            let outcome = Outcome::Failed(e.clone());
            record(r, &msg.tenant_id, &name, &outcome, 0, &msg.correlation_id).await;
            return Err(Failure::Retry(format!("tenant {} (attempt {attempt}): {e}", msg.tenant_id)));
        }
    };
    record(r, &result.tenant_id, &name, &result.outcome, result.written, &msg.correlation_id).await;
    report_drift(r, &msg, &name, &plan, &result).await;
    if let Outcome::Failed(why) = &result.outcome {
        return Err(Failure::Retry(format!("tenant {} (attempt {attempt}): {why}", msg.tenant_id)));
    }
    let mut resp = InvocationResponse::ok();
    for n in &plan.notes {
        tracing::info!(tenant = %result.tenant_id, control = %n.control, "note: {}", n.message);
        resp = resp.log(format!("note {}: {}", n.control, n.message));
    }
    let line = format!(
        "{} ({}): {}{} — {} actions planned, {} written",
        name,
        result.tenant_id,
        result.outcome.label(),
        result.outcome.reason().map(|r| format!(": {r}")).unwrap_or_default(),
        plan.actions.len(),
        result.written
    );
    Ok(resp.log(line).with_return(serde_json::to_value(&result).expect("serializable")))
}

/// Drift records and alerts for what a reconcile wrote, with who changed each object.
pub(super) async fn report_drift(
    r: &Ready,
    msg: &ReconcileMessage,
    name: &str,
    plan: &TenantPlan,
    result: &TenantResult,
) {
    if let Some(a) = crate::alert::for_outcome(&result.tenant_id, name, &result.outcome) {
        send_for(r, plan, a).await;
    }
    // caguard's own writes first, so the audit records of this very fix are known as caguard's.
    crate::own::record(r.store.as_ref(), result).await;
    let per_policy = crate::alert::for_withheld(plan).into_iter().chain(crate::alert::for_lockout_risk(plan));
    for w in per_policy.chain(crate::alert::for_notes(plan)) {
        send_for(r, plan, w).await;
    }
    for action in result.written_actions(plan) {
        let object_id = match &action.op {
            crate::plan::Op::UpdatePolicy { id } | crate::plan::Op::UpdateLocation { id } => id.clone(),
            _ => String::new(),
        };
        let change = if object_id.is_empty() {
            None
        } else {
            let own = crate::own::identity(&r.client, &r.config, r.store.as_ref(), &result.tenant_id, &object_id).await;
            crate::audit::who_changed(&r.client, &result.tenant_id, &object_id, &own).await.ok().flatten()
        };
        let by_cipp = change.as_ref().is_some_and(|c| c.by_cipp);
        let cipp_source = change.as_ref().and_then(|c| c.cipp_source.clone());
        let (changed_by, changed_at) = change.map_or(("unknown".to_string(), None), |c| (c.who, Some(c.when)));
        let revert = crate::tug::Revert {
            tenant_id: &result.tenant_id,
            tenant_name: name,
            object_id: &object_id,
            object_name: &action.target,
            control: &action.control.to_string(),
            actor: &changed_by,
            by_cipp,
            cipp_source: cipp_source.as_ref(),
        };
        if !object_id.is_empty()
            && let Some(tug) = crate::tug::revert(r.store.as_ref(), &revert).await
        {
            send_for(r, plan, tug).await;
        }
        let drift = DriftRecord {
            tenant_id: result.tenant_id.clone(),
            tenant_name: name.to_string(),
            control: action.control.to_string(),
            object_id: object_id.clone(),
            object_name: action.target.clone(),
            before: action.before.clone(),
            after: action.body.clone(),
            changed_by: changed_by.clone(),
            changed_at: changed_at.clone(),
            action: format!("{} {}", action.op.verb(), if action.op.is_policy() { "policy" } else { "named location" }),
            result: "restored".into(),
            detected_at: now(),
            correlation_id: msg.correlation_id.clone(),
        };
        if let Err(e) = r.store.record_drift(drift).await {
            tracing::error!(tenant = %result.tenant_id, "could not record drift: {e}");
        }
        let alert = Alert {
            tenant_id: result.tenant_id.clone(),
            tenant_name: name.to_string(),
            kind: kind::DRIFT_FIXED.into(),
            message: format!("{} \"{}\": {}; restored.", action.control, action.target, action.reason),
            control: Some(action.control.to_string()),
            object_id: Some(if object_id.is_empty() { action.target.clone() } else { object_id }),
            object_name: Some(action.target.clone()),
            changed_by: Some(changed_by),
            changed_at,
            before: Some(action.before.clone()),
            after: Some(action.body.clone()),
            tenant_domain: None,
        };
        send_for(r, plan, alert).await;
    }
}

/// Sends an alert about `plan`'s tenant, named by its default domain where observed.
async fn send_for(r: &Ready, plan: &TenantPlan, mut alert: Alert) {
    alert.tenant_domain = alert.tenant_domain.or_else(|| plan.default_domain.clone());
    r.alerter.send(&alert).await;
}

pub(super) async fn reconcile(r: &Ready, msg: &ReconcileMessage) -> Result<(TenantPlan, TenantResult), String> {
    let is_msp = msg.msp || msg.tenant_id.eq_ignore_ascii_case(&r.config.msp_tenant_id);
    let mut observed = match observe_tenant(r, msg, is_msp).await? {
        Seen::Observed(o) => o,
        Seen::Done(plan, result) => return Ok((plan, result)),
    };
    let pauses = load_pauses(r).await;
    let notes = if is_msp {
        crate::rollout::prepare(&r.client, &r.config, Some(r.store.as_ref()), &mut observed).await
    } else {
        vec![]
    };
    let mut plan = crate::sweep::planned(&r.config, &pauses, &observed, is_msp);
    plan.notes.extend(notes);
    let config = pauses.effective(&r.config, &observed.tenant_id);
    leave_emergency_changes(r, &mut plan, &observed).await;
    crate::whatif::preflight::run(&r.client, &config, &observed, &mut plan).await;
    let (plan, approved) = limit(r, msg, plan).await?;
    let result = apply_tenant(&r.client, &config, &plan, &observed).await;
    if approved {
        crate::approval::done(r.store.as_ref(), &plan.tenant_id).await;
    }
    if result.written > 0 {
        crate::uninstall::record_added(r.store.as_ref(), &plan, &result).await;
    }
    if is_msp {
        crate::owned::record(r.store.as_ref(), &plan, &result, &observed).await;
        crate::rollout::after_apply(Some(r.store.as_ref()), &plan, &result, &observed).await;
    }
    Ok((plan, result))
}

/// A tenant read, or the result it gets without being read.
enum Seen {
    Observed(plan::Observed),
    /// Not enforced (no active relationship) or not readable (consent, token).
    Done(TenantPlan, TenantResult),
}

async fn observe_tenant(r: &Ready, msg: &ReconcileMessage, is_msp: bool) -> Result<Seen, String> {
    let observed = if is_msp {
        observe::msp(&r.client, &r.config, Some(r.store.as_ref())).await
    } else {
        let name = msg.tenant_name.clone().unwrap_or_else(|| msg.tenant_id.clone());
        let customer = match msg.can_write_ca {
            _ if msg.direct => Customer::direct(&msg.tenant_id, &name),
            Some(_) => Customer {
                tenant_id: msg.tenant_id.to_ascii_lowercase(),
                name,
                active: true,
                status: "active".into(),
                can_write_ca: msg.can_write_ca,
                direct: false,
            },
            None => lookup_customer(r, &msg.tenant_id).await?,
        };
        if !customer.active {
            let why = format!("no active GDAP relationship (status: {})", customer.status);
            let plan = TenantPlan { block: Some(Block::Skip(why.clone())), ..empty_plan(msg) };
            let result = TenantResult::new(&msg.tenant_id, &customer.name, Outcome::Skipped(why));
            return Ok(Seen::Done(plan, result));
        }
        observe::customer(&r.client, &r.config, &customer).await
    };
    match observed {
        Ok(o) => Ok(Seen::Observed(o)),
        Err(e) if e.is_auth_failure() => {
            let outcome = Outcome::Skipped(format!("cannot run here (consent, permissions or token): {e}"));
            let result = TenantResult::new(&msg.tenant_id, msg.tenant_name.as_deref().unwrap_or_default(), outcome);
            Ok(Seen::Done(empty_plan(msg), result))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The safety limits, and the sweep-wide share of tenants changing (claimed in
/// the store, since each tenant is its own queue message). A plan held by the
/// limits alone is stored so a person can approve it; returns whether it was.
async fn limit(r: &Ready, msg: &ReconcileMessage, plan: TenantPlan) -> Result<(TenantPlan, bool), String> {
    // A plan a person approved (exactly this one: same writes) passes the limits.
    let pending = plan.block.is_none() && plan.enforced().next().is_some();
    let approved = pending && crate::approval::is_approved(r.store.as_ref(), &plan).await;
    let confirmed = r.settings.confirm_large_plans || approved;
    let unheld = plan.block.is_none();
    let mut plans = [plan];
    plan::apply_limits(&r.config, &mut plans, confirmed);
    let [mut plan] = plans;
    if plan.block.is_none() && plan.enforced().next().is_some() && !confirmed {
        let size = msg.sweep_size.unwrap_or(1).max(1);
        let limit = ((r.config.max_tenant_fraction * size as f64).floor() as usize).max(1);
        let claimed =
            r.store.claim_change(&msg.correlation_id, &msg.tenant_id, limit).await.map_err(|e| e.to_string())?;
        if !claimed {
            plan.block = Some(Block::Hold(format!(
                "more than {limit} of {size} tenants changing in sweep {} exceeds the {:.0}% limit; set CAGUARD_CONFIRM_LARGE_PLANS=true or run `caguard apply --yes`",
                msg.correlation_id,
                r.config.max_tenant_fraction * 100.0
            )));
        }
    }
    if let Some(Block::Hold(why)) = &plan.block
        && unheld
    {
        crate::approval::hold(r.store.as_ref(), &plan, why).await;
    }
    Ok((plan, approved))
}

pub(super) fn empty_plan(msg: &ReconcileMessage) -> TenantPlan {
    let o = plan::Observed {
        tenant_id: msg.tenant_id.clone(),
        tenant_name: msg.tenant_name.clone().unwrap_or_default(),
        ..Default::default()
    };
    TenantPlan::new(&o, msg.msp)
}

/// Emergency override ([`crate::emergency`]): writes that would revert a change an
/// emergency actor made since the tenant was last in order are left out, their
/// control paused in this tenant, and one high-priority alert sent.
pub(super) async fn leave_emergency_changes(r: &Ready, plan: &mut TenantPlan, observed: &plan::Observed) {
    if plan.block.is_some() || plan.enforced().next().is_none() {
        return;
    }
    let since = crate::emergency::last_in_order(r.store.as_ref(), &plan.tenant_id).await;
    if since.is_none() {
        return; // never in order (a first rollout): nothing to override
    }
    let actors = crate::emergency::actors(&r.client, &r.config, r.store.as_ref()).await;
    let overrides =
        crate::emergency::overrides(&r.client, &r.config, r.store.as_ref(), plan, observed, &actors, since.as_deref())
            .await;
    for x in &overrides {
        let p = crate::emergency::pause_for(&r.config, &plan.tenant_id, x);
        if let Err(e) = crate::pause::pause(r.store.as_ref(), &p).await {
            tracing::error!(tenant = %plan.tenant_id, "{e}; the emergency change is left alone this run only");
        }
        send_for(r, plan, crate::emergency::alert(plan, x, &p)).await;
    }
    crate::emergency::honour(plan, &overrides);
}

/// The pauses in force; one that has expired is alerted (once: it is removed).
pub(super) async fn load_pauses(r: &Ready) -> crate::pause::Pauses {
    let (pauses, expired) = crate::pause::load(Some(r.store.as_ref()), chrono::Utc::now()).await;
    for p in &expired {
        r.alerter.send(&crate::pause::expired_alert(p)).await;
    }
    for reminder in pauses.0.iter().filter_map(|p| crate::pause::expiring_alert(p, chrono::Utc::now())) {
        r.alerter.send(&reminder).await;
    }
    pauses
}

pub(super) async fn lookup_customer(r: &Ready, tenant: &str) -> Result<Customer, String> {
    let all = r.discover().await?;
    all.into_iter()
        .find(|c| c.tenant_id.eq_ignore_ascii_case(tenant))
        .ok_or_else(|| format!("tenant {tenant} has no GDAP relationship with the MSP and is not a direct tenant"))
}

/// `ReconcilePoison`: a reconcile that failed `maxDequeueCount` times. It is
/// alerted and recorded rather than left to vanish in the poison queue.
pub(super) async fn reconcile_poison(r: &Ready, request: &InvocationRequest) -> Result<InvocationResponse, Failure> {
    let raw = request.trigger("poison")?.clone();
    let msg: Option<ReconcileMessage> = request.queue_message("poison").ok();
    let (tenant, name, correlation_id) = match &msg {
        Some(m) => (
            m.tenant_id.clone(),
            m.tenant_name.clone().unwrap_or_else(|| m.tenant_id.clone()),
            m.correlation_id.clone(),
        ),
        None => ("unknown".to_string(), "unreadable message".to_string(), String::new()),
    };
    let message = format!(
        "reconcile of tenant {tenant} failed {} times and was moved to the poison queue; its last result is in Status. Message: {raw}",
        r.settings.max_dequeue_count
    );
    let a = Alert {
        tenant_id: tenant.clone(),
        tenant_name: name.clone(),
        kind: kind::POISON.into(),
        message: message.clone(),
        ..Default::default()
    };
    r.alerter.send(&a).await;
    record(
        r,
        &tenant,
        &name,
        &Outcome::Failed(format!("poison: gave up after {} attempts", r.settings.max_dequeue_count)),
        0,
        &correlation_id,
    )
    .await;
    Ok(InvocationResponse::ok().log(message))
}

/// Queues a reconcile of the MSP tenant (from a push event).
pub(super) async fn queue_msp_reconcile(r: &Ready, reason: &str) -> Result<(), String> {
    let queue = r.queue.as_ref().ok_or("no queue configured (AzureWebJobsStorage)")?;
    let msg = ReconcileMessage {
        tenant_id: r.config.msp_tenant_id.clone(),
        tenant_name: Some("MSP tenant".into()),
        reason: reason.into(),
        correlation_id: format!("{reason}-{}", chrono::Utc::now().timestamp_millis()),
        msp: true,
        can_write_ca: None,
        direct: false,
        sweep_size: None,
    };
    queue.put(&r.settings.reconcile_queue, &serde_json::to_string(&msg).expect("json")).await
}
