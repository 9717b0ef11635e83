//! Start-to-ready and idle RSS of `caguard serve`, the way the Functions host
//! starts it: FUNCTIONS_CUSTOMHANDLER_PORT set, then `GET /` polled until it answers.

use crate::pct;
use serde_json::json;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn binary() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let ok = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "caguard"])
        .current_dir(&root)
        .status()
        .expect("cargo runs");
    assert!(ok.success(), "building caguard failed");
    root.join("target/release/caguard")
}

fn ready(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && &buf == b"HTTP/1.1 200"
}

fn rss_kib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

pub fn run(runs: usize) -> serde_json::Value {
    let bin = binary();
    let estate = caguard_sim::sample_estate();
    let config = caguard::demo::sample_config_toml(&estate);
    let mut ready_ms = Vec::new();
    let mut rss_mib = Vec::new();
    for _ in 0..runs {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let started = Instant::now();
        let mut child = Command::new(&bin)
            .env_clear()
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("CAGUARD_CONFIG", &config)
            .env("ApplicationID", "bench")
            .env("ApplicationSecret", "bench")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("caguard starts");
        while !ready(port) {
            assert!(started.elapsed() < Duration::from_secs(10), "no answer on GET / within 10 s");
            std::thread::sleep(Duration::from_micros(200));
        }
        ready_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_secs(1));
        rss_mib.push(rss_kib(child.id()) / 1024.0);
        let _ = child.kill();
        let _ = child.wait();
    }
    ready_ms.sort_by(f64::total_cmp);
    rss_mib.sort_by(f64::total_cmp);
    json!({
        "benchmark": "startup",
        "command": format!("cargo run --release -p bench -- startup --runs {runs}"),
        "runs": runs,
        "startToReadyMs": {"min": ready_ms[0], "p50": pct(&ready_ms, 50.0), "p95": pct(&ready_ms, 95.0), "max": ready_ms[runs - 1]},
        "idleRssMiB": {"min": rss_mib[0], "p50": pct(&rss_mib, 50.0), "max": rss_mib[runs - 1]},
        "targets": {"startToReadyMs": 50, "idleRssMiB": 30}
    })
}
