//! #15 item 1: caguard's evaluator agrees with every What If example in
//! Microsoft's reference (request → response), and the simulator's
//! `conditionalAccess/evaluate` answers with the same evaluator.

use caguard::whatif::{self, Reason};
use caguard_e2e::fixtures_dir;
use caguard_sim::{Actor, TenantSpec, sample_estate};
use serde_json::{Value, json};

/// (request, response) pairs of the evaluate examples.
const PAIRS: [(&str, &str); 4] = [
    ("01-request.json", "02-response.json"),
    ("03-request.json", "04-response.json"),
    ("07-request.json", "08-response.json"),
    ("09-request.json", "10-response.json"),
];

fn read(name: &str) -> Value {
    let path = fixtures_dir().join("graph/conditionalaccessroot-evaluate").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The tenant's policies behind a response: each result without its What If fields.
fn policies_of(response: &Value) -> Vec<Value> {
    response["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let mut p = p.clone();
            let o = p.as_object_mut().unwrap();
            o.remove("policyApplies");
            o.remove("analysisReasons");
            p
        })
        .collect()
}

fn no_groups(_: &str) -> (Vec<String>, Vec<String>) {
    (vec![], vec![])
}

#[test]
fn the_evaluator_agrees_with_every_example_in_the_reference() {
    for (req, resp) in PAIRS {
        let (request, response) = (read(req), read(resp));
        let policies = policies_of(&response);
        let sign_in = whatif::parse_request(&request, &no_groups).unwrap();
        let answers = whatif::evaluate(&policies, &[], &sign_in);
        for (want, got) in response["value"].as_array().unwrap().iter().zip(&answers) {
            assert_eq!(json!(got.applies), want["policyApplies"], "{resp}: {}", got.name);
            assert_eq!(got.reason.as_str(), want["analysisReasons"], "{resp}: {}", got.name);
        }
        let applied_only = request["appliedPoliciesOnly"] == json!(true);
        let value = whatif::response_value(&policies, &answers, applied_only);
        assert_eq!(value, response["value"].as_array().unwrap().clone(), "{resp}: the whole answer");
    }
}

#[test]
fn what_the_examples_do_not_match_they_say_why() {
    // The first example's policies, asked for a user the first one excludes, on
    // another app, from another platform: each reason is the first unmet condition.
    let policies = policies_of(&read("02-response.json"));
    let mut request = read("01-request.json");
    request["signInIdentity"]["userId"] = json!("f7ca74b0-8562-4083-b66c-0476f942cfd0");
    let answers = whatif::evaluate(&policies, &[], &whatif::parse_request(&request, &no_groups).unwrap());
    assert!(answers.iter().all(|a| !a.applies && a.reason == Reason::Users), "{answers:?}");
    let mut request = read("01-request.json");
    request["signInContext"]["includeApplications"] = json!(["797f4846-ba00-4fd7-ba43-dac1f8f63013"]);
    request["signInConditions"]["userRiskLevel"] = json!("low");
    let answers = whatif::evaluate(&policies, &[], &whatif::parse_request(&request, &no_groups).unwrap());
    assert_eq!((answers[0].applies, answers[0].reason), (false, Reason::Application), "Office 365 does not hold ARM");
    assert_eq!((answers[1].applies, answers[1].reason), (false, Reason::UserRisk));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_answers_what_the_reference_does() {
    for (req, resp) in PAIRS {
        let (request, response) = (read(req), read(resp));
        let mut estate = sample_estate();
        let tenant = "0e2f7d4c-9a61-4c3b-8d5e-6f7a8b9c0d1e".to_string();
        estate.tenants.push(TenantSpec {
            id: tenant.clone(),
            display_name: "What If".into(),
            p1: true,
            consented: true,
            policies: policies_of(&response),
            ..Default::default()
        });
        let sim = caguard_sim::start(estate, Default::default()).await.unwrap();
        let admin =
            Actor::App { app_id: "11111111-2222-4333-8444-555555555555".into(), display_name: "What If".into() };
        let (status, body) =
            sim.portal_edit(&tenant, &admin, "POST", "identity/conditionalAccess/evaluate", Some(request));
        assert_eq!(status, 200, "{body:?}");
        // The simulator answers as v1.0 (the beta examples carry beta-only nulls): compare the What If part.
        let what_if = |v: &Value| -> Vec<(Value, Value, Value)> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|p| (p["id"].clone(), p["policyApplies"].clone(), p["analysisReasons"].clone()))
                .collect()
        };
        assert_eq!(what_if(&body.unwrap()["value"]), what_if(&response["value"]), "{resp}");
    }
}

/// The sample MSP tenant, after caguard's rollout: the simulator's answer and
/// caguard's own evaluation agree for a technician, inside and outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_and_the_evaluator_agree_on_the_rolled_out_msp() {
    let estate = sample_estate();
    let (sim, client) = caguard_e2e::unpaced_sim(&estate).await;
    let config = caguard::demo::sample_config(&estate);
    let msp = config.msp_tenant_id.clone();
    let (store, _dir) = caguard_e2e::temp_store("whatif");
    caguard::sweep::run(&client, &config, &caguard_e2e::apply_msp_only(&msp, &store)).await.unwrap();
    let stored = sim.tenant(&msp).unwrap();
    let alex =
        stored.users.iter().find(|u| u["displayName"] == "Alex Tech").unwrap()["id"].as_str().unwrap().to_string();
    let groups: Vec<String> = stored
        .groups
        .iter()
        .filter(|g| g["members"].as_array().is_some_and(|m| m.iter().any(|x| x == alex.as_str())))
        .map(|g| g["id"].as_str().unwrap().to_ascii_lowercase())
        .collect();
    let admin = Actor::App { app_id: "11111111-2222-4333-8444-555555555555".into(), display_name: "What If".into() };
    for ip in ["203.0.113.10", "198.51.100.77"] {
        let request = json!({
            "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": alex},
            "signInContext": {"@odata.type": "#microsoft.graph.applicationContext", "includeApplications": ["c4d2e8f1-6a3b-4c59-9e70-1f2a3b4c5d6e"]},
            "signInConditions": {"devicePlatform": "windows", "clientAppType": "browser", "ipAddress": ip},
            "appliedPoliciesOnly": false
        });
        let (status, body) =
            sim.portal_edit(&msp, &admin, "POST", "identity/conditionalAccess/evaluate", Some(request.clone()));
        assert_eq!(status, 200);
        let sim_answer = body.unwrap()["value"].clone();
        let mine_groups = groups.clone();
        let member_of = move |_: &str| (mine_groups.clone(), vec![]);
        let mine = whatif::evaluate(
            &stored.policies,
            &stored.named_locations,
            &whatif::parse_request(&request, &member_of).unwrap(),
        );
        for (a, s) in mine.iter().zip(sim_answer.as_array().unwrap()) {
            assert_eq!(
                (json!(a.applies), json!(a.reason.as_str())),
                (s["policyApplies"].clone(), s["analysisReasons"].clone()),
                "{ip}: {}",
                a.name
            );
        }
        let syncro = mine.iter().find(|a| a.name == "Block Syncro - Outside Trusted IPs").unwrap();
        let outside = ip.starts_with("198.");
        assert_eq!(syncro.applies, outside, "{ip}: {syncro:?}");
        if !outside {
            assert_eq!(syncro.reason, Reason::Location);
        }
    }
}

/// A policy that targets a directory role applies to its holder alike in Graph's
/// What If (the simulator resolves roles from the estate), in the sign-in log,
/// and in caguard's evaluator fed by `transitiveMemberOf`; without the role the
/// two would disagree, which is what the preflight would hold for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_role_is_resolved_alike_by_graph_and_caguard() {
    const GLOBAL_ADMIN: &str = "62e90394-69f5-4237-9190-012177145e10";
    let mut estate = sample_estate();
    let msp = estate.msp_tenant_id.clone();
    let t = estate.tenants.iter_mut().find(|t| t.id == msp).unwrap();
    let user =
        |name: &str| t.users.iter().find(|u| u["displayName"] == name).unwrap()["id"].as_str().unwrap().to_string();
    let (alex, other) = (
        user("Alex Tech"),
        t.users.iter().find(|u| u["displayName"] != "Alex Tech").unwrap()["id"].as_str().unwrap().to_string(),
    );
    t.directory_roles.push(json!({"id": "d1r0e000-0000-4000-8000-000000000001", "displayName": "Global Administrator",
                                  "roleTemplateId": GLOBAL_ADMIN, "members": [alex]}));
    t.policies.push(
        json!({"id": "a0a0a0a0-0000-4000-8000-000000000001", "displayName": "Admins need MFA", "state": "enabled",
        "conditions": {"clientAppTypes": ["all"], "applications": {"includeApplications": ["All"]},
                       "users": {"includeRoles": [GLOBAL_ADMIN]}},
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]}}),
    );
    let (sim, client) = caguard_e2e::unpaced_sim(&estate).await;
    let stored = sim.tenant(&msp).unwrap();
    let admin = Actor::App { app_id: "11111111-2222-4333-8444-555555555555".into(), display_name: "What If".into() };
    for (who, holds_role) in [(&alex, true), (&other, false)] {
        let (groups, roles) = whatif::graph::memberships(&client, &msp, who).await.unwrap();
        assert_eq!(roles, if holds_role { vec![GLOBAL_ADMIN.to_string()] } else { vec![] }, "transitiveMemberOf");
        let request = json!({
            "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": who},
            "signInContext": {"@odata.type": "#microsoft.graph.applicationContext", "includeApplications": ["00000003-0000-0000-c000-000000000000"]},
            "signInConditions": {"clientAppType": "browser", "ipAddress": "203.0.113.10"},
            "appliedPoliciesOnly": false
        });
        let (status, body) =
            sim.portal_edit(&msp, &admin, "POST", "identity/conditionalAccess/evaluate", Some(request.clone()));
        assert_eq!(status, 200);
        let graph = body.unwrap()["value"].as_array().unwrap().clone();
        let resolved = (groups.clone(), roles.clone());
        let mine = whatif::evaluate(
            &stored.policies,
            &stored.named_locations,
            &whatif::parse_request(&request, &move |_: &str| resolved.clone()).unwrap(),
        );
        assert_eq!(whatif::graph::disagreement(&graph, &mine), None, "{who}");
        let role_policy = graph.iter().find(|p| p["displayName"] == "Admins need MFA").unwrap();
        assert_eq!(role_policy["policyApplies"], holds_role, "{who}: {role_policy}");
        // Blind to roles, caguard would disagree with Graph for the role's holder.
        let blind = (groups, vec![]);
        let blind = whatif::evaluate(
            &stored.policies,
            &stored.named_locations,
            &whatif::parse_request(&request, &move |_: &str| blind.clone()).unwrap(),
        );
        assert_eq!(whatif::graph::disagreement(&graph, &blind).is_some(), holds_role, "{who}");

        // The sign-in log applies the role's policy to its holder only.
        let spec = caguard_sim::SignInSpec {
            user: who.to_string(),
            app_id: "00000003-0000-0000-c000-000000000000".into(),
            ip: "203.0.113.10".parse().unwrap(),
            interactive: true,
            mfa: caguard_sim::Mfa::Done,
            at: None,
        };
        let entry = sim.sign_in(&msp, &spec).unwrap();
        let applied = entry["appliedConditionalAccessPolicies"].as_array().unwrap();
        let result = applied.iter().find(|p| p["displayName"] == "Admins need MFA").unwrap()["result"].clone();
        assert_eq!(result, if holds_role { "success" } else { "notApplied" }, "{who}");
    }
}

// ---------- #15 item 2: What If before risky writes ----------

/// A policy that blocks everyone from everywhere, excluding nobody.
fn block_everyone(name: &str) -> Value {
    json!({"id": "b10c0000-0000-4000-8000-000000000001", "displayName": name, "state": "enabled",
           "conditions": {"clientAppTypes": ["all"], "applications": {"includeApplications": ["All"]},
                          "users": {"includeUsers": ["All"], "excludeUsers": []}},
           "grantControls": {"operator": "OR", "builtInControls": ["block"]}})
}

/// Applies the MSP tenant with the sample config changed by `edit`; returns the sweep.
async fn apply_msp(
    estate: &caguard_sim::Estate,
    client: &caguard::graph::GraphClient,
    edit: impl Fn(String) -> String,
) -> caguard::sweep::SweepReport {
    let config = caguard::config::parse(&edit(caguard::demo::sample_config_toml(estate))).unwrap().0;
    let (store, _dir) = caguard_e2e::temp_store(&format!("whatif-{}", fastrand_name()));
    caguard::sweep::run(client, &config, &caguard_e2e::apply_msp_only(&config.msp_tenant_id, &store)).await.unwrap()
}

fn fastrand_name() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_what_if_answer_that_would_block_a_break_glass_account_holds_the_write() {
    let mut estate = sample_estate();
    estate.tenants[0].policies.push(block_everyone("Lock the doors"));
    let sim = caguard_sim::start(estate.clone(), Default::default()).await.unwrap();
    // A4 only reports, so the break-glass accounts stay in scope of "Lock the doors".
    // Paced as in production: the check also asserts the What If requests keep the CA limit.
    let client = caguard::demo::sample_client(&sim, &estate);
    let r = apply_msp(&estate, &client, |t| t.replace("[scope]", "[controls]\nA4 = \"report\"\n\n[scope]")).await;
    let t = &r.tenants[0];
    let caguard::apply::Outcome::Held(why) = &t.result.as_ref().unwrap().outcome else { panic!("{:?}", t.result) };
    assert!(
        why.contains("What If")
            && why.contains("break-glass bg1@contosomsp.onmicrosoft.com")
            && why.contains("blocked by \"Lock the doors\""),
        "{why}"
    );
    let failed: Vec<_> = t.plan.what_if.iter().filter(|c| !c.ok).collect();
    assert_eq!(failed.len(), 2, "both break-glass accounts: {:#?}", t.plan.what_if);
    assert!(failed[0].graph.contains("\"Lock the doors\""), "Graph's answer is kept: {}", failed[0].graph);
    let msp = sim.tenant(&estate.msp_tenant_id).unwrap();
    assert!(
        !msp.policies.iter().any(|p| p["displayName"] == "Block CIPP Access - Outside Trusted IPs"),
        "nothing written"
    );
    let evaluations = sim.journal().iter().filter(|e| e.path.ends_with("conditionalAccess/evaluate")).count();
    assert_eq!(evaluations, t.plan.what_if.len(), "one What If request per check");
    assert!(caguard_e2e::pacing_violations(&sim.journal()).is_empty(), "within the CA pacing");
    let mut text = String::new();
    caguard::report::plan_text(&t.plan, &mut text, None);
    assert!(text.contains("what-if FAILED: break-glass bg1@"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_disagreeing_with_caguard_holds_the_plan_and_the_cli_flags_it() {
    let estate = sample_estate();
    let (sim, client) = caguard_e2e::unpaced_sim(&estate).await;
    let mut faults = sim.faults();
    faults.what_if_knows_better = vec!["Require MFA for all users".into()];
    sim.set_faults(faults);
    let r = apply_msp(&estate, &client, |t| t).await;
    let t = &r.tenants[0];
    let caguard::apply::Outcome::Held(why) = &t.result.as_ref().unwrap().outcome else { panic!("{:?}", t.result) };
    assert!(why.contains("Graph and caguard disagree") && why.contains("Require MFA for all users"), "{why}");
    assert!(t.plan.what_if.iter().all(|c| c.disagreement.is_some()), "{:#?}", t.plan.what_if);

    // The CLI prints both answers and exits 2 on the disagreement, 0 once they agree.
    let dir = std::env::temp_dir().join(format!("caguard-whatif-cli-{}", fastrand_name()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("caguard.toml");
    std::fs::write(&cfg, caguard::demo::sample_config_toml(&estate)).unwrap();
    let store = dir.join("store.json");
    let args = [
        "whatif",
        "--config",
        cfg.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--user",
        "alex@contosomsp.onmicrosoft.com",
        "--ip",
        "198.51.100.7",
    ];
    let out = caguard_e2e::caguard_on_sim(&sim, &estate, &args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Require MFA for all users") && text.contains("<- DISAGREE"), "{text}");
    sim.set_faults(caguard_sim::Faults { ca_throttling: true, ..Default::default() });
    let out = caguard_e2e::caguard_on_sim(&sim, &estate, &args);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("agree"));
}
