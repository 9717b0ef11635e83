//! Helpers shared by caguard's end-to-end tests.

use caguard::graph::{Credentials, GraphClient, GraphConfig, RetryPolicy, StaticCredentials};
use caguard_sim::{Estate, JournalEntry, SimHandle, SimOptions, sample_estate};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `../shared/fixtures` beside the repository.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

/// Starts the simulator on the sample estate.
pub async fn sample_sim(latency_ms: u64, throttle: bool) -> (SimHandle, Estate) {
    let estate = sample_estate();
    let mut opts = SimOptions::default();
    opts.faults.latency_ms = latency_ms;
    opts.faults.ca_throttling = throttle;
    let sim = caguard_sim::start(estate.clone(), opts).await.expect("simulator starts");
    (sim, estate)
}

/// The app registration of an estate as client-credentials.
pub fn app_credentials(estate: &Estate) -> Credentials {
    let app = &estate.apps[0];
    Credentials::ClientSecret { client_id: app.client_id.clone(), client_secret: app.client_secret.clone() }
}

/// A client against the simulator with a given first backoff.
pub fn client(sim: &SimHandle, creds: Credentials, retry_base: Duration) -> GraphClient {
    let mut cfg = GraphConfig::for_base(&sim.base_url);
    cfg.retry = RetryPolicy { max_retries: 8, base: retry_base, cap: Duration::from_secs(4) };
    GraphClient::new(cfg, Arc::new(StaticCredentials(creds))).expect("client builds")
}

/// Every pair of one tenant's consecutive CA requests that arrived less than
/// 1 s apart: a non-empty answer means some 1-second window held two requests.
pub fn pacing_violations(journal: &[JournalEntry]) -> Vec<String> {
    let mut by_tenant: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for e in journal.iter().filter(|e| e.ca && e.kind == "graph") {
        by_tenant.entry(e.tenant.as_deref().unwrap_or("?")).or_default().push(e.at_ms);
    }
    let mut out = Vec::new();
    for (tenant, mut times) in by_tenant {
        times.sort_by(f64::total_cmp);
        for w in times.windows(2) {
            if w[1] - w[0] < 1000.0 {
                out.push(format!("{tenant}: CA requests at {:.1} ms and {:.1} ms", w[0], w[1]));
            }
        }
    }
    out
}

/// The number of CA requests the journal holds per tenant.
pub fn ca_requests_per_tenant(journal: &[JournalEntry]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in journal.iter().filter(|e| e.ca && e.kind == "graph") {
        *out.entry(e.tenant.clone().unwrap_or_default()).or_default() += 1;
    }
    out
}
