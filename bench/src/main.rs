//! caguard's benchmarks. Each prints its figures and writes them to `bench/results/`.
//!
//! - `cargo run --release -p bench -- startup` — the custom handler's start-to-ready
//!   time and idle memory, as the Functions host sees them.
//! - `cargo run --release -p bench -- sweep --tenants 5000 --latency-ms 50 --drift 10%` —
//!   a full sweep (discovery → plan → apply → verify) and a watch tick over a generated
//!   estate, the simulator in its own process with latency and CA throttling on.
//! - `cargo run --release -p bench -- latency --interval 60 --samples 8` — drift-to-restore
//!   through the watch loop, and push-to-restore for a GDAP activation.

mod latency;
mod startup;
mod sweep;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "caguard benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the handler N times: time to the first answer on GET /, and RSS once idle.
    Startup {
        #[arg(long, default_value_t = 50)]
        runs: usize,
    },
    /// A full sweep of a generated estate against the simulator in its own process.
    Sweep(sweep::Args),
    /// Drift-to-restore latency through the watch loop, and push-to-restore for GDAP activation.
    Latency(latency::Args),
    /// The scale targets in one run: 1,000 clean; 1,000 with 10% drift; 5,000 clean with a watch tick.
    Scale,
}

fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    serde_json::json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "memoryGiB": mem_kb / 1024 / 1024,
    })
}

/// Writes `bench/results/<name>-<timestamp>.json` and returns its path.
fn save(name: &str, mut figures: serde_json::Value) -> std::path::PathBuf {
    figures["machine"] = machine();
    figures["at"] = serde_json::json!(chrono::Utc::now().to_rfc3339());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&dir).expect("results folder");
    let path = dir.join(format!("{name}-{}.json", chrono::Utc::now().format("%Y%m%dT%H%M%SZ")));
    std::fs::write(&path, serde_json::to_string_pretty(&figures).expect("json")).expect("write results");
    path
}

fn main() {
    let cli = Cli::parse();
    let (name, figures) = match cli.command {
        Command::Startup { runs } => ("startup", startup::run(runs)),
        Command::Sweep(args) => ("sweep", sweep::run(&args)),
        Command::Latency(args) => ("latency", latency::run(&args)),
        Command::Scale => ("scale", scale()),
    };
    println!("{}", serde_json::to_string_pretty(&figures).expect("json"));
    println!("written to {}", save(name, figures).display());
}

/// The three scale scenarios, each against its own simulator, with a verdict per target.
fn scale() -> serde_json::Value {
    let clean = sweep::run(&sweep::Args::scenario(1000, "0%", false));
    let drift = sweep::run(&sweep::Args::scenario(1000, "10%", false));
    let big = sweep::run(&sweep::Args::scenario(5000, "0%", true));
    let f = |v: &serde_json::Value, p: &str| v.pointer(p).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
    let targets = serde_json::json!([
        {"target": "1,000 clean: ≤ 1.1 requests/tenant", "figure": f(&clean, "/sweep/traffic/requestsPerTenant"), "met": f(&clean, "/sweep/traffic/requestsPerTenant") <= 1.1},
        {"target": "1,000 clean: wall ≤ 5 s", "figure": f(&clean, "/sweep/wallMs") / 1000.0, "met": f(&clean, "/sweep/wallMs") <= 5000.0},
        {"target": "1,000 10% drifted: wall ≤ 2× floor", "figure": f(&drift, "/sweep/wallToFloor"), "met": f(&drift, "/sweep/wallToFloor") <= 2.0},
        {"target": "1,000 10% drifted: zero 429s", "figure": f(&drift, "/sweep/traffic/throttled429"), "met": f(&drift, "/sweep/traffic/throttled429") == 0.0},
        {"target": "5,000 clean: wall ≤ 15 s", "figure": f(&big, "/sweep/wallMs") / 1000.0, "met": f(&big, "/sweep/wallMs") <= 15000.0},
        {"target": "5,000 clean: peak RSS ≤ 150 MB", "figure": f(&big, "/sweep/peakRssMiB"), "met": f(&big, "/sweep/peakRssMiB") * 1.048576 <= 150.0},
        {"target": "watch tick, 5,000: ≤ 1 request/tenant", "figure": f(&big, "/watch/traffic/requestsPerTenant"), "met": f(&big, "/watch/traffic/requestsPerTenant") <= 1.0},
        {"target": "watch tick, 5,000: ≤ 1 request for any customer tenant", "figure": f(&big, "/watch/traffic/maxRequestsOfOneCustomer"), "met": f(&big, "/watch/traffic/maxRequestsOfOneCustomer") <= 1.0},
        {"target": "watch, 5,000: requests/tenant averaged over a rediscovery interval", "figure": f(&big, "/watch/amortizedRequestsPerTenant"), "met": f(&big, "/watch/amortizedRequestsPerTenant") <= 1.0},
        {"target": "watch tick, 5,000: inside 60 s", "figure": f(&big, "/watch/tickWallMs") / 1000.0, "met": f(&big, "/watch/tickWallMs") <= 60000.0},
        {"target": "watch tick that rediscovers, 5,000: inside 60 s", "figure": f(&big, "/watch/rediscoverTick/wallMs") / 1000.0, "met": f(&big, "/watch/rediscoverTick/wallMs") <= 60000.0},
    ]);
    serde_json::json!({"benchmark": "scale", "command": "cargo run --release -p bench -- scale", "targets": targets,
                       "runs": {"clean1000": clean, "drift1000": drift, "clean5000": big}})
}

/// Percentile (0..=100) of sorted samples.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
