//! Partner Center GDAP events through the Functions app: every fixture event parses;
//! a signed activation onboards a new tenant, once (a replay is ignored); a forged
//! signature, a certificate on a foreign host or a self-signed certificate with the
//! right subject is refused with 401 and nothing is queued; a flood of unsigned
//! requests fetches nothing and grows no cache.

use base64::Engine;
use caguard::alert::Alerter;
use caguard::functions::{Ready, Settings, router};
use caguard::partner::{CERT_SUBJECT, Event, Verifier};
use caguard::store::{FileStore, Store};
use caguard_e2e::{Azurite, fixtures_dir, sample_sim};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn every_partner_center_event_fixture_parses() {
    let mut n = 0;
    for entry in std::fs::read_dir(fixtures_dir().join("partner-center")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !(name.starts_with("event-") || name == "callback-test-created-body.json") {
            continue;
        }
        let e: Event =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!e.event_name.is_empty(), "{name}");
        n += 1;
    }
    println!("parsed {n} Partner Center events");
    assert!(n >= 6);
    let minimal: Event = serde_json::from_str(r#"{"EventName": "granular-admin-relationship-terminated"}"#).unwrap();
    assert_eq!(minimal.relationship_id(), None, "ResourceUri and ResourceName may be missing");
}

const PC_HOST: &str = "api.partnercenter.microsoft.com";

struct Signer {
    key: aws_lc_rs::signature::RsaKeyPair,
    /// The same subject, self-signed: what an impostor can make.
    impostor: aws_lc_rs::signature::RsaKeyPair,
    cert_url: String,
    impostor_url: String,
    verifier_http: reqwest::Client,
    /// The root that issued the genuine certificate, trusted by the verifier.
    root: Vec<u8>,
    /// Certificate downloads the server has answered.
    fetches: Arc<AtomicUsize>,
}

fn sign(key: &aws_lc_rs::signature::RsaKeyPair, body: &[u8]) -> String {
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), body, &mut sig).unwrap();
    base64::engine::general_purpose::STANDARD.encode(sig)
}

impl Signer {
    fn sign(&self, body: &[u8]) -> String {
        sign(&self.key, body)
    }

    fn verifier(&self) -> Arc<Verifier> {
        let v = Verifier::new(self.verifier_http.clone(), vec![PC_HOST.to_string()], CERT_SUBJECT);
        Arc::new(v.with_roots(&[self.root.clone().into()]).unwrap())
    }
}

fn rsa_key() -> rcgen::KeyPair {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap()
}

/// Partner Center's certificate, issued by a test root and served over TLS as
/// `https://api.partnercenter.microsoft.com/…` (the verifier's client resolves
/// that name to this test server and trusts its TLS root), next to a self-signed
/// certificate with the same subject.
async fn partner_center() -> Signer {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(rcgen::DnType::CommonName, "Test Root CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    let root = rcgen::CertifiedIssuer::self_signed(ca, rsa_key()).unwrap();
    let rsa = rsa_key();
    let mut params = rcgen::CertificateParams::new(vec![CERT_SUBJECT.to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, CERT_SUBJECT);
    let der = params.signed_by(&rsa, &root).unwrap().der().to_vec();
    let impostor_rsa = rsa_key();
    let impostor_der = params.self_signed(&impostor_rsa).unwrap().der().to_vec();
    let tls = rcgen::generate_simple_self_signed(vec![PC_HOST.to_string()]).unwrap();
    let fetches = Arc::new(AtomicUsize::new(0));
    let serve = |der: Vec<u8>, n: Arc<AtomicUsize>| {
        axum::routing::get(move || {
            n.fetch_add(1, Ordering::SeqCst);
            let der = der.clone();
            async move { der }
        })
    };
    let app = axum::Router::new()
        .route("/webhooks/v1/cert/pcnotifications.cer", serve(der, fetches.clone()))
        .route("/webhooks/v1/cert/selfsigned.cer", serve(impostor_der, fetches.clone()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![tls.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(tls.signing_key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(tls),
                        hyper_util::service::TowerToHyperService::new(app),
                    )
                    .await;
            });
        }
    });
    let verifier_http = reqwest::Client::builder()
        .resolve(PC_HOST, addr)
        .tls_certs_merge([reqwest::Certificate::from_pem(tls.cert.pem().as_bytes()).unwrap()])
        .build()
        .unwrap();
    let key = |k: &rcgen::KeyPair| aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&k.serialize_der()).unwrap();
    Signer {
        key: key(&rsa),
        impostor: key(&impostor_rsa),
        cert_url: format!("https://{PC_HOST}:{}/webhooks/v1/cert/pcnotifications.cer", addr.port()),
        impostor_url: format!("https://{PC_HOST}:{}/webhooks/v1/cert/selfsigned.cer", addr.port()),
        verifier_http,
        root: root.der().to_vec(),
        fetches,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_activation_onboards_the_new_tenant_and_forgeries_are_refused() {
    let pc = partner_center().await;
    let az = Azurite::start_queue();
    let queue = az.queue_client();
    // A queue of its own: Azurite may be shared with other tests.
    let queue_name = caguard_e2e::unique_table("reconcile").to_ascii_lowercase();
    let _ = queue.create_queue(&queue_name).await;
    let (sim, estate) = sample_sim(0, false).await;

    // A new customer: its tenant exists, its GDAP relationship has just turned active.
    let mut tenant = estate.tenants.iter().find(|t| t.display_name == "Fabrikam Dental").unwrap().clone();
    tenant.id = "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6".into();
    tenant.display_name = "Newco Plumbing".into();
    sim.add_tenant(tenant.clone());
    let rel_id = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d-0a1b2c3d-4e5f";
    sim.upsert_relationship(json!({"id": rel_id, "displayName": "GDAP Newco", "status": "active",
        "customer": {"tenantId": tenant.id, "displayName": "Newco Plumbing"},
        "accessDetails": {"unifiedRoles": [{"roleDefinitionId": "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9"}]}}));

    let store: Arc<dyn Store> =
        Arc::new(FileStore::new(std::env::temp_dir().join(format!("caguard-pc-{}.json", std::process::id()))));
    let verifier = pc.verifier();
    let ready = Ready {
        config: caguard::demo::sample_config(&estate),
        client: caguard::demo::sample_client(&sim, &estate),
        alerter: Alerter::new(store.clone(), 60, None, None, None, None),
        store,
        queue: Some(queue.clone()),
        partner: verifier.clone(),
        settings: Settings {
            confirm_large_plans: false,
            max_dequeue_count: 5,
            cipp_connection_string: None,
            public_url: None,
            reconcile_queue: queue_name.clone(),
        },
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(Arc::new(Ok(ready)))).await });
    let http = reqwest::Client::new();
    let event = |name: &str| {
        json!({"EventName": name, "ResourceUri": format!("https://partner.microsoft.com/granularAdminRelationships/{rel_id}"),
               "ResourceName": "GranularAdminRelationship", "AuditUri": null, "ResourceChangeUtcDate": "2026-11-21T10:00:00+00:00"})
        .to_string()
    };
    let send = |body: String, sig_header: &'static str, signature: String, cert_url: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let value = if sig_header == "authorization" { format!("Signature {signature}") } else { signature };
            let r = http
                .post(format!("{base}/api/PartnerCenterEvents"))
                .header("content-type", "application/json")
                .header(sig_header, value)
                .header("x-ms-certificate-url", cert_url)
                .header("x-ms-signature-algorithm", "rsa-sha256")
                .body(body)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };

    // Forged: signed over another body.
    let body = event("granular-admin-relationship-activated");
    assert_eq!(send(body.clone(), "authorization", pc.sign(b"{}"), pc.cert_url.clone()).await, 401);
    // A certificate on a foreign host.
    let foreign = pc.cert_url.replace(PC_HOST, "pc-certs.example.net");
    assert_eq!(send(body.clone(), "authorization", pc.sign(body.as_bytes()), foreign).await, 401);
    // A self-signed certificate with the right subject, served from the allowed host.
    let forged = sign(&pc.impostor, body.as_bytes());
    assert_eq!(send(body.clone(), "authorization", forged, pc.impostor_url.clone()).await, 401);
    assert!(queue.receive(&queue_name).await.unwrap().is_empty(), "nothing queued for refused events");

    // 1,000 unsigned requests with unique certificate URLs: no fetch, no cache growth.
    let (fetched, cached) = (pc.fetches.load(Ordering::SeqCst), verifier.cached());
    for i in 0..1000 {
        let url = format!("{}?n={i}", pc.cert_url);
        let r = http
            .post(format!("{base}/api/PartnerCenterEvents"))
            .header("x-ms-certificate-url", url)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    assert_eq!(pc.fetches.load(Ordering::SeqCst), fetched, "no certificate fetched for unsigned requests");
    assert_eq!(verifier.cached(), cached, "no cache entry for unsigned requests");
    // Signed-looking garbage on unique query strings: one fetch per URL path at most.
    let garbage = base64::engine::general_purpose::STANDARD.encode([7u8; 256]);
    for i in 0..50 {
        let url = format!("{}?n={i}", pc.cert_url);
        assert_eq!(send(body.clone(), "authorization", garbage.clone(), url).await, 401);
    }
    assert!(verifier.cached() <= cached + 1, "the cache is keyed by path: {}", verifier.cached());
    assert!(pc.fetches.load(Ordering::SeqCst) <= fetched + 1);

    // Genuine, in the x-ms-signature form: the new tenant is queued...
    assert_eq!(send(body.clone(), "x-ms-signature", pc.sign(body.as_bytes()), pc.cert_url.clone()).await, 200);
    let queued = queue.receive(&queue_name).await.unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    // A replay of the same signed event is acknowledged and not processed again.
    assert_eq!(send(body.clone(), "x-ms-signature", pc.sign(body.as_bytes()), pc.cert_url.clone()).await, 200);
    assert!(queue.receive(&queue_name).await.unwrap().is_empty(), "the replay queued nothing");
    let msg: Value = serde_json::from_str(&queued[0]).unwrap();
    assert_eq!(msg["tenantId"], tenant.id.as_str());
    // ...and its reconcile puts the exclusion on its policies.
    let inv = json!({"Data": {"reconcile": msg}, "Metadata": {"DequeueCount": 1}});
    let r: Value = http.post(format!("{base}/ReconcileTenant")).json(&inv).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["ReturnValue"]["outcome"], "fixed", "{r}");
    let onboarded = sim.tenant(&tenant.id).unwrap();
    assert!(
        onboarded
            .policies
            .iter()
            .all(|p| p["conditions"]["users"]["excludeGuestsOrExternalUsers"]["externalTenants"]["members"][0]
                == estate.msp_tenant_id.as_str())
    );

    // Termination: no longer enforced, and recorded.
    let mut rel = json!({"id": rel_id, "status": "terminated", "customer": {"tenantId": tenant.id, "displayName": "Newco Plumbing"}, "accessDetails": {"unifiedRoles": []}});
    sim.upsert_relationship(rel.take());
    let body = event("granular-admin-relationship-terminated");
    assert_eq!(send(body.clone(), "authorization", pc.sign(body.as_bytes()), pc.cert_url.clone()).await, 200);
    let status: Value = http.get(format!("{base}/api/Status")).send().await.unwrap().json().await.unwrap();
    let newco = status["tenants"].as_array().unwrap().iter().find(|t| t["tenantId"] == tenant.id.as_str()).unwrap();
    assert_eq!(newco["outcome"], "skipped");
    assert!(newco["reason"].as_str().unwrap().contains("terminated"));
}

fn registration_calls(sim: &caguard_sim::SimHandle) -> Vec<String> {
    sim.journal()
        .iter()
        .filter(|e| e.path.ends_with("/registration"))
        .map(|e| format!("{} {}", e.method, e.status))
        .collect()
}

#[tokio::test]
async fn the_webhook_registration_is_created_then_updated_but_never_anyone_elses() {
    use caguard::partner::{Registered, register};
    let (sim, estate) = sample_sim(0, false).await;
    let client = partner_client(&sim, &estate);
    let ours = "https://caguard.example/api/PartnerCenterEvents";
    let Registered::Created(first) = register(&client, &estate.msp_tenant_id, ours, false).await.unwrap() else {
        panic!("created")
    };
    assert_eq!(first["WebhookUrl"], ours);
    assert!(first["WebhookEvents"].as_array().unwrap().iter().any(|e| e == "granular-admin-relationship-activated"));
    assert!(matches!(register(&client, &estate.msp_tenant_id, ours, false).await.unwrap(), Registered::Updated(_)));
    assert_eq!(registration_calls(&sim), vec!["GET 404", "POST 201", "GET 200", "PUT 200"], "our own: updated");

    // Someone else's (CIPP's): named, and left alone.
    let other = "https://caguard2.example/api/PartnerCenterEvents";
    let err = register(&client, &estate.msp_tenant_id, other, false).await.unwrap_err();
    assert!(err.contains(ours) && err.contains("--replace"), "{err}");
    assert_eq!(registration_calls(&sim).len(), 5, "only a GET: {:?}", registration_calls(&sim));
    let Registered::Replaced { previous, registration } =
        register(&client, &estate.msp_tenant_id, other, true).await.unwrap()
    else {
        panic!("replaced")
    };
    assert_eq!((previous.as_str(), registration["WebhookUrl"].as_str()), (ours, Some(other)));
    assert_eq!(registration_calls(&sim).last().unwrap(), "PUT 200");
}

/// `caguard partner-center register` against a registration that points at CIPP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_register_command_exits_non_zero_naming_cipps_url_and_writes_nothing() {
    let (sim, estate) = sample_sim(0, false).await;
    let client = partner_client(&sim, &estate);
    let cipp = "https://cipp.contosomsp.example/API/PublicWebhooks?CIPPID=partner";
    caguard::partner::register(&client, &estate.msp_tenant_id, cipp, false).await.unwrap();
    let config = std::env::temp_dir().join(format!("caguard-register-{}.toml", std::process::id()));
    std::fs::write(&config, caguard::demo::sample_config_toml(&estate)).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["partner-center", "register", "--url", "https://caguard.example/api/PartnerCenterEvents"];
        args.extend_from_slice(extra);
        args.extend(["--config", config.to_str().unwrap()]);
        caguard_e2e::caguard_on_sim(&sim, &estate, &args)
    };
    let before = registration_calls(&sim).len();
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(cipp), "names the URL it found: {stderr}");
    let calls = registration_calls(&sim);
    assert_eq!(&calls[before..], ["GET 200"], "no PUT or POST");

    let out = run(&["--replace"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("CIPP's onboarding") && stderr.contains(cipp), "warned: {stderr}");
    assert_eq!(registration_calls(&sim).last().unwrap(), "PUT 200");
}

/// A Partner Center client against the simulator, as the estate's app.
fn partner_client(sim: &caguard_sim::SimHandle, estate: &caguard_sim::Estate) -> caguard::graph::GraphClient {
    let creds = caguard_e2e::app_credentials(estate);
    caguard::partner::client(&sim.base_url, &sim.base_url, Arc::new(caguard::graph::StaticCredentials(creds))).unwrap()
}
