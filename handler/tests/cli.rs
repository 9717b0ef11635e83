//! The `caguard` binary: exit codes and the demo, as a newcomer runs them.

use std::process::Command;

fn caguard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_caguard"))
}

/// #13: exit codes scripts can trust. The sample estate has a tenant without
/// consent (Wingtip Toys), so a whole-estate `plan` or `apply` exits 1 (a tenant
/// could not be read); the MSP tenant alone has drift (2), then none (0).
#[test]
fn exit_codes_say_drift_unreadable_tenants_and_usage_errors_apart() {
    let plan = caguard().args(["plan", "--sim"]).output().unwrap();
    let out = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(1), "a tenant could not be read: {out}");
    assert!(out.contains("Wingtip Toys") && out.contains("cannot run here"), "{out}");
    assert!(out.contains("A2 create policy \"Block CIPP Access - Outside Trusted IPs\""), "{out}");
    assert!(out.contains("send: {"), "the plan shows exactly what is sent");

    // The 8-character id the output shows, a display name, a full id: each selects one tenant.
    let msp = caguard().args(["plan", "--sim", "--tenant", "6f1c2a43"]).output().unwrap();
    assert_eq!(msp.status.code(), Some(2), "{}", String::from_utf8_lossy(&msp.stderr));
    // The plan reads like a diff, every id labelled; no colour when not on a terminal.
    let text = String::from_utf8_lossy(&msp.stdout);
    assert!(
        text.contains("+ conditions.users.excludeUsers: 9a1e40b4-5815-4a99-99e2-d15364c7a500 (cipp-svc@contosomsp.onmicrosoft.com)"),
        "{text}"
    );
    assert!(text.contains("(the new location \"Trusted - MSP Office\")"), "{text}");
    assert!(
        !text.contains('\u{1b}') && !String::from_utf8_lossy(&msp.stderr).contains('\u{1b}'),
        "no ANSI codes in a file"
    );
    let by_name = caguard().args(["plan", "--sim", "--tenant", "adatum clinics"]).output().unwrap();
    assert_eq!(by_name.status.code(), Some(2), "{}", String::from_utf8_lossy(&by_name.stderr));
    let none = caguard().args(["plan", "--sim", "--tenant", "no-such-tenant"]).output().unwrap();
    assert_eq!(none.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("matches no tenant"),
        "a filter matching nothing is an error"
    );

    let apply = caguard().args(["apply", "--sim", "--yes", "--json"]).output().unwrap();
    assert_eq!(apply.status.code(), Some(1), "{}", String::from_utf8_lossy(&apply.stderr));
    let report: serde_json::Value = serde_json::from_slice(&apply.stdout).expect("--json is JSON");
    assert_eq!(report["schemaVersion"], 1);
    let summary = &report["summary"];
    assert_eq!(summary["tenants"].as_u64().unwrap() as usize, report["tenants"].as_array().unwrap().len());
    assert!(summary["fixed"].as_u64().unwrap() > 0, "{summary}");
    let outcomes: Vec<&str> =
        report["tenants"].as_array().unwrap().iter().map(|t| t["result"]["outcome"].as_str().unwrap()).collect();
    assert!(outcomes.iter().all(|o| ["fixed", "compliant", "skipped"].contains(o)), "{outcomes:?}");

    for (args, code) in [
        (&["plan", "--no-such-flag"][..], 64),
        (&["frobnicate"][..], 64),
        (&["watch", "--sim"][..], 64),
        (&["--help"][..], 0),
        (&["--version"][..], 0),
    ] {
        let out = caguard().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
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

/// A webhook receiver on a thread: every POST body, in order.
fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok()
                && let Ok(v) = serde_json::from_slice(&body)
            {
                sink.lock().unwrap().push(v);
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (url, got)
}

/// `caguard apply` sends what it held or could not do to the alert channels, deduped
/// through its store, as the Functions app does.
#[test]
fn apply_alerts_a_held_plan_once_per_window() {
    let (url, got) = receiver();
    let store = std::env::temp_dir().join(format!("caguard-cli-alerts-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&store);
    let run = || {
        caguard()
            .args(["apply", "--sim", "--json", "--store"])
            .arg(&store)
            .env("CAGUARD_ALERT_WEBHOOK_URL", &url)
            .output()
            .unwrap()
    };
    // Alert windows are clock hours: two runs that straddle an hour are rightly
    // alerted twice, so such a pair is run again (it cannot straddle twice).
    let hour = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 3600;
    let (held, again, alerts) = loop {
        let _ = std::fs::remove_file(&store);
        got.lock().unwrap().clear();
        let before = hour();
        let held = run();
        let alerts = got.lock().unwrap().clone();
        let again = run();
        if hour() == before {
            break (held, again, alerts);
        }
    };
    assert_eq!(held.status.code(), Some(1), "a held plan exits 1");
    let kinds: Vec<&str> = alerts.iter().filter_map(|a| a["kind"].as_str()).collect();
    assert!(kinds.contains(&"safety-hold"), "{alerts:#?}");
    assert!(kinds.contains(&"no-license"), "tenants enforcement cannot reach are alerted too: {kinds:?}");
    // Each withheld D1 policy is alerted once, saying what writing it would also exclude.
    let withheld: Vec<&serde_json::Value> = alerts.iter().filter(|a| a["kind"] == "withheld").collect();
    let objects: Vec<&str> = withheld.iter().filter_map(|a| a["object"]["name"].as_str()).collect();
    assert_eq!(withheld.len(), 2, "{objects:?}");
    assert!(objects.contains(&"MFA except internal guests") && objects.contains(&"Guests require MFA"), "{objects:?}");
    let adatum = withheld.iter().find(|a| a["object"]["name"] == "MFA except internal guests").unwrap();
    assert!(adatum["message"].as_str().unwrap().contains("service-provider users of every external tenant"));
    let first = alerts.len();

    assert_eq!(again.status.code(), Some(1));
    assert_eq!(got.lock().unwrap().len(), first, "the same alerts in the same window are not sent twice");
    let stderr = String::from_utf8_lossy(&held.stderr);
    assert!(!stderr.contains(&url), "the webhook URL is never logged");
    let _ = std::fs::remove_file(&store);
}

/// Withheld policies are reported but are not failures: `apply` exits 0 when
/// every other tenant is compliant, fixed or skipped.
#[test]
fn apply_reports_withheld_policies_and_still_exits_0() {
    let tenants = ["--tenant", "Adatum Clinics", "--tenant", "Woodgrove Legal"];
    let out = caguard().args(["apply", "--sim", "--yes"]).args(tenants).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("D1 WITHHELD policy \"MFA except internal guests\""), "{text}");
    assert!(text.contains("D1 WITHHELD policy \"Guests require MFA\""), "{text}");
}

/// #13: the on-call's pause, status and resume from the command line.
#[test]
fn the_cli_pauses_shows_and_resumes() {
    let dir = std::env::temp_dir().join(format!("caguard-cli-pause-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("store.json");
    let run = |args: &[&str]| {
        let out = caguard().args(args).arg("--store").arg(&path).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    let (code, out) = run(&["pause", "--control", "D1", "--reason", "customer asked", "--for", "2h"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("paused (control D1 in every tenant)") && out.contains("caguard resume --control D1"),
        "{out}"
    );
    let (code, out) = run(&["status"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("1 pause(s) in force") && out.contains("customer asked"), "{out}");
    assert_eq!(run(&["pause", "--control", "D1", "--reason", " "]).0, Some(1), "a reason is required");
    assert_eq!(run(&["resume", "--control", "D1"]).0, Some(0));
    let (code, out) = run(&["resume", "--control", "D1"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("nothing is paused for control D1"), "{out}");
}
