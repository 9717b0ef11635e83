//! Which customer tenants there are: GDAP relationships (active ones become
//! customers, each with its newest relationship's dates) and direct-mode tenants
//! from the config or CIPP.

use crate::config::{Config, Mode};
use crate::graph::{GraphClient, GraphError};
use crate::model::{DelegatedAdminRelationship, RelationshipStatus};
use std::collections::BTreeMap;

/// A customer tenant found through GDAP (or listed for direct mode).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    pub tenant_id: String,
    pub name: String,
    /// Has an active relationship (always true in direct mode).
    pub active: bool,
    /// The relationships' status when none is active.
    pub status: String,
    /// An active relationship grants a role that can write CA; `None` in direct mode.
    pub can_write_ca: Option<bool>,
    /// CIPP manages it directly (its `Tenants` table says `directTenant`, or
    /// `scope.direct_tenants` lists it): reached with its own refresh token, and its
    /// policies exclude its service account (D2) rather than the MSP's
    /// service-provider users.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub direct: bool,
}

impl Customer {
    /// How a newly found customer is named in the watch's output and queue reasons.
    pub fn arrival(&self) -> &'static str {
        if self.direct { "new direct tenant" } else { "new GDAP customer" }
    }

    /// A tenant CIPP manages directly.
    pub fn direct(tenant_id: &str, name: &str) -> Customer {
        Customer {
            tenant_id: tenant_id.to_ascii_lowercase(),
            name: name.to_string(),
            active: true,
            status: "direct".into(),
            can_write_ca: None,
            direct: true,
        }
    }
}

/// Finds the customer tenants: GDAP relationships of the MSP tenant (none in
/// direct mode) and the direct tenants (the config's and CIPP's), one entry per
/// tenant. The client is told which are direct, before any token is asked for.
pub async fn discover(
    client: &GraphClient,
    config: &Config,
    cipp: Option<&crate::cipp::Cipp>,
) -> Result<Vec<Customer>, GraphError> {
    let direct = direct_customers(config, cipp).await?;
    let gdap = if config.mode == Mode::Direct {
        vec![]
    } else {
        customers_from(&client.list::<DelegatedAdminRelationship>(&config.msp_tenant_id, RELATIONSHIPS).await?)
    };
    let found = with_direct(gdap, direct);
    mark_direct(client, &found).await;
    Ok(found)
}

/// The direct tenants: `scope.direct_tenants`, then CIPP's `Tenants` table when
/// caguard can read it. A table that cannot be read fails discovery (a direct
/// tenant taken for a GDAP one would be asked with the wrong token).
pub async fn direct_customers(config: &Config, cipp: Option<&crate::cipp::Cipp>) -> Result<Vec<Customer>, GraphError> {
    let mut out: Vec<Customer> = config.direct_tenants.iter().map(|t| Customer::direct(t, t)).collect();
    if let Some(cipp) = cipp {
        let listed = crate::cipp::tenants::direct_tenants(&cipp.client, &cipp.tables.tenants)
            .await
            .map_err(|message| GraphError::Invalid { tenant: config.msp_tenant_id.clone(), message })?;
        for t in listed {
            match out.iter_mut().find(|c| c.tenant_id == t.tenant_id) {
                Some(c) => c.name = t.name,
                None => out.push(Customer::direct(&t.tenant_id, &t.name)),
            }
        }
    }
    out.retain(|c| !c.tenant_id.eq_ignore_ascii_case(&config.msp_tenant_id));
    Ok(out)
}

/// `gdap` with the direct tenants laid over it: a tenant CIPP manages directly is
/// direct even when it also has a GDAP relationship (CIPP's `Get-GraphToken.ps1`
/// uses the direct tenant's own token then too). Entries once direct and no longer
/// listed as direct are dropped from `gdap` by the caller's fresh list.
pub fn with_direct(gdap: Vec<Customer>, direct: Vec<Customer>) -> Vec<Customer> {
    let mut out: Vec<Customer> =
        gdap.into_iter().filter(|c| !direct.iter().any(|d| d.tenant_id.eq_ignore_ascii_case(&c.tenant_id))).collect();
    out.extend(direct);
    out.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
    out
}

/// Tells the client which tenants are direct (idempotent).
pub async fn mark_direct(client: &GraphClient, customers: &[Customer]) {
    for c in customers.iter().filter(|c| c.direct) {
        client.mark_direct(&c.tenant_id).await;
    }
}

const RELATIONSHIPS: &str = "/tenantRelationships/delegatedAdminRelationships?$top=300";

/// The customers a set of relationships describe: one per customer tenant, active
/// when any of its relationships is, able to write CA when an active one grants it.
pub fn customers_from(rels: &[DelegatedAdminRelationship]) -> Vec<Customer> {
    let mut by_tenant: BTreeMap<String, Customer> = BTreeMap::new();
    for r in rels {
        let Some(tid) = r.customer_tenant_id() else { continue };
        let tid = tid.to_ascii_lowercase();
        if !crate::config::is_guid(&tid) {
            // It would go into token and Graph URLs: never used, said once per discovery.
            let shown: String = tid.chars().take(60).collect();
            tracing::warn!(
                "GDAP relationship {:?} names a customer tenant id that is not a GUID ('{shown}'); ignored",
                r.id.as_ref()
            );
            continue;
        }
        let name = r.customer.as_ref().and_then(|c| c.display_name.as_ref()).cloned().unwrap_or_else(|| tid.clone());
        let active = r.status.as_ref() == Some(&RelationshipStatus::Active);
        let c = by_tenant.entry(tid.clone()).or_insert_with(|| Customer {
            tenant_id: tid,
            name,
            active: false,
            status: String::new(),
            can_write_ca: Some(false),
            direct: false,
        });
        if active {
            c.active = true;
            c.can_write_ca = Some(c.can_write_ca == Some(true) || r.can_write_conditional_access());
        } else if !c.active {
            c.status = r.status.as_ref().map_or("unknown".into(), ToString::to_string);
        }
    }
    by_tenant.into_values().collect()
}

/// The newest `lastModifiedDateTime` among `rels` (Graph's own text, so it can be
/// handed back in a `$filter` unchanged).
pub fn newest_change(rels: &[DelegatedAdminRelationship]) -> Option<String> {
    rels.iter().filter_map(|r| r.last_modified_date_time.as_ref().cloned()).max()
}

/// The relationships changed at or after `since`, oldest first: one request in a
/// quiet estate. Graph documents `$filter`, `$orderby` and `$top` (up to 300) on
/// this list (v1.0 reference, "List delegatedAdminRelationships").
pub async fn relationships_changed_since(
    client: &GraphClient,
    config: &Config,
    since: &str,
) -> Result<Vec<DelegatedAdminRelationship>, GraphError> {
    let path = format!(
        "/tenantRelationships/delegatedAdminRelationships?$filter={}&$orderby=lastModifiedDateTime%20asc&$top=300",
        url::form_urlencoded::byte_serialize(format!("lastModifiedDateTime ge {since}").as_bytes()).collect::<String>()
    );
    client.list(&config.msp_tenant_id, &path).await
}

/// Every relationship with one customer tenant (after one of them changed).
pub async fn relationships_of(
    client: &GraphClient,
    config: &Config,
    tenant: &str,
) -> Result<Vec<DelegatedAdminRelationship>, GraphError> {
    let filter = format!("customer/tenantId eq '{}'", tenant.replace('\'', "''"));
    let path = format!(
        "/tenantRelationships/delegatedAdminRelationships?$filter={}&$top=300",
        url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
    );
    client.list(&config.msp_tenant_id, &path).await
}

/// Relationships and the customers they describe, for the watch's watermark.
pub async fn discover_relationships(
    client: &GraphClient,
    config: &Config,
) -> Result<Vec<DelegatedAdminRelationship>, GraphError> {
    client.list(&config.msp_tenant_id, RELATIONSHIPS).await
}
