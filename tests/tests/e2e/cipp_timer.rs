//! Part C through the Functions app: `CippTimer` enforces CIPP's access lists
//! in CIPP's own (Azurite) tables and raises alerts.

use caguard::functions::protocol::InvocationResponse;
use caguard::functions::{Ready, Settings, router};
use caguard::store::FileStore;
use caguard_e2e::{Azurite, sample_sim};
use serde_json::{Map, json};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cipp_timer_locks_down_an_open_api_client_in_cipps_own_table() {
    let az = Azurite::start();
    let tables = az.client();
    // CIPP's own table names; this is the only test that uses them.
    tables.create_table("ApiClients").await.unwrap();
    tables.create_table("AccessIPRanges").await.unwrap();
    let mut row = Map::new();
    row.insert("AppName".into(), json!("Open RMM"));
    row.insert("Role".into(), json!("editor"));
    row.insert("IPRange".into(), json!(""));
    row.insert("Enabled".into(), json!(true));
    // A shared Azurite may hold the rows from an earlier run: start from them open again.
    let _ = tables.delete("ApiClients", "ApiClients", "timer-open-client", "*").await;
    for role in ["readonly", "editor", "admin"] {
        let _ = tables.delete("AccessIPRanges", "AccessIPRanges", role, "*").await;
    }
    tables.insert("ApiClients", "ApiClients", "timer-open-client", &row).await.unwrap();

    let (sim, estate) = sample_sim(0, false).await;
    let store: Arc<dyn caguard::store::Store> =
        Arc::new(FileStore::new(std::env::temp_dir().join(format!("caguard-cipp-timer-{}.json", std::process::id()))));
    let ledger = store.clone();
    let ready = Ready {
        config: caguard::demo::sample_config(&estate),
        client: caguard::demo::sample_client(&sim, &estate),
        alerter: caguard::alert::Alerter::new(store.clone(), 60, None, None, None, None),
        store,
        queue: None,
        partner: Arc::new(caguard::partner::Verifier::from_env()),
        settings: Settings {
            confirm_large_plans: false,
            max_dequeue_count: 5,
            cipp_connection_string: Some(az.connection_string()),
            public_url: None,
            reconcile_queue: caguard::functions::RECONCILE_QUEUE.into(),
        },
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(Arc::new(Ok(ready)))).await });

    let inv = json!({"Data": {"timer": {"ScheduleStatus": null, "IsPastDue": false}}, "Metadata": {}});
    let resp: InvocationResponse =
        reqwest::Client::new().post(format!("{base}/CippTimer")).json(&inv).send().await.unwrap().json().await.unwrap();
    // The open client, and CIPP's three built-in roles with no AccessIPRanges row.
    assert!(resp.logs.iter().any(|l| l.contains("4 rows checked, 4 not compliant")), "{:?}", resp.logs);
    let fixed = tables.get("ApiClients", "ApiClients", "timer-open-client").await.unwrap().unwrap();
    assert_eq!(
        fixed.str("IPRange"),
        Some(r#"["203.0.113.10/32","2001:db8:10:0:0:0:0:0/48"]"#),
        "the sample config's trusted ranges, in CIPP's encoding and the form its save accepts"
    );
    assert_eq!(fixed.str("AppName"), Some("Open RMM"));
    let records = ledger.drift_records(Some("cipp")).await.unwrap();
    let rec =
        records.iter().find(|d| d.object_id.ends_with("timer-open-client")).expect("a C1 drift record in the ledger");
    assert_eq!(rec.control, "C1");
    assert_eq!(rec.before, json!(""));
    assert_eq!(rec.after, json!(r#"["203.0.113.10/32","2001:db8:10:0:0:0:0:0/48"]"#));
}
