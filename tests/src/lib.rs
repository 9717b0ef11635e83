//! Helpers shared by caguard's end-to-end tests.

pub mod functions_app;

use caguard::graph::{Credentials, GraphClient, GraphConfig, RetryPolicy, StaticCredentials};
use caguard_sim::{Estate, JournalEntry, SimHandle, SimOptions, sample_estate};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The repository's own copy of the fixtures (`tests/fixtures/`, see its MANIFEST.md files).
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
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

/// A simulator without the CA rate limit, and a client that does not pace for it:
/// for tests of what caguard writes, not of how politely (pacing has its own tests,
/// against the limit).
pub async fn unpaced_sim(estate: &Estate) -> (SimHandle, GraphClient) {
    caguard::demo::unpaced_sim(estate).await.expect("simulator starts")
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

/// An Azurite Table service for a test: the one `.ci/run` started
/// (`CAGUARD_AZURITE_TABLE`), or a private in-memory instance. Azurite is
/// installed from npm into `.tools/` the first time it is needed.
pub struct Azurite {
    child: Option<std::process::Child>,
    /// `http://127.0.0.1:PORT/devstoreaccount1`
    pub endpoint: String,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The pinned Azurite version.
pub const AZURITE: &str = "azurite@3.37.0";

fn azurite_bin() -> PathBuf {
    let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools");
    let bin = tools.join("node_modules/.bin/azurite-table");
    if bin.exists() {
        return bin;
    }
    std::fs::create_dir_all(&tools).expect(".tools");
    let lock = std::fs::File::create(tools.join("install.lock")).expect("lock file");
    lock.lock().expect("install lock");
    if !bin.exists() {
        let ok = std::process::Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&tools)
            .arg(AZURITE)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "could not install Azurite: run `npm install --prefix .tools {AZURITE}` (needs Node.js and npm)");
    }
    bin
}

impl Azurite {
    /// The Table service: `CAGUARD_AZURITE_TABLE` from `.ci/run`, or a private in-memory instance.
    pub fn start() -> Azurite {
        Self::service("CAGUARD_AZURITE_TABLE", "azurite-table", "table")
    }

    /// The Queue service: `CAGUARD_AZURITE_QUEUE` from `.ci/run`, or a private in-memory instance.
    pub fn start_queue() -> Azurite {
        Self::service("CAGUARD_AZURITE_QUEUE", "azurite-queue", "queue")
    }

    fn service(env: &str, bin: &str, kind: &str) -> Azurite {
        if let Ok(endpoint) = std::env::var(env) {
            return Azurite { child: None, endpoint };
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(azurite_bin().with_file_name(bin))
            .args([format!("--{kind}Host"), "127.0.0.1".into(), format!("--{kind}Port"), port.to_string()])
            .args(["--disableTelemetry", "--inMemoryPersistence"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("azurite starts");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "Azurite {kind} did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Azurite { child: Some(child), endpoint: format!("http://127.0.0.1:{port}/devstoreaccount1") }
    }

    /// A queue client with Azurite's well-known account key (on a queue endpoint).
    pub fn queue_client(&self) -> caguard::storage::QueueClient {
        caguard::storage::QueueClient::from_connection_string(&format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};QueueEndpoint={};",
            caguard::storage::DEV_KEY,
            self.endpoint
        ))
        .unwrap()
    }

    /// A client with Azurite's well-known account key.
    pub fn client(&self) -> caguard::storage::TableClient {
        caguard::storage::TableClient::from_connection_string(&self.connection_string()).unwrap()
    }

    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};TableEndpoint={};",
            caguard::storage::DEV_KEY,
            self.endpoint
        )
    }
}

/// A table name no other test uses.
pub fn unique_table(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!("{prefix}{}x{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
}

/// CIPP's five tables under names no other test uses (not created).
pub fn unique_tables() -> caguard::cipp::Tables {
    caguard::cipp::Tables {
        api_clients: unique_table("ApiClients"),
        access_ip_ranges: unique_table("AccessIPRanges"),
        logs: unique_table("CippLogs"),
        custom_roles: unique_table("CustomRoles"),
        tenants: unique_table("Tenants"),
    }
}

/// The `caguard` binary of this workspace (built if a test run did not build it yet),
/// for end-to-end tests that drive the CLI on the same store as the Functions app.
pub fn caguard_binary() -> PathBuf {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target");
    let bin = target.join("debug").join(if cfg!(windows) { "caguard.exe" } else { "caguard" });
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = std::process::Command::new(cargo)
            .args(["build", "-q", "-p", "caguard", "--bin", "caguard"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "could not build the caguard binary");
    }
    bin
}

/// A file store of its own for one test: `(store, its directory)`, emptied first.
pub fn temp_store(name: &str) -> (Arc<dyn caguard::store::Store>, PathBuf) {
    let dir = std::env::temp_dir().join(format!("caguard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    (Arc::new(caguard::store::FileStore::new(dir.join("store.json"))), dir)
}

/// A confirmed apply of the MSP tenant alone, recording in `ledger`.
pub fn apply_msp_only(msp: &str, ledger: &Arc<dyn caguard::store::Store>) -> caguard::sweep::SweepOptions {
    caguard::sweep::SweepOptions {
        apply: true,
        confirmed: true,
        only: vec![msp.to_string()],
        ledger: caguard::sweep::Ledger(Some(ledger.clone())),
        ..Default::default()
    }
}

/// The `caguard` binary with `args`, pointed at the simulator with the estate's
/// app credentials (client secret, no refresh token).
pub fn caguard_on_sim(sim: &SimHandle, estate: &Estate, args: &[&str]) -> std::process::Output {
    std::process::Command::new(caguard_binary())
        .args(args)
        .env("CAGUARD_GRAPH_URL", &sim.base_url)
        .env("CAGUARD_PARTNER_CENTER_URL", &sim.base_url)
        .env("CAGUARD_LOGIN_URL", &sim.base_url)
        .env("CAGUARD_CLIENT_ID", &estate.apps[0].client_id)
        .env("CAGUARD_CLIENT_SECRET", &estate.apps[0].client_secret)
        .env_remove("CAGUARD_REFRESH_TOKEN")
        .output()
        .expect("caguard runs")
}
