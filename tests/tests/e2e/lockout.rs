//! A4 (issue #12): break-glass accounts are excluded from every MSP policy that
//! could block them, not only from caguard's own block policy.

use caguard::apply::Outcome;
use caguard::config;
use caguard::demo::{sample_config, sample_config_toml};
use caguard::sweep::{self, SweepOptions};
use caguard_sim::sample_estate;
use serde_json::json;

/// A second enabled policy with the block policy's name that blocks All users and
/// excludes no break-glass account (the attack in #12's findings).
fn rogue_block(name: &str) -> serde_json::Value {
    json!({"id": "0bad0bad-0000-4000-8000-000000000001", "displayName": name, "state": "enabled",
           "conditions": {"clientAppTypes": ["all"], "applications": {"includeApplications": ["All"]},
                          "users": {"includeUsers": ["All"], "excludeUsers": []}},
           "grantControls": {"operator": "OR", "builtInControls": ["block"]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_all_users_block_policy_gets_the_break_glass_exclusions() {
    let mut estate = sample_estate();
    let config = sample_config(&estate);
    estate.tenants[0].policies.push(rogue_block(&config.lockdowns[0].name));
    let (sim, client) = caguard_e2e::unpaced_sim(&estate).await;
    let msp = config.msp_tenant_id.clone();
    let opts = SweepOptions { apply: true, confirmed: true, only: vec![msp.clone()], ..Default::default() };
    let r = sweep::run(&client, &config, &opts).await.unwrap();
    let t = &r.tenants[0];
    assert!(matches!(t.result.as_ref().unwrap().outcome, Outcome::Fixed), "{:?}", t.result);
    let stored = sim.tenant(&msp).unwrap();
    let rogue = stored.policies.iter().find(|p| p["id"] == "0bad0bad-0000-4000-8000-000000000001").unwrap();
    let excluded = rogue["conditions"]["users"]["excludeUsers"].to_string();
    for bg in estate.tenants[0].users.iter().filter(|u| u["displayName"].as_str().unwrap().starts_with("Break Glass")) {
        assert!(excluded.contains(bg["id"].as_str().unwrap()), "{} excluded: {excluded}", bg["displayName"]);
    }
    // Every other enabled or report-only MSP policy excludes them too.
    let bg_ids: Vec<String> = config
        .break_glass
        .iter()
        .map(|b| {
            estate.tenants[0]
                .users
                .iter()
                .find(|u| u["userPrincipalName"].as_str().unwrap().eq_ignore_ascii_case(b))
                .unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for p in stored.policies.iter().filter(|p| p["state"] != "disabled") {
        let names_only_others = p["conditions"]["users"]["includeUsers"].as_array().unwrap().iter().all(|u| u != "All")
            && p["conditions"]["users"]["includeGroups"].as_array().is_none_or(|g| g.is_empty())
            && p["conditions"]["users"]["includeRoles"].as_array().is_none_or(|g| g.is_empty());
        if names_only_others {
            continue;
        }
        let ex = p["conditions"]["users"]["excludeUsers"].to_string();
        assert!(bg_ids.iter().all(|id| ex.contains(id.as_str())), "{}: {ex}", p["displayName"]);
    }

    // Planned again: nothing left.
    let again = sweep::run(&client, &config, &SweepOptions { only: vec![msp], ..Default::default() }).await.unwrap();
    assert!(again.tenants[0].plan.actions.is_empty(), "{:?}", again.tenants[0].plan.actions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_report_mode_a_policy_that_could_lock_out_break_glass_raises_a_lockout_alert() {
    let mut estate = sample_estate();
    let src = format!("{}\n[controls]\nA4 = \"report\"\n", sample_config_toml(&estate));
    let (config, _) = config::parse(&src).unwrap();
    estate.tenants[0].policies.push(rogue_block("Someone else's lockdown"));
    let (sim, client) = caguard_e2e::unpaced_sim(&estate).await;
    let msp = config.msp_tenant_id.clone();
    let opts = SweepOptions { apply: true, confirmed: true, only: vec![msp.clone()], ..Default::default() };
    let r = sweep::run(&client, &config, &opts).await.unwrap();
    let alerts = caguard::alert::for_lockout_risk(&r.tenants[0].plan);
    let rogue: Vec<_> = alerts.iter().filter(|a| a.object_name.as_deref() == Some("Someone else's lockdown")).collect();
    assert_eq!(rogue.len(), 1, "{alerts:#?}");
    assert_eq!(rogue[0].kind, "lockout-risk");
    assert!(rogue[0].message.contains("report mode"), "{}", rogue[0].message);
    // No break-glass exclusion was written to it (B2, still enforced, added the service account).
    let stored = sim.tenant(&msp).unwrap();
    let p = stored.policies.iter().find(|p| p["id"] == "0bad0bad-0000-4000-8000-000000000001").unwrap();
    let ex = p["conditions"]["users"]["excludeUsers"].to_string();
    for bg in stored.users.iter().filter(|u| u["displayName"].as_str().unwrap().starts_with("Break Glass")) {
        assert!(!ex.contains(bg["id"].as_str().unwrap()), "{ex}");
    }
}
