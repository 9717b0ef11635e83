//! Conditional Access policies that administrators published (fixtures
//! `real-policies/`, byte for byte; some UTF-16). Each one must be accepted by
//! the simulator, or refused for a reason Graph's schema gives; round-trip
//! through the models losslessly; and be enforced exactly: after a sweep each is
//! unchanged but for the one D1 exclusion, or withheld and reported.
//! Adding a file adds a case; the counts are printed.

use caguard::apply::Outcome;
use caguard::demo::sample_config;
use caguard::model::ConditionalAccessPolicy;
use caguard::plan::merge_patch;
use caguard::sweep::{self, SweepOptions};
use caguard_e2e::*;
use caguard_sim::{Actor, SimOptions, TenantSpec, sample_estate};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// UTF-8 (with or without a BOM) or UTF-16 with a BOM, as the files were published.
fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap();
    let text = match bytes.as_slice() {
        [0xff, 0xfe, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xfe, 0xff, rest @ ..] => utf16(rest, u16::from_be_bytes),
        [0xef, 0xbb, 0xbf, rest @ ..] => String::from_utf8(rest.to_vec()).unwrap(),
        _ => String::from_utf8(bytes).unwrap(),
    };
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn utf16(b: &[u8], f: fn([u8; 2]) -> u16) -> String {
    let units: Vec<u16> = b.chunks_exact(2).map(|c| f([c[0], c[1]])).collect();
    String::from_utf16(&units).unwrap()
}

/// The schema reasons a published file may be refused for.
const SCHEMA_REASONS: &[&str] =
    &["must be an object", "must be a collection", "must be a string", "must be a comma-separated string"];

fn admin() -> Actor {
    Actor::User {
        id: "7d1e0000-0000-4000-8000-000000000001".into(),
        display_name: "Customer Admin".into(),
        user_principal_name: "admin@real.example".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_published_policy_is_accepted_round_trips_and_is_enforced_exactly() {
    let dir = fixtures_dir().join("real-policies");
    let all = files(&dir);
    assert!(all.len() >= 100, "the real-policies fixtures are there ({} files)", all.len());

    // A customer tenant of its own; the policies arrive as its admin's portal edits.
    let mut estate = sample_estate();
    let tid = "7ea1a11c-0000-4000-8000-000000000001".to_string();
    let mut rel = estate.relationships[0].clone();
    rel["id"] = json!("7ea1a11c-rel");
    rel["customer"] = json!({"tenantId": tid, "displayName": "Real Policies Inc"});
    estate.relationships.push(rel);
    estate.tenants.push(TenantSpec {
        id: tid.clone(),
        display_name: "Real Policies Inc".into(),
        default_domain: "real.example".into(),
        p1: true,
        consented: true,
        ..Default::default()
    });
    let mut opts = SimOptions::default();
    opts.faults.ca_throttling = false;
    let sim = caguard_sim::start(estate.clone(), opts).await.unwrap();

    let (mut round_tripped, mut refused) = (0, Vec::new());
    let mut accepted: Vec<(String, Value)> = Vec::new(); // (file, stored policy)
    for path in &all {
        let name = path.strip_prefix(&dir).unwrap().display().to_string();
        let v = read_json(path);
        let typed: ConditionalAccessPolicy =
            serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{name}: not a policy: {e}"));
        assert_eq!(serde_json::to_value(&typed).unwrap(), v, "{name}: the round trip changed it");
        round_tripped += 1;
        let (status, body) =
            sim.portal_edit(&tid, &admin(), "POST", "identity/conditionalAccess/policies", Some(v.clone()));
        match status {
            201 => accepted.push((name, body.unwrap())),
            400 => {
                let msg = body.unwrap()["error"]["message"].as_str().unwrap_or_default().to_string();
                assert!(SCHEMA_REASONS.iter().any(|r| msg.contains(r)), "{name}: refused for no schema reason: {msg}");
                refused.push(format!("{name}: {msg}"));
            }
            other => panic!("{name}: {other} {body:?}"),
        }
    }

    let config = sample_config(&estate);
    // The simulator does not throttle here, so neither does the client: the test is about exactness.
    let mut graph = caguard::graph::GraphConfig::for_base(&sim.base_url);
    graph.ca_interval = std::time::Duration::ZERO;
    let client = caguard::graph::GraphClient::new(
        graph,
        std::sync::Arc::new(caguard::graph::StaticCredentials(app_credentials(&estate))),
    )
    .unwrap();
    let stored_before = sim.tenant(&tid).unwrap();
    let opts = SweepOptions { apply: true, confirmed: true, only: vec![tid.clone()], ..Default::default() };
    let r = sweep::run(&client, &config, &opts).await.unwrap();
    let t = &r.tenants[0];
    let result = t.result.as_ref().unwrap();
    assert!(matches!(result.outcome, Outcome::Fixed | Outcome::Compliant), "{:?}", result.outcome);
    let stored = sim.tenant(&tid).unwrap();
    let (mut written, mut untouched) = (0, 0);
    for (name, before) in &accepted {
        let id = before["id"].as_str().unwrap();
        let after = stored.policies.iter().find(|p| p["id"] == id).unwrap();
        let action = t.plan.actions.iter().find(|a| a.op == caguard::plan::Op::UpdatePolicy { id: id.into() });
        let withheld = t.plan.withheld.iter().any(|w| w.policy_id == id);
        let before = stored_before.policies.iter().find(|p| p["id"] == id).unwrap().clone();
        match action {
            Some(a) => {
                assert!(!withheld, "{name}: written and withheld");
                let mut expected = before.clone();
                merge_patch(&mut expected, &a.body);
                expected["modifiedDateTime"] = after["modifiedDateTime"].clone();
                assert_eq!(after, &expected, "{name}: changed beyond the D1 exclusion");
                let keys: Vec<&String> = a.body["conditions"]["users"].as_object().unwrap().keys().collect();
                assert_eq!(keys, vec!["excludeGuestsOrExternalUsers"], "{name}: D1 writes one thing");
                written += 1;
            }
            None => {
                assert_eq!(after, &before, "{name}: not planned, yet changed");
                untouched += 1;
            }
        }
    }
    let withheld = t.plan.withheld.len();
    println!(
        "real policies: {} files, {round_tripped} round-tripped, {} accepted by the simulator, {} refused for a schema reason; \
         enforced: {written} got exactly the D1 exclusion, {withheld} withheld, {} untouched",
        all.len(),
        accepted.len(),
        refused.len(),
        untouched - withheld
    );
    for r in &refused {
        println!("  refused: {r}");
    }
    for w in &t.plan.withheld {
        println!("  withheld: {} — {}", w.target, w.reason);
    }
    assert_eq!(accepted.len() + refused.len(), all.len());
    assert!(written > 0, "some published policy targets all users and gets the exclusion");

    // And enforcement converged: a second plan has nothing for this tenant.
    let again = sweep::run(&client, &config, &SweepOptions { only: vec![tid], ..Default::default() }).await.unwrap();
    assert!(again.tenants[0].plan.actions.is_empty(), "{:?}", again.tenants[0].plan.actions);
}
