//! Config validation: one test per error case, each asserting the message names the key and line.

use caguard::config::{Control, ControlMode, Mode, Rollout, parse};

const BASE: &str = r#"msp_tenant_id = "6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7d"
mode = "gdap"

[sites]
"MSP Office" = ["203.0.113.10/32"]

[accounts]
technician_groups = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
break_glass = ["bg1@contoso.example"]
service_account = "svc@contoso.example"
"#;

fn with(replace: &str, by: &str) -> String {
    assert!(BASE.contains(replace), "test setup: {replace}");
    BASE.replace(replace, by)
}

/// Asserts exactly the problem: the key and its line are named.
fn fails(src: &str, key: &str, line: usize, needle: &str) {
    let errs = parse(src).expect_err("config must be rejected");
    let hit = errs.0.iter().find(|e| e.key == key).unwrap_or_else(|| panic!("no error for {key}: {errs}"));
    assert_eq!(hit.line, line, "{hit}");
    assert!(hit.message.contains(needle), "{hit}");
    let shown = errs.to_string();
    assert!(shown.contains(key) && shown.contains(&format!("line {line}")), "{shown}");
}

#[test]
fn the_base_config_is_valid_with_the_documented_defaults() {
    let (c, warnings) = parse(BASE).unwrap();
    assert_eq!(c.mode, Mode::Gdap);
    assert_eq!(c.lockdowns[0].rollout, Rollout::ReportOnly);
    assert_eq!(c.lockdowns[0].apps, vec!["All"]);
    assert_eq!(c.lockdowns[0].name, "Block CIPP Access - Outside Trusted IPs");
    assert_eq!(c.location_name(&c.sites[0]), "Trusted - MSP Office");
    assert_eq!(c.control(Control::D1), ControlMode::Enforce);
    assert_eq!(warnings.len(), 1, "203.0.113.0/24 is a documentation range: {warnings:?}");
}

#[test]
fn the_example_config_is_valid() {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../caguard.example.toml")).unwrap();
    parse(&src).unwrap();
}

#[test]
fn unparsable_cidr() {
    fails(&with("203.0.113.10/32", "203.0.113.300/32"), "sites.MSP Office", 5, "not a CIDR");
}

#[test]
fn prefix_of_8_or_shorter() {
    fails(&with("203.0.113.10/32", "12.0.0.0/8"), "sites.MSP Office", 5, "/8");
    fails(&with("\"203.0.113.10/32\"", "\"2001::/7\""), "sites.MSP Office", 5, "/7");
}

#[test]
fn every_address() {
    fails(&with("203.0.113.10/32", "0.0.0.0/0"), "sites.MSP Office", 5, "every address");
    fails(&with("203.0.113.10/32", "::/0"), "sites.MSP Office", 5, "every address");
}

#[test]
fn no_break_glass_account() {
    fails(
        &with("break_glass = [\"bg1@contoso.example\"]", "break_glass = []"),
        "accounts.break_glass",
        9,
        "break-glass",
    );
}

#[test]
fn service_account_also_a_technician() {
    let src = with("break_glass =", "technician_users = [\"SVC@contoso.example\"]\nbreak_glass =");
    fails(&src, "accounts.service_account", 11, "technician_users");
}

#[test]
fn service_account_also_break_glass() {
    fails(
        &with("[\"bg1@contoso.example\"]", "[\"bg1@contoso.example\", \"svc@contoso.example\"]"),
        "accounts.service_account",
        10,
        "break_glass",
    );
}

#[test]
fn unknown_control() {
    fails(&format!("{BASE}\n[controls]\nZ9 = \"enforce\"\n"), "controls.Z9", 13, "unknown control");
}

#[test]
fn unknown_control_setting() {
    fails(&format!("{BASE}\n[controls]\nA2 = \"maybe\"\n"), "controls.A2", 13, "unknown setting");
}

#[test]
fn unknown_mode() {
    fails(&with("mode = \"gdap\"", "mode = \"partner\""), "mode", 2, "unknown mode");
}

#[test]
fn unknown_key_is_an_error_naming_it() {
    let errs = parse(&format!("{BASE}break_glas = []\n")).unwrap_err();
    assert!(errs.to_string().contains("break_glas"), "{errs}");
    assert_eq!(errs.0[0].line, 11, "{errs}");
}

#[test]
fn host_bits_private_and_overlaps_are_warnings_and_normalised() {
    let src =
        with("[\"203.0.113.10/32\"]", "[\"198.18.0.1/24\", \"10.1.2.3/16\", \"198.18.0.0/25\", \"198.18.0.0/24\"]");
    let (c, w) = parse(&src).unwrap();
    let text: Vec<String> = w.iter().map(|w| w.to_string()).collect();
    assert!(text.iter().any(|t| t.contains("host bits") && t.contains("198.18.0.0/24")), "{text:?}");
    assert!(text.iter().any(|t| t.contains("private")), "{text:?}");
    assert!(text.iter().any(|t| t.contains("merged")), "{text:?}");
    let ranges: Vec<String> = c.sites[0].ranges.iter().map(|r| r.to_string()).collect();
    assert_eq!(ranges, vec!["10.1.0.0/16", "198.18.0.0/24"]);
    assert!(w.iter().all(|w| w.key == "sites.MSP Office" && w.line == 5));
}

#[test]
fn cipp_storage_account_must_be_a_storage_account_name() {
    fails(
        &format!("{BASE}\n[cipp]\nstorage_account = \"CIPP_Storage\"\n"),
        "cipp.storage_account",
        13,
        "not a storage account name",
    );
    let (c, _) = parse(&format!("{BASE}\n[cipp]\nstorage_account = \"cippab12c\"\n")).unwrap();
    assert_eq!(c.cipp.unwrap().table_endpoint, "https://cippab12c.table.core.windows.net");
}

#[test]
fn watch_rediscovery_interval_is_bounded() {
    assert_eq!(parse(BASE).unwrap().0.watch_rediscover_minutes, 15);
    fails(&format!("{BASE}\n[watch]\nrediscover_minutes = 0\n"), "watch.rediscover_minutes", 13, "between 1 and 1440");
    fails(
        &format!("{BASE}\n[watch]\nrediscover_minutes = 2000\n"),
        "watch.rediscover_minutes",
        13,
        "between 1 and 1440",
    );
    let (c, _) = parse(&format!("{BASE}\n[watch]\nrediscover_minutes = 60\nconcurrency = 128\n")).unwrap();
    assert_eq!((c.watch_rediscover_minutes, c.watch_concurrency), (60, 128));
    fails(&format!("{BASE}\n[watch]\nconcurrency = 0\n"), "watch.concurrency", 13, "between 1 and 1024");
}

/// A huge alert window once panicked (exit 101) after writes; now it is an error.
#[test]
fn the_alert_window_is_bounded() {
    for w in ["0", "10081", "1000000000000"] {
        fails(&format!("{BASE}\n[alerts]\nwindow_minutes = {w}\n"), "alerts.window_minutes", 13, "between 1 and 10080");
    }
    let (c, _) = parse(&format!("{BASE}\n[alerts]\nwindow_minutes = 10080\n")).unwrap();
    assert_eq!(c.alerts.window_minutes, 10080);
}

#[test]
fn accept_widening_tenants_must_be_tenant_ids() {
    let (c, _) =
        parse(&format!("{BASE}\n[scope]\naccept_widening_tenants = [\"6F1C2A43-7D5E-4B8A-9C3F-2E1D0A9B8C7E\"]\n"))
            .unwrap();
    assert!(c.accepts_widening("6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7e") && !c.accept_widening);
    fails(
        &format!("{BASE}\n[scope]\naccept_widening_tenants = [\"contoso\"]\n"),
        "scope.accept_widening_tenants",
        13,
        "not a tenant id",
    );
}

#[test]
fn site_names_that_differ_only_in_case_collide() {
    let src = format!("{BASE}\n").replace("[sites]\n", "[sites]\n\"msp office\" = [\"198.51.100.0/28\"]\n");
    fails(&src, "sites.msp office", 5, "only in case");
}

#[test]
fn ranges_that_merge_into_a_slash_8_are_refused() {
    // Two /9s are fine alone, but aggregate into 12.0.0.0/8, which Graph refuses.
    let src = with("\"MSP Office\" = [\"203.0.113.10/32\"]", "\"MSP Office\" = [\"12.0.0.0/9\", \"12.128.0.0/9\"]");
    fails(&src, "sites.MSP Office", 5, "merge into 12.0.0.0/8");
}

#[test]
fn more_than_2000_ranges_in_a_site_are_refused() {
    // Single addresses two apart, so none of them merge.
    let many: Vec<String> = (0..2001).map(|i| format!("\"20.1.{}.{}/32\"", i / 100, i % 100 * 2)).collect();
    let src = with("\"MSP Office\" = [\"203.0.113.10/32\"]", &format!("\"MSP Office\" = [{}]", many.join(", ")));
    fails(&src, "sites.MSP Office", 5, "at most 2000");
}

#[test]
fn block_and_service_policy_names_must_differ_ignoring_case() {
    let src = format!("{BASE}\n[names]\nblock_policy = \"Lockdown\"\nservice_account_policy = \"LOCKDOWN\"\n");
    fails(&src, "names.service_account_policy", 14, "also the name set by names.block_policy");
}

#[test]
fn all_users_as_technicians_needs_an_acknowledgement() {
    let all = with("technician_groups = [", "technician_users = [\"All\"]\ntechnician_groups = [");
    fails(&all, "accounts.technician_users", 8, "all_users_are_technicians");
    let acknowledged = all.replace("[accounts]\n", "[accounts]\nall_users_are_technicians = true\n");
    let (c, _) = parse(&acknowledged).unwrap();
    assert_eq!(c.lockdowns[0].technician_users, vec!["All"]);
}

#[test]
fn skip_and_direct_tenants_must_be_tenant_ids() {
    fails(
        &format!("{BASE}\n[scope]\nskip_tenants = [\"contoso.onmicrosoft.com\"]\n"),
        "scope.skip_tenants",
        13,
        "not a tenant id",
    );
    fails(
        &format!("{BASE}\n[scope]\ndirect_tenants = [\"../../evil\"]\n"),
        "scope.direct_tenants",
        13,
        "not a tenant id",
    );
    fails(
        &with(
            "service_account = \"svc@contoso.example\"\n",
            "service_account = \"svc@contoso.example\"\ndirect_service_accounts = { \"x/y\" = \"svc@x.example\" }\n",
        ),
        "accounts.direct_service_accounts",
        11,
        "not a tenant id",
    );
}

#[test]
fn allowed_exclusions_must_be_object_ids() {
    let src = with("break_glass", "allowed_exclusions = [\"Dana\"]\nbreak_glass");
    fails(&src, "accounts.allowed_exclusions", 9, "not an object id");
    let ok = with("break_glass", "allowed_exclusions = [\"AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEE0\"]\nbreak_glass");
    let (c, _) = parse(&ok).unwrap();
    assert_eq!(c.allowed_exclusions, ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeee0"]);
}
