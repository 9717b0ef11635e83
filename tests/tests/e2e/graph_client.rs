//! The Graph client against the simulator: pacing, retries and typed errors.

#![allow(clippy::result_large_err)]

use caguard::graph::{CredentialSource, Credentials, GraphClient, GraphConfig, GraphError, RetryPolicy};
use caguard::model::{ConditionalAccessPolicy, NamedLocation};
use caguard_e2e::*;
use caguard_sim::{Faults, TokenFailure};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Tenants of the sample estate that cannot be read, and why.
fn expected_failure(e: &GraphError) -> bool {
    matches!(e.code(), Some("unauthorized_client" | "Authorization_RequestDenied"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_every_sample_tenant_within_the_ca_limit() {
    let (sim, estate) = sample_sim(50, true).await;
    let graph = client(&sim, app_credentials(&estate), Duration::from_millis(200));
    let mut tasks = Vec::new();
    for t in &estate.tenants {
        let (g, id) = (graph.clone(), t.id.clone());
        tasks.push(tokio::spawn(async move {
            // Two CA lists back to back per tenant, so the pacer has work to do.
            let p = g.list::<ConditionalAccessPolicy>(&id, "/identity/conditionalAccess/policies").await;
            let l = g.list::<NamedLocation>(&id, "/identity/conditionalAccess/namedLocations").await;
            (id, p.map(|p| p.len()).and_then(|n| l.map(|l| (n, l.len()))))
        }));
    }
    let mut listed = 0;
    for t in tasks {
        let (id, r) = t.await.unwrap();
        match r {
            Ok((policies, _)) => {
                let want = estate.tenants.iter().find(|t| t.id == id).unwrap().policies.len();
                assert_eq!(policies, want, "tenant {id}: every policy listed (paging)");
                listed += 1;
            }
            Err(e) => {
                assert!(expected_failure(&e), "unexpected error: {e}");
                assert_eq!(e.tenant(), id);
            }
        }
    }
    let journal = sim.journal();
    let stats = graph.stats();
    println!("listed {listed} tenants; {} CA requests; stats {stats:?}", journal.iter().filter(|e| e.ca).count());
    assert!(listed >= 20, "at least 20 tenants listed, got {listed}");
    assert_eq!(stats.throttled, 0, "no 429 was received, so none could reach the caller");
    assert!(journal.iter().all(|e| e.status != 429), "the simulator answered no 429");
    let violations = pacing_violations(&journal);
    assert!(violations.is_empty(), "pacing violated: {violations:#?}");
    let per_tenant = ca_requests_per_tenant(&journal);
    assert!(per_tenant.values().filter(|n| **n == 2).count() >= 20, "two CA lists per readable tenant: {per_tenant:?}");
    assert!(per_tenant.values().all(|n| *n <= 2), "the 130-policy tenant is one list, not pages: {per_tenant:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completes_every_list_through_twenty_percent_injected_faults() {
    let (sim, estate) = sample_sim(5, true).await;
    sim.set_faults(Faults { error_rate: 0.2, ca_throttling: true, latency_ms: 5, ..Faults::default() });
    let graph = client(&sim, app_credentials(&estate), Duration::from_millis(100));
    let mut tasks = Vec::new();
    for t in estate.tenants.iter().filter(|t| t.consented && !t.permissions_denied) {
        let (g, id) = (graph.clone(), t.id.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..3 {
                g.list::<ConditionalAccessPolicy>(&id, "/identity/conditionalAccess/policies").await?;
            }
            g.list::<NamedLocation>(&id, "/identity/conditionalAccess/namedLocations").await
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("every list completes despite faults");
    }
    let stats = graph.stats();
    let injected = sim.journal().iter().filter(|e| matches!(e.status, 429 | 503)).count();
    println!("injected {injected} faults; client retried {} times; stats {stats:?}", stats.retries);
    assert!(injected > 0, "faults were injected");
    assert!(stats.retries as usize >= injected, "every injected fault was retried");
}

#[tokio::test]
async fn malformed_json_is_a_decode_error_naming_the_tenant() {
    let (sim, estate) = sample_sim(0, false).await;
    let graph = client(&sim, app_credentials(&estate), Duration::from_millis(10));
    let tenant = &estate.tenants[1].id;
    sim.set_faults(Faults { malformed_responses: 1, ..Faults::default() });
    let err = graph.list::<ConditionalAccessPolicy>(tenant, "/identity/conditionalAccess/policies").await.unwrap_err();
    assert!(matches!(err, GraphError::Decode { .. }), "{err}");
    assert_eq!(err.tenant(), tenant);
    assert!(err.to_string().contains(tenant.as_str()));
}

#[tokio::test]
async fn a_next_link_that_404s_is_an_api_error_naming_the_tenant() {
    let (sim, estate) = sample_sim(0, false).await;
    let graph = client(&sim, app_credentials(&estate), Duration::from_millis(10));
    let msp = &estate.msp_tenant_id;
    sim.set_faults(Faults { broken_next_links: true, ..Faults::default() });
    let err = graph
        .list::<caguard::model::DelegatedAdminRelationship>(
            msp,
            "/tenantRelationships/delegatedAdminRelationships?$top=5",
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    assert_eq!(&err.tenant(), msp);
    assert!(err.to_string().contains("skiptoken"), "the error names the failing link: {err}");
}

#[tokio::test]
async fn token_endpoint_refusals_are_typed_token_errors() {
    for code in ["invalid_grant", "invalid_client"] {
        let (sim, estate) = sample_sim(0, false).await;
        let graph = client(&sim, app_credentials(&estate), Duration::from_millis(10));
        let tenant = estate.tenants[2].id.clone();
        sim.set_faults(Faults {
            token_failure: Some(TokenFailure { error: code.into(), tenant: None, remaining: None }),
            ..Faults::default()
        });
        let err =
            graph.list::<ConditionalAccessPolicy>(&tenant, "/identity/conditionalAccess/policies").await.unwrap_err();
        assert!(matches!(&err, GraphError::Token { code: c, .. } if c == code), "{err}");
        assert_eq!(err.tenant(), tenant);
        assert!(err.is_auth_failure());
    }
}

#[tokio::test]
async fn a_403_authorization_request_denied_is_an_api_error_naming_the_tenant() {
    let (sim, estate) = sample_sim(0, false).await;
    let graph = client(&sim, app_credentials(&estate), Duration::from_millis(10));
    let denied = estate.tenants.iter().find(|t| t.permissions_denied).unwrap();
    let err =
        graph.list::<ConditionalAccessPolicy>(&denied.id, "/identity/conditionalAccess/policies").await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.code(), Some("Authorization_RequestDenied"));
    assert_eq!(err.tenant(), denied.id);
    assert!(!err.request_id().unwrap_or_default().is_empty(), "the request id is carried");
}

/// A source whose first answer is a stale secret, as after CIPP's weekly rotation.
struct RotatingSource {
    stale: Credentials,
    fresh: Credentials,
    loads: AtomicU32,
}

impl CredentialSource for RotatingSource {
    fn load(&self) -> caguard::graph::token_future::BoxFuture<'_, Result<Credentials, String>> {
        let n = self.loads.fetch_add(1, Ordering::SeqCst);
        let c = if n == 0 { self.stale.clone() } else { self.fresh.clone() };
        Box::pin(async move { Ok(c) })
    }
}

#[tokio::test]
async fn rotated_secrets_are_re_read_after_invalid_client() {
    let (sim, estate) = sample_sim(0, false).await;
    let fresh = app_credentials(&estate);
    let Credentials::ClientSecret { client_id, .. } = &fresh else { unreachable!() };
    let stale = Credentials::ClientSecret { client_id: client_id.clone(), client_secret: "last-weeks-secret".into() };
    let source = Arc::new(RotatingSource { stale, fresh, loads: AtomicU32::new(0) });
    let graph = GraphClient::new(GraphConfig::for_base(&sim.base_url), source.clone()).unwrap();
    let tenant = &estate.tenants[1].id;
    graph
        .list::<ConditionalAccessPolicy>(tenant, "/identity/conditionalAccess/policies")
        .await
        .expect("succeeds after re-reading");
    assert_eq!(source.loads.load(Ordering::SeqCst), 2, "credentials were read, rejected, and read again");
}

#[tokio::test]
async fn refresh_token_grant_reaches_gdap_customers_only() {
    let (sim, estate) = sample_sim(0, false).await;
    let app = &estate.apps[0];
    let creds = Credentials::RefreshToken {
        client_id: app.client_id.clone(),
        client_secret: Some(app.client_secret.clone()),
        refresh_token: estate.refresh_tokens[0].token.clone(),
    };
    let graph = client(&sim, creds, Duration::from_millis(10));
    let active = &estate.tenants[1].id;
    graph
        .list::<ConditionalAccessPolicy>(active, "/identity/conditionalAccess/policies")
        .await
        .expect("active GDAP customer");
    let terminated = estate.tenants.iter().find(|t| t.display_name == "Graphic Design Institute").unwrap();
    let err = graph
        .list::<ConditionalAccessPolicy>(&terminated.id, "/identity/conditionalAccess/policies")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("invalid_grant"), "{err}");
    // Cached: a second list asks for no new token.
    let before = graph.stats().token_requests;
    graph.list::<ConditionalAccessPolicy>(active, "/identity/conditionalAccess/policies").await.unwrap();
    assert_eq!(graph.stats().token_requests, before);
}

#[tokio::test]
async fn batch_carries_at_most_one_ca_request_and_twenty_items() {
    use caguard::model::BatchRequestItem;
    let (sim, estate) = sample_sim(0, true).await;
    let graph = client(&sim, app_credentials(&estate), Duration::from_millis(10));
    let tenant = &estate.tenants[1].id;
    let item = |id: &str, url: &str| BatchRequestItem {
        id: id.to_string().into(),
        method: "GET".to_string().into(),
        url: url.to_string().into(),
        ..Default::default()
    };
    let ok = graph
        .batch(
            tenant,
            vec![
                item("1", "/identity/conditionalAccess/policies"),
                item("2", "/policies/identitySecurityDefaultsEnforcementPolicy"),
                item("3", "/subscribedSkus"),
            ],
        )
        .await
        .unwrap();
    assert!(ok.iter().all(|r| r.status.as_ref() == Some(&200)), "{ok:?}");
    let two_ca = graph
        .batch(
            tenant,
            vec![
                item("1", "/identity/conditionalAccess/policies"),
                item("2", "/identity/conditionalAccess/namedLocations"),
            ],
        )
        .await;
    assert!(matches!(two_ca, Err(GraphError::Invalid { .. })));
    let many: Vec<_> = (0..21).map(|i| item(&i.to_string(), "/subscribedSkus")).collect();
    assert!(matches!(graph.batch(tenant, many).await, Err(GraphError::Invalid { .. })));
    let _ = RetryPolicy::default();
}

/// A tenant id goes into the token URL's path, so only a GUID may: anything else is
/// refused before a request is made.
#[tokio::test]
async fn a_tenant_that_is_not_a_guid_never_reaches_a_url() {
    let (sim, estate) = sample_sim(0, false).await;
    let client = client(&sim, app_credentials(&estate), std::time::Duration::from_millis(10));
    sim.clear_journal();
    let err = client.get::<serde_json::Value>("../../evil?x=", "/users").await.unwrap_err();
    assert_eq!(err.code(), Some("invalid_tenant"), "{err}");
    assert!(sim.journal().is_empty(), "no request was sent: {:?}", sim.journal());
}
