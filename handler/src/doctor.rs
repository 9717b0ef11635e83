//! `caguard doctor`: checks, against the live tenants, what each feature needs:
//! the Graph permissions (by reading what each feature reads: a 403 names the
//! missing permission), consent in each customer tenant, and GDAP access
//! assignments that actually give the service account's group a role that can
//! write Conditional Access (a relationship's roles alone do not). One line per
//! gap, with the fix. Writes nothing.

use crate::config::{Config, Mode};
use crate::graph::{GraphClient, GraphError};
use crate::model::{Collection, DelegatedAdminRelationship, User, roles};
use crate::observe::{LOCATIONS, POLICIES};
use serde_json::Value;
use std::collections::BTreeMap;

/// One thing missing, and how to fix it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Gap {
    pub tenant: String,
    pub feature: String,
    pub problem: String,
    pub fix: String,
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GAP {}: {}: {}. Fix: {}", self.tenant, self.feature, self.problem, self.fix)
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    pub checks: usize,
    pub gaps: Vec<Gap>,
}

/// A read a feature makes, and the grant it needs.
struct Probe {
    feature: &'static str,
    path: String,
    fix: &'static str,
}

const CA_FIX: &str = "grant the app Policy.Read.All and Policy.ReadWrite.ConditionalAccess (application) with admin \
                      consent; in delegated mode the service account needs Conditional Access Administrator";

fn msp_probes(config: &Config) -> Vec<Probe> {
    let cipp = &config.cipp_service_account().account;
    let user = url::form_urlencoded::byte_serialize(cipp.as_bytes()).collect::<String>();
    let mut p = vec![
        Probe { feature: "A2/B1/B2 Conditional Access policies", path: format!("{POLICIES}?$select=id"), fix: CA_FIX },
        Probe { feature: "A1 named locations", path: format!("{LOCATIONS}?$select=id"), fix: CA_FIX },
        Probe {
            feature: "who changed it (audit log)",
            path: "/auditLogs/directoryAudits?$top=1".into(),
            fix: "grant AuditLog.Read.All and Directory.Read.All (application) with admin consent",
        },
        Probe {
            feature: "accounts (break-glass, service account, technicians)",
            path: format!("/users/{user}?$select=id"),
            fix: "grant User.Read.All (or Directory.Read.All) with admin consent, and check accounts.service_account",
        },
    ];
    if config.mode == Mode::Gdap {
        p.push(Probe {
            feature: "D1 GDAP discovery",
            path: "/tenantRelationships/delegatedAdminRelationships?$top=1".into(),
            fix: "grant DelegatedAdminRelationship.Read.All (application) with admin consent in the partner tenant",
        });
    }
    p
}

fn describe(e: &GraphError) -> String {
    match e.status() {
        Some(s) => format!("Graph answered {s}: {}", crate::logging::bounded(&e.to_string())),
        None => crate::logging::bounded(&e.to_string()),
    }
}

/// A gap for a failed probe; token failures say consent, 403 the permission.
fn gap_for(tenant: &str, p: &Probe, e: &GraphError) -> Gap {
    let text = e.to_string();
    let token = e.status().is_none() && (text.contains("consent") || text.contains("token"));
    let fix = if token {
        "consent CIPP's app in this tenant (CIPP: Tenant Administration → refresh permissions / CPV consent)".into()
    } else {
        p.fix.to_string()
    };
    Gap { tenant: tenant.into(), feature: p.feature.into(), problem: describe(e), fix }
}

async fn probe(client: &GraphClient, tenant: &str, name: &str, p: &Probe, report: &mut Report) -> bool {
    report.checks += 1;
    match client.get::<Value>(tenant, &p.path).await {
        Ok(_) => true,
        Err(e) => {
            report.gaps.push(gap_for(name, p, &e));
            false
        }
    }
}

/// Runs every check. Never fails: what it cannot check is itself a gap.
/// `test_email` sends one test message through the email channel, the only way to
/// know `Mail.Send` is granted (a permission Graph does not let an app read back).
pub async fn run(client: &GraphClient, config: &Config, cipp: Option<&crate::cipp::Cipp>, test_email: bool) -> Report {
    let mut report = Report::default();
    let msp = &config.msp_tenant_id;
    let msp_name = format!("MSP tenant ({msp})");
    for p in msp_probes(config) {
        probe(client, msp, &msp_name, &p, &mut report).await;
    }
    email(client, config, test_email, &msp_name, &mut report).await;
    cipp_app(client, config, &msp_name, &mut report).await;
    let customers = match crate::observe::discover(client, config, cipp).await {
        Ok(c) => c,
        Err(_) => return report, // the GDAP probe above already names the gap
    };
    let customer_probe =
        Probe { feature: "D1/D2 Conditional Access policies", path: format!("{POLICIES}?$select=id"), fix: CA_FIX };
    for c in customers.iter().filter(|c| c.active && !config.is_skipped(&c.tenant_id)) {
        let name = format!("{} ({})", c.name, c.tenant_id);
        probe(client, &c.tenant_id, &name, &customer_probe, &mut report).await;
    }
    if config.mode == Mode::Gdap {
        assignments(client, config, &customers, &mut report).await;
    }
    report
}

/// The email channel: its mailbox exists, and (with `test_email`) `sendMail` works.
async fn email(client: &GraphClient, config: &Config, test_email: bool, msp_name: &str, report: &mut Report) {
    let a = &config.alerts;
    let Some(from) = a.email_from.as_deref().filter(|_| !a.email_to.is_empty()) else { return };
    let user = url::form_urlencoded::byte_serialize(from.as_bytes()).collect::<String>();
    let p = Probe {
        feature: "email alerts (mailbox)",
        path: format!("/users/{user}?$select=id"),
        fix: "set [alerts] email_from to a mailbox in the MSP tenant",
    };
    if !probe(client, &config.msp_tenant_id, msp_name, &p, report).await || !test_email {
        return;
    }
    report.checks += 1;
    let body = serde_json::json!({
        "message": {
            "subject": "caguard doctor: test alert",
            "body": {"contentType": "Text", "content": "caguard doctor sent this to check the email alert channel."},
            "toRecipients": a.email_to.iter().map(|t| serde_json::json!({"emailAddress": {"address": t}})).collect::<Vec<_>>()
        },
        "saveToSentItems": false
    });
    if let Err(e) = client.post_no_content(&config.msp_tenant_id, &format!("/users/{user}/sendMail"), &body).await {
        report.gaps.push(Gap {
            tenant: msp_name.into(),
            feature: "email alerts (Mail.Send)".into(),
            problem: format!("sendMail from {from} failed: {}", describe(&e)),
            fix: "app-only: add Mail.Send as an application permission (CIPP's SAM app holds it only delegated) and \
                  consent, ideally limited to this mailbox by an application access policy; delegated: send from a \
                  mailbox the service account may send as"
                .into(),
        });
    }
}

/// A3: the configured CIPP sign-in app is an application (a service principal)
/// in the MSP tenant; a policy on an app id that is not there protects nothing.
async fn cipp_app(client: &GraphClient, config: &Config, msp_name: &str, report: &mut Report) {
    let Some(app) = &config.cipp_app else { return };
    report.checks += 1;
    let path = format!("/servicePrincipals?$filter=appId eq '{}'&$select=id,appId,displayName", app.app_id);
    let problem = match client.get::<Collection<Value>>(&config.msp_tenant_id, &path).await {
        Ok(list) if !list.value.is_empty() => return,
        Ok(_) => format!(
            "cipp_app.app_id {} is not an application in the MSP tenant, so \"{}\" would protect nothing",
            app.app_id, app.policy_name
        ),
        Err(e) => format!("could not look up cipp_app.app_id {}: {}", app.app_id, describe(&e)),
    };
    report.gaps.push(Gap {
        tenant: msp_name.into(),
        feature: "A3 MFA on the CIPP app".into(),
        problem,
        fix: "set cipp_app.app_id to the Application (client) ID of the app CIPP signs in with: CIPP-SSO (App registrations) \
              for self-hosted CIPP, or the \"Azure Static Web Apps\" enterprise application for classic CIPP; reading it needs Application.Read.All"
            .into(),
    });
}

fn can_write_ca(role: &str) -> bool {
    [roles::CONDITIONAL_ACCESS_ADMINISTRATOR, roles::SECURITY_ADMINISTRATOR, roles::GLOBAL_ADMINISTRATOR]
        .contains(&role)
}

/// For every active relationship: some active access assignment must give a role
/// that can write CA to a security group the service account is a member of.
async fn assignments(
    client: &GraphClient,
    config: &Config,
    customers: &[crate::observe::Customer],
    report: &mut Report,
) {
    let msp = &config.msp_tenant_id;
    let cipp = &config.cipp_service_account().account;
    let user = url::form_urlencoded::byte_serialize(cipp.as_bytes()).collect::<String>();
    let Ok(svc) = client.get::<User>(msp, &format!("/users/{user}?$select=id")).await else { return };
    let svc_id = svc.id.into_option().unwrap_or_default().to_ascii_lowercase();
    let Ok(rels) = crate::observe::discover_relationships(client, config).await else { return };
    let mut members: BTreeMap<String, bool> = BTreeMap::new();
    // Direct tenants are reached with their own token, not through GDAP.
    for c in customers.iter().filter(|c| c.active && !c.direct && !config.is_skipped(&c.tenant_id)) {
        report.checks += 1;
        let name = format!("{} ({})", c.name, c.tenant_id);
        let active: Vec<&DelegatedAdminRelationship> = rels
            .iter()
            .filter(|r| r.customer_tenant_id().is_some_and(|t| t.eq_ignore_ascii_case(&c.tenant_id)))
            .filter(|r| r.status.as_ref() == Some(&crate::model::RelationshipStatus::Active))
            .collect();
        if !active.iter().any(|r| r.can_write_conditional_access()) {
            report.gaps.push(Gap {
                tenant: name,
                feature: "D1 GDAP roles".into(),
                problem: "no active GDAP relationship grants a role that can write Conditional Access".into(),
                fix: "add Conditional Access Administrator (or Security Administrator) to the relationship".into(),
            });
            continue;
        }
        let mut ok = false;
        for r in active.iter().filter(|r| r.can_write_conditional_access()) {
            let id = r.id.as_ref().cloned().unwrap_or_default();
            let path = format!("/tenantRelationships/delegatedAdminRelationships/{id}/accessAssignments");
            let list: Collection<Value> = match client.get(msp, &path).await {
                Ok(l) => l,
                Err(e) => {
                    report.gaps.push(Gap {
                        tenant: name.clone(),
                        feature: "D1 GDAP access assignments".into(),
                        problem: format!("could not read relationship {id}'s access assignments: {}", describe(&e)),
                        fix: "grant DelegatedAdminRelationship.Read.All (application) in the partner tenant".into(),
                    });
                    ok = true; // said once, as its own gap
                    break;
                }
            };
            for a in list.value.iter().filter(|a| a["status"] == "active") {
                let grants = a["accessDetails"]["unifiedRoles"]
                    .as_array()
                    .is_some_and(|rs| rs.iter().any(|x| x["roleDefinitionId"].as_str().is_some_and(can_write_ca)));
                let Some(group) = a["accessContainer"]["accessContainerId"].as_str() else { continue };
                if grants && member(client, msp, group, &svc_id, &mut members).await {
                    ok = true;
                }
            }
        }
        if !ok {
            report.gaps.push(Gap {
                tenant: name,
                feature: "D1 GDAP access assignments".into(),
                problem: format!(
                    "the relationship grants a role that can write Conditional Access, but no active access assignment \
                     gives it to a security group {} is a member of",
                    cipp
                ),
                fix: format!(
                    "assign Conditional Access Administrator on the relationship to a security group (CIPP names it \
                     'M365 GDAP Conditional Access Administrator') and add {} to that group",
                    cipp
                ),
            });
        }
    }
}

async fn member(client: &GraphClient, msp: &str, group: &str, user: &str, cache: &mut BTreeMap<String, bool>) -> bool {
    if let Some(hit) = cache.get(group) {
        return *hit;
    }
    let path = format!("/groups/{group}/members?$select=id");
    let found = match client.list::<Value>(msp, &path).await {
        Ok(list) => list.iter().any(|m| m["id"].as_str().is_some_and(|id| id.eq_ignore_ascii_case(user))),
        Err(_) => false,
    };
    cache.insert(group.to_string(), found);
    found
}
