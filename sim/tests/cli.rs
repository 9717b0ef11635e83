//! `caguard-sim` refuses what it does not understand (issue #11).

use std::process::Command;

#[test]
fn an_unknown_flag_is_an_error_naming_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_caguard-sim"))
        .args(["--latency-ms", "5", "--replication-lag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown argument '--replication-lag'") && err.contains("--replication-lag-ms"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_caguard-sim")).arg("--port").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port needs a value"));
}
