//! #13, item 1: an emergency override is left in place. A break-glass account
//! turns the block policy off during an incident: the next reconcile does not
//! turn it back on, pauses that control in that tenant, and sends one alert; a
//! resume restores enforcement; the same change by anyone else is reverted.

use caguard::alert::{Alerter, Schema};
use caguard_e2e::functions_app::{invoke, serve_with_client, webhook_receiver};
use caguard_sim::{Actor, sample_estate};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_break_glass_change_is_left_in_place_until_resumed_and_anyone_elses_is_reverted() {
    let estate = sample_estate();
    let (sim, client) = caguard_e2e::unpaced_sim(&estate).await;
    let (store, dir) = caguard_e2e::temp_store("emergency");
    let (hook, inbox) = webhook_receiver().await;
    let alerter = Alerter::new(store.clone(), 60, None, None, Some((hook, Schema::Caguard)), None);
    let base = serve_with_client(client.clone(), &estate, &store, alerter, true).await;
    let msp = estate.msp_tenant_id.clone();
    let http = reqwest::Client::new();
    let reconcile = || async {
        let msg = json!({"tenantId": msp, "reason": "drift", "correlationId": "emergency", "msp": true});
        invoke(&base, "ReconcileTenant", json!({"reconcile": msg.to_string()})).await.return_value
    };
    // The first rollout, then a quiet run: caguard has the tenant in order.
    assert_eq!(reconcile().await["outcome"], "fixed");
    assert_eq!(reconcile().await["outcome"], "compliant");
    let a2 = store.records("owned").await.unwrap().into_iter().find(|(k, _)| k == "A2").unwrap().1["id"].clone();
    let block = || sim.tenant(&msp).unwrap().policies.into_iter().find(|p| p["id"] == a2).unwrap();
    let path = format!("identity/conditionalAccess/policies/{}", a2.as_str().unwrap());
    let user = |name: &str| {
        let u = estate.tenants[0].users.iter().find(|u| u["displayName"] == name).unwrap();
        Actor::User {
            id: u["id"].as_str().unwrap().into(),
            display_name: name.into(),
            user_principal_name: u["userPrincipalName"].as_str().unwrap().into(),
        }
    };
    inbox.lock().unwrap().clear();

    // A break-glass account turns the block policy off.
    let off = json!({"state": "disabled"});
    assert_eq!(sim.portal_edit(&msp, &user("Break Glass 1"), "PATCH", &path, Some(off.clone())).0, 204);
    let r = reconcile().await;
    assert_ne!(r["outcome"], "fixed", "{r}");
    assert_eq!(block()["state"], "disabled", "the emergency change stays");
    let alerts = inbox.lock().unwrap().clone();
    let urgent: Vec<&Value> = alerts.iter().filter(|a| a["kind"] == "emergency-override").collect();
    assert_eq!(urgent.len(), 1, "{alerts:#?}");
    assert!(urgent[0]["message"].as_str().unwrap().contains("Break Glass 1"), "{}", urgent[0]["message"]);
    assert!(urgent[0]["message"].as_str().unwrap().contains("caguard resume --tenant"), "says how to resume");
    let status: Value = http.get(format!("{base}/api/Status")).send().await.unwrap().json().await.unwrap();
    let pause = &status["pauses"][0];
    assert_eq!(pause["scope"], json!({"tenant": msp, "control": "A2"}), "{status}");
    assert!(pause["expires"].as_str().is_some());
    // `caguard status` on the same store shows it, with its expiry.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(caguard_e2e::caguard_binary())
            .args(args)
            .arg("--store")
            .arg(dir.join("store.json"))
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
    };
    let (code, shown) = cli(&["status"]);
    assert_eq!(code, Some(0));
    assert!(
        shown.contains(&format!("paused (control A2 in tenant {msp}) by Break Glass 1")) && shown.contains(" until 20"),
        "{shown}"
    );

    // The next run leaves it too, without alerting again.
    inbox.lock().unwrap().clear();
    reconcile().await;
    assert_eq!(block()["state"], "disabled");
    assert!(inbox.lock().unwrap().iter().all(|a| a["kind"] != "emergency-override"));

    // `caguard resume`: the next run enforces again.
    assert_eq!(cli(&["resume", "--tenant", &msp, "--control", "A2"]).0, Some(0));
    assert_eq!(reconcile().await["outcome"], "fixed");
    assert_eq!(block()["state"], "enabledForReportingButNotEnforced");

    // Anyone else's identical change is reverted straight away.
    assert_eq!(reconcile().await["outcome"], "compliant");
    assert_eq!(sim.portal_edit(&msp, &user("Alex Tech"), "PATCH", &path, Some(off)).0, 204);
    assert_eq!(reconcile().await["outcome"], "fixed");
    assert_eq!(block()["state"], "enabledForReportingButNotEnforced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_the_emergency_operators_group_is_an_emergency_actor_and_others_are_not() {
    let estate = sample_estate();
    let (sim, client) = caguard_e2e::unpaced_sim(&estate).await;
    let (store, _dir) = caguard_e2e::temp_store("emergency-group");
    let msp_spec = &estate.tenants[0];
    let group = |name: &str| {
        msp_spec.groups.iter().find(|g| g["displayName"] == name).unwrap()["id"].as_str().unwrap().to_string()
    };
    let toml = format!(
        "{}\n[emergency]\noperators_group = \"{}\"\npause_hours = 2\n",
        caguard::demo::sample_config_toml(&estate),
        group("CIPP Technicians")
    );
    let (config, _) = caguard::config::parse(&toml).unwrap();
    let alerter = Alerter::new(store.clone(), 60, None, None, None, None);
    let client = client.clone();
    let base = caguard_e2e::functions_app::serve_config(config, client, &store, alerter, true).await;
    let msp = estate.msp_tenant_id.clone();
    let reconcile = || async {
        let msg = json!({"tenantId": msp, "reason": "drift", "correlationId": "emergency-group", "msp": true});
        invoke(&base, "ReconcileTenant", json!({"reconcile": msg.to_string()})).await.return_value
    };
    assert_eq!(reconcile().await["outcome"], "fixed");
    assert_eq!(reconcile().await["outcome"], "compliant");
    let b1 = store.records("owned").await.unwrap().into_iter().find(|(k, _)| k == "B1").unwrap().1["id"].clone();
    let path = format!("identity/conditionalAccess/policies/{}", b1.as_str().unwrap());
    let user = |name: &str| {
        let u = msp_spec.users.iter().find(|u| u["displayName"] == name).unwrap();
        Actor::User {
            id: u["id"].as_str().unwrap().into(),
            display_name: name.into(),
            user_principal_name: u["userPrincipalName"].as_str().unwrap().into(),
        }
    };
    let b1_state = || sim.tenant(&msp).unwrap().policies.into_iter().find(|p| p["id"] == b1).unwrap()["state"].clone();

    // Dana is not in the group: her change is reverted.
    let off = json!({"state": "disabled"});
    assert_eq!(sim.portal_edit(&msp, &user("Dana Office"), "PATCH", &path, Some(off.clone())).0, 204);
    assert_eq!(reconcile().await["outcome"], "fixed");
    assert_eq!(b1_state(), "enabled");
    // Alex is: his is left in place, for the configured 2 hours.
    assert_eq!(sim.portal_edit(&msp, &user("Alex Tech"), "PATCH", &path, Some(off)).0, 204);
    assert_ne!(reconcile().await["outcome"], "fixed");
    assert_eq!(b1_state(), "disabled");
    let pauses = store.records(caguard::pause::KIND).await.unwrap();
    assert_eq!(pauses.len(), 1, "{pauses:?}");
    let p: caguard::pause::Pause = serde_json::from_value(pauses[0].1.clone()).unwrap();
    assert_eq!(p.scope.control, Some(caguard::config::Control::B1));
    assert!((p.expires - p.at).num_hours() == 2, "{p:?}");
}
