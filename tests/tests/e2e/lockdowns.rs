//! #16 end to end: a CIPP-plus-Syncro MSP (the sample config: two lockdown
//! policies, two service accounts, MFA on the CIPP app, S4 enforced).
//!
//! - From an empty MSP tenant one apply creates every configured object, and a
//!   second plan is empty.
//! - S4's strict location is written through beta with the Prefer header; v1.0
//!   reads do not show it, and a v1.0 write afterwards keeps it.
//! - An out-of-band edit to each owned object is detected, restored, and
//!   attributed to whoever made it.

use caguard::audit::{self, Own};
use caguard::demo::sample_config;
use caguard::sweep::{self, SweepOptions};
use caguard_e2e::{apply_msp_only, temp_store};
use caguard_sim::{Actor, sample_estate};
use serde_json::{Value, json};

fn mallory() -> Actor {
    Actor::User {
        id: "5f0c2b7e-3d1a-4c55-9e21-7a1d2c3b4e5f".into(),
        display_name: "Mallory Admin".into(),
        user_principal_name: "mallory@contosomsp.onmicrosoft.com".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_configured_policy_is_created_kept_and_restored() {
    let mut estate = sample_estate();
    estate.tenants[0].policies.clear();
    estate.tenants[0].named_locations.clear();
    let (sim, client) = caguard_e2e::unpaced_sim(&estate).await;
    let config = sample_config(&estate);
    let msp = config.msp_tenant_id.clone();
    let (store, _dir) = temp_store("lockdowns");

    // One apply creates everything.
    let r = sweep::run(&client, &config, &apply_msp_only(&msp, &store)).await.unwrap();
    let t = &r.tenants[0];
    assert_eq!(t.result.as_ref().unwrap().outcome.label(), "fixed", "{:?}\n{:#?}", t.result, t.plan);
    let stored = sim.tenant(&msp).unwrap();
    let names: Vec<&str> = stored.policies.iter().filter_map(|p| p["displayName"].as_str()).collect();
    let wanted = config.owned_policy_names();
    assert_eq!(wanted.len(), 7, "2 lockdowns, 2 session policies, 2 service accounts, the CIPP app: {wanted:?}");
    for n in &wanted {
        assert_eq!(names.iter().filter(|x| *x == n).count(), 1, "{n} created once: {names:?}");
    }
    assert_eq!(stored.named_locations.len(), 1, "the one site's trusted location");
    let owned: Vec<String> = store.records("owned").await.unwrap().into_iter().map(|(k, _)| k).collect();
    for key in [
        "A1:msp office",
        "A2",
        "A2:block syncro - outside trusted ips",
        "A3",
        "B1",
        "B1:syncro service account mfa policy",
        "S4",
    ] {
        assert!(owned.iter().any(|k| k == key), "{key} recorded: {owned:?}");
    }

    // The Syncro block policy: All users but break-glass and both service accounts, on the Syncro app.
    let by_name = |n: &str| stored.policies.iter().find(|p| p["displayName"] == n).unwrap().clone();
    let syncro = by_name("Block Syncro - Outside Trusted IPs");
    assert_eq!(syncro["conditions"]["users"]["includeUsers"], json!(["All"]));
    assert_eq!(syncro["conditions"]["users"]["excludeUsers"].as_array().unwrap().len(), 4, "{syncro}");
    assert_eq!(syncro["conditions"]["applications"]["includeApplications"], json!([config.lockdowns[1].apps[0]]));
    assert_eq!(syncro["state"], "enabledForReportingButNotEnforced");
    let app = by_name("CIPP app: require MFA");
    assert_eq!(app["grantControls"]["builtInControls"], json!(["mfa"]));
    assert_eq!(app["state"], "enabled");

    // S4 went through beta, with the Prefer header, and is stored.
    let journal = sim.journal();
    let beta_writes: Vec<_> = journal.iter().filter(|e| e.path.starts_with("/beta/") && e.is_write()).collect();
    assert_eq!(beta_writes.len(), 2, "one beta create per session policy: {beta_writes:#?}");
    assert!(
        beta_writes.iter().all(|e| e.prefer.as_deref() == Some("include-unknown-enum-members")),
        "{beta_writes:#?}"
    );
    assert!(
        journal.iter().filter(|e| e.is_write() && !e.path.starts_with("/beta/")).count() >= 6,
        "the rest through v1.0"
    );
    let session_name = config.lockdowns[0].session.policy_name.clone();
    let session = by_name(&session_name);
    assert_eq!(session["sessionControls"]["continuousAccessEvaluation"]["mode"], "strictLocation");
    assert_eq!(session["sessionControls"]["signInFrequency"]["value"], 8);
    let session_id = session["id"].as_str().unwrap().to_string();
    let path = format!("identity/conditionalAccess/policies/{session_id}");
    let (_, v1) = sim.portal_edit(&msp, &mallory(), "GET", &path, None);
    assert!(v1.unwrap()["sessionControls"].get("continuousAccessEvaluation").is_none(), "v1.0 reads do not show it");

    // A second plan is empty.
    let plan =
        sweep::run(&client, &config, &SweepOptions { only: vec![msp.clone()], ..Default::default() }).await.unwrap();
    assert!(plan.tenants[0].plan.actions.is_empty(), "{:#?}", plan.tenants[0].plan.actions);

    // Out-of-band edits to each owned object, then one apply restores them all.
    let mut edited: Vec<(String, String)> = Vec::new();
    for p in sim.tenant(&msp).unwrap().policies {
        let id = p["id"].as_str().unwrap().to_string();
        let name = p["displayName"].as_str().unwrap().to_string();
        let edit = if name == session_name {
            // v1.0 edit of the users only: the restore is a v1.0 write that must keep CAE.
            json!({"conditions": {"users": {"excludeUsers": []}}})
        } else {
            json!({"state": "disabled"})
        };
        let (status, body) = sim.portal_edit(
            &msp,
            &mallory(),
            "PATCH",
            &format!("identity/conditionalAccess/policies/{id}"),
            Some(edit),
        );
        assert_eq!(status, 204, "{body:?}");
        edited.push((id, name));
    }
    let loc = sim.tenant(&msp).unwrap().named_locations[0].clone();
    let loc_id = loc["id"].as_str().unwrap().to_string();
    let patch = json!({"@odata.type": "#microsoft.graph.ipNamedLocation", "isTrusted": false});
    let (status, _) = sim.portal_edit(
        &msp,
        &mallory(),
        "PATCH",
        &format!("identity/conditionalAccess/namedLocations/{loc_id}"),
        Some(patch),
    );
    assert_eq!(status, 204);
    edited.push((loc_id, "Trusted - MSP Office".into()));

    let before = sim.journal().len();
    let r = sweep::run(&client, &config, &apply_msp_only(&msp, &store)).await.unwrap();
    let t = &r.tenants[0];
    assert_eq!(t.result.as_ref().unwrap().outcome.label(), "fixed", "{:?}", t.result);
    let restored: Vec<&str> = t.plan.enforced().map(|a| a.target.as_str()).collect();
    for (_, name) in &edited {
        assert!(restored.contains(&name.as_str()), "{name} restored: {restored:?}");
    }
    let after = sim.tenant(&msp).unwrap();
    let session = after.policies.iter().find(|p| p["id"] == session_id.as_str()).unwrap();
    assert_eq!(session["conditions"]["users"]["excludeUsers"].as_array().unwrap().len(), 4, "{session}");
    assert_eq!(
        session["sessionControls"]["continuousAccessEvaluation"]["mode"], "strictLocation",
        "kept by the v1.0 write"
    );
    let journal = sim.journal();
    assert!(
        journal[before..].iter().filter(|e| e.is_write()).all(|e| e.path.starts_with("/v1.0/")),
        "no session control changed, so no beta write"
    );
    for p in after.policies.iter().filter(|p| p["id"] != session_id.as_str()) {
        assert_ne!(p["state"], "disabled", "{} restored", p["displayName"]);
    }

    // Each edit is attributed to Mallory.
    let own = Own { app_id: estate.apps[0].client_id.clone(), ..Default::default() };
    for (id, name) in &edited {
        let change =
            audit::who_changed(&client, &msp, id, &own).await.unwrap().unwrap_or_else(|| panic!("{name}: no record"));
        assert!(change.who.contains("Mallory Admin"), "{name}: {}", change.who);
    }
    let again =
        sweep::run(&client, &config, &SweepOptions { only: vec![msp.clone()], ..Default::default() }).await.unwrap();
    assert!(again.tenants[0].plan.actions.is_empty(), "{:#?}", again.tenants[0].plan.actions);
}

/// In `report` mode S4 shows the gap in the plan and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_session_gap_is_shown_not_written() {
    let estate = sample_estate();
    let (sim, client) = caguard_e2e::unpaced_sim(&estate).await;
    let toml = caguard::demo::sample_config_toml(&estate)
        .replace("[session]\nmode = \"enforce\"", "[session]\nmode = \"report\"");
    let config = caguard::config::parse(&toml).unwrap().0;
    let msp = config.msp_tenant_id.clone();
    let (store, _dir) = temp_store("lockdowns-report");
    let r = sweep::run(&client, &config, &apply_msp_only(&msp, &store)).await.unwrap();
    let plan = &r.tenants[0].plan;
    let s4: Vec<&caguard::plan::Action> = plan.actions.iter().filter(|a| a.control.to_string() == "S4").collect();
    assert_eq!(s4.len(), 2, "{:#?}", plan.actions);
    for a in &s4 {
        assert_eq!(a.mode, caguard::config::ControlMode::Report);
        assert!(a.reason.contains("outlives the office network"), "{}", a.reason);
    }
    let mut text = String::new();
    caguard::report::plan_text(plan, &mut text, None);
    assert!(text.contains("[report]") && text.contains("Session limits"), "{text}");
    let names: Vec<Value> = sim.tenant(&msp).unwrap().policies.iter().map(|p| p["displayName"].clone()).collect();
    assert!(!names.iter().any(|n| n.as_str().unwrap().ends_with("Session limits")), "nothing written: {names:?}");
    assert!(sim.journal().iter().all(|e| !e.path.starts_with("/beta/") || !e.is_write()));
}
