//! #13, item 4: a first rollout people can see and approve. A sweep through the
//! Functions app holds most tenants at the 20% limit; the held plans are listed
//! with their diffs; an approved one is applied by the next reconcile, a stale
//! approval re-plans instead of writing; and the status page renders in a real
//! headless browser (Chromium), with a screenshot under target/.

use caguard::alert::Alerter;
use caguard_e2e::functions_app::{invoke, serve, timer};
use caguard_sim::{Actor, sample_estate};
use serde_json::{Value, json};

fn chromium() -> String {
    if let Ok(c) = std::env::var("CAGUARD_CHROMIUM") {
        return c;
    }
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if std::process::Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return c.to_string();
        }
    }
    panic!("no headless browser: install Chromium (`apt-get install chromium`; .ci/run does) or set CAGUARD_CHROMIUM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_plans_are_shown_approved_and_applied_and_the_status_page_renders() {
    let estate = sample_estate();
    let sim = caguard_sim::start(estate.clone(), Default::default()).await.unwrap();
    let (store, dir) = caguard_e2e::temp_store("ui");
    let alerter = Alerter::new(store.clone(), 60, None, None, None, None);
    let base = serve(&sim, &estate, &store, alerter, false).await;
    let http = reqwest::Client::new();

    let sweep = invoke(&base, "SweepTimer", timer()).await;
    let messages = sweep.outputs["reconcile"].as_array().unwrap().clone();
    let mut outcomes = Vec::new();
    for m in &messages {
        outcomes.push(invoke(&base, "ReconcileTenant", json!({"reconcile": m.to_string()})).await.return_value);
    }
    let held = outcomes.iter().filter(|o| o["outcome"] == "held").count();
    assert!(held >= 5, "most of a first rollout is held at the limit: {held}");

    let listed: Value = http.get(format!("{base}/api/plans")).send().await.unwrap().json().await.unwrap();
    let plans = listed["plans"].as_array().unwrap().clone();
    assert_eq!(plans.len(), held, "every limit-held plan is listed");
    let fabrikam = estate.tenants.iter().find(|t| t.display_name == "Fabrikam Dental").unwrap();
    let contoso_plan = plans.iter().find(|p| p["tenantId"] != fabrikam.id.as_str()).unwrap().clone();
    let fabrikam_plan = plans.iter().find(|p| p["tenantId"] == fabrikam.id.as_str()).expect("Fabrikam is held").clone();
    assert!(contoso_plan["actions"][0]["diff"][0].as_str().unwrap().starts_with("+ "), "{contoso_plan}");

    // Approved, unchanged since: the next reconcile applies exactly it.
    let tenant = contoso_plan["tenantId"].as_str().unwrap().to_string();
    let id = contoso_plan["id"].as_str().unwrap();
    let ok = http.post(format!("{base}/api/plans/{id}/approve")).json(&json!({"by": "alex"})).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let again = messages.iter().find(|m| m["tenantId"] == tenant.as_str()).unwrap();
    let done = invoke(&base, "ReconcileTenant", json!({"reconcile": again.to_string()})).await.return_value;
    assert_eq!(done["outcome"], "fixed", "{done}");
    let bogus = http.post(format!("{base}/api/plans/plan-0000/approve")).send().await.unwrap();
    assert_eq!(bogus.status(), 404);

    // Approved, but the tenant changed before the reconcile: re-planned and held again, nothing written.
    let fid = fabrikam_plan["id"].as_str().unwrap();
    assert_eq!(http.post(format!("{base}/api/plans/{fid}/approve")).send().await.unwrap().status(), 200);
    let new_policy = json!({"displayName": "Added after the approval", "state": "enabled",
        "conditions": {"clientAppTypes": ["all"], "applications": {"includeApplications": ["All"]}, "users": {"includeUsers": ["All"]}},
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]}});
    let admin = Actor::App { app_id: "11111111-2222-4333-8444-555555555555".into(), display_name: "Someone".into() };
    let (status, _) =
        sim.portal_edit(&fabrikam.id, &admin, "POST", "identity/conditionalAccess/policies", Some(new_policy));
    assert_eq!(status, 201);
    sim.clear_journal();
    let msg = messages.iter().find(|m| m["tenantId"] == fabrikam.id.as_str()).unwrap();
    let stale = invoke(&base, "ReconcileTenant", json!({"reconcile": msg.to_string()})).await.return_value;
    assert_eq!(stale["outcome"], "held", "{stale}");
    assert!(sim.journal().iter().all(|e| !e.is_write()), "a stale approval writes nothing");
    let relisted: Value = http.get(format!("{base}/api/plans")).send().await.unwrap().json().await.unwrap();
    let now =
        relisted["plans"].as_array().unwrap().iter().find(|p| p["tenantId"] == fabrikam.id.as_str()).unwrap().clone();
    assert_ne!(now["id"], fabrikam_plan["id"], "the new plan has a new id to approve");

    // The status page, in a real headless browser.
    let html = http.get(format!("{base}/api/ui")).send().await.unwrap().text().await.unwrap();
    assert!(
        html.contains("Fabrikam Dental") && html.contains("Held plans") && html.contains("class=\"add\""),
        "{html}"
    );
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("caguard-status-page.png");
    let _ = std::fs::remove_file(&shot);
    let browser = chromium();
    let profile = dir.join("chromium-profile");
    let common = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"];
    let dom = tokio::process::Command::new(&browser)
        .args(common)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("{base}/api/ui"))
        .output()
        .await
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("<h1>caguard status</h1>") && dom.contains("Fabrikam Dental"), "the browser rendered: {dom}");
    let out = tokio::process::Command::new(&browser)
        .args(common)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--window-size=1280,2000")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("{base}/api/ui"))
        .output()
        .await
        .unwrap();
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "a screenshot at {}: {size} bytes; {}",
        shot.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("screenshot: {} ({size} bytes)", shot.display());
}
