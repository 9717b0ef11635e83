//! Observe: what each tenant looks like now, read as cheaply as Graph allows.
//!
//! A customer tenant costs one `$batch` (policies — the only CA request — plus
//! security defaults and licences); more only when its policy list pages.

use crate::config::{Config, Mode};
use crate::graph::{GraphClient, GraphError};
use crate::model::{
    BatchRequestItem, Collection, ConditionalAccessPolicy, NamedLocation, SecurityDefaultsPolicy, SubscribedSku, User,
};
use crate::plan::{Observed, Unreadable};
use serde::de::DeserializeOwned;

mod customers;
pub use customers::*;
use std::collections::BTreeMap;

pub const POLICIES: &str = "/identity/conditionalAccess/policies";
pub const LOCATIONS: &str = "/identity/conditionalAccess/namedLocations";
const SECURITY_DEFAULTS: &str = "/policies/identitySecurityDefaultsEnforcementPolicy";
const SKUS: &str = "/subscribedSkus?$select=skuPartNumber,capabilityStatus,servicePlans";
/// The default domain, which CIPP names tenants by (its alerts, its tables).
const ORGANIZATION: &str = "/organization?$select=id,displayName,verifiedDomains";
/// The user caguard signs in as: a direct tenant's service account when none is configured.
const SIGNED_IN: &str = "/me?$select=id,userPrincipalName";

fn item(id: &str, url: &str) -> BatchRequestItem {
    BatchRequestItem {
        id: id.to_string().into(),
        method: "GET".to_string().into(),
        url: url.to_string().into(),
        ..Default::default()
    }
}

/// Decodes one batch answer, or turns its error status into a `GraphError`.
fn answer<T: DeserializeOwned>(
    tenant: &str,
    url: &str,
    responses: &[crate::model::BatchResponseItem],
    id: &str,
) -> Result<T, GraphError> {
    let r = responses.iter().find(|r| r.id.as_ref().is_some_and(|i| i == id)).ok_or_else(|| GraphError::Decode {
        tenant: tenant.into(),
        url: url.into(),
        request_id: String::new(),
        message: format!("batch answer {id} missing"),
    })?;
    let status = r.status.as_ref().copied().unwrap_or(0);
    let body = r.body.as_ref().cloned().unwrap_or(serde_json::Value::Null);
    if !(200..300).contains(&status) {
        let err = body.get("error");
        let text = |k: &str| err.and_then(|e| e.get(k)).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        return Err(GraphError::Api {
            tenant: tenant.into(),
            method: "GET".into(),
            url: url.into(),
            status,
            code: text("code"),
            message: text("message"),
            request_id: r.headers.as_ref().and_then(|h| h.get("request-id")).cloned().unwrap_or_default(),
            retries: 0,
        });
    }
    serde_json::from_value(body).map_err(|e| GraphError::Decode {
        tenant: tenant.into(),
        url: url.into(),
        request_id: String::new(),
        message: e.to_string(),
    })
}

/// Policies from a first page, following nextLink for the rest, each read on its own.
async fn all_policies(
    client: &GraphClient,
    tenant: &str,
    first: Collection<serde_json::Value>,
) -> Result<(Vec<ConditionalAccessPolicy>, Vec<Unreadable>), GraphError> {
    let mut raw = first.value;
    if let Some(next) = first.next_link.into_option() {
        raw.extend(client.list::<serde_json::Value>(tenant, &next).await?);
    }
    Ok(read_policies(raw))
}

/// Reads each policy into the models. One that does not fit (say `"locations": []`)
/// is reported by name and left alone; the rest of the tenant is still planned.
pub fn read_policies(raw: Vec<serde_json::Value>) -> (Vec<ConditionalAccessPolicy>, Vec<Unreadable>) {
    let mut policies = Vec::with_capacity(raw.len());
    let mut unreadable = Vec::new();
    for v in raw {
        let text = |k: &str| v.get(k).and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
        let (id, name) = (text("id"), text("displayName"));
        // A property of a shape Graph's schema cannot hold is kept verbatim by the
        // models (`Maybe::Raw`), but such a policy is not planned: it is left alone.
        match crate::model::misshapen(|| serde_json::from_value::<ConditionalAccessPolicy>(v)) {
            (Ok(p), None) => policies.push(p),
            (Ok(_), Some(why)) => unreadable.push(Unreadable { id, name, error: why }),
            (Err(e), _) => unreadable.push(Unreadable { id, name, error: e.to_string() }),
        }
    }
    (policies, unreadable)
}

/// One policy as Graph has it now; `None` when it no longer exists.
pub async fn policy(
    client: &GraphClient,
    tenant: &str,
    id: &str,
) -> Result<Option<ConditionalAccessPolicy>, GraphError> {
    match client.get::<ConditionalAccessPolicy>(tenant, &format!("{POLICIES}/{id}")).await {
        Ok(p) => Ok(Some(p)),
        Err(e) if e.status() == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One named location as Graph has it now; `None` when it does not exist (yet).
pub async fn location(client: &GraphClient, tenant: &str, id: &str) -> Result<Option<NamedLocation>, GraphError> {
    match client.get::<NamedLocation>(tenant, &format!("{LOCATIONS}/{id}")).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.status() == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads a customer tenant: one `$batch` with the CA policy list, security defaults and licences.
pub async fn customer(client: &GraphClient, config: &Config, c: &Customer) -> Result<Observed, GraphError> {
    let t = &c.tenant_id;
    let direct = c.direct || config.mode == Mode::Direct;
    if direct {
        client.mark_direct(t).await;
    }
    let wanted = if direct { config.direct_service_accounts(t) } else { vec![] };
    let signed_in = wanted.contains(&crate::config::SIGNED_IN_ACCOUNT);
    let mut items = vec![item("1", POLICIES), item("2", SECURITY_DEFAULTS), item("3", SKUS), item("4", ORGANIZATION)];
    if signed_in {
        items.push(item("5", SIGNED_IN));
    }
    let responses = client.batch(t, items).await?;
    let first: Collection<serde_json::Value> = answer(t, POLICIES, &responses, "1")?;
    let defaults: SecurityDefaultsPolicy = answer(t, SECURITY_DEFAULTS, &responses, "2")?;
    let skus: Collection<SubscribedSku> = answer(t, SKUS, &responses, "3")?;
    let (default_domain, org_name) = organization(t, &responses, "4");
    // A tenant listed only by id (`scope.direct_tenants`) is named by its organization.
    let tenant_name = match org_name {
        Some(name) if c.name.eq_ignore_ascii_case(t) => name,
        _ => c.name.clone(),
    };
    let mut accounts = BTreeMap::new();
    // App-only tokens have no signed-in user: Graph answers 400, and D2 says
    // which setting names the account instead.
    if signed_in
        && let Ok(me) = answer::<User>(t, SIGNED_IN, &responses, "5")
        && let Some(id) = me.id.into_option()
    {
        accounts.insert(crate::config::SIGNED_IN_ACCOUNT.to_string(), id);
    }
    let named: Vec<String> =
        wanted.iter().filter(|a| **a != crate::config::SIGNED_IN_ACCOUNT).map(|a| a.to_string()).collect();
    if !named.is_empty() {
        resolve_users(client, t, &named, &mut accounts, &mut BTreeMap::new()).await?;
    }
    let (policies, unreadable) = all_policies(client, t, first).await?;
    Ok(Observed {
        tenant_id: t.clone(),
        tenant_name,
        policies,
        unreadable,
        owned: BTreeMap::new(),
        ledger: false,
        upns: BTreeMap::new(),
        group_names: BTreeMap::new(),
        locations: vec![],
        security_defaults: defaults.is_enabled.as_ref().copied().unwrap_or(false),
        p1: Some(skus.value.iter().any(SubscribedSku::grants_p1)),
        gdap_can_write_ca: c.can_write_ca,
        accounts,
        default_domain,
        direct,
        promote: BTreeMap::new(),
    })
}

/// The organization from a batch answer: its default verified domain and its
/// name. Both `None` (not an error) when it could not be read: they only name the tenant.
fn organization(t: &str, responses: &[crate::model::BatchResponseItem], id: &str) -> (Option<String>, Option<String>) {
    let Ok(orgs) = answer::<Collection<serde_json::Value>>(t, ORGANIZATION, responses, id) else { return (None, None) };
    let Some(org) = orgs.value.first() else { return (None, None) };
    let domains = org.get("verifiedDomains").and_then(serde_json::Value::as_array);
    let default = domains.and_then(|d| d.iter().find(|d| d["isDefault"] == true).or(d.first()));
    let name = org.get("displayName").and_then(serde_json::Value::as_str).filter(|n| !n.is_empty());
    (default.and_then(|d| d["name"].as_str()).map(str::to_string), name.map(str::to_string))
}

/// Reads the MSP tenant: policies, named locations (two CA requests, paced),
/// and in batches security defaults, licences, the configured accounts and the
/// groups excluded from the policies caguard owns. With a store, `owned` holds
/// the ids caguard recorded there ([`crate::owned`]).
pub async fn msp(
    client: &GraphClient,
    config: &Config,
    ledger: Option<&dyn crate::store::Store>,
) -> Result<Observed, GraphError> {
    let t = &config.msp_tenant_id;
    let mut raw = client.list::<serde_json::Value>(t, POLICIES).await?;
    if crate::beta::needed(config) {
        crate::beta::overlay(client, t, &mut raw).await?;
    }
    let (policies, unreadable) = read_policies(raw);
    let locations = client.list::<NamedLocation>(t, LOCATIONS).await?;
    let responses =
        client.batch(t, vec![item("1", SECURITY_DEFAULTS), item("2", SKUS), item("3", ORGANIZATION)]).await?;
    let defaults: SecurityDefaultsPolicy = answer(t, SECURITY_DEFAULTS, &responses, "1")?;
    let skus: Collection<SubscribedSku> = answer(t, SKUS, &responses, "2")?;
    let (default_domain, _) = organization(t, &responses, "3");
    let wanted: Vec<String> = config.msp_accounts().into_iter().map(|(_, a)| a.to_string()).collect();
    let mut accounts = BTreeMap::new();
    let mut upns = BTreeMap::new();
    resolve_users(client, t, &wanted, &mut accounts, &mut upns).await?;
    let owned = match ledger {
        Some(store) => crate::owned::load(store).await,
        None => BTreeMap::new(),
    };
    let groups = owned_policy_groups(config, &owned, &policies);
    let group_names = resolve_groups(client, t, &groups).await?;
    Ok(Observed {
        tenant_id: t.clone(),
        tenant_name: "MSP tenant".into(),
        policies,
        unreadable,
        owned,
        ledger: ledger.is_some(),
        locations,
        security_defaults: defaults.is_enabled.as_ref().copied().unwrap_or(false),
        p1: Some(skus.value.iter().any(SubscribedSku::grants_p1)),
        gdap_can_write_ca: None,
        accounts,
        upns,
        group_names,
        default_domain,
        direct: false,
        promote: BTreeMap::new(),
    })
}

/// The groups excluded from the policies caguard owns (by recorded id or by name).
fn owned_policy_groups(
    config: &Config,
    owned: &BTreeMap<String, String>,
    policies: &[ConditionalAccessPolicy],
) -> Vec<String> {
    let mut out: Vec<String> = policies
        .iter()
        .filter(|p| {
            owned.values().any(|id| id.eq_ignore_ascii_case(p.id()))
                || config.owned_policy_names().iter().any(|n| p.name().eq_ignore_ascii_case(n))
        })
        .filter_map(|p| p.users())
        .flat_map(|u| crate::model::list(&u.exclude_groups).iter().map(|g| g.to_ascii_lowercase()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// GETs `/<collection>/<key>?$select=<select>` for each key, 20 to a `$batch`;
/// yields each key with its object, or `None` where it could not be read.
async fn lookup<T: DeserializeOwned>(
    client: &GraphClient,
    tenant: &str,
    collection: &str,
    select: &str,
    keys: &[String],
) -> Result<Vec<(String, Option<T>)>, GraphError> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(crate::model::MAX_BATCH) {
        let items: Vec<BatchRequestItem> = chunk
            .iter()
            .enumerate()
            .map(|(i, k)| item(&i.to_string(), &format!("/{collection}/{}?$select={select}", urlencode(k))))
            .collect();
        let responses = client.batch(tenant, items).await?;
        for (i, k) in chunk.iter().enumerate() {
            let found = answer::<T>(tenant, &format!("/{collection}"), &responses, &i.to_string()).ok();
            out.push((k.clone(), found));
        }
    }
    Ok(out)
}

/// Group id → display name. A group that cannot be read is left out (so it is
/// not taken for a vacation group).
async fn resolve_groups(
    client: &GraphClient,
    tenant: &str,
    ids: &[String],
) -> Result<BTreeMap<String, String>, GraphError> {
    let found = lookup::<serde_json::Value>(client, tenant, "groups", "id,displayName", ids).await?;
    Ok(found.into_iter().filter_map(|(g, v)| Some((g, v?.get("displayName")?.as_str()?.to_string()))).collect())
}

/// Resolves object ids or UPNs to object ids (and each id to its UPN). Unknown
/// users are left out: the planner holds on them.
async fn resolve_users(
    client: &GraphClient,
    tenant: &str,
    wanted: &[String],
    out: &mut BTreeMap<String, String>,
    upns: &mut BTreeMap<String, String>,
) -> Result<(), GraphError> {
    for (u, user) in lookup::<User>(client, tenant, "users", "id,userPrincipalName", wanted).await? {
        let Some(user) = user else { continue };
        let Some(id) = user.id.into_option() else { continue };
        if let Some(upn) = user.user_principal_name.into_option() {
            upns.insert(id.to_ascii_lowercase(), upn);
        }
        out.insert(u.to_ascii_lowercase(), id);
    }
    Ok(())
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
