//! #14, item 3: no tug-of-war. CIPP (its CA template standard, running as the very
//! app caguard signs in with, or delegated as the same service account) reverts
//! caguard's D1 exclusion three times: each drift record names CIPP, caguard's own
//! writes are never reported as drift, and one tug-of-war alert names the remedy.
//! In app mode CIPP's standard sends its `User-Agent` (`CIPP/<v> (standard:<id>)`),
//! which the audit record keeps: the records and the alert name that template.
//! Delegated, no `User-Agent` is kept: CIPP is named from the identity alone.

use caguard::alert::{Alerter, Schema};
use caguard::graph::Credentials;
use caguard_e2e::functions_app::{invoke, serve_with_client, webhook_receiver};
use caguard_sim::{Actor, sample_estate};
use serde_json::{Value, json};
use std::time::Duration;

async fn tug_of_war(delegated: bool) {
    let estate = sample_estate();
    let sim = caguard_sim::start(estate.clone(), Default::default()).await.unwrap();
    let (store, _dir) = caguard_e2e::temp_store(if delegated { "tug-delegated" } else { "tug-app" });
    let (hook, inbox) = webhook_receiver().await;
    let alerter = Alerter::new(store.clone(), 60, None, None, Some((hook, Schema::Caguard)), None);
    let app = &estate.apps[0];
    let rt = &estate.refresh_tokens[0];
    let (creds, cipp) = if delegated {
        let creds = Credentials::RefreshToken {
            client_id: rt.client_id.clone(),
            client_secret: Some(app.client_secret.clone()),
            refresh_token: rt.token.clone(),
        };
        let svc = Actor::User {
            id: rt.user_id.clone(),
            display_name: "CIPP Service Account".into(),
            user_principal_name: rt.user_principal_name.clone(),
        };
        (creds, svc)
    } else {
        let cipp = Actor::App { app_id: app.client_id.clone(), display_name: "CIPP-SAM".into() };
        (caguard_e2e::app_credentials(&estate), cipp)
    };
    let client = caguard_e2e::client(&sim, creds, Duration::from_millis(5));
    let base = serve_with_client(client, &estate, &store, alerter, true).await;
    let tenant = estate.tenants.iter().find(|t| t.display_name == "Fabrikam Dental").unwrap();
    let runs = std::sync::atomic::AtomicUsize::new(0);
    let reconcile = || async {
        let n = runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let msg = json!({"tenantId": tenant.id, "tenantName": tenant.display_name, "reason": "drift", "correlationId": format!("tug-{n}")});
        invoke(&base, "ReconcileTenant", json!({"reconcile": msg.to_string()})).await.return_value
    };
    assert_eq!(reconcile().await["outcome"], "fixed", "the first rollout adds D1");
    let msp = estate.msp_tenant_id.clone();
    let excluded = |p: &Value| p.to_string().contains(&msp);
    let policy = sim.tenant(&tenant.id).unwrap().policies.into_iter().find(excluded).expect("a policy D1 wrote");
    let id = policy["id"].as_str().unwrap().to_string();
    let path = format!("identity/conditionalAccess/policies/{id}");
    assert_eq!(reconcile().await["outcome"], "compliant", "caguard's own write is not drift");

    let template = "0c6b1f0e-7a1e-4a47-9d8c-2f1e3d4c5b6a";
    let cipp_revert = || {
        // CIPP's standard rewrites the policy whole, without the exclusion.
        let revert = json!({"conditions": {"users": {"excludeGuestsOrExternalUsers": null}}});
        if delegated {
            sim.portal_edit(&tenant.id, &cipp, "PATCH", &path, Some(revert)).0
        } else {
            let ua = format!("CIPP/8.2.0 (standard:{template})");
            sim.tool_edit(&tenant.id, &cipp, &ua, "PATCH", &path, Some(revert)).0
        }
    };
    for round in 1..=3 {
        assert_eq!(cipp_revert(), 204, "round {round}");
        assert_eq!(reconcile().await["outcome"], "fixed", "round {round}");
        assert_eq!(reconcile().await["outcome"], "compliant", "round {round}: caguard's fix is not drift");
    }
    // Newest first: the three reverts, then the first rollout's record.
    let records = store.drift_records(Some(&tenant.id)).await.unwrap();
    let of_policy: Vec<_> = records.iter().filter(|r| r.object_id == id).collect();
    assert_eq!(of_policy.len(), 4, "the rollout and one per revert, none for caguard's own writes: {of_policy:#?}");
    let named = format!("CIPP standards template {template}");
    for r in &of_policy[..3] {
        assert!(r.changed_by.starts_with("CIPP ("), "attributed to CIPP: {}", r.changed_by);
        assert_eq!(
            r.changed_by.contains(&named),
            !delegated,
            "the template only where the record has it: {}",
            r.changed_by
        );
    }
    assert!(!of_policy[3].changed_by.starts_with("CIPP ("), "the rollout's record is not CIPP's revert");
    let alerts = inbox.lock().unwrap().clone();
    let tugs: Vec<&Value> = alerts.iter().filter(|a| a["kind"] == "tug-of-war").collect();
    assert_eq!(tugs.len(), 1, "{alerts:#?}");
    let text = tugs[0]["message"].as_str().unwrap();
    assert!(
        text.contains("3 times") && text.contains("CIPP (") && text.contains("CIPP Conditional Access template"),
        "{text}"
    );
    assert_eq!(text.contains(&format!("the one standards template {template} deploys")), !delegated, "{text}");

    // A fourth revert the same day: restored, no second tug-of-war alert.
    cipp_revert();
    assert_eq!(reconcile().await["outcome"], "fixed");
    let tugs = inbox.lock().unwrap().iter().filter(|a| a["kind"] == "tug-of-war").count();
    assert_eq!(tugs, 1, "at most once a day for that pair");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cipp_reverting_d1_as_the_same_app_is_named_and_alerted_once() {
    tug_of_war(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cipp_reverting_d1_as_the_same_service_account_is_named_and_alerted_once() {
    tug_of_war(true).await;
}
