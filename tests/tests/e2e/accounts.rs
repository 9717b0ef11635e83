//! #12: accounts resolve or hold. The first resolution of each configured account
//! is recorded (object id and UPN); a UPN that later points at another user, or an
//! account that does not resolve, holds the MSP tenant with an alert, and nothing
//! is written, least of all a raw name.

use caguard::alert;
use caguard::apply::Outcome;
use caguard::demo::sample_config_toml;
use caguard::store::{FileStore, Store};
use caguard::sweep;
use caguard_sim::{Estate, sample_estate};
use serde_json::json;
use std::sync::Arc;

fn store(name: &str) -> Arc<dyn Store> {
    let dir = std::env::temp_dir().join(format!("caguard-accounts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Arc::new(FileStore::new(dir.join("store.json")))
}

/// Applies the MSP tenant with `toml`; returns its outcome, the alert it raises and the writes made.
async fn apply_msp(estate: &Estate, toml: &str, ledger: &Arc<dyn Store>) -> (Outcome, Option<alert::Alert>, usize) {
    let (config, _) = caguard::config::parse(toml).unwrap();
    let (sim, client) = caguard_e2e::unpaced_sim(estate).await;
    let msp = config.msp_tenant_id.clone();
    let opts = caguard_e2e::apply_msp_only(&msp, ledger);
    let r = sweep::run(&client, &config, &opts).await.unwrap();
    let result = r.tenants[0].result.clone().unwrap();
    let alert = alert::for_outcome(&msp, "MSP tenant", &result.outcome);
    (result.outcome, alert, sim.journal().iter().filter(|e| e.is_write()).count())
}

fn held(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Held(why) => why,
        other => panic!("expected a hold, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_break_glass_upn_reassigned_to_a_technician_is_a_hold_not_an_exclusion() {
    let mut estate = sample_estate();
    let toml = sample_config_toml(&estate);
    let ledger = store("reassigned");
    let (outcome, _, _) = apply_msp(&estate, &toml, &ledger).await;
    assert_eq!(outcome, Outcome::Fixed);
    let rows = ledger.records("owned").await.unwrap();
    let bg1 = rows.iter().find(|(k, _)| k == "user:bg1@contosomsp.onmicrosoft.com").expect("first resolution recorded");
    assert_eq!(bg1.1["userPrincipalName"], "bg1@contosomsp.onmicrosoft.com");
    let first_id = bg1.1["id"].as_str().unwrap().to_string();

    // The UPN now belongs to Alex, a technician; the real break-glass account got another name.
    let users = &mut estate.tenants[0].users;
    let alex = users.iter().position(|u| u["displayName"] == "Alex Tech").unwrap();
    let bg = users.iter().position(|u| u["id"] == first_id.as_str()).unwrap();
    users[bg]["userPrincipalName"] = json!("bg1-old@contosomsp.onmicrosoft.com");
    users[alex]["userPrincipalName"] = json!("bg1@contosomsp.onmicrosoft.com");
    let alex_id = users[alex]["id"].as_str().unwrap().to_string();

    let (outcome, alert, writes) = apply_msp(&estate, &toml, &ledger).await;
    let why = held(&outcome);
    assert!(
        why.contains("bg1@contosomsp.onmicrosoft.com") && why.contains(&alex_id) && why.contains(&first_id),
        "{why}"
    );
    assert_eq!(writes, 0, "nothing written");
    assert_eq!(alert.expect("a hold alerts").kind, alert::kind::HELD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolved_technician_is_a_hold_never_a_raw_name_in_include_users() {
    let estate = sample_estate();
    let toml = sample_config_toml(&estate).replacen(
        "tool = \"cipp\"\n",
        "tool = \"cipp\"\ntechnician_users = [\"ghost@contosomsp.onmicrosoft.com\"]\n",
        1,
    );
    let (outcome, alert, writes) = apply_msp(&estate, &toml, &store("ghost")).await;
    let why = held(&outcome);
    assert!(why.contains("technician 'ghost@contosomsp.onmicrosoft.com' did not resolve"), "{why}");
    assert_eq!(writes, 0);
    assert!(alert.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolved_service_account_is_a_hold_not_a_silent_drop_of_b1_and_b2() {
    let estate = sample_estate();
    let toml = sample_config_toml(&estate).replace("cipp-svc@", "nobody@");
    let (outcome, alert, writes) = apply_msp(&estate, &toml, &store("svc")).await;
    let why = held(&outcome);
    assert!(why.contains("service account 'nobody@contosomsp.onmicrosoft.com' did not resolve"), "{why}");
    assert_eq!(writes, 0);
    assert!(alert.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_named_policy_caguard_did_not_create_is_held_unless_adoption_is_configured() {
    let mut estate = sample_estate();
    let config = caguard::demo::sample_config(&estate);
    let mut theirs = estate.tenants[0].policies[0].clone(); // "Require MFA for all users"
    theirs["id"] = json!("a11a11a1-0000-4000-8000-000000000001");
    theirs["displayName"] = json!(config.service_accounts[0].policy_name);
    estate.tenants[0].policies.push(theirs);
    let toml = sample_config_toml(&estate);
    let (outcome, _, writes) = apply_msp(&estate, &toml, &store("adopt")).await;
    let why = held(&outcome);
    assert!(why.contains("no record of creating it") && why.contains("names.adopt_existing"), "{why}");
    assert_eq!(writes, 0);

    let adopt = toml.replace("[scope]", "[names]\nadopt_existing = true\n\n[scope]");
    let (outcome, _, writes) = apply_msp(&estate, &adopt, &store("adopt2")).await;
    assert_eq!(outcome, Outcome::Fixed);
    assert!(writes > 0);
}
