//! The sweep benchmark. Both the simulator and caguard run as their own
//! processes; figures come from caguard's /proc entries and the simulator's journal.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 1000)]
    tenants: usize,
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Share of customers with ~3 policies to fix, e.g. `10%` or `0`.
    #[arg(long, default_value = "0%")]
    drift: String,
    /// Tenants worked on at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Also time a watch tick over the estate.
    #[arg(long)]
    watch: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Graph's replication lag in the simulator: reads lag writes by this much.
    #[arg(long, default_value_t = 0)]
    replication_lag_ms: u64,
}

impl Args {
    /// One scenario of the scale suite.
    pub fn scenario(tenants: usize, drift: &str, watch: bool) -> Args {
        Args {
            tenants,
            latency_ms: 50,
            drift: drift.into(),
            concurrency: 256,
            watch,
            seed: 1,
            replication_lag_ms: 3000,
        }
    }
}

const MSP: &str = "6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7d";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn build() {
    let ok = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "caguard", "-p", "caguard-sim"])
        .current_dir(root())
        .status()
        .expect("cargo runs");
    assert!(ok.success(), "release build failed");
}

struct Sim {
    child: std::process::Child,
    base: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim(args: &Args, drift: f64) -> Sim {
    let mut child = Command::new(root().join("target/release/caguard-sim"))
        .args([
            "--generate",
            &args.tenants.to_string(),
            "--seed",
            &args.seed.to_string(),
            "--drift",
            &drift.to_string(),
        ])
        .args(["--latency-ms", &args.latency_ms.to_string()])
        .args(["--replication-lag-ms", &args.replication_lag_ms.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("caguard-sim starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("sim prints its URL");
    Sim { child, base: line.trim().to_string() }
}

fn config_file() -> PathBuf {
    let path = std::env::temp_dir().join(format!("caguard-bench-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        format!(
            "msp_tenant_id = \"{MSP}\"\n[sites]\n\"MSP Office\" = [\"203.0.113.10/32\"]\n[accounts]\ntechnician_groups = [\"a1b2c3d4-0000-4000-8000-00000000beef\"]\nbreak_glass = [\"bg1@msp.example\", \"bg2@msp.example\"]\nservice_account = \"cipp-svc@msp.example\"\n[rollout]\n# Read the sign-in logs on every run, so each sweep shows their cost.\nread_every_minutes = 0\n"
        ),
    )
    .expect("config written");
    path
}

/// What one caguard process cost.
struct Run {
    wall: Duration,
    peak_rss_mib: f64,
    cpu_s: f64,
    exit: i32,
    stdout: String,
}

fn proc_stat(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit(')').next()?;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = (f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / ticks;
    Some((hwm / 1024.0, cpu))
}

fn caguard(sim: &Sim, config: &Path, args: &[&str]) -> Run {
    let started = Instant::now();
    let mut child = Command::new(root().join("target/release/caguard"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("CAGUARD_GRAPH_URL", &sim.base)
        .env("CAGUARD_LOGIN_URL", &sim.base)
        .env("CAGUARD_CLIENT_ID", caguard_sim::generate::APP_ID)
        .env("CAGUARD_CLIENT_SECRET", caguard_sim::generate::APP_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("caguard starts");
    let pid = child.id();
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).ok();
        s
    });
    let (mut peak, mut cpu) = (0.0f64, 0.0f64);
    let status = loop {
        if let Some((rss, c)) = proc_stat(pid) {
            peak = peak.max(rss);
            cpu = cpu.max(c);
        }
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        wall: started.elapsed(),
        peak_rss_mib: peak,
        cpu_s: cpu,
        exit: status.code().unwrap_or(-1),
        stdout: reader.join().unwrap_or_default(),
    }
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().expect("client")
}

fn journal(sim: &Sim) -> Vec<Value> {
    http().get(format!("{}/_sim/journal", sim.base)).send().expect("journal").json().expect("journal json")
}

fn clear_journal(sim: &Sim) {
    http().delete(format!("{}/_sim/journal", sim.base)).send().expect("clear journal");
}

/// Requests, 429s, pacing and the physical floor, from the journal.
fn traffic(journal: &[Value], tenants: usize, latency_ms: u64) -> Value {
    let http_requests: Vec<&Value> = journal.iter().filter(|e| e["kind"] != "token" && e["inBatch"] != true).collect();
    let writes = http_requests
        .iter()
        .filter(|e| e["kind"] == "graph" && ["POST", "PATCH", "DELETE"].contains(&e["method"].as_str().unwrap_or("")))
        .filter(|e| !e["path"].as_str().is_some_and(|p| p.ends_with("conditionalAccess/evaluate")))
        .count();
    let reads = http_requests.len() - writes;
    let throttled = journal.iter().filter(|e| e["status"] == 429).count();
    let mut ca: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for e in journal.iter().filter(|e| e["ca"] == true && e["kind"] == "graph") {
        ca.entry(e["tenant"].as_str().unwrap_or("").to_string()).or_default().push(e["atMs"].as_f64().unwrap_or(0.0));
    }
    let mut violations = 0;
    for times in ca.values_mut() {
        times.sort_by(f64::total_cmp);
        violations += times.windows(2).filter(|w| w[1] - w[0] < 1000.0).count();
    }
    // The floor counts the CA requests correctness needs, at 1/s per tenant: the
    // lists observe makes, and per write a fresh read before it (PATCH), the write,
    // and one read-back after it. Retried read-backs while Graph replicates are not
    // needed requests, so they do not raise the floor.
    let mut needed: BTreeMap<String, f64> = BTreeMap::new();
    for e in journal.iter().filter(|e| e["ca"] == true && e["kind"] == "graph") {
        let path = e["path"].as_str().unwrap_or("");
        let list = path.ends_with("/policies") || path.ends_with("/namedLocations");
        let n = match e["method"].as_str().unwrap_or("") {
            "GET" if list => 1.0,
            "PATCH" => 3.0,
            "POST" if e["status"] != 400 => 2.0,
            _ => 0.0,
        };
        *needed.entry(e["tenant"].as_str().unwrap_or("").to_string()).or_default() += n;
    }
    let slowest_ms = needed.values().map(|n| (n - 1.0).max(0.0) * 1000.0 + n * latency_ms as f64).fold(0.0, f64::max);
    let discovery_pages = journal
        .iter()
        .filter(|e| e["path"].as_str().is_some_and(|p| p.contains("delegatedAdminRelationships")))
        .count() as f64;
    // Discovery (sequential pages), one token, then the busiest tenant's needed CA requests at 1/s.
    let floor_ms = discovery_pages * latency_ms as f64 + latency_ms as f64 + slowest_ms;
    let per = |n: usize| n as f64 / (tenants + 1) as f64;
    let mut by_tenant: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &http_requests {
        *by_tenant.entry(e["tenant"].as_str().unwrap_or("")).or_insert(0) += 1;
    }
    let msp_requests = by_tenant.get(MSP).copied().unwrap_or(0);
    let max_customer = by_tenant.iter().filter(|(t, _)| **t != MSP).map(|(_, n)| *n).max().unwrap_or(0);
    let sign_ins: Vec<&&Value> =
        http_requests.iter().filter(|e| e["path"].as_str().is_some_and(|p| p.ends_with("auditLogs/signIns"))).collect();
    json!({
        "httpRequests": http_requests.len(),
        // The MSP tenant's sign-in log reads (rollout evidence, service accounts' MFA): 2 per read.
        "signInRequests": sign_ins.len(),
        "signInThrottled429": sign_ins.iter().filter(|e| e["status"] == 429).count(),
        "readsPerTenant": per(reads),
        "writesPerTenant": per(writes),
        "requestsPerTenant": per(http_requests.len()),
        "mspTenantRequests": msp_requests,
        "maxRequestsOfOneCustomer": max_customer,
        "tokenRequests": journal.iter().filter(|e| e["kind"] == "token").count(),
        "throttled429": throttled,
        "pacingViolations": violations,
        "floorMs": floor_ms,
    })
}

fn drift_fraction(s: &str) -> f64 {
    let t = s.trim();
    match t.strip_suffix('%') {
        Some(p) => p.parse::<f64>().expect("--drift like 10%") / 100.0,
        None => t.parse().expect("--drift like 10% or 0.1"),
    }
}

pub fn run(args: &Args) -> Value {
    build();
    let drift = drift_fraction(&args.drift);
    let sim = start_sim(args, drift);
    let config = config_file();
    let conc = args.concurrency.to_string();
    // The runs' own store (owned objects, the sign-in cursor), not ./.caguard.
    let run_store = std::env::temp_dir().join(format!("caguard-bench-sweep-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&run_store);
    let run_store = run_store.display().to_string();

    // Warm-up: the MSP tenant's own lockdown, so the measured sweep is about customers.
    let warm = caguard(&sim, &config, &["apply", "--yes", "--json", "--tenant", MSP, "--store", &run_store]);
    assert_eq!(warm.exit, 0, "warm-up apply failed: {}", warm.stdout);
    // The CA budget is shared by every app and process: let the warm-up's last second pass.
    std::thread::sleep(Duration::from_millis(1100));
    clear_journal(&sim);

    let sweep = caguard(&sim, &config, &["apply", "--json", "--concurrency", &conc, "--store", &run_store]);
    let j = journal(&sim);
    let report: Value = serde_json::from_str(&sweep.stdout).unwrap_or(Value::Null);
    let outcomes: BTreeMap<String, usize> = report["tenants"]
        .as_array()
        .map(|ts| {
            let mut m = BTreeMap::new();
            for t in ts {
                *m.entry(t["result"]["outcome"].as_str().unwrap_or("none").to_string()).or_insert(0) += 1;
            }
            m
        })
        .unwrap_or_default();
    let traffic_sweep = traffic(&j, args.tenants, args.latency_ms);

    std::thread::sleep(Duration::from_millis(1100));
    clear_journal(&sim);
    let verify = caguard(&sim, &config, &["plan", "--json", "--concurrency", &conc, "--store", &run_store]);
    let after: Value = serde_json::from_str(&verify.stdout).unwrap_or(Value::Null);
    let left = after["tenants"].as_array().map_or(usize::MAX, |ts| {
        ts.iter().filter(|t| t["plan"]["actions"].as_array().is_some_and(|a| !a.is_empty())).count()
    });
    let traffic_verify = traffic(&journal(&sim), args.tenants, args.latency_ms);

    let mut out = json!({
        "benchmark": "sweep",
        "command": format!("cargo run --release -p bench -- sweep --tenants {} --latency-ms {} --replication-lag-ms {} --drift {} --concurrency {}{}", args.tenants, args.latency_ms, args.replication_lag_ms, args.drift, args.concurrency, if args.watch { " --watch" } else { "" }),
        "tenants": args.tenants,
        "latencyMs": args.latency_ms,
        "replicationLagMs": args.replication_lag_ms,
        "drift": drift,
        "concurrency": args.concurrency,
        "sweep": {
            "wallMs": sweep.wall.as_secs_f64() * 1000.0,
            "exit": sweep.exit,
            "outcomes": outcomes,
            "peakRssMiB": sweep.peak_rss_mib,
            "cpuSeconds": sweep.cpu_s,
            "traffic": traffic_sweep.clone(),
            "wallToFloor": sweep.wall.as_secs_f64() * 1000.0 / traffic_sweep["floorMs"].as_f64().unwrap_or(1.0),
        },
        "verify": {
            "tenantsWithActionsLeft": left,
            "wallMs": verify.wall.as_secs_f64() * 1000.0,
            "peakRssMiB": verify.peak_rss_mib,
            "traffic": traffic_verify,
        },
    });
    if args.watch {
        let store = std::env::temp_dir().join(format!("caguard-bench-watch-{}.json", std::process::id()));
        let _ = std::fs::remove_file(&store);
        let store_arg = store.display().to_string();
        let watch = |extra: &[&str]| {
            std::thread::sleep(Duration::from_millis(1100));
            clear_journal(&sim);
            let mut a = vec!["watch", "--json", "--concurrency", &conc, "--store", &store_arg];
            a.extend_from_slice(extra);
            let run = caguard(&sim, &config, &a);
            let report: Value = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
            let entries = journal(&sim);
            let mut traffic = traffic(&entries, args.tenants, args.latency_ms);
            // The GDAP requests the tick made (the change check on a quiet tick).
            traffic["gdapRequests"] = json!(
                entries
                    .iter()
                    .filter(|e| e["kind"] == "graph"
                        && e["path"].as_str().is_some_and(|p| p.contains("delegatedAdminRelationships")))
                    .count()
            );
            (run, report, traffic)
        };
        // The first tick discovers the tenants and takes every fingerprint.
        let (baseline, _, _) = watch(&[]);
        // A quiet tick on the remembered tenant list: what WatchTimer does each minute.
        let (tick, tick_report, tick_traffic) = watch(&[]);
        // A quiet tick that lists GDAP relationships again: one tick in every `rediscover_minutes`.
        let (re, re_report, re_traffic) = watch(&["--rediscover"]);
        let every = caguard::config::DEFAULT_REDISCOVER_MINUTES as f64;
        let per_tick = |t: &Value| t["httpRequests"].as_f64().unwrap_or(0.0);
        let amortized = ((every - 1.0) * per_tick(&tick_traffic) + per_tick(&re_traffic)) / every;
        out["watch"] = json!({
            "baselineWallMs": baseline.wall.as_secs_f64() * 1000.0,
            "tickWallMs": tick.wall.as_secs_f64() * 1000.0,
            "tickPeakRssMiB": tick.peak_rss_mib,
            "tickCpuSeconds": tick.cpu_s,
            "rediscovered": tick_report["tick"]["rediscovered"],
            "changed": tick_report["tick"]["changed"].as_array().map_or(0, Vec::len),
            "unchanged": tick_report["tick"]["unchanged"],
            "traffic": tick_traffic,
            "rediscoverTick": {
                "wallMs": re.wall.as_secs_f64() * 1000.0,
                "rediscovered": re_report["tick"]["rediscovered"],
                "unchanged": re_report["tick"]["unchanged"],
                "traffic": re_traffic,
            },
            "rediscoverEveryTicks": every,
            "amortizedRequestsPerTenant": amortized / (args.tenants + 1) as f64,
        });
    }
    let _ = std::fs::remove_file(&config);
    out
}
