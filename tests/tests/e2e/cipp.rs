//! Part C against Azurite, with rows written exactly as CIPP writes them.

use caguard::cipp::{self, RowOutcome, Tables, decode_ranges};
use caguard::config::{self, Config};
use caguard::storage::{Auth, TableClient};
use caguard_e2e::{Azurite, fixtures_dir, unique_table, unique_tables};
use serde_json::{Map, Value, json};

fn config(mode: &str) -> Config {
    let src = format!(
        "msp_tenant_id = \"6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7d\"\n[sites]\nOffice = [\"203.0.113.0/24\"]\nBranch = [\"2001:db8::/32\"]\n[accounts]\ntechnician_groups = [\"6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7e\"]\nbreak_glass = [\"bg@x.example\"]\nservice_account = \"svc@x.example\"\n[controls]\nC1 = \"{mode}\"\nC2 = \"{mode}\"\n"
    );
    config::parse(&src).unwrap().0
}

/// A CIPP table row from the fixtures (or built like them), without service metadata.
fn fixture_row(name: &str) -> (String, String, Map<String, Value>) {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures_dir().join("cipp/tables").join(name)).unwrap()).unwrap();
    row_of(v)
}

fn row_of(v: Value) -> (String, String, Map<String, Value>) {
    let mut m = v.as_object().unwrap().clone();
    let pk = m.remove("PartitionKey").unwrap().as_str().unwrap().to_string();
    let rk = m.remove("RowKey").unwrap().as_str().unwrap().to_string();
    m.retain(|k, _| k != "Timestamp" && !k.starts_with("odata."));
    (pk, rk, m)
}

fn client_row(rk: &str, app: &str, ranges: &str, enabled: bool) -> (String, String, Map<String, Value>) {
    row_of(
        json!({"PartitionKey": "ApiClients", "RowKey": rk, "AppName": app, "Role": "editor", "IPRange": ranges, "Enabled": enabled, "MCPAllowed": false}),
    )
}

struct Fixture {
    _az: Azurite,
    client: TableClient,
    tables: Tables,
}

async fn seed(rows: Vec<(String, String, Map<String, Value>)>) -> Fixture {
    let az = Azurite::start();
    let client = az.client();
    let tables = unique_tables();
    client.create_table(&tables.api_clients).await.unwrap();
    client.create_table(&tables.access_ip_ranges).await.unwrap();
    client.create_table(&tables.logs).await.unwrap();
    for (pk, rk, props) in rows {
        let table = match pk.as_str() {
            "ApiClients" => &tables.api_clients,
            "AccessIPRanges" => &tables.access_ip_ranges,
            _ => &tables.logs,
        };
        client.insert(table, &pk, &rk, &props).await.unwrap();
    }
    Fixture { _az: az, client, tables }
}

fn outcome<'a>(r: &'a cipp::CippReport, key: &str) -> &'a RowOutcome {
    &r.rows.iter().find(|x| x.row_key == key).unwrap_or_else(|| panic!("no row {key}: {r:?}")).outcome
}

#[tokio::test]
async fn a_client_with_no_ranges_gets_the_trusted_ranges_and_nothing_else_changes() {
    let f = seed(vec![client_row("c-empty", "RMM", "", true), fixture_row("ApiClients-row-iprange-empty.json")]).await;
    let before = f.client.get(&f.tables.api_clients, "ApiClients", "c-empty").await.unwrap().unwrap();

    let report = cipp::run(&f.client, &config("report"), &f.tables, None, true).await;
    assert!(matches!(outcome(&report, "c-empty"), RowOutcome::Reported(d) if d.contains("any IP")), "{report:?}");
    assert_eq!(
        f.client.get(&f.tables.api_clients, "ApiClients", "c-empty").await.unwrap().unwrap().etag,
        before.etag,
        "report mode writes nothing"
    );

    let report = cipp::run(&f.client, &config("enforce"), &f.tables, None, true).await;
    assert!(matches!(outcome(&report, "c-empty"), RowOutcome::Fixed(_)), "{report:?}");
    let after = f.client.get(&f.tables.api_clients, "ApiClients", "c-empty").await.unwrap().unwrap();
    let raw = after.str("IPRange").unwrap();
    // Sites in name order: Branch, then Office.
    assert_eq!(raw, r#"["2001:db8:0:0:0:0:0:0/32","203.0.113.0/24"]"#, "CIPP's array encoding, in CIPP's form");
    assert_eq!(decode_ranges(raw).unwrap(), vec!["2001:db8:0:0:0:0:0:0/32", "203.0.113.0/24"]);
    let (mut b, mut a) = (before.properties.clone(), after.properties.clone());
    b.remove("IPRange");
    a.remove("IPRange");
    assert_eq!(a, b, "every other column is identical");

    // The disabled fixture client has no ranges either: reported, never changed.
    let disabled = "8e7d6c5b-4a39-4281-9f0e-d1c2b3a49586";
    assert!(matches!(outcome(&report, disabled), RowOutcome::Reported(d) if d.contains("disabled")), "{report:?}");
    assert_eq!(
        f.client.get(&f.tables.api_clients, "ApiClients", disabled).await.unwrap().unwrap().str("IPRange"),
        Some("")
    );
}

#[tokio::test]
async fn a_partly_trusted_client_is_reported_and_only_enforce_removes_the_foreign_range() {
    let f = seed(vec![
        client_row("c-mixed", "PSA", r#"["203.0.113.10","192.0.2.44/32"]"#, true),
        fixture_row("ApiClients-row-iprange-multiple.json"),
    ])
    .await;
    let report = cipp::run(&f.client, &config("report"), &f.tables, None, true).await;
    assert!(
        matches!(outcome(&report, "c-mixed"), RowOutcome::Reported(d) if d.contains("192.0.2.44/32")),
        "{report:?}"
    );
    let unchanged = f.client.get(&f.tables.api_clients, "ApiClients", "c-mixed").await.unwrap().unwrap();
    assert_eq!(unchanged.str("IPRange"), Some(r#"["203.0.113.10","192.0.2.44/32"]"#));

    cipp::run(&f.client, &config("enforce"), &f.tables, None, true).await;
    let fixed = f.client.get(&f.tables.api_clients, "ApiClients", "c-mixed").await.unwrap().unwrap();
    assert_eq!(fixed.str("IPRange"), Some(r#""203.0.113.10""#), "one range: a bare JSON string, as written");
    assert_eq!(decode_ranges(fixed.str("IPRange").unwrap()).unwrap(), vec!["203.0.113.10"]);
    // The fixture client has 198.51.100.7 outside the trusted set.
    let fixture = f
        .client
        .get(&f.tables.api_clients, "ApiClients", "5d6c3b2a-1f0e-4d9c-8b7a-6e5f4d3c2b1a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        decode_ranges(fixture.str("IPRange").unwrap()).unwrap(),
        vec!["203.0.113.0/24", "2001:db8:0:0:0:0:0:0/32"],
        "its trusted ranges kept, the compressed IPv6 one in the form CIPP's save accepts"
    );
}

#[tokio::test]
async fn a_role_range_outside_the_trusted_set_is_drift() {
    let f = seed(vec![fixture_row("AccessIPRanges-row-multiple.json")]).await;
    let report = cipp::run(&f.client, &config("enforce"), &f.tables, None, true).await;
    assert!(matches!(outcome(&report, "editor"), RowOutcome::Fixed(d) if d.contains("10.0.0.0/8")), "{report:?}");
    let row = f.client.get(&f.tables.access_ip_ranges, "AccessIPRanges", "editor").await.unwrap().unwrap();
    // 192.0.2.15 is outside too, so nothing trusted is left: the whole trusted set.
    assert_eq!(decode_ranges(row.str("IPRanges").unwrap()).unwrap(), vec!["2001:db8:0:0:0:0:0:0/32", "203.0.113.0/24"]);
}

#[tokio::test]
async fn a_row_changed_between_read_and_write_is_re_read_and_re_planned() {
    let f = seed(vec![client_row("c-race", "RMM", r#""198.51.100.9""#, true)]).await;
    let stale = f.client.get(&f.tables.api_clients, "ApiClients", "c-race").await.unwrap().unwrap();
    // Someone edits the client in CIPP after caguard read it.
    let mut edit = Map::new();
    edit.insert("AppName".into(), json!("RMM (renamed in CIPP)"));
    edit.insert("IPRange".into(), json!(r#"["203.0.113.20","198.51.100.10"]"#));
    f.client.merge(&f.tables.api_clients, "ApiClients", "c-race", &edit, &stale.etag).await.unwrap();

    let target = &f.tables.targets()[0];
    let outcome = cipp::reconcile_row(&f.client, target, &cipp::trusted(&config("enforce")), stale, true, false).await;
    assert!(
        matches!(&outcome, RowOutcome::Fixed(d) if d.contains("198.51.100.10")),
        "planned on the fresh row: {outcome:?}"
    );
    let row = f.client.get(&f.tables.api_clients, "ApiClients", "c-race").await.unwrap().unwrap();
    assert_eq!(row.str("AppName"), Some("RMM (renamed in CIPP)"), "the concurrent edit was not overwritten");
    assert_eq!(row.str("IPRange"), Some(r#""203.0.113.20""#));
}

#[tokio::test]
async fn malformed_rows_are_reported_with_their_key_and_the_pass_goes_on() {
    let f = seed(vec![
        client_row("bad-json", "A", "[203.0.113.1", true),
        client_row("bad-type", "B", "42", true),
        client_row("bad-item", "C", r#"["203.0.113.1", 7]"#, true),
        client_row("bad-cidr", "D", r#""203.0.113.300/24""#, true),
        client_row("good", "E", r#""203.0.113.5""#, true),
    ])
    .await;
    let report = cipp::run(&f.client, &config("enforce"), &f.tables, None, true).await;
    for key in ["bad-json", "bad-type", "bad-item", "bad-cidr"] {
        assert!(matches!(outcome(&report, key), RowOutcome::Failed(d) if d.contains(key)), "{key}: {report:?}");
    }
    assert_eq!(outcome(&report, "good"), &RowOutcome::Compliant);
}

#[tokio::test]
async fn a_missing_table_and_a_storage_auth_failure_are_reported_not_fatal() {
    let az = Azurite::start();
    let missing = Tables {
        api_clients: unique_table("Nope"),
        access_ip_ranges: unique_table("Nope"),
        logs: unique_table("Nope"),
        custom_roles: unique_table("Nope"),
        tenants: unique_table("Nope"),
    };
    let report = cipp::run(&az.client(), &config("enforce"), &missing, None, true).await;
    assert_eq!(report.errors.len(), 2, "{report:?}");
    assert!(report.errors.iter().all(|e| e.contains("does not exist")), "{report:?}");

    let wrong =
        TableClient::new(&az.endpoint, Auth::SharedKey { account: "devstoreaccount1".into(), key: b"wrong".to_vec() });
    let report = cipp::run(&wrong, &config("enforce"), &Tables::default(), None, true).await;
    assert!(
        report.errors.iter().all(|e| e.contains("authentication failed")) && report.errors.len() == 2,
        "{report:?}"
    );
}

#[test]
fn cipps_encoding_round_trips() {
    for (raw, list) in [("", vec![]), (r#""1.2.3.4/32""#, vec!["1.2.3.4/32"]), (r#"["a","b"]"#, vec!["a", "b"])] {
        let list: Vec<String> = list.into_iter().map(str::to_string).collect();
        assert_eq!(decode_ranges(raw).unwrap(), list);
        assert_eq!(cipp::encode_ranges(&list), raw);
    }
}

/// A CippLogs line as `Write-LogMessage` writes it (the fixture's columns), for `rk`.
fn log_row(rk: &str, api: &str, message: &str, user: &str) -> (String, String, Map<String, Value>) {
    let mut v: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join("cipp/tables/CippLogs-row-api-client-constructed.json")).unwrap(),
    )
    .unwrap();
    v["PartitionKey"] = json!(chrono::Utc::now().format("%Y%m%d").to_string());
    v["RowKey"] = json!(rk);
    v["API"] = json!(api);
    v["Message"] = json!(message);
    v["Username"] = json!(user);
    v["AppId"] = json!("");
    row_of(v)
}

/// Who changed a CIPP-API row comes from CIPP's own log, when CIPP wrote it; a row
/// written outside CIPP, or a log line about another row, leaves it unknown.
#[tokio::test]
async fn drift_names_the_cipp_user_who_saved_the_row() {
    let f = seed(vec![
        log_row("l1", "ExecApiClient", "Updated API client c-alice", "alice@msp.example"),
        client_row("c-alice", "Alice's RMM", "", true),
        log_row("l2", "ExecApiClient", "Updated API client c-someone-else", "bob@msp.example"),
        client_row("c-direct", "Edited in Storage Explorer", r#""198.51.100.7""#, true),
        log_row("l3", "ExecCustomRole", "Saved custom role Editor", "carol@msp.example"),
        fixture_row("AccessIPRanges-row-multiple.json"),
    ])
    .await;
    let report = cipp::run(&f.client, &config("report"), &f.tables, None, false).await;
    let row = |k: &str| report.rows.iter().find(|r| r.row_key == k).unwrap();
    assert_eq!(row("c-alice").changed_by.as_deref(), Some("alice@msp.example"), "{report:?}");
    assert_eq!(row("c-direct").changed_by, None);
    assert_eq!(row("editor").changed_by.as_deref(), Some("carol@msp.example"), "role names are matched without case");
    let records = cipp::drift_records(&report, "corr");
    let by = |k: &str| records.iter().find(|r| r.object_id.ends_with(k)).unwrap().changed_by.clone();
    assert_eq!(by("c-alice"), "alice@msp.example");
    assert_eq!(by("c-direct"), "unknown");
    let alerts = cipp::alerts(&report);
    let alice = alerts.iter().find(|a| a.object_id.as_deref() == Some("c-alice")).unwrap();
    assert_eq!(alice.changed_by.as_deref(), Some("alice@msp.example"));
}

/// Without a readable log the pass is the same, only unattributed.
#[tokio::test]
async fn a_missing_log_table_leaves_who_unknown_and_nothing_else() {
    let mut f = seed(vec![client_row("c-open", "Open", "", true)]).await;
    f.tables.logs = unique_table("NoLogs");
    let report = cipp::run(&f.client, &config("report"), &f.tables, None, false).await;
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(matches!(outcome(&report, "c-open"), RowOutcome::Reported(_)));
    assert_eq!(report.rows[0].changed_by, None);
}

/// CIPP's own check on a saved range (`Invoke-ExecCustomRole`, `Invoke-ExecApiClient`),
/// run with a regex engine over everything caguard wrote.
fn cipp_regex_accepts_all(raw: &str) {
    let re = regex::Regex::new(caguard::cipp::roles::CIPP_RANGE_PATTERN).unwrap();
    for r in decode_ranges(raw).unwrap() {
        assert!(re.is_match(&r), "CIPP's save would drop '{r}' (from {raw})");
    }
}

fn ipv6_only_config() -> Config {
    let src = "msp_tenant_id = \"6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7d\"\n[sites]\nBranch = [\"2001:db8:10::/48\"]\n[accounts]\ntechnician_groups = [\"6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7e\"]\nbreak_glass = [\"bg@x.example\"]\nservice_account = \"svc@x.example\"\n";
    config::parse(src).unwrap().0
}

/// C2, complete: a role with no row (a built-in role never saved, a custom role),
/// a row deleted by clearing the role's ranges in CIPP, and an IPv6-only site; each
/// restored in a form CIPP's own save check accepts. superadmin is left to CIPP.
#[tokio::test]
async fn every_cipp_role_gets_a_row_in_the_form_cipps_save_accepts() {
    let f = seed(vec![row_of(
        json!({"PartitionKey": "AccessIPRanges", "RowKey": "editor", "IPRanges": "\"2001:db8:10::/48\""}),
    )])
    .await;
    f.client.create_table(&f.tables.custom_roles).await.unwrap();
    let mut role = Map::new();
    role.insert("Permissions".into(), json!("[]"));
    f.client.insert(&f.tables.custom_roles, "CustomRoles", "helpdesk", &role).await.unwrap();

    let cfg = ipv6_only_config();
    let report = cipp::run(&f.client, &cfg, &f.tables, None, true).await;
    for missing in ["readonly", "admin", "helpdesk"] {
        assert!(
            matches!(outcome(&report, missing), RowOutcome::Fixed(d) if d.contains("no AccessIPRanges row")),
            "{missing}: {report:?}"
        );
    }
    assert!(report.rows.iter().all(|r| r.row_key != "superadmin"), "CIPP never restricts superadmin");
    assert!(matches!(outcome(&report, "editor"), RowOutcome::Fixed(d) if d.contains("re-save in CIPP would drop")));
    for role in ["readonly", "admin", "helpdesk", "editor"] {
        let row = f.client.get(&f.tables.access_ip_ranges, "AccessIPRanges", role).await.unwrap().unwrap();
        let raw = row.str("IPRanges").unwrap();
        assert_eq!(raw, r#""2001:db8:10:0:0:0:0:0/48""#, "{role}");
        cipp_regex_accepts_all(raw);
    }
    let again = cipp::run(&f.client, &cfg, &f.tables, None, true).await;
    assert_eq!(again.drifted(), 0, "restored: {again:?}");

    // Clearing helpdesk's ranges in CIPP deletes its row: the next pass restores it.
    let row = f.client.get(&f.tables.access_ip_ranges, "AccessIPRanges", "helpdesk").await.unwrap().unwrap();
    f.client.delete(&f.tables.access_ip_ranges, "AccessIPRanges", "helpdesk", &row.etag).await.unwrap();
    let restored = cipp::run(&f.client, &cfg, &f.tables, None, true).await;
    assert!(matches!(outcome(&restored, "helpdesk"), RowOutcome::Fixed(_)), "{restored:?}");
    cipp_regex_accepts_all(
        f.client
            .get(&f.tables.access_ip_ranges, "AccessIPRanges", "helpdesk")
            .await
            .unwrap()
            .unwrap()
            .str("IPRanges")
            .unwrap(),
    );
    // CIPP's pattern refuses what caguard used to write.
    assert!(!regex::Regex::new(caguard::cipp::roles::CIPP_RANGE_PATTERN).unwrap().is_match("2001:db8:10::/48"));
}

/// caguard's own reading of CIPP's pattern agrees with a regex engine running it.
#[test]
fn cipp_accepts_agrees_with_cipps_regex() {
    let re = regex::Regex::new(caguard::cipp::roles::CIPP_RANGE_PATTERN).unwrap();
    for s in [
        "203.0.113.0/24",
        "203.0.113.7",
        "1.2.3.4/123",
        "2001:db8:10:0:0:0:0:0/48",
        "2001:db8::/48",
        "::1",
        "fe80:0:0:0:0:0:0:1",
        "2001:db8/32",
        "any",
        "",
        "1.2.3/24",
        "2001:db8:10:0:0:0:0:0:0/48",
        "2001:db8:10:0:0:0:0:0/1234",
        "12345::1",
    ] {
        assert_eq!(caguard::cipp::roles::cipp_accepts(s), re.is_match(s), "{s}");
    }
}
