//! #13, item 3: `caguard uninstall` removes exactly what caguard added. Apply to
//! the whole sample estate, let someone else change a policy, uninstall: every
//! policy equals its pre-caguard JSON apart from that other change, the objects
//! caguard created are gone, and a second uninstall has nothing to do.

use caguard::sweep::{self, Ledger, SweepOptions};
use caguard_sim::{Actor, sample_estate};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A policy or location as compared: timestamps dropped, and null, `[]` and
/// absent read as the same (Graph answers absent collections either way).
fn normal(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "modifiedDateTime" | "createdDateTime"))
                .map(|(k, v)| (k.clone(), normal(v)))
                .filter(|(_, v)| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normal).collect()),
        other => other.clone(),
    }
}

fn snapshot(sim: &caguard_sim::SimHandle, tenants: &[String]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for t in tenants {
        let spec = sim.tenant(t).unwrap();
        for p in spec.policies.iter().chain(spec.named_locations.iter()) {
            out.insert(format!("{t}/{}", p["id"].as_str().unwrap()), normal(p));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_leaves_every_policy_as_it_was_but_for_someone_elses_change() {
    let estate = sample_estate();
    let (sim, client) = caguard_e2e::unpaced_sim(&estate).await;
    let tenants: Vec<String> = estate.tenants.iter().map(|t| t.id.clone()).collect();
    let before = snapshot(&sim, &tenants);
    let config = caguard::demo::sample_config(&estate);
    // What caguard removes, not how politely: no CA rate limit here.
    let (store, _dir) = caguard_e2e::temp_store("uninstall");
    let opts = SweepOptions { apply: true, confirmed: true, ledger: Ledger(Some(store.clone())), ..Default::default() };
    let r = sweep::run(&client, &config, &opts).await.unwrap();
    assert!(r.count("fixed") > 10, "caguard wrote to most tenants");
    assert_ne!(snapshot(&sim, &tenants), before);

    // Someone else excludes a user from a customer policy caguard also wrote to.
    let fabrikam = estate.tenants.iter().find(|t| t.display_name == "Fabrikam Dental").unwrap();
    let policy = sim.tenant(&fabrikam.id).unwrap().policies[0].clone();
    let pid = policy["id"].as_str().unwrap().to_string();
    let mut excl = policy["conditions"]["users"]["excludeUsers"].as_array().cloned().unwrap_or_default();
    excl.push(json!("0b5e7d1c-2a3f-4e6d-9c8b-7a6f5e4d3c2b"));
    let admin = Actor::App { app_id: "11111111-2222-4333-8444-555555555555".into(), display_name: "Someone".into() };
    let path = format!("identity/conditionalAccess/policies/{pid}");
    let edit = json!({"conditions": {"users": {"excludeUsers": excl}}});
    assert_eq!(sim.portal_edit(&fabrikam.id, &admin, "PATCH", &path, Some(edit)).0, 204);

    let plan = caguard::uninstall::plan(&client, &config, store.as_ref()).await.unwrap();
    println!("{} steps; left alone: {:?}", plan.steps.len(), plan.left_alone);
    let deletes: Vec<&str> =
        plan.steps.iter().filter(|s| s.action.starts_with("delete")).map(|s| s.action.as_str()).collect();
    assert_eq!(deletes.first(), Some(&"delete policy"), "policies go before the locations they reference: {deletes:?}");
    assert_eq!(deletes.last(), Some(&"delete location"));
    let errors = caguard::uninstall::apply(&client, store.as_ref(), &plan).await;
    assert!(errors.is_empty(), "{errors:?}");

    let after = snapshot(&sim, &tenants);
    let mut expected = before.clone();
    // The break-glass exclusions caguard added (A4) stay, and the plan says so.
    let bg: Vec<String> = config
        .break_glass
        .iter()
        .map(|b| {
            let u = estate.tenants[0]
                .users
                .iter()
                .find(|u| u["userPrincipalName"].as_str().unwrap().eq_ignore_ascii_case(b));
            u.unwrap()["id"].as_str().unwrap().to_string()
        })
        .collect();
    let kept: Vec<&String> = plan.left_alone.iter().filter(|l| l.contains("break-glass exclusion")).collect();
    assert!(!kept.is_empty(), "{:?}", plan.left_alone);
    for (k, v) in expected.iter_mut().filter(|(k, _)| k.starts_with(&format!("{}/", config.msp_tenant_id))) {
        let Some(now) = after.get(k) else { continue };
        let now_bg: Vec<Value> = now
            .pointer("/conditions/users/excludeUsers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter(|u| bg.iter().any(|b| u.as_str() == Some(b.as_str()))).cloned().collect())
            .unwrap_or_default();
        let was = v.pointer("/conditions/users/excludeUsers").and_then(Value::as_array).cloned().unwrap_or_default();
        let added: Vec<Value> = now_bg.into_iter().filter(|u| !was.contains(u)).collect();
        if !added.is_empty() {
            let mut list = was.clone();
            list.extend(added);
            v["conditions"]["users"]["excludeUsers"] = json!(list);
        }
    }
    let key = format!("{}/{pid}", fabrikam.id);
    let mut theirs = expected[&key].clone();
    let mut users =
        theirs.pointer("/conditions/users/excludeUsers").and_then(Value::as_array).cloned().unwrap_or_default();
    users.push(json!("0b5e7d1c-2a3f-4e6d-9c8b-7a6f5e4d3c2b"));
    theirs["conditions"]["users"]["excludeUsers"] = json!(users);
    expected.insert(key, normal(&theirs));
    for (k, v) in &expected {
        assert_eq!(after.get(k), Some(v), "{k} is as it was before caguard (apart from the other change)");
    }
    let extra: Vec<&String> = after.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert!(extra.is_empty(), "what caguard created is gone: {extra:?}");

    let again = caguard::uninstall::plan(&client, &config, store.as_ref()).await.unwrap();
    assert!(again.steps.is_empty(), "idempotent: {:?}", again.steps);
}
