//! Who changed a CIPP-API row: only a CIPP log line written within minutes of the
//! row's last write names someone.

use caguard::cipp::{RowOutcome, RowReport, who_saved};
use caguard::config::Control;
use caguard::storage::Entity;
use serde_json::{Map, json};

fn log(at: &str, api: &str, message: &str, user: &str) -> Entity {
    let mut properties = Map::new();
    properties.insert("API".into(), json!(api));
    properties.insert("Message".into(), json!(message));
    properties.insert("Username".into(), json!(user));
    Entity {
        partition_key: "20261122".into(),
        row_key: format!("{at}-{user}"),
        etag: String::new(),
        timestamp: Some(at.into()),
        properties,
    }
}

fn row(control: Control, key: &str, written: &str) -> RowReport {
    RowReport {
        control,
        table: "ApiClients".into(),
        row_key: key.into(),
        name: key.into(),
        outcome: RowOutcome::Reported("no ranges".into()),
        before: String::new(),
        after: None,
        last_written: Some(written.into()),
        changed_by: None,
        changed_at: None,
    }
}

#[test]
fn the_newest_matching_line_near_the_write_names_the_user() {
    let logs = [
        log("2026-11-22T09:00:00.1234567Z", "ExecApiClient", "Updated API client c1", "old@msp.example"),
        log("2026-11-22T10:00:00.5000000Z", "ExecApiClient", "Updated API client c1", "alice@msp.example"),
        log("2026-11-22T10:00:01.0000000Z", "ExecApiClient", "Updated API client c2", "bob@msp.example"),
    ];
    let got = who_saved(&logs, &row(Control::C1, "c1", "2026-11-22T10:00:00.9000000Z"));
    assert_eq!(got.map(|(who, _)| who).as_deref(), Some("alice@msp.example"));
}

#[test]
fn a_write_long_after_the_last_cipp_save_is_unknown() {
    // Saved in CIPP at 09:00, then edited elsewhere at 10:00: the 09:00 user did not make this change.
    let logs = [log("2026-11-22T09:00:00Z", "ExecApiClient", "Updated API client c1", "alice@msp.example")];
    assert_eq!(who_saved(&logs, &row(Control::C1, "c1", "2026-11-22T10:00:00Z")), None);
}

#[test]
fn roles_match_their_save_line_and_not_a_client_line() {
    let logs = [
        log("2026-11-22T10:00:00Z", "ExecApiClient", "Updated API client editor", "mallory@msp.example"),
        log("2026-11-22T10:00:00Z", "ExecCustomRole", "Saved custom role Editor", "carol@msp.example"),
    ];
    let got = who_saved(&logs, &row(Control::C2, "editor", "2026-11-22T10:00:02Z"));
    assert_eq!(got.map(|(who, _)| who).as_deref(), Some("carol@msp.example"));
}

#[test]
fn a_row_without_a_timestamp_or_a_line_without_a_user_is_unknown() {
    let logs = [log("2026-11-22T10:00:00Z", "ExecApiClient", "Updated API client c1", "")];
    assert_eq!(who_saved(&logs, &row(Control::C1, "c1", "2026-11-22T10:00:00Z")), None);
    let mut r = row(Control::C1, "c1", "x");
    r.last_written = None;
    assert_eq!(who_saved(&logs, &r), None);
}
