//! The Key Vault credential source against a local stand-in for Key Vault that
//! speaks its challenge-based auth: CIPP's secrets are read by name, and a
//! rotated secret is re-read after the token endpoint says `invalid_client`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use caguard::graph::{CredentialSource, Credentials, GraphClient, GraphConfig};
use caguard::secrets::{AuthMode, KeyVaultSource, SecretNames};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Vault = Arc<Mutex<HashMap<String, String>>>;

async fn get_secret(State(v): State<Vault>, Path(name): Path<String>, headers: HeaderMap) -> axum::response::Response {
    let authorized = headers.get("authorization").and_then(|h| h.to_str().ok()) == Some("Bearer vault-token");
    if !authorized {
        let challenge =
            r#"Bearer authorization="https://login.microsoftonline.com/tenant", resource="https://vault.azure.net""#;
        return (StatusCode::UNAUTHORIZED, [("www-authenticate", challenge)], "").into_response();
    }
    match v.lock().unwrap().get(&name) {
        Some(value) => axum::Json(json!({"value": value, "id": format!("https://vault/secrets/{name}/1"), "attributes": {"enabled": true}})).into_response(),
        None => (StatusCode::NOT_FOUND, axum::Json(json!({"error": {"code": "SecretNotFound", "message": format!("A secret with (name/id) {name} was not found in this key vault.")}}))).into_response(),
    }
}

/// A vault over HTTPS (azure_core never sends a bearer token over plain HTTP),
/// with a throwaway certificate for 127.0.0.1. Returns its URL, its contents, and the cert.
async fn start_vault(secrets: &[(&str, &str)]) -> (String, Vault, String) {
    let vault: Vault = Arc::new(Mutex::new(secrets.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()));
    // GET {vault}/secrets/{name}/{version}: the SDK sends an empty version for the latest.
    let app = axum::Router::new()
        .route("/secrets/{name}", axum::routing::get(get_secret))
        .route("/secrets/{name}/", axum::routing::get(get_secret))
        .with_state(vault.clone());
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let pem = cert.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (url, vault, pem)
}

#[derive(Debug)]
struct FixedToken;

#[async_trait::async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _o: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            "vault-token".to_string(),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

/// The real Key Vault client, trusting the stand-in's certificate; the challenge names
/// vault.azure.net, which a 127.0.0.1 URL cannot match, so that check is off.
fn source(url: &str, pem: &str, mode: AuthMode) -> KeyVaultSource {
    let http = reqwest::Client::builder()
        .tls_certs_merge([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let mut options = azure_security_keyvault_secrets::SecretClientOptions {
        verify_challenge_resource: Some(false),
        ..Default::default()
    };
    options.client_options.transport = Some(azure_core::http::Transport::new(Arc::new(http)));
    KeyVaultSource::with_credential(url, Arc::new(FixedToken), SecretNames::default(), mode, options).unwrap()
}

#[tokio::test]
async fn reads_cipps_secrets_by_their_default_names() {
    let (url, _, pem) = start_vault(&[
        ("ApplicationID", "app-1"),
        ("ApplicationSecret", "s3cret"),
        ("RefreshToken", "rt-1"),
        ("TenantID", "t"),
    ])
    .await;
    let app = source(&url, &pem, AuthMode::App).load().await.unwrap();
    assert_eq!(app, Credentials::ClientSecret { client_id: "app-1".into(), client_secret: "s3cret".into() });
    let delegated = source(&url, &pem, AuthMode::Delegated).load().await.unwrap();
    assert_eq!(
        delegated,
        Credentials::RefreshToken {
            client_id: "app-1".into(),
            client_secret: Some("s3cret".into()),
            refresh_token: "rt-1".into()
        }
    );
}

#[tokio::test]
async fn a_missing_secret_is_named_and_its_value_never_shown() {
    let (url, _, pem) = start_vault(&[("ApplicationID", "app-1")]).await;
    let err = source(&url, &pem, AuthMode::App).load().await.unwrap_err();
    assert!(err.contains("ApplicationSecret"), "{err}");
    let shown = format!("{:?}", Credentials::ClientSecret { client_id: "a".into(), client_secret: "s3cret".into() });
    assert!(!shown.contains("s3cret"), "{shown}");
}

#[tokio::test]
async fn a_rotated_secret_is_re_read_after_invalid_client() {
    let mut estate = caguard_sim::sample_estate();
    estate.apps[0].client_secret = "new-secret".into();
    let sim = caguard_sim::start(estate.clone(), Default::default()).await.unwrap();
    // The vault still holds last week's secret when caguard first reads it...
    let (url, vault, pem) =
        start_vault(&[("ApplicationID", estate.apps[0].client_id.as_str()), ("ApplicationSecret", "old-secret")]).await;
    let graph =
        GraphClient::new(GraphConfig::for_base(&sim.base_url), Arc::new(source(&url, &pem, AuthMode::App))).unwrap();
    let tenant = &estate.tenants[1].id;
    let err = graph.get::<serde_json::Value>(tenant, "/subscribedSkus").await.unwrap_err();
    assert_eq!(err.code(), Some("invalid_client"), "{err}");
    // ...CIPP rotates it; the next rejection makes caguard read the vault again.
    vault.lock().unwrap().insert("ApplicationSecret".into(), "new-secret".into());
    graph.get::<serde_json::Value>(tenant, "/subscribedSkus").await.expect("re-read after invalid_client");
}
