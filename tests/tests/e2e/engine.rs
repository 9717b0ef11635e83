//! The enforcement engine against the simulated sample estate.

use caguard::apply::Outcome;
use caguard::demo::{sample_client, sample_config};
use caguard::plan::{Op, merge_patch};
use caguard::sweep::{self, SweepOptions};
use caguard_e2e::*;
use serde_json::Value;

/// Every path (JSON pointer) at which `a` and `b` differ.
fn diff_paths(a: &Value, b: &Value, at: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                diff_paths(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    format!("{at}/{k}"),
                    out,
                );
            }
        }
        _ if a != b => out.push(at),
        _ => {}
    }
}

/// The leaf paths a PATCH body writes.
fn leaf_paths(body: &Value, at: String, out: &mut Vec<String>) {
    match body {
        Value::Object(o) if !o.is_empty() => o.iter().for_each(|(k, v)| leaf_paths(v, format!("{at}/{k}"), out)),
        _ => out.push(at),
    }
}

fn expected_skip(name: &str) -> Option<&'static str> {
    Some(match name {
        "Coho Winery" => "security defaults",
        "Margie's Travel" => "P1",
        "Fourth Coffee" => "Conditional Access Administrator",
        "Wingtip Toys" => "unauthorized_client",
        "Bellows College" => "Authorization_RequestDenied",
        "Graphic Design Institute" => "terminated",
        "Consolidated Messenger" => "approvalPending",
        _ => return None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_apply_makes_the_estate_compliant_and_a_second_plan_writes_nothing() {
    let (sim, estate) = sample_sim(5, true).await;
    let config = sample_config(&estate);
    let client = sample_client(&sim, &estate);

    // Without --yes the first rollout touches too many tenants and is held.
    let held = sweep::run(&client, &config, &SweepOptions { apply: true, ..Default::default() }).await.unwrap();
    assert!(held.count("held") >= 10, "large first rollout is held: {}", held.count("held"));
    assert_eq!(sim.journal().iter().filter(|e| e.is_write()).count(), 0, "held means nothing written");

    let applied = sweep::run(&client, &config, &SweepOptions { apply: true, confirmed: true, ..Default::default() })
        .await
        .unwrap();
    println!("{}", caguard::report::sweep_text(&applied, true, Some(1)));
    for t in &applied.tenants {
        let r = t.result.as_ref().expect("every tenant has exactly one result");
        match expected_skip(&t.plan.tenant_name) {
            Some(why) => {
                assert!(
                    matches!(&r.outcome, Outcome::Skipped(reason) if reason.contains(why)),
                    "{}: {:?}",
                    t.plan.tenant_name,
                    r.outcome
                );
            }
            None => assert!(
                matches!(r.outcome, Outcome::Fixed | Outcome::Compliant),
                "{}: {:?}",
                t.plan.tenant_name,
                r.outcome
            ),
        }
    }
    assert!(applied.count("fixed") >= 14);
    assert_eq!(pacing_violations(&sim.journal()), Vec::<String>::new());

    // Each written policy is the original plus exactly the intended change.
    let mut checked = 0;
    for t in &applied.tenants {
        let Some(stored) = sim.tenant(&t.plan.tenant_id) else { continue };
        let original = estate.tenants.iter().find(|x| x.id == t.plan.tenant_id).unwrap();
        for a in t.plan.enforced() {
            match &a.op {
                Op::UpdatePolicy { id } => {
                    let before = original.policies.iter().find(|p| p["id"] == id.as_str()).unwrap();
                    let after = stored.policies.iter().find(|p| p["id"] == id.as_str()).unwrap();
                    // Every write to this policy, in plan order (A4 and B2 can both exclude users).
                    let writes: Vec<_> = t.plan.enforced().filter(|w| w.op == a.op).collect();
                    let mut expected = before.clone();
                    let mut allowed = Vec::new();
                    for w in &writes {
                        merge_patch(&mut expected, &w.body);
                        leaf_paths(&w.body, String::new(), &mut allowed);
                    }
                    let mut changed = Vec::new();
                    diff_paths(before, after, String::new(), &mut changed);
                    changed.retain(|p| p != "/modifiedDateTime");
                    for p in &changed {
                        let within = |w: &String| p.starts_with(w.as_str()) || w.starts_with(&format!("{p}/"));
                        assert!(
                            allowed.iter().any(within),
                            "{} \"{}\": {p} changed but the plan did not say so",
                            t.plan.tenant_name,
                            a.target
                        );
                    }
                    let mut after_cmp = after.clone();
                    after_cmp["modifiedDateTime"] = expected["modifiedDateTime"].clone();
                    assert_eq!(after_cmp, expected, "{} \"{}\"", t.plan.tenant_name, a.target);
                    checked += 1;
                }
                Op::CreatePolicy => {
                    let after =
                        stored.policies.iter().find(|p| p["displayName"] == a.target.as_str()).expect("created");
                    let mut leaves = Vec::new();
                    leaf_paths(&a.body, String::new(), &mut leaves);
                    for p in leaves {
                        let (sent, kept) = (a.body.pointer(&p).unwrap(), after.pointer(&p));
                        if !sent.to_string().contains("location:") {
                            assert_eq!(kept, Some(sent), "{}: {p} stored as sent", a.target);
                        }
                    }
                    checked += 1;
                }
                _ => {}
            }
        }
    }
    assert!(checked >= 20, "checked {checked} written policies");

    // Things caguard must never touch.
    let alpine = sim.tenant(&estate.tenants.iter().find(|t| t.display_name == "Alpine Ski House").unwrap().id).unwrap();
    let vacation =
        alpine.groups.iter().find(|g| g["displayName"].as_str().unwrap().starts_with("Vacation Exclusion - ")).unwrap();
    assert_eq!(alpine.policies[0]["conditions"]["users"]["excludeGroups"][0], vacation["id"]);
    let art = sim.tenant(&estate.tenants.iter().find(|t| t.display_name == "School of Fine Art").unwrap().id).unwrap();
    assert_eq!(art.policies[0]["customField"], "kept-by-graph", "a property caguard does not model survives its PATCH");

    // Plan again: zero actions and zero writes.
    sim.clear_journal();
    let again = sweep::run(&client, &config, &SweepOptions::default()).await.unwrap();
    assert_eq!(again.drifted(), 0, "{}", caguard::report::sweep_text(&again, false, None));
    assert_eq!(sim.journal().iter().filter(|e| e.is_write()).count(), 0);
    let http = sim.journal().iter().filter(|e| e.kind != "token" && !e.in_batch).count();
    println!("second plan: {http} HTTP requests to Graph for {} tenants, 0 writes", again.tenants.len());
}

#[tokio::test]
async fn plan_mode_writes_nothing_and_reports_each_action_with_reason_and_body() {
    let (sim, estate) = sample_sim(0, false).await;
    let config = sample_config(&estate);
    let client = sample_client(&sim, &estate);
    let r = sweep::run(&client, &config, &SweepOptions::default()).await.unwrap();
    assert_eq!(sim.journal().iter().filter(|e| e.is_write()).count(), 0);
    let msp = &r.tenants[0].plan;
    let controls: Vec<String> = msp.actions.iter().map(|a| a.control.to_string()).collect();
    for c in ["A1", "A2", "B1", "B2"] {
        assert!(controls.contains(&c.to_string()), "MSP plan has {c}: {controls:?}");
    }
    for a in r.tenants.iter().flat_map(|t| &t.plan.actions) {
        assert!(!a.reason.is_empty() && !a.reason.contains('\n'), "one-line reason");
        assert!(a.body.is_object());
    }
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["tenants"][0]["plan"]["actions"][0]["body"].is_object(), "--json carries the exact bodies");
}
