//! The hands-off loop through the Functions app, against the simulator and Azurite:
//! a named user removes the MSP exclusion in a customer tenant; the next watch tick
//! notices, the reconcile restores it, and exactly one alert names the actor.

use caguard::alert::{Alerter, Schema};
use caguard::store::{Store, TableStore};
use caguard_e2e::functions_app::{invoke, serve, timer, webhook_receiver};
use caguard_e2e::{Azurite, sample_sim, unique_table};
use caguard_sim::Actor;
use serde_json::json;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_in_a_customer_tenant_is_noticed_restored_and_alerted_once_naming_the_actor() {
    let az = Azurite::start();
    let (sim, estate) = sample_sim(0, true).await;
    let (hook, inbox) = webhook_receiver().await;
    let store: Arc<dyn Store> = Arc::new(TableStore::new(az.client(), &unique_table("w")));
    let alerter = Alerter::new(store.clone(), 60, None, None, Some((hook, Schema::Caguard)), None);
    let base = serve(&sim, &estate, &store, alerter, true).await;

    // The first rollout (confirmed, outside the alert path: it is not drift), then the watch's baseline.
    let rollout = caguard::sweep::SweepOptions { apply: true, confirmed: true, ..Default::default() };
    caguard::sweep::run(&caguard::demo::sample_client(&sim, &estate), &caguard::demo::sample_config(&estate), &rollout)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let baseline = invoke(&base, "WatchTimer", timer()).await;
    assert!(baseline.outputs["reconcile"].as_array().unwrap().is_empty(), "{:?}", baseline.logs);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let quiet = invoke(&base, "WatchTimer", timer()).await;
    assert!(quiet.outputs["reconcile"].as_array().unwrap().is_empty(), "nothing changed: {:?}", quiet.logs);
    inbox.lock().unwrap().clear();

    // Mallory removes the MSP exclusion in the portal.
    let fabrikam = estate.tenants.iter().find(|t| t.display_name == "Fabrikam Dental").unwrap();
    let policy = &fabrikam.policies[0];
    let mallory = Actor::User {
        id: "5f0c2b7e-3d1a-4c55-9e21-7a1d2c3b4e5f".into(),
        display_name: "Mallory Admin".into(),
        user_principal_name: "mallory@fabrikamdental.onmicrosoft.com".into(),
    };
    let path = format!("identity/conditionalAccess/policies/{}", policy["id"].as_str().unwrap());
    let (status, _) = sim.portal_edit(
        &fabrikam.id,
        &mallory,
        "PATCH",
        &path,
        Some(json!({"conditions": {"users": {"excludeGuestsOrExternalUsers": null}}})),
    );
    assert_eq!(status, 204);

    // The next tick notices only that tenant; the reconcile puts it back.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let tick = invoke(&base, "WatchTimer", timer()).await;
    let queued = tick.outputs["reconcile"].as_array().unwrap().clone();
    assert_eq!(queued.len(), 1, "{:?}", tick.logs);
    assert_eq!(queued[0]["tenantId"], fabrikam.id.as_str());
    assert_eq!(queued[0]["reason"], "drift");
    let fixed = invoke(&base, "ReconcileTenant", json!({"reconcile": queued[0].to_string()})).await;
    assert_eq!(fixed.return_value["outcome"], "fixed", "{:?}", fixed.logs);
    let stored = sim.tenant(&fabrikam.id).unwrap();
    let restored = stored.policies.iter().find(|p| p["id"] == policy["id"]).unwrap();
    assert_eq!(
        restored["conditions"]["users"]["excludeGuestsOrExternalUsers"]["externalTenants"]["members"][0],
        estate.msp_tenant_id.as_str()
    );

    // Exactly one alert, naming the actor from the audit log; and a drift record.
    let alerts = inbox.lock().unwrap().clone();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["kind"], "drift-fixed");
    assert_eq!(alerts[0]["control"], "D1");
    assert_eq!(alerts[0]["tenant"]["id"], fabrikam.id.as_str());
    assert_eq!(alerts[0]["changedBy"], "Mallory Admin <mallory@fabrikamdental.onmicrosoft.com>");
    assert!(alerts[0]["diff"]["after"]["conditions"]["users"]["excludeGuestsOrExternalUsers"].is_object());
    let records = store.drift_records(Some(&fabrikam.id)).await.unwrap();
    assert_eq!(records[0].changed_by, "Mallory Admin <mallory@fabrikamdental.onmicrosoft.com>");
    assert_eq!(records[0].control, "D1");

    // A redelivered message and the next tick change nothing and alert nothing more.
    invoke(&base, "ReconcileTenant", json!({"reconcile": queued[0]})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let after = invoke(&base, "WatchTimer", timer()).await;
    for m in after.outputs["reconcile"].as_array().unwrap() {
        let r = invoke(&base, "ReconcileTenant", json!({"reconcile": m})).await;
        assert_eq!(r.return_value["outcome"], "compliant");
    }
    assert_eq!(inbox.lock().unwrap().len(), 1, "still exactly one alert");
}

/// Graph requests of one tenant in the journal (tokens aside).
fn graph_requests(journal: &[caguard_sim::JournalEntry], tenant: &str) -> Vec<String> {
    journal
        .iter()
        .filter(|e| e.kind == "graph" && e.tenant.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(tenant)))
        .map(|e| format!("{} {}", e.method, e.path))
        .collect()
}

/// The watch keeps its tenant list between ticks (in the Table store): a quiet tick is
/// one policy list per customer and two in the MSP tenant, with no GDAP listing; a
/// discovery elsewhere (sweep, Partner Center event) adds and drops tenants, and an old
/// list is rediscovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_lists_each_tenant_once_and_rediscovers_only_when_its_list_is_old() {
    let az = Azurite::start();
    let (sim, estate) = sample_sim(0, true).await;
    let store: Arc<dyn Store> = Arc::new(TableStore::new(az.client(), &unique_table("wl")));
    let client = caguard::demo::sample_client(&sim, &estate);
    let config = caguard::demo::sample_config(&estate);
    let msp = estate.msp_tenant_id.clone();
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(1100));

    let first = caguard::watch::tick(&client, &config, None, &store, 16, false).await.unwrap();
    assert!(first.rediscovered);
    let watched = first.baseline;
    // 22 active GDAP customers, 2 direct ones and the MSP tenant; two GDAP customers cannot
    // be read (no consent, no permission).
    assert_eq!((watched, first.errors.len()), (23, 2), "{first:?}");
    assert_eq!(store.records("watch-tenant").await.unwrap().len(), 26, "every GDAP and direct customer is remembered");

    pause().await;
    sim.clear_journal();
    let quiet = caguard::watch::tick(&client, &config, None, &store, 16, false).await.unwrap();
    assert!(!quiet.rediscovered);
    assert_eq!((quiet.unchanged, quiet.changed.len(), quiet.errors.len()), (watched, 0, 2), "{quiet:?}");
    let journal = sim.journal();
    let graph: Vec<&caguard_sim::JournalEntry> = journal.iter().filter(|e| e.kind == "graph").collect();
    assert!(graph.iter().all(|e| e.method == "GET"), "only reads");
    let gdap: Vec<_> = graph.iter().filter(|e| !e.ca).collect();
    assert_eq!(gdap.len(), 1, "one GDAP request: the relationships changed since the last tick");
    assert!(gdap[0].path.ends_with("delegatedAdminRelationships") && gdap[0].query.contains("lastModifiedDateTime"));
    assert_eq!(graph_requests(&journal, &msp).len(), 3, "the MSP's policies, named locations, and the GDAP check");
    let no_token: Vec<&String> = quiet.errors.iter().filter(|(_, e)| e.contains("token")).map(|(t, _)| t).collect();
    assert_eq!(no_token.len(), 1);
    let customers = first_watched_customers(&store, &msp).await;
    for t in customers.iter().filter(|t| !no_token.contains(t)) {
        assert_eq!(graph_requests(&journal, t), vec!["GET /v1.0/identity/conditionalAccess/policies"], "{t}");
    }
    assert_eq!(graph.len(), customers.len() - 1 + 3, "one list per readable customer, three in the MSP tenant");

    // A new customer appears; a discovery (as a sweep or a Partner Center event makes)
    // hands it to the watch, and the next tick takes its baseline without listing GDAP.
    let mut tenant = estate.tenants.iter().find(|t| t.display_name == "Fabrikam Dental").unwrap().clone();
    tenant.id = "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6".into();
    tenant.display_name = "Newco Plumbing".into();
    sim.add_tenant(tenant.clone());
    sim.upsert_relationship(json!({"id": "rel-newco", "displayName": "GDAP Newco", "status": "active",
        "customer": {"tenantId": tenant.id, "displayName": "Newco Plumbing"},
        "accessDetails": {"unifiedRoles": [{"roleDefinitionId": "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9"}]}}));
    let found = caguard::observe::discover(&client, &config, None).await.unwrap();
    caguard::watch::remember_tenants(store.as_ref(), &found).await.unwrap();
    pause().await;
    let with_newco = caguard::watch::tick(&client, &config, None, &store, 16, false).await.unwrap();
    assert!(!with_newco.rediscovered);
    assert_eq!((with_newco.baseline, with_newco.unchanged), (1, watched), "{with_newco:?}");

    // Terminated: dropped from the list at the next discovery, and no longer polled.
    sim.upsert_relationship(json!({"id": "rel-newco", "status": "terminated",
        "customer": {"tenantId": tenant.id, "displayName": "Newco Plumbing"}, "accessDetails": {"unifiedRoles": []}}));
    let found = caguard::observe::discover(&client, &config, None).await.unwrap();
    caguard::watch::remember_tenants(store.as_ref(), &found).await.unwrap();
    pause().await;
    sim.clear_journal();
    let after = caguard::watch::tick(&client, &config, None, &store, 16, false).await.unwrap();
    assert_eq!(after.unchanged, watched, "{after:?}");
    assert!(graph_requests(&sim.journal(), &tenant.id).is_empty(), "a terminated tenant is not polled");

    // A list older than [watch] rediscover_minutes is discovered again.
    let stale = (chrono::Utc::now() - chrono::Duration::minutes(config.watch_rediscover_minutes + 1)).to_rfc3339();
    store.put_record("watch", "discovered", json!({"at": stale})).await.unwrap();
    pause().await;
    sim.clear_journal();
    let old = caguard::watch::tick(&client, &config, None, &store, 16, false).await.unwrap();
    assert!(old.rediscovered);
    assert!(graph_requests(&sim.journal(), &msp).iter().any(|r| r.contains("delegatedAdminRelationships")));
}

/// The active customers the watch remembers.
async fn first_watched_customers(store: &Arc<dyn Store>, msp: &str) -> Vec<String> {
    let list = store.records("watch-tenant").await.unwrap();
    let out: Vec<String> =
        list.iter().filter(|(k, v)| v["active"] == true && k != msp).map(|(k, _)| k.clone()).collect();
    assert_eq!(out.len(), 24, "22 active GDAP customers and 2 direct ones");
    out
}

/// The change budget is counted on the estate, per tick: three customers drifting
/// in one tick (3 of 25 tenants, under the 20% limit) are all restored, none held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_customers_drifting_in_one_tick_are_all_restored_without_a_hold() {
    let az = Azurite::start();
    let (sim, estate) = sample_sim(0, true).await;
    let store: Arc<dyn Store> = Arc::new(TableStore::new(az.client(), &unique_table("budget")));
    let alerter = Alerter::new(store.clone(), 60, None, None, None, None);
    let base = serve(&sim, &estate, &store, alerter, false).await;
    let rollout = caguard::sweep::SweepOptions { apply: true, confirmed: true, ..Default::default() };
    caguard::sweep::run(&caguard::demo::sample_client(&sim, &estate), &caguard::demo::sample_config(&estate), &rollout)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    invoke(&base, "WatchTimer", timer()).await;

    let pat =
        Actor::User { id: "u-pat".into(), display_name: "Pat".into(), user_principal_name: "pat@x.example".into() };
    let drifted = ["Fabrikam Dental", "Relecloud", "Trey Research"];
    for name in drifted {
        let t = estate.tenants.iter().find(|t| t.display_name == name).unwrap();
        let path = format!("identity/conditionalAccess/policies/{}", t.policies[0]["id"].as_str().unwrap());
        let body = json!({"conditions": {"users": {"excludeGuestsOrExternalUsers": null}}});
        assert_eq!(sim.portal_edit(&t.id, &pat, "PATCH", &path, Some(body)).0, 204);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let tick = invoke(&base, "WatchTimer", timer()).await;
    let queued = tick.outputs["reconcile"].as_array().unwrap().clone();
    assert_eq!(queued.len(), 3, "{:?}", tick.logs);
    for m in &queued {
        // The estate the watch knows: every tenant but the two without an active relationship.
        assert_eq!(m["sweepSize"], estate.tenants.len() - 2, "{m}");
        let r = invoke(&base, "ReconcileTenant", json!({"reconcile": m})).await;
        assert_eq!(r.return_value["outcome"], "fixed", "{m}: {:?} {:?}", r.return_value, r.logs);
    }
}

/// A new GDAP customer, added through the simulator's admin API, is named by the next
/// ordinary tick (no rediscovery, no Partner Center event), and the reconcile that
/// tick queues brings its policies into line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_gdap_customer_is_found_by_the_next_ordinary_tick_and_reconciled() {
    let (sim, estate) = sample_sim(0, false).await;
    let (store, _) = caguard_e2e::temp_store("watch-new-customer");
    let base = serve(&sim, &estate, &store, Alerter::new(store.clone(), 60, None, None, None, None), true).await;
    let first = invoke(&base, "WatchTimer", timer()).await;
    assert!(first.logs.iter().any(|l| l.contains("tenant list rediscovered")), "{:?}", first.logs);

    let mut tenant = estate.tenants.iter().find(|t| t.display_name == "Fabrikam Dental").unwrap().clone();
    tenant.id = "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6".into();
    tenant.display_name = "Newco Plumbing".into();
    let http = reqwest::Client::new();
    let added = http.post(format!("{}/_sim/tenants", sim.base_url)).json(&tenant).send().await.unwrap();
    assert!(added.status().is_success());
    let rel = json!({"id": "rel-newco", "displayName": "GDAP Newco", "status": "active",
        "customer": {"tenantId": tenant.id, "displayName": "Newco Plumbing"},
        "accessDetails": {"unifiedRoles": [{"roleDefinitionId": "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9"}]}});
    assert!(
        http.post(format!("{}/_sim/relationships", sim.base_url))
            .json(&rel)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let tick = invoke(&base, "WatchTimer", timer()).await;
    assert!(!tick.logs.iter().any(|l| l.contains("rediscovered")), "an ordinary tick: {:?}", tick.logs);
    assert!(
        tick.logs.iter().any(|l| l.contains("new GDAP customer Newco Plumbing") && l.contains(&tenant.id)),
        "the tick names it: {:?}",
        tick.logs
    );
    let queued = tick.outputs["reconcile"].as_array().unwrap();
    let msg = queued.iter().find(|m| m["tenantId"] == tenant.id.as_str()).expect("its reconcile is queued");
    assert_eq!(msg["reason"], "new GDAP customer");

    let done = invoke(&base, "ReconcileTenant", json!({"reconcile": msg.to_string()})).await;
    assert_eq!(done.return_value["outcome"], "fixed", "{:?}", done.logs);
    let after = caguard::observe::customer(
        &caguard::demo::sample_client(&sim, &estate),
        &caguard::demo::sample_config(&estate),
        &caguard::observe::Customer {
            tenant_id: tenant.id.clone(),
            name: "Newco Plumbing".into(),
            active: true,
            status: "active".into(),
            can_write_ca: Some(true),
            direct: false,
        },
    )
    .await
    .unwrap();
    let plan = caguard::plan::plan_customer(&caguard::demo::sample_config(&estate), &after);
    assert!(plan.actions.is_empty(), "compliant after the queued reconcile: {:?}", plan.actions);
    let again = invoke(&base, "WatchTimer", timer()).await;
    assert!(!again.logs.iter().any(|l| l.contains("new GDAP customer")), "named once: {:?}", again.logs);
}
