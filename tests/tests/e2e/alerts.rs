//! Alert channels: Teams (Adaptive Card), Slack, the JSON webhook in both schemas,
//! and email through Graph; one alert per window with a count; URLs never shown.

use caguard::alert::{Alert, Alerter, Delivery, Email, Schema, kind};
use caguard::store::{FileStore, Store};
use caguard_e2e::sample_sim;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

type Inbox = Arc<Mutex<Vec<(String, Value)>>>;

async fn receiver() -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let app = axum::Router::new()
        .route(
            "/{channel}/{secret}",
            axum::routing::post(
                |axum::extract::State(i): axum::extract::State<Inbox>,
                 axum::extract::Path((c, _)): axum::extract::Path<(String, String)>,
                 axum::Json(v): axum::Json<Value>| async move {
                    i.lock().unwrap().push((c, v));
                    "ok"
                },
            ),
        )
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, inbox)
}

fn drift_alert() -> Alert {
    Alert {
        tenant_id: "t-fabrikam".into(),
        tenant_name: "Fabrikam Dental".into(),
        kind: kind::DRIFT_FIXED.into(),
        message: "D1 \"Require MFA\": the MSP's service-provider users are not excluded; restored.".into(),
        control: Some("D1".into()),
        object_id: Some("p1".into()),
        object_name: Some("Require MFA".into()),
        changed_by: Some("Mallory Admin <mallory@fabrikam.example>".into()),
        changed_at: Some("2026-11-21T10:01:12Z".into()),
        before: Some(json!({"conditions": {"users": {"excludeGuestsOrExternalUsers": null}}})),
        after: Some(
            json!({"conditions": {"users": {"excludeGuestsOrExternalUsers": {"guestOrExternalUserTypes": "serviceProvider"}}}}),
        ),
        tenant_domain: Some("fabrikamdental.example".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_gets_its_shape_once_per_window() {
    let (base, inbox) = receiver().await;
    let (sim, estate) = sample_sim(0, false).await;
    let msp = estate.tenants.iter().find(|t| t.id == estate.msp_tenant_id).unwrap();
    let mailbox = msp.users.iter().find(|u| u["displayName"] == "Dana Office").unwrap()["userPrincipalName"]
        .as_str()
        .unwrap()
        .to_string();
    let store: Arc<dyn Store> =
        Arc::new(FileStore::new(std::env::temp_dir().join(format!("caguard-alerts-{}.json", std::process::id()))));
    let email = Email {
        client: caguard::demo::sample_client(&sim, &estate),
        tenant: estate.msp_tenant_id.clone(),
        from: mailbox,
        to: vec!["noc@contosomsp.example".into()],
    };
    let alerter = Alerter::new(
        store,
        60,
        Some(format!("{base}/teams/s3cr3t-teams")),
        Some(format!("{base}/slack/s3cr3t-slack")),
        Some((format!("{base}/webhook/s3cr3t-hook"), Schema::Cipp)),
        Some(email),
    );
    let first = alerter.send(&drift_alert()).await;
    assert_eq!(
        first,
        Delivery::Sent { channels: vec!["log", "teams", "slack", "webhook", "email"], failed: vec![], skipped: vec![] }
    );
    assert_eq!(
        alerter.send(&drift_alert()).await,
        Delivery::Suppressed { count: 2 },
        "once per (tenant, object, control) per window"
    );
    let other = Alert { object_id: Some("p2".into()), ..drift_alert() };
    assert!(matches!(alerter.send(&other).await, Delivery::Sent { .. }), "another object is another alert");

    let got = inbox.lock().unwrap().clone();
    let by = |c: &str| got.iter().find(|(ch, _)| ch == c).map(|(_, v)| v.clone()).unwrap();
    let teams = by("teams");
    assert_eq!(teams["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(teams["attachments"][0]["content"]["type"], "AdaptiveCard");
    let facts = teams["attachments"][0]["content"]["body"][1]["facts"].as_array().unwrap();
    assert!(
        facts.iter().any(|f| f["title"] == "Changed by" && f["value"] == "Mallory Admin <mallory@fabrikam.example>")
    );
    assert_eq!(by("slack")["blocks"][0]["type"], "header");
    let cipp = by("webhook");
    assert_eq!(cipp["schemaVersion"], "1.0");
    assert_eq!(cipp["payload"][0]["RawData"]["ChangedBy"], "Mallory Admin <mallory@fabrikam.example>");
    let mail = sim.outbox();
    assert_eq!(mail.len(), 2, "two distinct alerts mailed");
    assert!(mail[0]["body"]["message"]["subject"].as_str().unwrap().contains("Fabrikam Dental"));
    assert!(
        mail[0]["body"]["message"]["body"]["content"]
            .as_str()
            .unwrap()
            .contains("Mallory Admin &lt;mallory@fabrikam.example&gt;")
    );
}

#[tokio::test]
async fn a_failing_channel_is_reported_without_its_url() {
    let store: Arc<dyn Store> =
        Arc::new(FileStore::new(std::env::temp_dir().join(format!("caguard-alerts-fail-{}.json", std::process::id()))));
    let alerter = Alerter::new(store, 60, Some("http://127.0.0.1:9/teams/very-secret-token".into()), None, None, None)
        .with_retry(caguard::alert::Retry {
            attempts: 2,
            base: std::time::Duration::from_millis(10),
            ..Default::default()
        });
    let Delivery::Sent { failed, .. } = alerter.send(&drift_alert()).await else { panic!("sent") };
    assert_eq!(failed.len(), 1);
    assert!(failed[0].starts_with("teams:"), "{failed:?}");
    assert!(
        !failed[0].contains("very-secret-token") && !failed[0].contains("127.0.0.1:9"),
        "the URL is never shown: {failed:?}"
    );
}
