//! Large generated estates for benchmarks: one MSP tenant and N customers with
//! 5–40 policies each (a few with 150+), every customer already excluding the
//! MSP's service-provider users, so a sweep over them is clean.

use crate::estate::{App, Estate, RefreshTokenSpec, TenantSpec};
use serde_json::{Value, json};

pub const MSP_TENANT: &str = "6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7d";
pub const APP_ID: &str = "3c9f8e21-5a4b-4d6c-8e7f-1a2b3c4d5e6f";
pub const APP_SECRET: &str = "sim-secret-3c9f8e21";

fn guid(rng: &mut fastrand::Rng) -> String {
    crate::state::guid_from(std::array::from_fn(|_| rng.u8(..)))
}

fn user(rng: &mut fastrand::Rng, name: &str, upn: &str) -> Value {
    json!({"id": guid(rng), "displayName": name, "userPrincipalName": upn, "userType": "Member"})
}

/// A customer policy that already excludes the MSP's service-provider users.
fn policy(rng: &mut fastrand::Rng, i: usize) -> Value {
    let states = ["enabled", "disabled", "enabledForReportingButNotEnforced"];
    let users = match i % 3 {
        0 => {
            json!({"includeUsers": ["All"], "excludeUsers": [], "includeGroups": [], "excludeGroups": [], "includeRoles": [], "excludeRoles": []})
        }
        1 => {
            json!({"includeUsers": [], "excludeUsers": [], "includeGroups": [], "excludeGroups": [], "includeRoles": ["62e90394-69f5-4237-9190-012177145e10"], "excludeRoles": []})
        }
        _ => {
            json!({"includeUsers": [], "excludeUsers": [], "includeGroups": [guid(rng)], "excludeGroups": [guid(rng)], "includeRoles": [], "excludeRoles": []})
        }
    };
    let mut users = users;
    users["excludeGuestsOrExternalUsers"] = json!({
        "guestOrExternalUserTypes": "serviceProvider",
        "externalTenants": {"@odata.type": "#microsoft.graph.conditionalAccessEnumeratedExternalTenants",
                            "membershipKind": "enumerated", "members": [MSP_TENANT]}
    });
    json!({
        "id": guid(rng), "displayName": format!("Policy {i:03}"), "createdDateTime": "2025-06-01T09:00:00.0000000Z",
        "modifiedDateTime": "2025-06-01T09:00:00.0000000Z", "templateId": null, "state": states[i % 3],
        "sessionControls": null,
        "conditions": {"userRiskLevels": [], "signInRiskLevels": [], "clientAppTypes": ["all"], "platforms": null,
                       "locations": null, "times": null, "deviceStates": null,
                       "applications": {"includeApplications": ["All"], "excludeApplications": [], "includeUserActions": [],
                                        "includeAuthenticationContextClassReferences": []},
                       "users": users},
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"], "customAuthenticationFactors": [], "termsOfUse": []}
    })
}

/// An estate of `tenants` customers, reproducible from `seed`. A `drift`
/// fraction of customers have three policies that apply to service-provider
/// users without the MSP's exclusion (work for D1).
pub fn generate(tenants: usize, seed: u64, drift: f64) -> Estate {
    let mut rng = fastrand::Rng::with_seed(seed);
    let techs: Vec<Value> =
        (0..3).map(|i| user(&mut rng, &format!("Tech {i}"), &format!("tech{i}@msp.example"))).collect();
    let mut users = techs.clone();
    users.push(user(&mut rng, "Break Glass 1", "bg1@msp.example"));
    users.push(user(&mut rng, "Break Glass 2", "bg2@msp.example"));
    let service = user(&mut rng, "CIPP Service Account", "cipp-svc@msp.example");
    users.push(service.clone());
    let group = json!({"id": "a1b2c3d4-0000-4000-8000-00000000beef", "displayName": "CIPP Technicians",
                       "members": techs.iter().map(|t| t["id"].clone()).collect::<Vec<_>>()});
    let msp = TenantSpec {
        id: MSP_TENANT.into(),
        display_name: "MSP".into(),
        default_domain: "msp.example".into(),
        p1: true,
        consented: true,
        users,
        groups: vec![group],
        ..Default::default()
    };
    let mut specs = vec![msp];
    let mut relationships = Vec::new();
    for t in 0..tenants {
        let id = guid(&mut rng);
        // 5–40 policies; one tenant in 200 has 150 up to Entra's cap of 195.
        let n = if rng.usize(0..200) == 0 { rng.usize(150..=crate::objects::MAX_POLICIES) } else { rng.usize(5..=40) };
        let mut policies: Vec<Value> = (0..n).map(|i| policy(&mut rng, i)).collect();
        if rng.f64() < drift {
            // Policies 0, 1 and 3 target all users or roles: D1 applies to them.
            for i in [0, 1, 3] {
                if let Some(users) = policies[i]["conditions"]["users"].as_object_mut() {
                    users.remove("excludeGuestsOrExternalUsers");
                }
            }
        }
        specs.push(TenantSpec {
            id: id.clone(),
            display_name: format!("Customer {t:05}"),
            default_domain: format!("customer{t:05}.example"),
            p1: true,
            consented: true,
            policies,
            ..Default::default()
        });
        relationships.push(json!({
            "@odata.type": "#microsoft.graph.delegatedAdminRelationship", "id": format!("{}-rel", guid(&mut rng)),
            "displayName": format!("GDAP Customer {t:05}"), "duration": "P730D",
            "customer": {"tenantId": id, "displayName": format!("Customer {t:05}")},
            "accessDetails": {"unifiedRoles": [{"roleDefinitionId": "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9"}]},
            "status": "active",
            // Graph always sets it (read-only, stamped on every change); customers were
            // onboarded one after another, a minute apart, not all in the same instant.
            "lastModifiedDateTime": onboarded(t)
        }));
    }
    Estate {
        msp_tenant_id: MSP_TENANT.into(),
        apps: vec![App { client_id: APP_ID.into(), client_secret: APP_SECRET.into(), display_name: "CIPP-SAM".into() }],
        refresh_tokens: vec![RefreshTokenSpec {
            token: "sim-refresh-token-cipp".into(),
            client_id: APP_ID.into(),
            user_id: service["id"].as_str().unwrap_or_default().into(),
            user_principal_name: "cipp-svc@msp.example".into(),
            tenant_id: None,
        }],
        relationships,
        tenants: specs,
        cipp_sites: vec![],
    }
}

/// When customer `t` was onboarded: a minute after the one before it.
fn onboarded(t: usize) -> String {
    let start = chrono::DateTime::parse_from_rfc3339("2025-01-10T11:26:44.9941884Z").expect("a valid stamp");
    (start + chrono::Duration::minutes(t as i64)).to_utc().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_reproducible_and_sized() {
        let a = super::generate(50, 7, 0.1);
        let b = super::generate(50, 7, 0.1);
        assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
        assert_eq!(a.tenants.len(), 51);
        assert!(a.tenants[1..].iter().all(|t| t.policies.len() >= 5));
    }
}
