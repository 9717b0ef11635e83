//! #13, item 2: the people on call can always stop caguard. A paused control is
//! planned but not written; a paused tenant (or everything) is skipped; pauses
//! come from the CLI, the HTTP function or an app setting; an expired pause is
//! never honoured and is alerted once.

use caguard::alert::{Alerter, Schema};
use caguard::pause::{self, Pause, Scope};
use caguard::store::Store;
use caguard::sweep;
use caguard_e2e::functions_app::{invoke, serve_with_client, webhook_receiver};
use caguard_sim::{Actor, sample_estate};
use serde_json::{Value, json};
use std::sync::Arc;

fn store(name: &str) -> (Arc<dyn Store>, std::path::PathBuf) {
    caguard_e2e::temp_store(&format!("pause-{name}"))
}

fn someone() -> Actor {
    Actor::App { app_id: "11111111-2222-4333-8444-555555555555".into(), display_name: "Someone".into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_control_is_planned_not_written_until_resumed() {
    let estate = sample_estate();
    let (sim, client) = caguard_e2e::unpaced_sim(&estate).await;
    let config = caguard::demo::sample_config(&estate);
    let client = client.clone();
    let (ledger, _) = store("control");
    let msp = config.msp_tenant_id.clone();
    let opts = caguard_e2e::apply_msp_only(&msp, &ledger);
    sweep::run(&client, &config, &opts).await.unwrap();
    let a2 = ledger.records("owned").await.unwrap().into_iter().find(|(k, _)| k == "A2").unwrap().1["id"].clone();
    let path = format!("identity/conditionalAccess/policies/{}", a2.as_str().unwrap());
    let renamed = json!({"displayName": "Renamed during an incident"});
    assert_eq!(sim.portal_edit(&msp, &someone(), "PATCH", &path, Some(renamed)).0, 204);

    let scope = Scope::parse(Some(&msp), Some("A2")).unwrap();
    pause::pause(ledger.as_ref(), &Pause::new(scope.clone(), "incident 42", "on-call", 2, chrono::Utc::now()).unwrap())
        .await
        .unwrap();
    let r = sweep::run(&client, &config, &opts).await.unwrap();
    let t = &r.tenants[0];
    let a = t.plan.actions.iter().find(|a| a.control.to_string() == "A2").expect("the drift is still planned");
    assert_eq!(a.mode, caguard::config::ControlMode::Report);
    assert_eq!(t.result.as_ref().unwrap().written, 0, "{:?}", t.result);
    let block = sim.tenant(&msp).unwrap().policies.into_iter().find(|p| p["id"] == a2).unwrap();
    assert_eq!(block["displayName"], "Renamed during an incident", "left alone while paused");

    assert!(pause::resume(ledger.as_ref(), &scope).await.unwrap());
    let r = sweep::run(&client, &config, &opts).await.unwrap();
    assert_eq!(r.tenants[0].result.as_ref().unwrap().outcome.label(), "fixed");
    let block = sim.tenant(&msp).unwrap().policies.into_iter().find(|p| p["id"] == a2).unwrap();
    assert_eq!(block["displayName"], config.lockdowns[0].name.as_str(), "restored once resumed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_function_pauses_everything_status_shows_it_and_resume_restores() {
    let estate = sample_estate();
    let (sim, client) = caguard_e2e::unpaced_sim(&estate).await;
    let (ledger, _) = store("http");
    let (hook, inbox) = webhook_receiver().await;
    let alerter = Alerter::new(ledger.clone(), 60, None, None, Some((hook, Schema::Caguard)), None);
    let base = serve_with_client(client.clone(), &estate, &ledger, alerter, true).await;
    let http = reqwest::Client::new();
    let msp = estate.msp_tenant_id.clone();
    let reconcile = || async {
        let msg = json!({"tenantId": msp, "reason": "sweep", "correlationId": "pause", "msp": true});
        invoke(&base, "ReconcileTenant", json!({"reconcile": msg.to_string()})).await.return_value
    };

    let bad = http.post(format!("{base}/api/Pause")).json(&json!({"reason": "x", "control": "Z9"})).send().await;
    assert_eq!(bad.unwrap().status(), 400, "a bad scope is refused");
    let p = http
        .post(format!("{base}/api/Pause"))
        .json(&json!({"reason": "bad trusted range, incident 42", "hours": 4, "by": "alex@contosomsp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(p.status(), 200);
    let alerts = inbox.lock().unwrap().clone();
    assert_eq!(alerts.iter().filter(|a| a["kind"] == "paused").count(), 1, "{alerts:#?}");

    let result = reconcile().await;
    assert_eq!(result["outcome"], "skipped", "{result}");
    assert!(result["reason"].as_str().unwrap().contains("paused (everything) by alex@contosomsp"), "{result}");
    assert!(sim.journal().iter().all(|e| !e.is_write()), "nothing written while paused");
    let status: Value = http.get(format!("{base}/api/Status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["pauses"][0]["reason"], "bad trusted range, incident 42", "{status}");

    let resumed = http.post(format!("{base}/api/Resume")).json(&json!({})).send().await.unwrap();
    assert_eq!(resumed.status(), 200);
    let again = http.post(format!("{base}/api/Resume")).json(&json!({})).send().await.unwrap();
    assert_eq!(again.status(), 404, "nothing left to resume");
    assert_eq!(reconcile().await["outcome"], "fixed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_pause_is_not_honoured_and_is_alerted_once_and_one_about_to_expire_is_reminded() {
    let estate = sample_estate();
    let (_sim, client) = caguard_e2e::unpaced_sim(&estate).await;
    let (ledger, _) = store("expired");
    let (hook, inbox) = webhook_receiver().await;
    let alerter = Alerter::new(ledger.clone(), 60, None, None, Some((hook, Schema::Caguard)), None);
    let base = serve_with_client(client.clone(), &estate, &ledger, alerter, true).await;
    let long_ago = chrono::Utc::now() - chrono::Duration::hours(30);
    let p = Pause::new(Scope::default(), "forgotten", "on-call", 24, long_ago).unwrap();
    pause::pause(ledger.as_ref(), &p).await.unwrap();
    // And one about to expire: reminded before it does.
    let soon = chrono::Utc::now() - chrono::Duration::minutes(90);
    let d1 = Pause::new(Scope::parse(None, Some("D1")).unwrap(), "customer asked", "on-call", 2, soon).unwrap();
    pause::pause(ledger.as_ref(), &d1).await.unwrap();

    let msg = json!({"tenantId": estate.msp_tenant_id, "reason": "sweep", "correlationId": "expired", "msp": true});
    let done = invoke(&base, "ReconcileTenant", json!({"reconcile": msg.to_string()})).await;
    assert_eq!(done.return_value["outcome"], "fixed", "{:?}", done.logs);
    let alerts = inbox.lock().unwrap().clone();
    let expired: Vec<&Value> = alerts.iter().filter(|a| a["kind"] == "pause-expired").collect();
    assert_eq!(expired.len(), 1, "{alerts:#?}");
    let reminders: Vec<&Value> = alerts.iter().filter(|a| a["kind"] == "pause-expiring").collect();
    assert_eq!(reminders.len(), 1, "{alerts:#?}");
    assert!(reminders[0]["message"].as_str().unwrap().contains("control D1"), "{}", reminders[0]["message"]);
    let left = ledger.records(pause::KIND).await.unwrap();
    assert_eq!(left.len(), 1, "the expired pause is removed, the other kept: {left:?}");
}
