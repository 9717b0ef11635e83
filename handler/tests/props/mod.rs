//! Strategies and helpers shared by the planner's property tests: generated
//! policies (with ids drawn from a small pool so they collide with config ids),
//! an in-memory apply with Graph's PATCH semantics, and JSON readers.
#![allow(dead_code)]

use caguard::config::{self, Config, ControlMode};
use caguard::model::{ConditionalAccessPolicy, NamedLocation};
use caguard::plan::{Observed, Op, TenantPlan, merge_patch};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const MSP: &str = "6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7d";

pub fn guid(n: u32) -> String {
    format!("{n:08x}-0000-4000-8000-{n:012x}")
}

/// Ids drawn from a small pool so that generated policies collide with config ids.
pub fn id() -> impl Strategy<Value = String> {
    (0u32..12).prop_map(guid)
}

pub fn ids(max: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(id(), 0..max)
}

pub fn guest_types() -> impl Strategy<Value = String> {
    prop::sample::subsequence(
        vec![
            "internalGuest",
            "b2bCollaborationGuest",
            "b2bCollaborationMember",
            "serviceProvider",
            "otherExternalUser",
        ],
        1..4,
    )
    .prop_map(|v| v.join(","))
}

pub fn external_tenants() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"@odata.type": "#microsoft.graph.conditionalAccessAllExternalTenants", "membershipKind": "all"})),
        prop::collection::vec(prop_oneof![Just(MSP.to_string()), id()], 1..3).prop_map(|m| json!({
            "@odata.type": "#microsoft.graph.conditionalAccessEnumeratedExternalTenants",
            "membershipKind": "enumerated", "members": m, "futureProperty": "kept"
        })),
    ]
}

pub fn guests() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => Just(Value::Null),
        3 => (guest_types(), prop::option::of(external_tenants())).prop_map(|(t, e)| {
            let mut g = json!({"guestOrExternalUserTypes": t});
            if let Some(e) = e { g["externalTenants"] = e; }
            g
        }),
    ]
}

pub fn include_users() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        Just(vec!["All".to_string()]),
        Just(vec!["GuestsOrExternalUsers".to_string()]),
        Just(vec!["None".to_string()]),
        ids(3),
    ]
}

pub fn users() -> impl Strategy<Value = Value> {
    (include_users(), ids(3), ids(2), ids(3), ids(2), ids(2), guests(), guests(), any::<bool>()).prop_map(
        |(iu, eu, ig, eg, ir, er, ig2, eg2, legacy)| {
            let mut eu = eu;
            if legacy {
                eu.push("GuestsOrExternalUsers".into());
            }
            json!({"includeUsers": iu, "excludeUsers": eu, "includeGroups": ig, "excludeGroups": eg,
                   "includeRoles": ir, "excludeRoles": er,
                   "includeGuestsOrExternalUsers": ig2, "excludeGuestsOrExternalUsers": eg2})
        },
    )
}

pub fn policy(name: String) -> impl Strategy<Value = Value> {
    (
        users(),
        prop::sample::select(vec!["enabled", "disabled", "enabledForReportingButNotEnforced"]),
        prop::sample::subsequence(vec!["mfa", "compliantDevice", "domainJoinedDevice"], 1..3),
        any::<bool>(),
        prop::option::of(ids(2)),
        any::<bool>(),
    )
        .prop_map(move |(users, state, grant, block, locations, session)| {
            let grant: Vec<&str> = if block { vec!["block"] } else { grant };
            json!({
                "id": format!("p-{}", name.len()) + &name,
                "displayName": name,
                "state": state,
                "templateId": null,
                "unmodelledProperty": {"kept": true},
                "conditions": {
                    "users": users,
                    "applications": {"includeApplications": ["All"], "excludeApplications": []},
                    "clientAppTypes": ["all"],
                    "locations": locations.map(|l| json!({"includeLocations": ["All"], "excludeLocations": l})),
                    "platforms": null
                },
                "grantControls": {"operator": "OR", "builtInControls": grant},
                "sessionControls": if session { json!({"signInFrequency": {"isEnabled": true, "value": 4, "type": "hours", "frequencyInterval": "timeBased"}}) } else { Value::Null }
            })
        })
}

pub fn policies(names: Vec<&'static str>) -> impl Strategy<Value = Vec<Value>> {
    let strategies: Vec<_> = names.into_iter().map(|n| policy(n.to_string())).collect();
    strategies.prop_map(|v| v)
}

pub fn config_strategy() -> impl Strategy<Value = (Config, BTreeMap<String, String>)> {
    (
        // /10 or longer: at most three ranges cannot merge into the /8 Graph refuses
        // (config::sites), which two /9 halves of one /8 would.
        prop::collection::vec((1u8..=223, 0u8..=255, 10u8..=32), 1..4),
        1usize..4,
        prop::option::of(id()),
        any::<bool>(),
    )
        .prop_map(|(ranges, bg, tech_user, enabled)| {
            let cidrs: Vec<String> = ranges.iter().map(|(a, b, p)| format!("\"{a}.{b}.0.0/{p}\"")).collect();
            let bgs: Vec<String> = (0..bg).map(|i| format!("\"bg{i}@msp.example\"")).collect();
            let tech = tech_user.map(|u| format!("technician_users = [\"{u}\"]")).unwrap_or_default();
            let src = format!(
                "msp_tenant_id = \"{MSP}\"\n[sites]\n\"Office\" = [{}]\n[accounts]\ntechnician_groups = [\"{}\"]\n{tech}\nbreak_glass = [{}]\nservice_account = \"svc@msp.example\"\n[rollout]\nblock_policy = \"{}\"\n",
                cidrs.join(", "),
                guid(1),
                bgs.join(", "),
                if enabled { "enabled" } else { "reportOnly" },
            );
            let (cfg, _) = config::parse(&src).unwrap_or_else(|e| panic!("{e}\n{src}"));
            let mut accounts = BTreeMap::new();
            for i in 0..bg {
                accounts.insert(format!("bg{i}@msp.example"), guid(100 + i as u32));
            }
            accounts.insert("svc@msp.example".into(), guid(200));
            (cfg, accounts)
        })
}

pub fn typed(policies: &[Value]) -> Vec<ConditionalAccessPolicy> {
    policies.iter().map(|p| serde_json::from_value(p.clone()).unwrap()).collect()
}

pub fn observed(policies: &[Value], locations: Vec<NamedLocation>, accounts: BTreeMap<String, String>) -> Observed {
    Observed {
        tenant_id: MSP.into(),
        tenant_name: "t".into(),
        policies: typed(policies),
        locations,
        security_defaults: false,
        p1: Some(true),
        gdap_can_write_ca: Some(true),
        accounts,
        ..Default::default()
    }
}

/// Applies a plan in memory with Graph's PATCH semantics, as apply would.
pub fn simulate(o: &Observed, plan: &TenantPlan) -> Observed {
    let mut policies: Vec<Value> = o.policies.iter().map(|p| serde_json::to_value(p).unwrap()).collect();
    let mut locations: Vec<Value> = o.locations.iter().map(|l| serde_json::to_value(l).unwrap()).collect();
    let mut created = BTreeMap::new();
    let resolve = |v: &Value, created: &BTreeMap<String, String>| {
        let s = v.to_string();
        let s = created.iter().fold(s, |s, (k, id)| s.replace(&format!("\"{k}\""), &format!("\"{id}\"")));
        serde_json::from_str::<Value>(&s).unwrap()
    };
    for (i, a) in plan.actions.iter().filter(|a| a.mode == ControlMode::Enforce).enumerate() {
        let body = resolve(&a.body, &created);
        match &a.op {
            Op::CreateLocation => {
                let id = format!("loc-{i}");
                created.insert(format!("location:{}", a.target), id.clone());
                let mut l = body;
                l["id"] = json!(id);
                locations.push(l);
            }
            Op::CreatePolicy => {
                let mut p = body;
                p["id"] = json!(format!("new-{i}"));
                policies.push(p);
            }
            Op::UpdatePolicy { id } => merge_patch(policies.iter_mut().find(|p| p["id"] == json!(id)).unwrap(), &body),
            Op::UpdateLocation { id } => {
                merge_patch(locations.iter_mut().find(|l| l["id"] == json!(id)).unwrap(), &body)
            }
        }
    }
    Observed {
        policies: typed(&policies),
        locations: locations.into_iter().map(|l| serde_json::from_value(l).unwrap()).collect(),
        ..o.clone()
    }
}

pub fn strings_at(v: &Value, ptr: &str) -> Vec<String> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_ascii_lowercase)).collect())
        .unwrap_or_default()
}

pub fn flags(v: &Value, ptr: &str) -> Vec<String> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .map(|s| s.split(',').map(|f| f.trim().to_string()).collect())
        .unwrap_or_default()
}

/// A customer-side config (GDAP or direct mode).
pub fn customer_config(direct: bool) -> Config {
    let src = format!(
        "msp_tenant_id = \"{MSP}\"\nmode = \"{}\"\n[sites]\n\"Office\" = [\"20.1.2.0/24\"]\n[accounts]\ntechnician_groups = [\"{}\"]\nbreak_glass = [\"bg@msp.example\"]\nservice_account = \"svc@msp.example\"\n",
        if direct { "direct" } else { "gdap" },
        guid(1)
    );
    config::parse(&src).unwrap().0
}
