//! A mixed estate (GDAP and direct tenants) in one run, as CIPP runs it: CIPP's
//! `Tenants` table (on Azurite) marks the direct tenants, each direct tenant is
//! reached with its own refresh token (the Key Vault secret named after it), and
//! one sweep leaves GDAP tenants excluding the MSP's service-provider users (D1)
//! and direct tenants excluding the user caguard signs in as there (D2).

use caguard::cipp::Cipp;
use caguard::graph::{CredentialSource, Credentials, GraphClient, GraphConfig};
use caguard::sweep::{self, SweepOptions};
use caguard_e2e::{Azurite, unique_table, unique_tables};
use caguard_sim::{Estate, RefreshTokenSpec, SimOptions, TenantSpec};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Key Vault as CIPP fills it: `RefreshToken` for the partner, one secret per direct tenant.
struct Vault {
    partner: Credentials,
    tenants: Mutex<HashMap<String, String>>,
    tenant_reads: Mutex<Vec<String>>,
}

impl CredentialSource for Vault {
    fn load(&self) -> Fut<'_, Result<Credentials, String>> {
        let c = self.partner.clone();
        Box::pin(async move { Ok(c) })
    }
    fn load_tenant(&self, tenant: &str) -> Fut<'_, Result<Option<String>, String>> {
        let t = self.tenants.lock().unwrap().get(tenant).cloned();
        self.tenant_reads.lock().unwrap().push(tenant.to_string());
        Box::pin(async move { Ok(t) })
    }
}

const SVC_ID: &str = "d1d1d1d1-0000-4000-8000-00000000000";

/// The sample estate plus two direct tenants, each with its own service account and token.
fn mixed_estate() -> (Estate, Vec<(String, String)>) {
    let mut estate = caguard_sim::sample_estate();
    let template = estate.tenants.iter().find(|t| t.display_name == "Fabrikam Dental").unwrap().clone();
    let mut direct = vec![];
    for (i, name) in ["Direct Dental", "Direct Legal"].iter().enumerate() {
        let id = format!("d0d0d0d0-0000-4000-8000-00000000000{i}");
        let svc = format!("{SVC_ID}{i}");
        let mut t: TenantSpec = template.clone();
        t.id = id.clone();
        t.display_name = name.to_string();
        t.default_domain = format!("direct{i}.onmicrosoft.com");
        t.users.push(json!({"id": svc, "displayName": "CIPP direct account",
                            "userPrincipalName": format!("cipp@direct{i}.onmicrosoft.com")}));
        estate.tenants.push(t);
        let token = format!("direct-refresh-token-{i}");
        estate.refresh_tokens.push(RefreshTokenSpec {
            token: token.clone(),
            client_id: estate.apps[0].client_id.clone(),
            user_id: svc,
            user_principal_name: format!("cipp@direct{i}.onmicrosoft.com"),
            tenant_id: Some(id.clone()),
        });
        direct.push((id, token));
    }
    (estate, direct)
}

fn partner(estate: &Estate) -> Credentials {
    Credentials::RefreshToken {
        client_id: estate.apps[0].client_id.clone(),
        client_secret: Some(estate.apps[0].client_secret.clone()),
        refresh_token: estate.refresh_tokens[0].token.clone(),
    }
}

async fn cipp_with_direct(az: &Azurite, direct: &[(String, String)]) -> Cipp {
    let client = az.client();
    let tables = unique_tables();
    client.create_table(&tables.tenants).await.unwrap();
    // Invoke-ExecAddTenant.ps1's row for a direct tenant, and a GDAP row that must not count.
    for (i, (id, _)) in direct.iter().enumerate() {
        let row: Map<String, Value> = json!({"customerId": id, "displayName": format!("Direct {i}"),
            "defaultDomainName": format!("direct{i}.onmicrosoft.com"),
            "delegatedPrivilegeStatus": "directTenant", "Excluded": false})
        .as_object()
        .unwrap()
        .clone();
        client.insert(&tables.tenants, "Tenants", id, &row).await.unwrap();
    }
    let gdap = json!({"customerId": "11111111-2222-4333-8444-555555555555", "displayName": "GDAP row",
        "delegatedPrivilegeStatus": "granularDelegatedAdminPrivileges", "Excluded": false});
    client.insert(&tables.tenants, "Tenants", "gdap", gdap.as_object().unwrap()).await.unwrap();
    Cipp { client, tables }
}

fn excluded_users(spec: &TenantSpec) -> Vec<Vec<String>> {
    let enabled = spec.policies.iter().filter(|p| p["state"] != "disabled");
    enabled
        .map(|p| {
            let ex = p.pointer("/conditions/users/excludeUsers").and_then(Value::as_array).cloned().unwrap_or_default();
            ex.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_covers_gdap_and_direct_tenants_each_with_its_own_token() {
    let az = Azurite::start();
    let (estate, direct) = mixed_estate();
    let sim = caguard_sim::start(estate.clone(), SimOptions::default()).await.unwrap();
    let cipp = cipp_with_direct(&az, &direct).await;
    // Direct Legal's secret in Key Vault is stale (CIPP rotated it since): the first
    // token request fails with invalid_grant, caguard reads the secret again and goes on.
    let vault = Arc::new(Vault {
        partner: partner(&estate),
        tenants: Mutex::new(HashMap::from([
            (direct[0].0.clone(), direct[0].1.clone()),
            (direct[1].0.clone(), "stale-token".to_string()),
        ])),
        tenant_reads: Mutex::new(vec![]),
    });
    let source = vault.clone();
    let stale_fixer = tokio::spawn({
        let (id, token) = direct[1].clone();
        let vault = vault.clone();
        async move {
            // Swap in the rotated token once caguard has read the stale one.
            loop {
                if vault.tenant_reads.lock().unwrap().contains(&id) {
                    vault.tenants.lock().unwrap().insert(id, token);
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    });
    let client = GraphClient::new(GraphConfig::for_base(&sim.base_url), source).unwrap();
    let config = caguard::demo::sample_config(&estate);
    let opts = SweepOptions { apply: true, confirmed: true, cipp: Some(cipp), ..Default::default() };
    let report = sweep::run(&client, &config, &opts).await.unwrap();
    stale_fixer.abort();
    assert!(report.discovery_error.is_none(), "{:?}", report.discovery_error);

    // Both direct tenants were swept and now exclude their own signed-in account from every enabled policy.
    for (i, (id, _)) in direct.iter().enumerate() {
        let t = report.tenants.iter().find(|t| t.plan.tenant_id == *id).unwrap_or_else(|| panic!("{id} swept"));
        assert!(t.plan.block.is_none(), "{id}: {:?}", t.plan.block);
        let spec = sim.tenant(id).unwrap();
        for ex in excluded_users(&spec) {
            assert!(ex.contains(&format!("{SVC_ID}{i}")), "{id} excludes its direct account: {ex:?}");
        }
        let sp = spec
            .policies
            .iter()
            .filter(|p| p.pointer("/conditions/users/excludeGuestsOrExternalUsers").is_some_and(|v| !v.is_null()));
        assert_eq!(sp.count(), 0, "{id}: no service-provider exclusion in a direct tenant");
    }
    // The stale secret was read again after invalid_grant.
    let reads = vault.tenant_reads.lock().unwrap().clone();
    assert!(reads.iter().filter(|t| **t == direct[1].0).count() >= 2, "re-read after invalid_grant: {reads:?}");

    // A GDAP tenant got D1 in the same run.
    let fabrikam = estate.tenants.iter().find(|t| t.display_name == "Fabrikam Dental").unwrap();
    let spec = sim.tenant(&fabrikam.id).unwrap();
    let members = spec.policies[0].pointer("/conditions/users/excludeGuestsOrExternalUsers/externalTenants/members");
    assert!(
        members.is_some_and(|m| m.as_array().unwrap().contains(&json!(estate.msp_tenant_id))),
        "{:?}",
        spec.policies[0]
    );

    // A second plan is empty everywhere, the direct tenants included.
    let again =
        sweep::run(&client, &config, &SweepOptions { cipp: opts.cipp.clone(), ..Default::default() }).await.unwrap();
    for (id, _) in &direct {
        let t = again.tenants.iter().find(|t| t.plan.tenant_id == *id).unwrap();
        assert!(t.plan.actions.is_empty(), "{id}: {:?}", t.plan.actions);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_partner_token_is_refused_in_a_direct_tenant_and_the_error_names_the_secret() {
    let (estate, direct) = mixed_estate();
    let sim = caguard_sim::start(estate.clone(), SimOptions::default()).await.unwrap();
    let login = format!("{}/{}/oauth2/v2.0/token", sim.base_url, direct[0].0);
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", estate.apps[0].client_id.as_str()),
        ("client_secret", estate.apps[0].client_secret.as_str()),
        ("refresh_token", estate.refresh_tokens[0].token.as_str()),
    ];
    let answer = reqwest::Client::new().post(&login).form(&form).send().await.unwrap();
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    // A direct tenant's own token reaches only its tenant.
    let other = format!("{}/{}/oauth2/v2.0/token", sim.base_url, direct[1].0);
    let form = [form[0], form[1], form[2], ("refresh_token", direct[0].1.as_str())];
    let answer = reqwest::Client::new().post(&other).form(&form).send().await.unwrap();
    assert_eq!(answer.status(), 400, "a direct token used in another tenant");

    // Marked direct with no secret: the error names the Key Vault secret CIPP would keep.
    let vault =
        Arc::new(Vault { partner: partner(&estate), tenants: Mutex::default(), tenant_reads: Mutex::default() });
    let client = GraphClient::new(GraphConfig::for_base(&sim.base_url), vault).unwrap();
    client.mark_direct(&direct[0].0).await;
    let err = client.get::<Value>(&direct[0].0, "/organization").await.unwrap_err().to_string();
    assert!(err.contains(&format!("Key Vault secret named '{}'", direct[0].0)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cipp_without_a_tenants_table_has_no_direct_tenants_and_a_table_it_cannot_read_fails_discovery() {
    let az = Azurite::start();
    let estate = caguard_sim::sample_estate();
    let config = caguard::demo::sample_config(&estate);
    let mut cipp = cipp_with_direct(&az, &[]).await;
    cipp.tables.tenants = unique_table("NoSuchTable");
    let found = caguard::observe::direct_customers(&config, Some(&cipp)).await.unwrap();
    let ids: Vec<&str> = found.iter().map(|c| c.tenant_id.as_str()).collect();
    assert_eq!(ids.len(), config.direct_tenants.len(), "only the configured ones: {found:?}");
    assert!(config.direct_tenants.iter().all(|t| ids.contains(&t.as_str())), "{found:?}");
    // A name Table Storage refuses is an error, never "no direct tenants".
    cipp.tables.tenants = "bad-name!".into();
    let err = caguard::observe::direct_customers(&config, Some(&cipp)).await.unwrap_err().to_string();
    assert!(err.contains("bad-name!"), "{err}");
}
