//! Verifying a Partner Center webhook as Microsoft describes: an RSA-SHA256
//! signature over the raw body (`Authorization: Signature <base64>` or
//! `x-ms-signature`), checked with the certificate at `X-MS-Certificate-Url`,
//! whose chain must lead to a trusted root and whose subject must be Partner
//! Center's dispatcher (<https://learn.microsoft.com/partner-center/developer/partner-center-webhooks>,
//! "Validate the certificate chain").
//!
//! Nothing is fetched for a request that fails its shape checks, certificates
//! come only from allowed hosts, each URL path is fetched once (a failure is
//! remembered too), and the cache is bounded.

use super::Event;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Hosts the signing certificate may come from: Partner Center's API host and the
/// storage host in Microsoft's documented sample. Override with `CAGUARD_PC_CERT_HOSTS`.
pub const DEFAULT_CERT_HOSTS: &[&str] = &["api.partnercenter.microsoft.com", "3psostorageacct.blob.core.windows.net"];
/// Hosts an issuing CA certificate may be fetched from (the certificate's
/// Authority Information Access), when the served file holds only the leaf.
pub const DEFAULT_ISSUER_HOSTS: &[&str] = &["www.microsoft.com", "cacerts.digicert.com"];
/// The subject common name of Partner Center's signing certificate.
pub const CERT_SUBJECT: &str = "pcnotifications-dispatch.microsoft.com";
/// Certificate URL paths remembered at once; past this the oldest is dropped.
pub const MAX_CACHED: usize = 32;
/// How long a failed certificate fetch is remembered before the path is tried again.
const FAILURE_TTL: Duration = Duration::from_secs(600);
/// Partner Center events are small; a larger body is refused before any fetch.
pub const MAX_BODY: usize = 64 * 1024;

/// Why a request was refused (answered 401).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(pub String);

fn rejected(why: impl Into<String>) -> Rejected {
    Rejected(why.into())
}

type Cached = (String, Instant, Result<Vec<u8>, String>);

/// Verifies signatures, fetching and caching Partner Center's certificates.
pub struct Verifier {
    http: reqwest::Client,
    hosts: Vec<String>,
    issuer_hosts: Vec<String>,
    subject: String,
    anchors: Vec<TrustAnchor<'static>>,
    /// URL path → the RSA public key (PKCS#1 DER), or why it was refused; oldest first.
    keys: Mutex<Vec<Cached>>,
    fetches: std::sync::atomic::AtomicUsize,
}

impl Verifier {
    /// A verifier trusting the Mozilla root programme's CAs (as browsers do).
    pub fn new(http: reqwest::Client, hosts: Vec<String>, subject: &str) -> Self {
        Verifier {
            http,
            hosts,
            issuer_hosts: DEFAULT_ISSUER_HOSTS.iter().map(|s| s.to_string()).collect(),
            subject: subject.to_string(),
            anchors: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            keys: Mutex::new(Vec::new()),
            fetches: Default::default(),
        }
    }

    /// Trusts exactly these root certificates instead (tests, private clouds).
    pub fn with_roots(mut self, roots: &[CertificateDer<'_>]) -> Result<Self, String> {
        self.anchors = roots
            .iter()
            .map(|r| webpki::anchor_from_trusted_cert(r).map(|a| a.to_owned()).map_err(|e| format!("trust root: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    /// Production settings (`CAGUARD_PC_CERT_HOSTS` may replace the hosts, comma-separated).
    pub fn from_env() -> Self {
        let hosts = std::env::var("CAGUARD_PC_CERT_HOSTS")
            .ok()
            .map(|h| h.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_else(|| DEFAULT_CERT_HOSTS.iter().map(|s| s.to_string()).collect());
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
        Self::new(http, hosts, CERT_SUBJECT)
    }

    /// Certificate fetches made so far (issuer certificates included).
    pub fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Certificate URL paths in the cache.
    pub fn cached(&self) -> usize {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The signature header in either form.
    pub fn signature(headers: &axum::http::HeaderMap) -> Option<String> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Signature "))
            .map(str::to_string);
        auth.or_else(|| headers.get("x-ms-signature").and_then(|v| v.to_str().ok()).map(str::to_string))
    }

    /// Checks `body` was signed by Partner Center.
    pub async fn verify(&self, headers: &axum::http::HeaderMap, body: &[u8]) -> Result<(), Rejected> {
        let (signature, cert_path) = shape(headers, body, &self.hosts)?;
        let key = self.key(&cert_path).await?;
        let public =
            aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256, key);
        public.verify(body, &signature).map_err(|_| rejected("the signature does not match the body"))
    }

    /// The key for a certificate path: from the cache, else fetched once and validated.
    async fn key(&self, path: &str) -> Result<Vec<u8>, Rejected> {
        if let Some(hit) = self.cached_key(path) {
            return hit.map_err(Rejected);
        }
        let outcome = self.fetch_and_validate(path).await;
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.retain(|(p, _, _)| p != path);
        if keys.len() >= MAX_CACHED {
            let _oldest = keys.remove(0);
        }
        keys.push((path.to_string(), Instant::now(), outcome.clone().map_err(|r| r.0)));
        outcome
    }

    fn cached_key(&self, path: &str) -> Option<Result<Vec<u8>, String>> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let (_, at, outcome) = keys.iter().find(|(p, _, _)| p == path)?;
        (outcome.is_ok() || at.elapsed() < FAILURE_TTL).then(|| outcome.clone())
    }

    async fn fetch_and_validate(&self, path: &str) -> Result<Vec<u8>, Rejected> {
        let mut chain = parse_certificates(&self.fetch(path).await?);
        if chain.is_empty() {
            return Err(rejected("the certificate cannot be parsed"));
        }
        let leaf = chain.remove(0);
        let (_, cert) =
            x509_parser::parse_x509_certificate(&leaf).map_err(|_| rejected("the certificate cannot be parsed"))?;
        let subject_ok = cert
            .subject()
            .iter_common_name()
            .any(|cn| cn.as_str().is_ok_and(|s| s.eq_ignore_ascii_case(&self.subject)));
        if !subject_ok {
            return Err(rejected(format!("the certificate is not issued to {}", self.subject)));
        }
        if chain.is_empty() {
            chain.extend(self.issuers(&leaf).await);
        }
        self.validate_chain(&leaf, &chain)?;
        Ok(cert.public_key().subject_public_key.data.to_vec())
    }

    /// Validates the leaf up to one of the trust anchors, through `intermediates`.
    fn validate_chain(&self, leaf: &[u8], intermediates: &[Vec<u8>]) -> Result<(), Rejected> {
        let leaf = CertificateDer::from(leaf);
        let end = webpki::EndEntityCert::try_from(&leaf).map_err(|e| rejected(format!("the certificate: {e}")))?;
        let inter: Vec<CertificateDer<'_>> = intermediates.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
        end.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            &inter,
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map(|_| ())
        .map_err(|e| rejected(format!("the certificate does not chain to a trusted root ({e:?})")))
    }

    /// Issuing CA certificates named by the leaf's Authority Information Access,
    /// from the allowed issuer hosts only, up to three.
    async fn issuers(&self, leaf: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut current = leaf.to_vec();
        for _ in 0..3 {
            let Some(url) = ca_issuer_url(&current) else { break };
            let host = url::Url::parse(&url).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase));
            if !host.is_some_and(|h| self.issuer_hosts.contains(&h)) {
                break;
            }
            let Ok(bytes) = self.fetch(&url).await else { break };
            let Some(next) = parse_certificates(&bytes).into_iter().next() else { break };
            out.push(next.clone());
            current = next;
        }
        out
    }

    async fn fetch(&self, url: &str) -> Result<Vec<u8>, Rejected> {
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| rejected(format!("certificate fetch failed: {}", e.without_url())))?;
        if !resp.status().is_success() {
            return Err(rejected(format!("certificate fetch answered HTTP {}", resp.status().as_u16())));
        }
        let bytes = resp.bytes().await.map_err(|e| rejected(format!("certificate fetch failed: {e}")))?;
        if bytes.len() > MAX_BODY {
            return Err(rejected("the certificate file is too large"));
        }
        Ok(bytes.to_vec())
    }
}

/// The shape checks, before anything is fetched: a base64 RSA-sized signature,
/// the documented algorithm, a body that is a Partner Center event, and a
/// certificate URL on an allowed host. Returns the signature and the certificate
/// URL without its query or fragment (the cache key, and what is fetched).
fn shape(headers: &axum::http::HeaderMap, body: &[u8], hosts: &[String]) -> Result<(Vec<u8>, String), Rejected> {
    use base64::Engine;
    let signature = Verifier::signature(headers)
        .ok_or_else(|| rejected("no signature (Authorization: Signature … or x-ms-signature)"))?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| rejected("the signature is not base64"))?;
    if !(256..=1024).contains(&signature.len()) {
        return Err(rejected("the signature is not an RSA-SHA256 signature"));
    }
    let algorithm = headers.get("x-ms-signature-algorithm").and_then(|v| v.to_str().ok());
    if algorithm.is_some_and(|a| !a.eq_ignore_ascii_case("rsa-sha256")) {
        return Err(rejected("x-ms-signature-algorithm is not rsa-sha256"));
    }
    if body.len() > MAX_BODY || serde_json::from_slice::<Event>(body).is_err() {
        return Err(rejected("the body is not a Partner Center event"));
    }
    let cert_url = headers
        .get("x-ms-certificate-url")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| rejected("no X-MS-Certificate-Url"))?;
    let mut url = url::Url::parse(cert_url).map_err(|_| rejected("X-MS-Certificate-Url is not a URL"))?;
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if url.scheme() != "https" || !hosts.contains(&host) {
        let shown: String = host.chars().take(80).collect();
        return Err(rejected(format!("certificate host '{shown}' is not Partner Center's")));
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok((signature, url.to_string()))
}

/// The certificates in a `.cer` file: DER, or one or more PEM blocks.
fn parse_certificates(bytes: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine;
    let text = String::from_utf8_lossy(bytes);
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return if bytes.is_empty() { vec![] } else { vec![bytes.to_vec()] };
    }
    text.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .filter_map(|block| {
            let b64: String = block.split("-----END CERTIFICATE-----").next()?.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD.decode(b64).ok()
        })
        .collect()
}

/// The `caIssuers` URL of a certificate's Authority Information Access, if any.
fn ca_issuer_url(der: &[u8]) -> Option<String> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    cert.extensions().iter().find_map(|ext| match ext.parsed_extension() {
        ParsedExtension::AuthorityInfoAccess(aia) => aia.accessdescs.iter().find_map(|d| {
            let is_issuer = d.access_method == x509_parser::oid_registry::OID_PKIX_ACCESS_DESCRIPTOR_CA_ISSUERS;
            match &d.access_location {
                GeneralName::URI(u) if is_issuer => Some(u.to_string()),
                _ => None,
            }
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_bundles_yield_every_certificate_and_der_is_passed_through() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nAwQF\n-----END CERTIFICATE-----\n";
        assert_eq!(parse_certificates(pem.as_bytes()), vec![vec![0, 1, 2], vec![3, 4, 5]]);
        assert_eq!(parse_certificates(&[0x30, 0x82]), vec![vec![0x30, 0x82]]);
        assert!(parse_certificates(b"").is_empty());
    }
}
