//! The timer functions: `SweepTimer` (fan-out through the queue), `WatchTimer`,
//! `CippTimer` and `RenewSubscriptionsTimer`.

use super::*;

/// `SweepTimer`: one `reconcile` message per tenant through the queue output binding.
pub(super) async fn sweep_timer(r: &Ready, request: &InvocationRequest) -> Result<InvocationResponse, Failure> {
    let timer = request.timer("timer")?;
    let mut resp = InvocationResponse::ok();
    if let Some(line) = resend_alerts(r).await {
        resp = resp.log(line);
    }
    if timer.is_past_due {
        resp = resp.log("SweepTimer is past due (the app was idle or busy); sweeping now");
    }
    let correlation_id = correlation(request);
    let customers = match r.discover().await {
        Ok(found) => {
            remember_for_watch(r, &found).await;
            found
        }
        Err(e) => {
            resp = resp.log(discovery_failed(r, &e, &correlation_id).await);
            vec![]
        }
    };
    let (active, inactive): (Vec<_>, Vec<_>) = customers.into_iter().partition(|c| c.active);
    let enforced: Vec<&Customer> = active.iter().filter(|c| !r.config.is_skipped(&c.tenant_id)).collect();
    let size = enforced.len() + 1;
    let mut messages = vec![ReconcileMessage {
        tenant_id: r.config.msp_tenant_id.clone(),
        tenant_name: Some("MSP tenant".into()),
        reason: "sweep".into(),
        correlation_id: correlation_id.clone(),
        msp: true,
        can_write_ca: None,
        direct: false,
        sweep_size: Some(size),
    }];
    messages.extend(enforced.iter().map(|c| ReconcileMessage {
        tenant_id: c.tenant_id.clone(),
        tenant_name: Some(c.name.clone()),
        reason: "sweep".into(),
        correlation_id: correlation_id.clone(),
        msp: false,
        can_write_ca: c.can_write_ca,
        direct: c.direct,
        sweep_size: Some(size),
    }));
    for c in inactive.iter().chain(active.iter().filter(|c| r.config.is_skipped(&c.tenant_id))) {
        let reason = if c.active {
            "excluded by scope.skip_tenants".to_string()
        } else {
            format!("no active GDAP relationship (status: {})", c.status)
        };
        record(r, &c.tenant_id, &c.name, &Outcome::Skipped(reason), 0, &correlation_id).await;
    }
    let n = messages.len();
    let queue: Vec<Value> = messages.iter().map(|m| serde_json::to_value(m).expect("serializable")).collect();
    if let Some(summary) = run_cipp(r).await {
        resp = resp.log(summary);
    }
    Ok(resp
        .output(RECONCILE_BINDING, Value::Array(queue))
        .log(format!("sweep {correlation_id}: {n} tenants queued for reconcile, {} not enforced", inactive.len()))
        .with_return(json!({ "queued": n, "correlationId": correlation_id })))
}

/// Part C (CIPP-API access lists), when configured: enforce and alert. `None` when not configured.
pub(super) async fn run_cipp(r: &Ready) -> Option<String> {
    let client = match crate::cipp::table_client(&r.config, r.settings.cipp_connection_string.as_deref())? {
        Ok(c) => c,
        Err(e) => {
            let a = Alert {
                tenant_id: "cipp".into(),
                tenant_name: "CIPP-API".into(),
                kind: kind::FAILED.into(),
                message: e.clone(),
                ..Default::default()
            };
            r.alerter.send(&a).await;
            return Some(format!("CIPP-API: {e}"));
        }
    };
    let pauses = load_pauses(r).await;
    if let Some(p) = pauses.tenant("cipp") {
        return Some(format!("CIPP-API: {}", p.describe()));
    }
    let config = pauses.effective(&r.config, "cipp");
    let report = crate::cipp::run_configured(&client, &config, true).await;
    let correlation_id = format!("cipp-{}", chrono::Utc::now().timestamp_millis());
    for d in crate::cipp::drift_records(&report, &correlation_id) {
        if let Err(e) = r.store.record_drift(d).await {
            tracing::error!("could not record CIPP-API drift: {e}");
        }
    }
    for a in crate::cipp::alerts(&report) {
        r.alerter.send(&a).await;
    }
    Some(format!(
        "CIPP-API: {} rows checked, {} not compliant, {} table errors",
        report.rows.len(),
        report.drifted(),
        report.errors.len()
    ))
}

/// A failed discovery (#12): the sweep still reconciles the MSP tenant; each
/// customer last seen is recorded `unknown`, and one alert says so.
pub(super) async fn discovery_failed(r: &Ready, error: &str, correlation_id: &str) -> String {
    tracing::error!("tenant discovery failed: {}", crate::logging::bounded(error));
    let known = crate::watch::last_known_tenants(r.store.as_ref()).await;
    let why = format!("discovery failed, so this tenant was not observed this run: {error}");
    for c in &known {
        record(r, &c.tenant_id, &c.name, &Outcome::Unknown(why.clone()), 0, correlation_id).await;
    }
    r.alerter.send(&crate::alert::for_discovery_failure(&r.config.msp_tenant_id, error, known.len())).await;
    format!(
        "tenant discovery failed ({error}); the MSP tenant is reconciled, {} customer(s) recorded unknown",
        known.len()
    )
}

/// Hands a fresh discovery to the watch, so its ticks need not list GDAP relationships.
pub(super) async fn remember_for_watch(r: &Ready, customers: &[Customer]) {
    if let Err(e) = crate::watch::remember_tenants(r.store.as_ref(), customers).await {
        tracing::warn!("could not update the watch's tenant list (the watch rediscovers on its own): {e}");
    }
}

/// `WatchTimer`: the minute-level change check; a `reconcile` message for every
/// tenant whose CA objects changed since the last tick.
pub(super) async fn watch_timer(r: &Ready, request: &InvocationRequest) -> Result<InvocationResponse, Failure> {
    let timer = request.timer("timer")?;
    let correlation_id = correlation(request);
    let cipp = r.cipp().map_err(Failure::Retry)?;
    let tick = crate::watch::tick(&r.client, &r.config, cipp.as_ref(), &r.store, r.config.watch_concurrency, false)
        .await
        .map_err(|e| Failure::Retry(format!("watch tick failed: {e}")))?;
    // The change budget ("at most N% of tenants at once") is counted per tick, in the
    // store, under this correlation id: it needs the size of the estate watched.
    let estate = tick.changed.len() + tick.unchanged + tick.baseline + tick.errors.len();
    let drifted = tick.changed.iter().map(|c| (c, "drift"));
    let messages: Vec<Value> = drifted
        .chain(tick.new_tenants.iter().map(|c| (c, c.arrival())))
        .map(|(c, reason)| {
            serde_json::to_value(ReconcileMessage {
                tenant_id: c.tenant_id.clone(),
                tenant_name: Some(c.name.clone()),
                reason: reason.into(),
                correlation_id: correlation_id.clone(),
                msp: c.tenant_id.eq_ignore_ascii_case(&r.config.msp_tenant_id),
                can_write_ca: c.can_write_ca,
                direct: c.direct,
                sweep_size: Some(estate),
            })
            .expect("serializable")
        })
        .collect();
    let mut resp = InvocationResponse::ok();
    if let Some(line) = resend_alerts(r).await {
        resp = resp.log(line);
    }
    resp = resp.log(format!(
        "watch {correlation_id}: {} changed, {} unchanged, {} new, {} errors{}{}",
        tick.changed.len(),
        tick.unchanged,
        tick.baseline,
        tick.errors.len(),
        if tick.rediscovered { ", tenant list rediscovered" } else { "" },
        if timer.is_past_due { " (past due)" } else { "" }
    ));
    for c in &tick.new_tenants {
        resp = resp.log(format!("watch: {} {} ({}): reconcile queued", c.arrival(), c.name, c.tenant_id));
    }
    for (tenant, e) in &tick.errors {
        resp = resp.log(format!("watch: tenant {tenant}: {e}"));
    }
    Ok(resp.output(RECONCILE_BINDING, Value::Array(messages)))
}

/// Every timer tick sends the undelivered alerts again; a line when there were any.
pub(super) async fn resend_alerts(r: &Ready) -> Option<String> {
    let report = r.alerter.resend_undelivered().await;
    let any = report.delivered + report.still_undelivered + report.expired > 0;
    any.then(|| {
        format!(
            "undelivered alerts: {} delivered now, {} still undelivered, {} expired",
            report.delivered, report.still_undelivered, report.expired
        )
    })
}

/// `CippTimer`: Part C on its own schedule.
pub(super) async fn cipp_timer(r: &Ready, request: &InvocationRequest) -> Result<InvocationResponse, Failure> {
    request.timer("timer")?;
    let line = run_cipp(r).await.unwrap_or_else(|| {
        "CIPP-API: not configured ([cipp] in caguard.toml or CAGUARD_CIPP_CONNECTION_STRING)".into()
    });
    Ok(InvocationResponse::ok().log(line))
}

/// `RenewSubscriptionsTimer`: Graph subscriptions for the technician groups and the
/// break-glass and service accounts exist and do not expire within two days.
pub(super) async fn renew_subscriptions(r: &Ready, request: &InvocationRequest) -> Result<InvocationResponse, Failure> {
    request.timer("timer")?;
    let Some(base) = r.settings.public_url.as_deref() else {
        return Err(Failure::Retry("no public URL for Graph to notify: set CAGUARD_PUBLIC_URL".into()));
    };
    let report = crate::notify::renew(&r.client, &r.config, r.store.as_ref(), base, chrono::Duration::days(2)).await;
    let line = format!(
        "subscriptions: {} created, {} renewed, {} kept, {} errors",
        report.created,
        report.renewed,
        report.kept,
        report.errors.len()
    );
    let mut resp = InvocationResponse::ok().log(line);
    for e in &report.errors {
        resp = resp.log(format!("subscription error: {e}"));
    }
    Ok(resp.with_return(serde_json::to_value(&report).expect("json")))
}
