//! Several lockdown policies and service accounts (#16): the short form and the
//! list form parse to the same desired state, and every error names its key and line.

use caguard::config::{ControlMode, Rollout, parse};

const HEAD: &str = r#"msp_tenant_id = "6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7d"

[sites]
"MSP Office" = ["203.0.113.10/32"]
"Branch" = ["198.51.100.0/28"]
"#;

const SHORT: &str = r#"
[accounts]
technician_groups = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
break_glass = ["bg1@contoso.example"]
service_account = "svc@contoso.example"
direct_service_accounts = { "11111111-2222-3333-4444-555555555555" = "cipp@customer.example" }

[apps]
protected = ["00000007-0000-0000-c000-000000000000"]

[names]
block_policy = "Block technicians"
service_account_policy = "Service account MFA"

[rollout]
block_policy = "enabled"
"#;

const LIST: &str = r#"
[accounts]
break_glass = ["bg1@contoso.example"]

[[lockdown]]
name = "Block technicians"
technician_groups = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
apps = ["00000007-0000-0000-c000-000000000000"]
rollout = "enabled"

[[service_account]]
account = "svc@contoso.example"
policy = "Service account MFA"
direct_accounts = { "11111111-2222-3333-4444-555555555555" = "cipp@customer.example" }
"#;

/// A CIPP-plus-Syncro MSP, as in caguard.example.toml.
const TWO: &str = r#"
[accounts]
break_glass = ["bg1@contoso.example"]

[[lockdown]]
tool = "cipp"
technician_groups = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
sites = ["MSP Office"]

[[lockdown]]
tool = "syncro"
technician_users = ["All"]
all_users_are_technicians = true
apps = ["c4d2e8f1-6a3b-4c59-9e70-1f2a3b4c5d6e"]
session = { mode = "enforce", sign_in_frequency_hours = 4 }

[[service_account]]
tool = "cipp"
account = "cipp-svc@contoso.example"

[[service_account]]
tool = "syncro"
account = "syncro-svc@contoso.example"

[cipp_app]
app_id = "7e3b9c41-2d5a-4f68-8b19-0c1d2e3f4a5b"
"#;

fn fails(src: &str, key: &str, line: usize, needle: &str) {
    let errs = parse(src).expect_err("config must be rejected");
    let hit = errs.0.iter().find(|e| e.key == key).unwrap_or_else(|| panic!("no error for {key}: {errs}"));
    assert_eq!(hit.line, line, "{hit}");
    assert!(hit.message.contains(needle), "{hit}");
}

/// The 1-based line of the first line containing `needle` in `src`.
fn line_of(src: &str, needle: &str) -> usize {
    src.lines().position(|l| l.contains(needle)).expect("needle in source") + 1
}

#[test]
fn the_short_form_and_the_list_form_are_the_same_desired_state() {
    let (short, _) = parse(&format!("{HEAD}{SHORT}")).unwrap();
    let (list, _) = parse(&format!("{HEAD}{LIST}")).unwrap();
    assert_eq!(short, list);
    let l = &short.lockdowns[0];
    assert_eq!((l.name.as_str(), l.rollout), ("Block technicians", Rollout::Enabled));
    assert_eq!(l.sites, vec!["Branch", "MSP Office"], "every site by default");
    assert_eq!(l.session.mode, ControlMode::Report, "S4 is reported by default");
    assert_eq!(l.session.sign_in_frequency_hours, 8);
    assert!(short.service_accounts[0].cipp);
    assert_eq!(short.direct_service_accounts("11111111-2222-3333-4444-555555555555"), vec!["cipp@customer.example"]);
}

#[test]
fn a_cipp_plus_syncro_msp_gets_the_source_documents_names() {
    let (c, _) = parse(&format!("{HEAD}{TWO}")).unwrap();
    let names: Vec<&str> = c.owned_policy_names();
    for n in [
        "Block CIPP Access - Outside Trusted IPs",
        "Block Syncro - Outside Trusted IPs",
        "CIPP Service Account Conditional Access Policy",
        "Syncro Service Account MFA Policy",
        "CIPP app: require MFA",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    assert_eq!(c.lockdowns[0].sites, vec!["MSP Office"]);
    assert!(c.lockdowns[1].all_users());
    assert_eq!(c.lockdowns[1].session.mode, ControlMode::Enforce);
    assert_eq!(c.lockdowns[1].session.sign_in_frequency_hours, 4);
    assert_eq!(c.cipp_service_account().account, "cipp-svc@contoso.example");
    // A direct tenant in a GDAP estate: CIPP's account falls back to the signed-in
    // user; Syncro's has no account there unless one is configured.
    assert_eq!(c.direct_service_accounts("11111111-2222-3333-4444-555555555555"), vec!["me"]);
}

#[test]
fn duplicate_policy_names_are_refused_naming_the_later_key_and_its_line() {
    let src = format!("{HEAD}{TWO}").replace(
        "tool = \"syncro\"\ntechnician_users",
        "name = \"block cipp access - outside trusted ips\"\ntechnician_users",
    );
    fails(&src, "lockdown[2].name", line_of(&src, "name = \"block cipp"), "overwrite each other");
    let src = format!("{HEAD}{TWO}").replace(
        "account = \"syncro-svc@contoso.example\"",
        "account = \"syncro-svc@contoso.example\"\npolicy = \"CIPP app: require MFA\"",
    );
    fails(&src, "cipp_app.policy", line_of(&src, "[cipp_app]"), "overwrite each other");
}

#[test]
fn a_service_account_cannot_also_be_a_technician_break_glass_or_listed_twice() {
    let base = format!("{HEAD}{TWO}");
    let tech = base.replace(
        "technician_groups = [\"aaaa",
        "technician_users = [\"SYNCRO-svc@contoso.example\"]\ntechnician_groups = [\"aaaa",
    );
    fails(&tech, "service_account[2].account", line_of(&tech, "account = \"syncro-svc"), "technician_users");
    let bg = base.replace(
        "break_glass = [\"bg1@contoso.example\"]",
        "break_glass = [\"bg1@contoso.example\", \"cipp-svc@contoso.example\"]",
    );
    fails(&bg, "service_account[1].account", line_of(&bg, "account = \"cipp-svc"), "break_glass");
    let twice = base.replace("account = \"syncro-svc@contoso.example\"", "account = \"Cipp-Svc@contoso.example\"");
    fails(&twice, "service_account[2].account", line_of(&twice, "account = \"Cipp-Svc"), "twice");
}

#[test]
fn an_app_id_must_be_a_guid_or_all() {
    let src =
        format!("{HEAD}{TWO}").replace("apps = [\"c4d2e8f1-6a3b-4c59-9e70-1f2a3b4c5d6e\"]", "apps = [\"Syncro\"]");
    fails(&src, "lockdown[2].apps", line_of(&src, "apps = [\"Syncro\"]"), "neither \"All\" nor an app id");
    let src =
        format!("{HEAD}{TWO}").replace("app_id = \"7e3b9c41-2d5a-4f68-8b19-0c1d2e3f4a5b\"", "app_id = \"CIPP-SSO\"");
    fails(&src, "cipp_app.app_id", line_of(&src, "app_id = \"CIPP-SSO\""), "not an app id");
    let src = format!("{HEAD}{TWO}").replace("apps = [\"c4d2e8f1-6a3b-4c59-9e70-1f2a3b4c5d6e\"]\n", "");
    fails(&src, "lockdown[2].apps", line_of(&src, "tool = \"syncro\"") - 1, "Syncro OIDC app");
}

#[test]
fn list_entries_are_checked_like_the_short_form() {
    let base = format!("{HEAD}{TWO}");
    let no_ack = base.replace("all_users_are_technicians = true\n", "");
    let at = line_of(&no_ack, "technician_users = [\"All\"]");
    fails(&no_ack, "lockdown[2].technician_users", at, "all_users_are_technicians");
    let site = base.replace("sites = [\"MSP Office\"]", "sites = [\"Head office\"]");
    fails(&site, "lockdown[1].sites", line_of(&site, "sites = [\"Head office\"]"), "not a site");
    let hours = base.replace("sign_in_frequency_hours = 4", "sign_in_frequency_hours = 48");
    fails(&hours, "lockdown[2].session.sign_in_frequency_hours", line_of(&hours, "= 48"), "between 1 and 23");
    let unnamed = base.replace("tool = \"syncro\"\ntechnician_users", "technician_users");
    fails(&unnamed, "lockdown[2]", line_of(&unnamed, "technician_users = [\"All\"]") - 1, "name the policy");
    let mixed = base.replace(
        "break_glass = [\"bg1@contoso.example\"]",
        "break_glass = [\"bg1@contoso.example\"]\nservice_account = \"x@contoso.example\"",
    );
    fails(&mixed, "accounts.service_account", line_of(&mixed, "service_account = \"x@"), "cannot be mixed");
}
