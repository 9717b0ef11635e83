//! #14 item 4, C1 against CIPP's front door: a client disabled in `ApiClients`
//! but still in CIPP's authentication settings (`allowedApplications`) can call
//! CIPP-API (CIPP's access check never reads `Enabled`), so it is reported and
//! restricted like an enabled one; an allowed app with no row is reported; a
//! truly disabled client is left alone. The settings come from the simulator's
//! ARM stand-in, read with the call CIPP's `Get-CippApiAuth.ps1` makes.

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use caguard::cipp::{self, RowOutcome, Tables, auth::Site};
use caguard::config;
use caguard_e2e::{Azurite, unique_table};
use caguard_sim::{CippSite, sample_estate};
use serde_json::{Map, Value, json};
use std::sync::Arc;

const SITE: &str =
    "/subscriptions/0b6f1a2c-3d4e-4f50-8a9b-0c1d2e3f4a5b/resourceGroups/cipp/providers/Microsoft.Web/sites/cipp-x7k2";
const SSO: &str = "11111111-1111-4111-8111-111111111111";
const DISABLED_ALLOWED: &str = "22222222-2222-4222-8222-222222222222";
const NO_ROW: &str = "33333333-3333-4333-8333-333333333333";
const DISABLED: &str = "44444444-4444-4444-8444-444444444444";
const ENABLED: &str = "55555555-5555-4555-8555-555555555555";

#[derive(Debug)]
struct FixedToken(&'static str);

#[async_trait::async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(&self, _: &[&str], _: Option<TokenRequestOptions<'_>>) -> azure_core::Result<AccessToken> {
        let expires = azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1);
        Ok(AccessToken::new(self.0.to_string(), expires))
    }
}

/// CIPP's authentication settings as `Set-CippApiAuth.ps1` leaves them: the SSO
/// app first, then the API clients it was given.
fn settings() -> Value {
    json!({
        "platform": {"enabled": true},
        "globalValidation": {"requireAuthentication": true, "unauthenticatedClientAction": "Return401"},
        "identityProviders": {"azureActiveDirectory": {
            "enabled": true,
            "registration": {"openIdIssuer": "https://sts.windows.net/6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7d/v2.0", "clientId": SSO},
            "validation": {
                "allowedAudiences": [format!("api://{SSO}"), format!("api://{DISABLED_ALLOWED}")],
                "defaultAuthorizationPolicy": {"allowedApplications": [SSO, DISABLED_ALLOWED, NO_ROW, ENABLED]}
            }
        }}
    })
}

fn row(rk: &str, enabled: bool) -> Map<String, Value> {
    json!({"AppName": format!("app {rk}"), "Role": "editor", "IPRange": "", "Enabled": enabled, "MCPAllowed": false})
        .as_object()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_client_cipp_still_lets_in_is_reported_and_restricted() {
    let mut estate = sample_estate();
    estate.cipp_sites =
        vec![CippSite { resource_id: SITE.into(), auth_settings: settings(), reader_token: "mi-token".into() }];
    let sim = caguard_sim::start(estate, Default::default()).await.unwrap();
    let az = Azurite::start();
    let client = az.client();
    let tables = Tables { api_clients: unique_table("ApiClients"), ..Tables::default() };
    client.create_table(&tables.api_clients).await.unwrap();
    for (rk, enabled) in [(DISABLED_ALLOWED, false), (DISABLED, false), (ENABLED, true)] {
        client.insert(&tables.api_clients, "ApiClients", rk, &row(rk, enabled)).await.unwrap();
    }
    let src = "msp_tenant_id = \"6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7d\"\n[sites]\nOffice = [\"203.0.113.0/24\"]\n[accounts]\ntechnician_groups = [\"6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7e\"]\nbreak_glass = [\"bg@x.example\"]\nservice_account = \"svc@x.example\"\n[controls]\nC1 = \"enforce\"\nC2 = \"off\"\n";
    let cfg = config::parse(src).unwrap().0;
    let site = |token| Site {
        arm_endpoint: sim.base_url.clone(),
        resource_id: SITE.into(),
        credential: Arc::new(FixedToken(token)),
    };

    let report = cipp::run(&client, &cfg, &tables, Some(&site("mi-token")), true).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let of = |key: &str| report.rows.iter().find(|r| r.row_key == key).map(|r| r.outcome.clone());
    match of(DISABLED_ALLOWED) {
        Some(RowOutcome::Fixed(d)) => assert!(d.contains("still in CIPP's authentication settings"), "{d}"),
        other => panic!("the disabled but allowed client is restricted and reported: {other:?}"),
    }
    let written = client.get(&tables.api_clients, "ApiClients", DISABLED_ALLOWED).await.unwrap().unwrap();
    assert_eq!(written.str("IPRange"), Some("\"203.0.113.0/24\""));
    assert_eq!(written.properties["Enabled"], json!(false), "only the ranges are written");
    match of(NO_ROW) {
        Some(RowOutcome::Reported(d)) => assert!(d.contains("no ApiClients row") && d.contains("any IP"), "{d}"),
        other => panic!("the allowed app with no row is reported: {other:?}"),
    }
    match of(DISABLED) {
        Some(RowOutcome::Reported(d)) => assert!(d.contains("client disabled") && !d.contains("still in"), "{d}"),
        other => panic!("a truly disabled client is reported, not changed: {other:?}"),
    }
    assert!(of(SSO).is_none(), "the SSO app is not an API client");
    let untouched = client.get(&tables.api_clients, "ApiClients", DISABLED).await.unwrap().unwrap();
    assert_eq!(untouched.str("IPRange"), Some(""));
    let calls: Vec<_> = sim.journal().into_iter().filter(|j| j.kind == "arm").collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!((calls[0].method.as_str(), calls[0].query.as_str()), ("POST", "api-version=2020-06-01"));

    // CIPP re-saves its clients: the list now matches the table, and nothing is left to say.
    let mut fixed = settings();
    fixed["identityProviders"]["azureActiveDirectory"]["validation"]["defaultAuthorizationPolicy"]["allowedApplications"] =
        json!([SSO, ENABLED]);
    sim.set_cipp_auth_settings(SITE, fixed);
    let again = cipp::run(&client, &cfg, &tables, Some(&site("mi-token")), true).await;
    let still: Vec<_> = again.rows.iter().filter(|r| format!("{:?}", r.outcome).contains("still in")).collect();
    assert!(still.is_empty() && again.rows.iter().all(|r| r.row_key != NO_ROW), "{again:?}");

    // An identity without the action on CIPP's site: one error naming the fix, the rest of C1 still runs.
    let denied = cipp::run(&client, &cfg, &tables, Some(&site("other-token")), true).await;
    assert_eq!(denied.errors.len(), 1, "{:?}", denied.errors);
    assert!(denied.errors[0].contains("Microsoft.Web/sites/config/list/Action"), "{}", denied.errors[0]);
    assert!(denied.rows.iter().any(|r| r.row_key == DISABLED), "the table is still checked");
}
