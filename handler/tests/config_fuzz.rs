//! #12, item 5: nothing in a config can panic (this replaces the parse-only fuzz
//! that lived in config.rs: the same values over more keys, planned as well). Generated configs (every key, every
//! TOML type and size) are parsed and, when valid, planned against the sample
//! estate's MSP tenant and customers (in-process, thousands of cases); a sample
//! of them also goes through the `caguard` binary, which exits 0 or 1, never 101.

use caguard::plan::{self, Observed};
use caguard_sim::sample_estate;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The sample estate as caguard observes it: the MSP tenant and every customer.
fn observed() -> &'static (Observed, Vec<Observed>) {
    static O: OnceLock<(Observed, Vec<Observed>)> = OnceLock::new();
    O.get_or_init(|| {
        let estate = sample_estate();
        let read = |t: &caguard_sim::TenantSpec, msp: bool| {
            let (policies, unreadable) = caguard::observe::read_policies(t.policies.clone());
            let mut accounts = BTreeMap::new();
            for u in &t.users {
                let id = u["id"].as_str().unwrap_or_default().to_string();
                accounts.insert(id.to_ascii_lowercase(), id.clone());
                if let Some(upn) = u["userPrincipalName"].as_str() {
                    accounts.insert(upn.to_ascii_lowercase(), id);
                }
            }
            Observed {
                tenant_id: t.id.clone(),
                tenant_name: t.display_name.clone(),
                policies,
                unreadable,
                locations: if msp {
                    t.named_locations.iter().filter_map(|l| serde_json::from_value(l.clone()).ok()).collect()
                } else {
                    vec![]
                },
                p1: Some(true),
                gdap_can_write_ca: (!msp).then_some(true),
                accounts,
                ..Default::default()
            }
        };
        let msp = read(&estate.tenants[0], true);
        let customers = estate.tenants[1..].iter().map(|t| read(t, false)).collect();
        (msp, customers)
    })
}

fn base() -> String {
    caguard::demo::sample_config_toml(&sample_estate())
}

/// Values of every TOML type and size, including ones that overflow arithmetic.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:e}")),
        any::<bool>().prop_map(|b| b.to_string()),
        "[ -~]{0,12}".prop_map(|s| format!("{s:?}")),
        Just("[]".to_string()),
        Just("[\"All\"]".to_string()),
        Just("[\"0.0.0.0/0\", \"::/0\", \"1.2.3.4/33\", \"\"]".to_string()),
        Just("[\"6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7d\"]".to_string()),
        Just("{}".to_string()),
        Just("\"9223372036854775807\"".to_string()),
    ]
}

/// Keys, with the table they sit in (sections the base already has are not repeated).
const KEYS: &[&str] = &[
    "[alerts]\nwindow_minutes",
    "[alerts]\nwebhook_schema",
    "[watch]\nrediscover_minutes",
    "[watch]\nconcurrency",
    "[safety]\nmax_policies_per_tenant",
    "[safety]\nmax_tenant_fraction",
    "[[lockdown]]\nrollout",
    "[[lockdown]]\napps",
    "[[lockdown]]\nsites",
    "[[lockdown]]\nname",
    "[[lockdown]]\ntechnician_users",
    "[[service_account]]\naccount",
    "[[service_account]]\npolicy",
    "[[service_account]]\ndirect_accounts",
    "[session]\nmode",
    "[session]\nsign_in_frequency_hours",
    "[cipp_app]\napp_id",
    "[cipp_app]\nauthentication_strength",
    "[scope]\naccept_widening_tenants",
    "[scope]\nskip_tenants",
    "[scope]\ndirect_tenants",
    "[scope]\naccept_widening",
    "[controls]\nD1",
    "[controls]\nA4",
    "[controls]\nS4",
    "[session]\npolicy",
    "[cipp_app]\npolicy",
    "[names]\nlocation_prefix",
    "[names]\nadopt_existing",
    "[cipp]\nstorage_account",
    "[accounts]\nallowed_exclusions",
    "[accounts]\nall_users_are_technicians",
    "[sites]\n\"Second office\"",
    "mode",
];

/// The config with `key = value` added (in its own table, or replacing the base's).
fn config(key: &str, v: &str) -> String {
    let base = base();
    match key.split_once('\n') {
        None => format!("{key} = {v}\n{}", base.replacen("mode = \"gdap\"\n", "", 1)),
        Some((table, k)) if base.contains(&format!("{table}\n")) => {
            // The base's own value of this key, if any, gives way to the generated one.
            let at = base.find(&format!("{table}\n")).unwrap_or(0);
            let (head, tail) = base.split_at(at);
            let mut lines: Vec<&str> = tail.lines().collect();
            if let Some(i) = lines.iter().position(|l| l.starts_with(&format!("{k} = "))) {
                lines.remove(i);
            }
            format!("{head}{}\n", lines.join("\n")).replacen(&format!("{table}\n"), &format!("{table}\n{k} = {v}\n"), 1)
        }
        Some(_) => format!("{base}\n{key} = {v}\n"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

    /// Every generated config is refused with errors, or plans the whole estate without panicking.
    #[test]
    fn no_config_panics_in_parse_or_plan(key in prop::sample::select(KEYS), v in value()) {
        let src = config(key, &v);
        if let Ok((cfg, _)) = caguard::config::parse(&src) {
            let (msp, customers) = observed();
            let mut plans = vec![plan::plan_msp(&cfg, msp)];
            plans.extend(customers.iter().map(|c| plan::plan_customer(&cfg, c)));
            plan::apply_limits(&cfg, &mut plans, false);
            let mut text = String::new();
            for p in &plans {
                caguard::report::plan_text(p, &mut text, None);
            }
        }
    }
}

#[test]
fn the_binary_exits_0_or_1_never_101_on_generated_configs() {
    let dir = std::env::temp_dir().join(format!("caguard-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (prop::sample::select(KEYS), value());
    let mut codes = BTreeMap::new();
    let mut valid = 0;
    for i in 0..150 {
        let (key, v) = strategy.new_tree(&mut runner).unwrap().current();
        let path = dir.join(format!("c{i}.toml"));
        let src = config(key, &v);
        valid += usize::from(caguard::config::parse(&src).is_ok());
        std::fs::write(&path, src).unwrap();
        // No credentials: a valid config gets as far as the token and stops there with 1.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_caguard"))
            .args(["plan", "--config"])
            .arg(&path)
            .env_remove("CAGUARD_CLIENT_ID")
            .env_remove("CAGUARD_CLIENT_SECRET")
            .env_remove("CAGUARD_REFRESH_TOKEN")
            .output()
            .unwrap();
        let code = out.status.code().unwrap_or(-1);
        assert!(code == 0 || code == 1, "{key} = {v}: exit {code}\n{}", String::from_utf8_lossy(&out.stderr));
        *codes.entry(code).or_insert(0) += 1;
    }
    println!("exit codes over 150 generated configs ({valid} of them valid): {codes:?}");
    assert!(valid >= 10, "the generator reaches valid configs too ({valid} of 150)");
}
