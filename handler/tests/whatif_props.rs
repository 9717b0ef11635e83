//! #15 item 1: what caguard's writes mean for real sign-ins, checked with
//! caguard's own evaluator over thousands of generated tenants:
//!
//! - after any apply in the MSP tenant, no policy caguard wrote blocks a
//!   break-glass account, from any IP;
//! - the service account's only policy is B1's MFA, from any IP;
//! - technicians are blocked by A2 exactly when outside every trusted range;
//! - in a customer tenant after D1, the MSP's service-provider users are in
//!   scope of no policy except those withheld and reported.

use caguard::config::Config;
use caguard::plan::{self, Observed, Op, TenantPlan, to_value};
use caguard::whatif::{self, Answer, Identity, Reason, SignIn, Target};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

mod props;
use props::*;

const TECHNICIAN: u32 = 50;

/// The worst case for an account that must never be locked out: a member of
/// every group generated policies and configs can name.
fn every_group() -> Vec<String> {
    (0..12).map(guid).collect()
}

fn evaluate(o: &Observed, s: &SignIn) -> (Vec<Value>, Vec<Answer>) {
    let policies: Vec<Value> = o.policies.iter().map(to_value).collect();
    let locations: Vec<Value> = o.locations.iter().map(to_value).collect();
    let answers = whatif::evaluate(&policies, &locations, s);
    (policies, answers)
}

fn blocks(p: &Value) -> bool {
    plan::safety::is_block(p)
}

/// The ids of the policies the plan wrote, as they stand after it.
fn written(plan: &TenantPlan, after: &Observed) -> Vec<String> {
    plan.enforced()
        .filter_map(|a| match &a.op {
            Op::UpdatePolicy { id } => Some(id.clone()),
            Op::CreatePolicy => after.policies.iter().find(|p| p.name() == a.target).map(|p| p.id().to_string()),
            _ => None,
        })
        .collect()
}

/// No policy caguard wrote blocks a break-glass account from `ip` (nor could, undecided).
fn break_glass_never_blocked(
    cfg: &Config,
    accounts: &BTreeMap<String, String>,
    plan: &TenantPlan,
    after: &Observed,
    ip: IpAddr,
) -> Result<(), String> {
    let wrote = written(plan, after);
    for bg in &cfg.break_glass {
        let s = SignIn::user(&accounts[bg], every_group(), vec!["All".into()], Some(ip));
        let (policies, answers) = evaluate(after, &s);
        for (p, a) in policies.iter().zip(&answers) {
            let risky = a.applies || a.reason == Reason::NotEnoughInformation;
            if wrote.contains(&a.policy_id) && blocks(p) && risky {
                return Err(format!("\"{}\" blocks break-glass {bg} from {ip} ({:?})", a.name, a.reason));
            }
        }
    }
    Ok(())
}

/// The service account meets its own B1 policy (MFA) and nothing else, from `ip`.
fn service_account_only_mfa(
    cfg: &Config,
    accounts: &BTreeMap<String, String>,
    after: &Observed,
    ip: IpAddr,
) -> Result<(), String> {
    let sa = &cfg.service_accounts[0];
    let s = SignIn::user(&accounts[&sa.account], every_group(), vec!["All".into()], Some(ip));
    let (policies, answers) = evaluate(after, &s);
    for (p, a) in policies.iter().zip(&answers) {
        let in_scope = a.applies || a.reason == Reason::NotEnoughInformation;
        match (in_scope, a.name == sa.policy_name) {
            (true, false) => {
                return Err(format!("\"{}\" applies to the service account from {ip} ({:?})", a.name, a.reason));
            }
            (false, true) => return Err(format!("B1 does not apply from {ip}: {:?}", a.reason)),
            (true, true) if p["grantControls"]["builtInControls"] != json!(["mfa"]) => {
                return Err(format!("B1 grants {}", p["grantControls"]));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A technician is blocked by A2 exactly when `ip` is outside every trusted range.
fn technician_blocked_exactly_outside(cfg: &Config, after: &Observed, ip: IpAddr) -> Result<(), String> {
    let s = SignIn::user(&guid(TECHNICIAN), vec![guid(1)], vec!["All".into()], Some(ip));
    let (_, answers) = evaluate(after, &s);
    let a2 = answers.iter().find(|a| a.name == cfg.lockdowns[0].name).ok_or("no block policy")?;
    let outside = !cfg.sites.iter().flat_map(|s| &s.ranges).any(|r| r.contains(&ip));
    if a2.applies != outside {
        return Err(format!("from {ip} (outside: {outside}) A2 applies: {} ({:?})", a2.applies, a2.reason));
    }
    if !outside && a2.reason != Reason::Location {
        return Err(format!("inside, A2 does not apply for {:?}, not for the location", a2.reason));
    }
    Ok(())
}

/// An IP inside one of the ranges (`inside`), or any public-looking IPv4.
fn ip_for(cfg: &Config, inside: bool, pick: u32) -> IpAddr {
    let ranges: Vec<ipnet::Ipv4Net> = cfg
        .sites
        .iter()
        .flat_map(|s| &s.ranges)
        .filter_map(|r| match r {
            ipnet::IpNet::V4(n) => Some(*n),
            _ => None,
        })
        .collect();
    if inside && !ranges.is_empty() {
        let r = ranges[pick as usize % ranges.len()];
        let size = 1u64 << (32 - r.prefix_len());
        let offset = (u64::from(pick) % size) as u32;
        return IpAddr::V4(Ipv4Addr::from(u32::from(r.network()) + offset));
    }
    IpAddr::V4(Ipv4Addr::from(pick | 0x0100_0000))
}

/// The plan's MSP tenant after apply, unless the plan is held.
fn rolled_out(cfg: &Config, accounts: BTreeMap<String, String>, existing: &[Value]) -> Option<(TenantPlan, Observed)> {
    let o = observed(existing, vec![], accounts);
    let plan = plan::plan_msp(cfg, &o);
    if plan.block.is_some() {
        return None;
    }
    let after = simulate(&o, &plan);
    Some((plan, after))
}

/// caguard's names on generated policies of the right kind (a wrong kind is held, tested elsewhere).
fn fitting(mut existing: Vec<Value>, keep: Vec<bool>) -> Vec<Value> {
    existing = existing.into_iter().zip(keep).filter(|(_, k)| *k).map(|(p, _)| p).collect();
    for p in &mut existing {
        let block = p["displayName"] == "Block CIPP Access - Outside Trusted IPs";
        if block != blocks(p) {
            p["grantControls"]["builtInControls"] = if block { json!(["block"]) } else { json!(["mfa"]) };
        }
    }
    existing
}

const NAMES: [&str; 3] =
    ["Block CIPP Access - Outside Trusted IPs", "Other policy", "CIPP Service Account Conditional Access Policy"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn break_glass_accounts_are_never_blocked_by_what_caguard_wrote(
        (cfg, accounts) in config_strategy(),
        existing in policies(NAMES.to_vec()),
        keep in prop::collection::vec(any::<bool>(), 3),
        inside in any::<bool>(),
        pick in any::<u32>(),
    ) {
        let Some((plan, after)) = rolled_out(&cfg, accounts.clone(), &fitting(existing, keep)) else { return Ok(()) };
        prop_assert_eq!(break_glass_never_blocked(&cfg, &accounts, &plan, &after, ip_for(&cfg, inside, pick)), Ok(()));
    }

    #[test]
    fn the_service_accounts_only_grant_is_its_own_mfa(
        (cfg, accounts) in config_strategy(),
        existing in policies(NAMES.to_vec()),
        keep in prop::collection::vec(any::<bool>(), 3),
        inside in any::<bool>(),
        pick in any::<u32>(),
    ) {
        let Some((_, after)) = rolled_out(&cfg, accounts.clone(), &fitting(existing, keep)) else { return Ok(()) };
        prop_assert_eq!(service_account_only_mfa(&cfg, &accounts, &after, ip_for(&cfg, inside, pick)), Ok(()));
    }

    #[test]
    fn technicians_are_blocked_exactly_outside_every_trusted_range(
        (cfg, accounts) in config_strategy(),
        existing in policies(NAMES.to_vec()),
        keep in prop::collection::vec(any::<bool>(), 3),
        inside in any::<bool>(),
        pick in any::<u32>(),
    ) {
        let Some((_, after)) = rolled_out(&cfg, accounts, &fitting(existing, keep)) else { return Ok(()) };
        prop_assert_eq!(technician_blocked_exactly_outside(&cfg, &after, ip_for(&cfg, inside, pick)), Ok(()));
    }

    #[test]
    fn after_d1_the_msps_service_provider_users_meet_only_withheld_policies(
        pols in policies(vec!["a", "bb", "ccc", "dddd"]),
        pick in any::<u32>(),
    ) {
        let cfg = customer_config(false);
        let o = observed(&pols, vec![], BTreeMap::new());
        let plan = plan::plan_customer(&cfg, &o);
        let after = simulate(&o, &plan);
        let s = SignIn {
            identity: Identity::User { id: String::new(), groups: vec![], roles: vec![], external: Some(("serviceProvider".into(), Some(MSP.into()))) },
            target: Target::Apps(vec!["00000003-0000-0ff1-ce00-000000000000".into()]),
            ..SignIn::user("", vec![], vec![], Some(IpAddr::V4(Ipv4Addr::from(pick))))
        };
        let (_, answers) = evaluate(&after, &s);
        for a in answers.iter().filter(|a| a.applies || a.reason == Reason::NotEnoughInformation) {
            prop_assert!(plan.withheld.iter().any(|w| w.policy_id == a.policy_id), "\"{}\" applies to the MSP's technicians and was not withheld: {:?}", a.name, a.reason);
        }
    }
}

/// The checks can fail: the block policy written without its break-glass
/// exclusion (a mutation of what apply sends) is caught, from outside.
#[test]
fn a_block_policy_without_its_break_glass_exclusion_is_caught() {
    let src = format!(
        "msp_tenant_id = \"{MSP}\"\n[sites]\n\"Office\" = [\"20.1.2.0/24\"]\n[accounts]\ntechnician_groups = [\"{}\"]\nbreak_glass = [\"bg0@msp.example\"]\nservice_account = \"svc@msp.example\"\n[rollout]\nblock_policy = \"enabled\"\n",
        guid(1)
    );
    let cfg = caguard::config::parse(&src).unwrap().0;
    let accounts =
        BTreeMap::from([("bg0@msp.example".to_string(), guid(100)), ("svc@msp.example".to_string(), guid(200))]);
    let o = observed(&[], vec![], accounts.clone());
    let mut plan = plan::plan_msp(&cfg, &o);
    let outside = IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8));
    assert_eq!(break_glass_never_blocked(&cfg, &accounts, &plan, &simulate(&o, &plan), outside), Ok(()));
    let a2 = plan.actions.iter_mut().find(|a| a.control.to_string() == "A2").unwrap();
    a2.body["conditions"]["users"]["excludeUsers"] = json!([guid(200)]);
    let err = break_glass_never_blocked(&cfg, &accounts, &plan, &simulate(&o, &plan), outside).unwrap_err();
    assert!(err.contains("bg0@msp.example"), "{err}");
    let inside = IpAddr::V4(Ipv4Addr::new(20, 1, 2, 9));
    assert_eq!(
        break_glass_never_blocked(&cfg, &accounts, &plan, &simulate(&o, &plan), inside),
        Ok(()),
        "inside, A2 does not apply"
    );
}
