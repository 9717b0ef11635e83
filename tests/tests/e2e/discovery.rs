//! #12: every tenant gets a result, in the CLI and in the Functions app. When GDAP discovery fails (here 90% of its
//! requests answer 429/503), the MSP tenant is still observed, planned and
//! applied; each customer from the last known list is reported `unknown`; one
//! alert says so; and `apply` exits 1.

use caguard::alert::kind;
use caguard::demo::sample_config;
use caguard::sweep::{self, Ledger, SweepOptions};
use caguard_e2e::{app_credentials, client};
use caguard_sim::{Actor, sample_estate};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_discovery_still_enforces_the_msp_and_reports_every_known_customer() {
    let estate = sample_estate();
    let sim = caguard_sim::start(estate.clone(), Default::default()).await.unwrap();
    let config = sample_config(&estate);
    let client = client(&sim, app_credentials(&estate), Duration::from_millis(5));
    let (store, _dir) = caguard_e2e::temp_store("discovery");
    let opts = SweepOptions { apply: true, confirmed: true, ledger: Ledger(Some(store.clone())), ..Default::default() };
    let first = sweep::run(&client, &config, &opts).await.unwrap();
    assert!(first.discovery_error.is_none());
    let customers = first.tenants.len() - 1;
    assert_eq!(customers, estate.tenants.len() - 1, "the first sweep remembers every customer");

    let mut faults = sim.faults();
    faults.error_rate = 0.9;
    faults.error_paths = vec!["tenantRelationships/".into()];
    sim.set_faults(faults);
    let owned = store.records("owned").await.unwrap();
    let a2 = owned.iter().find(|(k, _)| k == "A2").unwrap().1["id"].as_str().unwrap().to_string();
    let admin = Actor::App { app_id: "11111111-2222-4333-8444-555555555555".into(), display_name: "Someone".into() };
    let path = format!("identity/conditionalAccess/policies/{a2}");

    // Each attempt drifts the MSP tenant first; the client retries 8 times, so a
    // discovery fails with probability 0.9^9 ≈ 39% per attempt.
    let mut failed = None;
    for _ in 0..20 {
        let (status, _) =
            sim.portal_edit(&config.msp_tenant_id, &admin, "PATCH", &path, Some(json!({"displayName": "Renamed"})));
        assert_eq!(status, 204);
        let r = sweep::run(&client, &config, &opts).await.unwrap();
        if r.discovery_error.is_some() {
            failed = Some(r);
            break;
        }
    }
    let r = failed.expect("one discovery in 20 failed");
    println!("{}", caguard::report::sweep_text(&r, true, None));

    let msp = r.result(&config.msp_tenant_id).expect("the MSP tenant has its result");
    assert_eq!(msp.outcome.label(), "fixed", "{:?}", msp.outcome);
    let stored = sim.tenant(&config.msp_tenant_id).unwrap();
    let block = stored.policies.iter().find(|p| p["id"] == a2.as_str()).unwrap();
    assert_eq!(block["displayName"], config.lockdowns[0].name.as_str(), "the MSP drift was restored");

    assert_eq!(r.tenants.len(), customers + 1, "every known customer has a result line");
    assert_eq!(r.count("unknown"), customers);
    for t in r.tenants.iter().filter(|t| !t.plan.msp) {
        let why = t.result.as_ref().unwrap().outcome.reason().unwrap();
        assert!(why.contains("discovery failed"), "{why}");
    }
    let alerts = caguard::cli::apply_alerts(&config, &r);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].kind, kind::DISCOVERY_FAILED);
    assert!(alerts[0].message.contains(&format!("{customers} customer tenant(s)")), "{}", alerts[0].message);
    assert_eq!(caguard::cli::apply_exit_code(&r, false), 1);
    assert!(caguard::report::sweep_text(&r, true, None).contains("DISCOVERY FAILED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_timer_still_queues_the_msp_tenant_and_records_every_known_customer_unknown() {
    use caguard_e2e::functions_app::{invoke, serve_with_client, timer, webhook_receiver};
    let estate = sample_estate();
    let sim = caguard_sim::start(estate.clone(), Default::default()).await.unwrap();
    let (store, _dir) = caguard_e2e::temp_store("discovery-fn");
    let (hook, inbox) = webhook_receiver().await;
    let alerter = caguard::alert::Alerter::new(
        store.clone(),
        60,
        None,
        None,
        Some((hook, caguard::alert::Schema::Caguard)),
        None,
    );
    let graph = client(&sim, app_credentials(&estate), Duration::from_millis(5));
    let base = serve_with_client(graph, &estate, &store, alerter, false).await;

    let first = invoke(&base, "SweepTimer", timer()).await;
    let known = first.outputs["reconcile"].as_array().unwrap().len() - 1;
    let mut faults = sim.faults();
    faults.error_rate = 1.0;
    faults.error_paths = vec!["tenantRelationships/".into()];
    sim.set_faults(faults);

    let tick = invoke(&base, "SweepTimer", timer()).await;
    let queued = tick.outputs["reconcile"].as_array().unwrap();
    assert_eq!(queued.len(), 1, "only the MSP tenant: {:?}", tick.logs);
    assert_eq!(queued[0]["msp"], true);
    assert!(tick.logs.iter().any(|l| l.contains("tenant discovery failed")), "{:?}", tick.logs);
    let statuses = store.statuses().await.unwrap();
    let unknown = statuses.iter().filter(|s| s.outcome == "unknown").count();
    let remembered = caguard::watch::last_known_tenants(store.as_ref()).await.len();
    assert!(remembered >= known, "{remembered} remembered, {known} queued before");
    assert_eq!(unknown, remembered, "every customer last seen is recorded unknown");
    let alerts = inbox.lock().unwrap().clone();
    let discovery: Vec<_> = alerts.iter().filter(|a| a["kind"] == kind::DISCOVERY_FAILED).collect();
    assert_eq!(discovery.len(), 1, "{alerts:#?}");
}
