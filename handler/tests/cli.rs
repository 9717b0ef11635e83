//! The `caguard` binary: exit codes and the demo, as a newcomer runs them.

use std::process::Command;

fn caguard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_caguard"))
}

#[test]
fn plan_on_the_simulated_estate_exits_2_for_drift_and_apply_yes_exits_0() {
    let plan = caguard().args(["plan", "--sim"]).output().unwrap();
    let out = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(2), "drift found: {out}");
    assert!(out.contains("A2 create policy \"Block CIPP Access - Outside Trusted IPs\""), "{out}");
    assert!(out.contains("send: {"), "the plan shows exactly what is sent");

    let apply = caguard().args(["apply", "--sim", "--yes", "--json"]).output().unwrap();
    assert_eq!(apply.status.code(), Some(0), "{}", String::from_utf8_lossy(&apply.stderr));
    let report: serde_json::Value = serde_json::from_slice(&apply.stdout).expect("--json is JSON");
    let outcomes: Vec<&str> =
        report["tenants"].as_array().unwrap().iter().map(|t| t["result"]["outcome"].as_str().unwrap()).collect();
    assert!(outcomes.iter().all(|o| ["fixed", "compliant", "skipped"].contains(o)), "{outcomes:?}");
}

#[test]
fn a_bad_config_exits_1_naming_the_key_and_line() {
    let dir = std::env::temp_dir().join(format!("caguard-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("caguard.toml");
    std::fs::write(&path, "msp_tenant_id = \"6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7d\"\n[sites]\nOffice = [\"0.0.0.0/0\"]\n[accounts]\ntechnician_groups = [\"6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7e\"]\nbreak_glass = [\"bg@x.example\"]\nservice_account = \"svc@x.example\"\n").unwrap();
    let out = caguard().args(["plan", "--config"]).arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("line 3") && err.contains("sites.Office") && err.contains("every address"), "{err}");
}

#[test]
fn demo_shows_the_whole_cycle() {
    let out = caguard().args(["demo", "--for", "20s"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for step in [
        "1. plan",
        "2. apply --yes",
        "0 tenants with changes planned; 0 writes",
        "out-of-band change: Mallory Admin",
        "changed by Mallory Admin <mallory@fabrikamdental.onmicrosoft.com>",
        "restored",
        "changed by Blair Tech",
    ] {
        assert!(text.contains(step), "demo output lacks '{step}':\n{text}");
    }
}
