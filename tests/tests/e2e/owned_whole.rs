//! #12: caguard's own policies are owned whole. Each out-of-band edit from the
//! issue's first finding is drift: the next reconcile (the Functions app, as the
//! watch queues it) restores it and alerts, naming who made it. A CIPP
//! `Vacation Exclusion - …` group and a configured allowed exclusion are kept.

use caguard::alert::{Alerter, Schema};
use caguard::store::{Store, TableStore};
use caguard::sweep::{self, Ledger, SweepOptions};
use caguard_e2e::functions_app::{Inbox, invoke, serve_with_client, webhook_receiver};
use caguard_e2e::{Azurite, unique_table};
use caguard_sim::{Actor, Estate, SimHandle, sample_estate};
use serde_json::{Value, json};
use std::sync::Arc;

struct RolledOut {
    /// Kept alive: without a shared Azurite (`CAGUARD_AZURITE_TABLE`), dropping it stops the emulator.
    _az: Azurite,
    sim: SimHandle,
    estate: Estate,
    store: Arc<dyn Store>,
    base: String,
    inbox: Inbox,
    msp: String,
}

fn mallory() -> Actor {
    Actor::User {
        id: "5f0c2b7e-3d1a-4c55-9e21-7a1d2c3b4e5f".into(),
        display_name: "Mallory Admin".into(),
        user_principal_name: "mallory@contosomsp.onmicrosoft.com".into(),
    }
}

/// The MSP tenant after a confirmed first rollout that recorded what caguard owns,
/// with the Functions app serving on the same store.
async fn rolled_out(estate: Estate) -> RolledOut {
    let az = Azurite::start();
    // Ownership, not pacing, is under test here: no CA rate limit, so each test takes seconds.
    let (sim, client) = caguard_e2e::unpaced_sim(&estate).await;
    let store: Arc<dyn Store> = Arc::new(TableStore::new(az.client(), &unique_table("own")));
    let (hook, inbox) = webhook_receiver().await;
    let alerter = Alerter::new(store.clone(), 60, None, None, Some((hook, Schema::Caguard)), None);
    let base = serve_with_client(client.clone(), &estate, &store, alerter, false).await;
    let config = caguard::demo::sample_config(&estate);
    let msp = config.msp_tenant_id.clone();
    let opts = SweepOptions {
        apply: true,
        confirmed: true,
        only: vec![msp.clone()],
        ledger: Ledger(Some(store.clone())),
        ..Default::default()
    };
    let r = sweep::run(&client, &config, &opts).await.unwrap();
    assert_eq!(r.tenants[0].result.as_ref().unwrap().outcome.label(), "fixed", "{:?}", r.tenants[0].result);
    RolledOut { _az: az, sim, estate, store, base, inbox, msp }
}

impl RolledOut {
    async fn owned_id(&self, key: &str) -> String {
        let rows = self.store.records("owned").await.unwrap();
        let row = rows.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("{key} recorded: {rows:?}"));
        row.1["id"].as_str().unwrap().to_string()
    }

    fn policy(&self, id: &str) -> Value {
        self.sim.tenant(&self.msp).unwrap().policies.into_iter().find(|p| p["id"] == id).unwrap()
    }

    fn user_id(&self, name: &str) -> String {
        let u = self.estate.tenants[0].users.iter().find(|u| u["displayName"] == name).unwrap();
        u["id"].as_str().unwrap().to_string()
    }

    /// Mallory patches caguard's policy `key` in the portal.
    async fn edit(&self, key: &str, patch: Value) -> String {
        let id = self.owned_id(key).await;
        let path = format!("identity/conditionalAccess/policies/{id}");
        let (status, body) = self.sim.portal_edit(&self.msp, &mallory(), "PATCH", &path, Some(patch));
        assert_eq!(status, 204, "{body:?}");
        id
    }

    /// One ReconcileTenant of the MSP tenant; returns its result.
    async fn reconcile(&self) -> Value {
        self.reconcile_logged().await.0
    }

    /// One ReconcileTenant of the MSP tenant; returns its result and log lines.
    async fn reconcile_logged(&self) -> (Value, Vec<String>) {
        self.inbox.lock().unwrap().clear();
        let msg = json!({"tenantId": self.msp, "reason": "drift", "correlationId": "owned-whole", "msp": true});
        let done = invoke(&self.base, "ReconcileTenant", json!({"reconcile": msg.to_string()})).await;
        assert!(done.return_value.is_object(), "{:?}", done.logs);
        (done.return_value, done.logs)
    }

    fn alerts(&self) -> Vec<Value> {
        self.inbox.lock().unwrap().clone()
    }
}

/// Edits `key`'s policy, reconciles, and checks: restored (as `restored` says),
/// alerted once as drift naming the property and Mallory.
async fn drift_is_restored_and_alerted(key: &str, patch: Value, property: &str, restored: impl Fn(&Value) -> bool) {
    let s = rolled_out(sample_estate()).await;
    let id = s.edit(key, patch).await;
    assert!(!restored(&s.policy(&id)), "the edit landed: {}", s.policy(&id));
    let result = s.reconcile().await;
    assert_eq!(result["outcome"], "fixed", "{result}");
    let after = s.policy(&id);
    assert!(restored(&after), "restored: {after}");
    let alerts = s.alerts();
    let drift: Vec<&Value> = alerts.iter().filter(|a| a["kind"] == "drift-fixed" && a["control"] == key).collect();
    assert_eq!(drift.len(), 1, "{alerts:#?}");
    assert!(drift[0]["message"].as_str().unwrap().contains(property), "{}", drift[0]["message"]);
    assert_eq!(drift[0]["changedBy"], "Mallory Admin <mallory@contosomsp.onmicrosoft.com>");
    // Nothing is left to do.
    assert_eq!(s.reconcile().await["outcome"], "compliant");
}

fn empty(v: &Value) -> bool {
    v.is_null() || v.as_array().is_some_and(Vec::is_empty)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_technician_group_excluded_from_the_block_policy_is_removed() {
    let group = caguard::demo::sample_config(&sample_estate()).lockdowns[0].technician_groups[0].clone();
    let patch = json!({"conditions": {"users": {"excludeGroups": [group]}}});
    drift_is_restored_and_alerted("A2", patch, "excludeGroups", |p| empty(&p["conditions"]["users"]["excludeGroups"]))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_excluded_role_on_the_block_policy_is_removed() {
    let global_admin = "62e90394-69f5-4237-9190-012177145e10";
    let patch = json!({"conditions": {"users": {"excludeRoles": [global_admin]}}});
    drift_is_restored_and_alerted("A2", patch, "excludeRoles", |p| empty(&p["conditions"]["users"]["excludeRoles"]))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluding_all_applications_from_the_block_policy_is_removed() {
    let patch = json!({"conditions": {"applications": {"excludeApplications": ["All"]}}});
    drift_is_restored_and_alerted("A2", patch, "excludeApplications", |p| {
        empty(&p["conditions"]["applications"]["excludeApplications"])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_condition_on_the_block_policy_is_removed() {
    let patch = json!({"conditions": {"platforms": {"includePlatforms": ["android"]}}});
    drift_is_restored_and_alerted("A2", patch, "platforms", |p| p["conditions"]["platforms"].is_null()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_risk_condition_on_the_block_policy_is_removed() {
    let patch = json!({"conditions": {"signInRiskLevels": ["high"]}});
    drift_is_restored_and_alerted("A2", patch, "signInRiskLevels", |p| empty(&p["conditions"]["signInRiskLevels"]))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_filter_on_the_block_policy_is_removed() {
    let filter = json!({"deviceFilter": {"mode": "exclude", "rule": "device.trustType -eq \"AzureAD\""}});
    let patch = json!({"conditions": {"devices": filter}});
    drift_is_restored_and_alerted("A2", patch, "devices", |p| p["conditions"]["devices"].is_null()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_account_excluding_itself_from_its_policy_is_removed() {
    let estate = sample_estate();
    let svc = estate.tenants[0].users.iter().find(|u| u["displayName"] == "CIPP Service Account").unwrap();
    let svc = svc["id"].as_str().unwrap().to_string();
    let patch = json!({"conditions": {"users": {"excludeUsers": [svc]}}});
    // The other service account stays excluded (B2); this one is no longer.
    let kept = |p: &Value| !p["conditions"]["users"]["excludeUsers"].to_string().contains(&svc);
    drift_is_restored_and_alerted("B1", patch.clone(), "excludeUsers", kept).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_account_policy_limited_to_one_platform_is_restored() {
    let patch = json!({"conditions": {"platforms": {"includePlatforms": ["windows"]}}});
    drift_is_restored_and_alerted("B1", patch, "platforms", |p| p["conditions"]["platforms"].is_null()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authentication_flow_condition_on_the_block_policy_is_removed() {
    let patch = json!({"conditions": {"authenticationFlows": {"transferMethods": "deviceCodeFlow"}}});
    drift_is_restored_and_alerted("A2", patch, "authenticationFlows", |p| {
        p["conditions"]["authenticationFlows"].is_null()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cipp_vacation_group_and_an_allowed_exclusion_are_kept_and_reported() {
    let mut estate = sample_estate();
    let config = caguard::demo::sample_config(&estate);
    let vacation = "7ac47e3b-0000-4000-8000-00000000000a";
    estate.tenants[0]
        .groups
        .push(json!({"id": vacation, "displayName": format!("Vacation Exclusion - {}", config.lockdowns[0].name),
        "securityEnabled": true, "mailEnabled": false, "members": []}));
    let s = rolled_out(estate).await;
    let dana = s.user_id("Dana Office");
    let id = s.owned_id("A2").await;
    let mut excluded = s.policy(&id)["conditions"]["users"]["excludeUsers"].as_array().unwrap().clone();
    excluded.push(json!(dana));
    s.edit("A2", json!({"conditions": {"users": {"excludeGroups": [vacation], "excludeUsers": excluded}}})).await;

    // Through the Functions app (no allowed exclusions configured): the vacation
    // group stays, and the note saying so reaches the logs and the alert channel;
    // Dana's exclusion is drift.
    let (result, logs) = s.reconcile_logged().await;
    assert_eq!(result["outcome"], "fixed");
    assert!(
        logs.iter().any(|l| l.starts_with("note A2: kept excludeGroups") && l.contains("Vacation Exclusion - ")),
        "{logs:?}"
    );
    let alerts = s.alerts();
    assert!(
        alerts.iter().any(|a| a["kind"] == "note" && a["message"].as_str().unwrap().contains("Vacation Exclusion - ")),
        "{alerts:#?}"
    );
    let after = s.policy(&id);
    assert_eq!(after["conditions"]["users"]["excludeGroups"], json!([vacation]));
    assert!(!after["conditions"]["users"]["excludeUsers"].to_string().contains(&dana), "{after}");

    // With Dana listed in accounts.allowed_exclusions, her exclusion is kept, and reported.
    s.edit("A2", json!({"conditions": {"users": {"excludeUsers": excluded}}})).await;
    let toml = caguard::demo::sample_config_toml(&s.estate)
        .replace("[accounts]\n", &format!("[accounts]\nallowed_exclusions = [\"{dana}\"]\n"));
    let (config, _) = caguard::config::parse(&toml).unwrap();
    let client = caguard::demo::sample_client(&s.sim, &s.estate);
    let opts = SweepOptions { only: vec![s.msp.clone()], ledger: Ledger(Some(s.store.clone())), ..Default::default() };
    let plan = sweep::run(&client, &config, &opts).await.unwrap().tenants.remove(0).plan;
    assert!(plan.actions.iter().all(|a| a.control.to_string() != "A2"), "{:#?}", plan.actions);
    let notes: Vec<&str> = plan.notes.iter().map(|n| n.message.as_str()).collect();
    assert!(notes.iter().any(|n| n.contains("excludeGroups") && n.contains("Vacation Exclusion - ")), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("excludeUsers") && n.contains(&dana)), "{notes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_property_caguard_does_not_model_is_drift_never_kept() {
    let patch = json!({"conditions": {"insiderRiskLevels": "elevated"}});
    drift_is_restored_and_alerted("A2", patch, "insiderRiskLevels", |p| p["conditions"]["insiderRiskLevels"].is_null())
        .await;
}
