//! `caguard-sim`: runs the simulated estate as its own process.
//!
//! Usage: `caguard-sim [--estate FILE | --generate N [--seed S] [--drift FRACTION]] [--port N] [--latency-ms N]
//! [--replication-lag-ms N] [--no-throttle] [--page-size N]`. An unknown flag is an error.
//! Without `--estate` or `--generate` it serves the embedded sample estate.
//! It prints its base URL on the first line once it is listening.

use caguard_sim::{Estate, SimOptions, sample_estate, start};
use std::net::SocketAddr;

/// Flags that take a value, and flags that stand alone.
const VALUED: &[&str] =
    &["--estate", "--generate", "--seed", "--drift", "--port", "--latency-ms", "--replication-lag-ms", "--page-size"];
const SWITCHES: &[&str] = &["--no-throttle"];
const USAGE: &str = "usage: caguard-sim [--estate FILE | --generate N [--seed S] [--drift FRACTION]] [--port N] \
[--latency-ms N] [--replication-lag-ms N] [--no-throttle] [--page-size N]";

/// Refuses anything that is not a known flag (with its value where it takes one).
fn check_args(args: &[String]) -> Result<(), String> {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if VALUED.contains(&a) {
            if args.get(i + 1).is_none() {
                return Err(format!("{a} needs a value"));
            }
            i += 2;
        } else if SWITCHES.contains(&a) {
            i += 1;
        } else {
            return Err(format!("unknown argument '{a}'\n{USAGE}"));
        }
    }
    Ok(())
}

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn parse<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    arg_value(args, name).map(|v| v.parse().unwrap_or_else(|_| fail(&format!("{name}: '{v}' is not a valid value"))))
}

fn fail(msg: &str) -> ! {
    eprintln!("caguard-sim: {msg}");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = check_args(&args) {
        fail(&e);
    }
    let estate: Estate = match arg_value(&args, "--estate") {
        Some(path) => {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
            serde_json::from_str(&text).unwrap_or_else(|e| fail(&format!("{path}: not an estate file: {e}")))
        }
        None => match parse::<usize>(&args, "--generate") {
            Some(n) => caguard_sim::generate::generate(
                n,
                parse(&args, "--seed").unwrap_or(1),
                parse(&args, "--drift").unwrap_or(0.0),
            ),
            None => sample_estate(),
        },
    };
    let mut opts = SimOptions::default();
    if let Some(port) = parse::<u16>(&args, "--port") {
        opts.bind = SocketAddr::from(([127, 0, 0, 1], port));
    }
    if let Some(ms) = parse(&args, "--latency-ms") {
        opts.faults.latency_ms = ms;
    }
    if let Some(ms) = parse(&args, "--replication-lag-ms") {
        opts.faults.replication_lag_ms = ms;
    }
    if let Some(n) = parse(&args, "--page-size") {
        opts.page_size = n;
    }
    if args.iter().any(|a| a == "--no-throttle") {
        opts.faults.ca_throttling = false;
    }
    let sim = start(estate, opts).await.unwrap_or_else(|e| fail(&e.to_string()));
    println!("{}", sim.base_url);
    let _ = tokio::signal::ctrl_c().await;
}
