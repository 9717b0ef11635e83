//! Property tests with two lockdown policies (CIPP's technicians, and Syncro's
//! All users) and two service accounts (CIPP's and Syncro's), plus A3 and S4 (#16):
//!
//! - every block policy the planner writes passes its own lockdown's safety rules;
//! - after apply, every policy caguard wrote excludes every break-glass account,
//!   and each service account is in scope of no MSP policy but its own B1;
//! - apply, then plan: nothing left.

use caguard::config::{self, Config, Control, ControlMode};
use caguard::plan::{self, Op, merge_patch, safety};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

mod props;
use props::*;

const SYNCRO_APP: &str = "c4d2e8f1-6a3b-4c59-9e70-1f2a3b4c5d6e";
const CIPP_APP: &str = "7e3b9c41-2d5a-4f68-8b19-0c1d2e3f4a5b";
const CIPP_SVC: &str = "cipp-svc@msp.example";
const SYNCRO_SVC: &str = "syncro-svc@msp.example";

/// Names of the policies such an MSP holds, caguard's among them (so generated
/// policies collide with them) and two of its own.
const NAMES: [&str; 7] = [
    "Block CIPP Access - Outside Trusted IPs",
    "Block Syncro - Outside Trusted IPs",
    "CIPP Service Account Conditional Access Policy",
    "Syncro Service Account MFA Policy",
    "CIPP app: require MFA",
    "Require MFA for all users",
    "Block legacy authentication",
];

fn config_strategy() -> impl Strategy<Value = (Config, BTreeMap<String, String>)> {
    (
        // /10 or longer: at most three ranges cannot merge into the /8 Graph refuses
        // (config::sites), which two /9 halves of one /8 would.
        prop::collection::vec((1u8..=223, 0u8..=255, 10u8..=32), 1..3),
        1usize..4,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(ranges, bg, enabled, session_enforced, strength)| {
            let cidrs: Vec<String> = ranges.iter().map(|(a, b, p)| format!("\"{a}.{b}.0.0/{p}\"")).collect();
            let bgs: Vec<String> = (0..bg).map(|i| format!("\"bg{i}@msp.example\"")).collect();
            let rollout = if enabled { "enabled" } else { "reportOnly" };
            let session = if session_enforced { "enforce" } else { "report" };
            let strength =
                if strength { "authentication_strength = \"00000000-0000-0000-0000-000000000002\"" } else { "" };
            let src = format!(
                r#"msp_tenant_id = "{MSP}"
[sites]
"Office" = [{}]
"Branch" = ["20.30.40.0/24"]
[accounts]
break_glass = [{}]
[session]
mode = "{session}"
[[lockdown]]
tool = "cipp"
technician_groups = ["{}"]
sites = ["Office"]
rollout = "{rollout}"
[[lockdown]]
tool = "syncro"
technician_users = ["All"]
all_users_are_technicians = true
apps = ["{SYNCRO_APP}"]
[[service_account]]
tool = "cipp"
account = "{CIPP_SVC}"
[[service_account]]
tool = "syncro"
account = "{SYNCRO_SVC}"
[cipp_app]
app_id = "{CIPP_APP}"
{strength}
"#,
                cidrs.join(", "),
                bgs.join(", "),
                guid(1),
            );
            let (cfg, _) = config::parse(&src).unwrap_or_else(|e| panic!("{e}\n{src}"));
            let mut accounts = BTreeMap::new();
            for i in 0..bg {
                accounts.insert(format!("bg{i}@msp.example"), guid(100 + i as u32));
            }
            accounts.insert(CIPP_SVC.into(), guid(200));
            accounts.insert(SYNCRO_SVC.into(), guid(201));
            (cfg, accounts)
        })
}

/// The generated policies that are kept, each of caguard's names given a grant
/// of its kind (a same-named policy of the other kind is held, tested elsewhere).
fn kept(existing: Vec<Value>, keep: Vec<bool>) -> Vec<Value> {
    let mut out: Vec<Value> = existing.into_iter().zip(keep).filter(|(_, k)| *k).map(|(p, _)| p).collect();
    for p in &mut out {
        let name = p["displayName"].as_str().unwrap_or_default();
        if name.starts_with("Block ") && name.ends_with("Outside Trusted IPs") {
            p["grantControls"]["builtInControls"] = json!(["block"]);
        } else if NAMES[2..5].contains(&name) && safety::is_block(p) {
            p["grantControls"]["builtInControls"] = json!(["mfa"]);
        }
    }
    out
}

fn lower(v: &Value, ptr: &str) -> Vec<String> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_ascii_lowercase)).collect())
        .unwrap_or_default()
}

/// A policy that is on (or report-only) and whose users could include `user`,
/// read from Graph's description of the users condition: included by `All` or
/// by id, or through groups, roles or guest types (which could hold anyone),
/// and not excluded by id.
fn in_scope(p: &Value, user: &str) -> bool {
    if p["state"] == "disabled" || lower(p, "/conditions/users/excludeUsers").contains(&user.to_string()) {
        return false;
    }
    let inc = lower(p, "/conditions/users/includeUsers");
    inc.iter().any(|u| u == "all" || u == user)
        || !lower(p, "/conditions/users/includeGroups").is_empty()
        || !lower(p, "/conditions/users/includeRoles").is_empty()
        || p.pointer("/conditions/users/includeGuestsOrExternalUsers").is_some_and(|g| !g.is_null())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Each lockdown's block policy, as any write leaves it, passes its own safety rules.
    #[test]
    fn every_block_policy_written_is_safe_for_its_own_lockdown(
        (cfg, accounts) in config_strategy(),
        existing in policies(NAMES.to_vec()),
        keep in prop::collection::vec(any::<bool>(), NAMES.len()),
    ) {
        let existing = kept(existing, keep);
        let o = observed(&existing, vec![], accounts);
        let plan = plan::plan_msp(&cfg, &o);
        for a in plan.actions.iter().filter(|a| a.control == Control::A2) {
            let current = match &a.op {
                Op::UpdatePolicy { id } => existing.iter().find(|p| p["id"] == json!(id)).cloned().unwrap(),
                _ => json!({}),
            };
            let mut after = current;
            merge_patch(&mut after, &a.body);
            let l = cfg.lockdowns.iter().find(|l| l.name == a.target).expect("an A2 write is a configured lockdown");
            prop_assert!(safety::is_block(&after));
            prop_assert_eq!(safety::check_block_policy(&cfg, l, &o, &after, &plan.actions), Ok(()));
        }
    }

    /// After apply: caguard's policies exclude every break-glass account, and each
    /// service account's only policy is its own MFA policy.
    #[test]
    fn after_apply_each_service_account_is_only_in_its_own_policy(
        (cfg, accounts) in config_strategy(),
        existing in policies(NAMES.to_vec()),
        keep in prop::collection::vec(any::<bool>(), NAMES.len()),
    ) {
        let existing = kept(existing, keep);
        let o = observed(&existing, vec![], accounts.clone());
        let first = plan::plan_msp(&cfg, &o);
        prop_assume!(first.block.is_none());
        let after = simulate(&o, &first);
        let written: Vec<String> = first.enforced().map(|a| a.target.clone()).collect();
        for p in after.policies.iter().map(|p| serde_json::to_value(p).unwrap()) {
            let name = p["displayName"].as_str().unwrap_or_default().to_string();
            for sa in &cfg.service_accounts {
                let id = accounts[&sa.account].to_ascii_lowercase();
                if name != sa.policy_name {
                    prop_assert!(!in_scope(&p, &id), "{} is in scope of \"{}\": {:#}", sa.account, name, p);
                } else {
                    prop_assert_eq!(lower(&p, "/conditions/users/includeUsers"), vec![id.clone()]);
                    prop_assert_eq!(lower(&p, "/grantControls/builtInControls"), vec!["mfa".to_string()]);
                }
            }
            if written.contains(&name) && name != cfg.service_accounts[0].policy_name && name != cfg.service_accounts[1].policy_name {
                for bg in &cfg.break_glass {
                    let id = accounts[bg].to_ascii_lowercase();
                    prop_assert!(!in_scope(&p, &id), "break-glass {bg} is in scope of \"{name}\"");
                }
            }
        }
    }

    /// Apply, then plan: nothing left to enforce (two lockdowns, two service
    /// accounts, A3, S4 enforced or reported).
    #[test]
    fn apply_then_plan_is_empty_with_every_policy(
        (cfg, accounts) in config_strategy(),
        existing in policies(NAMES.to_vec()),
        keep in prop::collection::vec(any::<bool>(), NAMES.len()),
    ) {
        let existing = kept(existing, keep);
        let o = observed(&existing, vec![], accounts);
        let first = plan::plan_msp(&cfg, &o);
        prop_assume!(first.block.is_none());
        let after = simulate(&o, &first);
        let second = plan::plan_msp(&cfg, &after);
        prop_assert!(second.enforced().next().is_none(), "first: {:#?}\nsecond: {:#?}", first.actions, second.actions);
        let s4_reported = cfg.lockdowns.iter().all(|l| cfg.session_mode(l) == ControlMode::Report);
        prop_assert!(second.actions.iter().all(|a| a.control == Control::S4 && s4_reported), "{:#?}", second.actions);
    }
}
