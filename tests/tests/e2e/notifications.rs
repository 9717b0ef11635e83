//! Graph change notifications through the Functions app: subscriptions created and
//! renewed against the simulator (which runs Graph's validation handshake against
//! caguard), validation echoed, clientState checked, lifecycle events handled, and
//! accepted notifications queued (Azurite) rather than worked on inline.

use caguard::alert::Alerter;
use caguard::functions::{Ready, Settings, router};
use caguard::notify::SubscriptionRecord;
use caguard::store::{FileStore, Store};
use caguard_e2e::{Azurite, sample_sim, unique_table};
use serde_json::{Value, json};
use std::sync::Arc;

struct App {
    base: String,
    store: Arc<dyn Store>,
    queue: caguard::storage::QueueClient,
    queue_name: String,
    sim: caguard_sim::SimHandle,
    _az: Azurite,
}

async fn app() -> App {
    let az = Azurite::start_queue();
    let queue = az.queue_client();
    // A queue of its own: Azurite may be shared with other tests.
    let queue_name = unique_table("reconcile").to_ascii_lowercase();
    let _ = queue.create_queue(&queue_name).await;
    let (sim, estate) = sample_sim(0, false).await;
    let store: Arc<dyn Store> = Arc::new(FileStore::new(std::env::temp_dir().join(format!(
        "caguard-notify-{}-{}.json",
        std::process::id(),
        fastrand_suffix()
    ))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let ready = Ready {
        config: caguard::demo::sample_config(&estate),
        client: caguard::demo::sample_client(&sim, &estate),
        alerter: Alerter::new(store.clone(), 60, None, None, None, None),
        store: store.clone(),
        queue: Some(queue.clone()),
        partner: Arc::new(caguard::partner::Verifier::from_env()),
        settings: Settings {
            confirm_large_plans: false,
            max_dequeue_count: 5,
            cipp_connection_string: None,
            public_url: Some(base.clone()),
            reconcile_queue: queue_name.clone(),
        },
    };
    tokio::spawn(async move { axum::serve(listener, router(Arc::new(Ok(ready)))).await });
    App { base, store, queue, queue_name, sim, _az: az }
}

fn fastrand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

async fn renew(a: &App) -> Value {
    let inv = json!({"Data": {"timer": {"ScheduleStatus": null, "IsPastDue": false}}, "Metadata": {}});
    let r = reqwest::Client::new().post(format!("{}/RenewSubscriptionsTimer", a.base)).json(&inv).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["ReturnValue"].clone()
}

async fn post(a: &App, route: &str, body: Value) -> u16 {
    reqwest::Client::new().post(format!("{}/api/{route}", a.base)).json(&body).send().await.unwrap().status().as_u16()
}

async fn subs(a: &App) -> Vec<SubscriptionRecord> {
    caguard::notify::records(a.store.as_ref()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_created_through_the_handshake_and_renewed_near_expiry() {
    let a = app().await;
    let report = renew(&a).await;
    assert_eq!(report["created"], 5, "technician group, two break-glass accounts, two service accounts: {report}");
    let msp = a.sim.tenant("6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7d").unwrap();
    assert_eq!(msp.subscriptions.len(), 5, "Graph (the simulator) validated our endpoint and stored them");
    let mut records = subs(&a).await;
    assert!(records.iter().all(|r| r.client_state.len() == 64), "a random clientState each");
    assert_eq!(renew(&a).await["kept"], 5, "nothing to do a moment later");

    // One is about to expire: the next pass renews it.
    let near = &mut records[0];
    near.expiration = (chrono::Utc::now() + chrono::Duration::hours(3)).to_rfc3339();
    a.store.put_record(caguard::notify::KIND, &near.id, serde_json::to_value(&*near).unwrap()).await.unwrap();
    a.sim.clear_journal();
    let report = renew(&a).await;
    assert_eq!(report["renewed"], 1, "{report}");
    let patch = a.sim.journal().into_iter().find(|e| e.method == "PATCH").expect("a PATCH of the subscription");
    assert!(patch.path.ends_with(&near.id));
    let renewed = subs(&a).await.into_iter().find(|r| r.id == near.id).unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(&renewed.expiration).unwrap()
            > chrono::Utc::now() + chrono::Duration::days(20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_is_echoed_and_only_matching_client_state_is_queued() {
    let a = app().await;
    let http = reqwest::Client::new();
    for route in ["GraphNotifications", "GraphLifecycle"] {
        let r = http
            .post(format!("{}/api/{route}?validationToken=Validation%3A%20Testing%20%3Cclient%3E", a.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/plain");
        assert_eq!(r.text().await.unwrap(), "Validation: Testing <client>", "the decoded token, exactly");
    }
    renew(&a).await;
    let sub = subs(&a).await.into_iter().next().unwrap();
    let note = |state: &str| {
        json!({"value": [{"subscriptionId": sub.id, "clientState": state, "changeType": "updated",
                                                "resource": sub.resource, "tenantId": "6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7d"}]})
    };

    let started = std::time::Instant::now();
    assert_eq!(post(&a, "GraphNotifications", note("not-the-secret")).await, 202);
    assert!(a.queue.receive(&a.queue_name).await.unwrap().is_empty(), "a wrong clientState is never processed");

    assert_eq!(post(&a, "GraphNotifications", note(&sub.client_state)).await, 202);
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "answered inside Graph's 3 s");
    let queued = a.queue.receive(&a.queue_name).await.unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    let msg: Value = serde_json::from_str(&queued[0]).unwrap();
    assert_eq!(msg["reason"], "membership-change");
    assert_eq!(msg["msp"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_events_reauthorize_recreate_and_reconcile() {
    let a = app().await;
    renew(&a).await;
    let all = subs(&a).await;
    let life = |s: &SubscriptionRecord, event: &str| {
        json!({"value": [{"subscriptionId": s.id, "clientState": s.client_state,
        "subscriptionExpirationDateTime": s.expiration, "tenantId": "6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7d", "lifecycleEvent": event}]})
    };

    a.sim.clear_journal();
    assert_eq!(post(&a, "GraphLifecycle", life(&all[0], "reauthorizationRequired")).await, 202);
    assert!(
        a.sim.journal().iter().any(|e| e.method == "POST" && e.path.ends_with(&format!("{}/reauthorize", all[0].id))),
        "reauthorized"
    );

    assert_eq!(post(&a, "GraphLifecycle", life(&all[1], "subscriptionRemoved")).await, 202);
    let after = subs(&a).await;
    assert!(!after.iter().any(|s| s.id == all[1].id), "the removed one is forgotten");
    assert!(after.iter().any(|s| s.resource == all[1].resource && s.id != all[1].id), "and recreated");

    assert_eq!(post(&a, "GraphLifecycle", life(&all[2], "missed")).await, 202);
    let queued = a.queue.receive(&a.queue_name).await.unwrap();
    assert!(queued.iter().any(|m| m.contains("missed-notifications")), "{queued:?}");

    let mut forged = all[3].clone();
    forged.client_state = "forged".into();
    a.sim.clear_journal();
    assert_eq!(post(&a, "GraphLifecycle", life(&forged, "reauthorizationRequired")).await, 202);
    assert!(a.sim.journal().iter().all(|e| !e.path.contains("reauthorize")), "a forged lifecycle event is dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_subscription_is_kept_for_the_retry_when_graph_is_slow_and_recreated_on_redelivery() {
    let a = app().await;
    renew(&a).await;
    let all = subs(&a).await;
    let removed = json!({"value": [{"subscriptionId": all[0].id, "clientState": all[0].client_state,
        "subscriptionExpirationDateTime": all[0].expiration, "tenantId": "6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7d",
        "lifecycleEvent": "subscriptionRemoved"}]});

    // Graph answers slower than the 3 s budget: 503, and the record stays for the retry.
    let mut faults = a.sim.faults();
    faults.latency_ms = 3000;
    a.sim.set_faults(faults.clone());
    assert_eq!(post(&a, "GraphLifecycle", removed.clone()).await, 503);
    assert!(subs(&a).await.iter().any(|s| s.id == all[0].id), "the record survives a cut-short recreate");

    // The redelivery, with Graph back to normal, is recognised and recreates it.
    faults.latency_ms = 0;
    a.sim.set_faults(faults);
    assert_eq!(post(&a, "GraphLifecycle", removed).await, 202);
    let after = subs(&a).await;
    assert!(!after.iter().any(|s| s.id == all[0].id), "the removed one is forgotten");
    let same: Vec<&SubscriptionRecord> = after.iter().filter(|s| s.resource == all[0].resource).collect();
    assert!(!same.is_empty() && same.iter().all(|s| s.id != all[0].id), "and recreated: {after:?}");
}
