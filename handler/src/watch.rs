//! The minute-level change check (`WatchTimer`, `caguard watch`).
//!
//! Graph change notifications do not cover CA policies or named locations, and
//! audit logs arrive minutes late and are throttled, so each tenant gets one cheap
//! list per tick: policies with `$select=id,modifiedDateTime` (named locations too
//! in the MSP tenant), hashed into a fingerprint. A tenant whose fingerprint moved
//! is reconciled. A changed, deleted or re-created object changes the fingerprint.
//!
//! The tenant list is kept in the store between ticks, so a tick costs one list
//! per customer plus one GDAP request: the relationships changed since the newest
//! change seen (`$filter=lastModifiedDateTime ge …`), which finds a new GDAP
//! customer within a tick without Partner Center. GDAP relationships are listed in
//! full again once the list is older than `[watch] rediscover_minutes`, and every
//! sweep and Partner Center event refreshes it on its own discovery. See `docs/watch.md`.

use crate::config::Config;
use crate::graph::{GraphClient, GraphError};
use crate::model::{ConditionalAccessPolicy, NamedLocation};
use crate::observe::{self, Customer, LOCATIONS, POLICIES};
use crate::store::{Store, StoreError};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// What a tick found.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TickReport {
    /// Tenants whose CA objects changed since the last tick: reconcile them.
    pub changed: Vec<Customer>,
    /// Tenants seen for the first time (fingerprint recorded, nothing to compare).
    pub baseline: usize,
    pub unchanged: usize,
    /// Tenants that could not be checked, and why.
    pub errors: Vec<(String, String)>,
    /// This tick listed GDAP relationships (its remembered list was too old or missing).
    pub rediscovered: bool,
    /// Customers with a newly active GDAP relationship, found this tick: reconcile them.
    pub new_tenants: Vec<Customer>,
}

/// Record kind of the watch's tenant list: one record per customer tenant.
const TENANTS: &str = "watch-tenant";
/// The record saying when that list was last discovered.
const DISCOVERED: (&str, &str) = ("watch", "discovered");
/// The newest GDAP relationship change the watch has seen: `{at, ids}`.
const WATERMARK: (&str, &str) = ("watch", "gdap-watermark");

/// Replaces the watch's tenant list with a fresh discovery, writing only what changed.
pub async fn remember_tenants(store: &dyn Store, customers: &[Customer]) -> Result<(), StoreError> {
    let old: BTreeMap<String, Value> = store.records(TENANTS).await?.into_iter().collect();
    let new: BTreeMap<String, Value> = customers
        .iter()
        .map(|c| (c.tenant_id.to_ascii_lowercase(), serde_json::to_value(c).expect("serializable")))
        .collect();
    let put: Vec<(String, Value)> =
        new.iter().filter(|(k, v)| old.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), v.clone())).collect();
    let gone: Vec<String> = old.keys().filter(|k| !new.contains_key(*k)).cloned().collect();
    store.put_records(TENANTS, put).await?;
    store.delete_records(TENANTS, gone).await?;
    let at = chrono::Utc::now().to_rfc3339();
    store.put_record(DISCOVERED.0, DISCOVERED.1, json!({"at": at, "tenants": new.len()})).await
}

/// The tenant list last remembered, however old: what a failed discovery reports on.
pub async fn last_known_tenants(store: &dyn Store) -> Vec<Customer> {
    match store.records(TENANTS).await {
        Ok(rows) => rows.into_iter().filter_map(|(_, v)| serde_json::from_value(v).ok()).collect(),
        Err(e) => {
            tracing::warn!("could not read the last known tenant list: {e}");
            vec![]
        }
    }
}

/// The remembered list, if it is younger than `max_age_minutes`.
async fn remembered(store: &dyn Store, max_age_minutes: i64) -> Result<Option<Vec<Customer>>, StoreError> {
    let at = store
        .records(DISCOVERED.0)
        .await?
        .into_iter()
        .find(|(k, _)| k == DISCOVERED.1)
        .and_then(|(_, v)| v["at"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()));
    let fresh = at.is_some_and(|t| chrono::Utc::now() - t.to_utc() < chrono::Duration::minutes(max_age_minutes));
    if !fresh {
        return Ok(None);
    }
    let mut list = Vec::new();
    for (key, value) in store.records(TENANTS).await? {
        match serde_json::from_value::<Customer>(value) {
            Ok(c) => list.push(c),
            // An unreadable entry: rediscover rather than silently stop watching a tenant.
            Err(e) => {
                tracing::warn!("watch: tenant record {key} is unreadable ({e}); rediscovering");
                return Ok(None);
            }
        }
    }
    Ok(Some(list))
}

/// What the watch knows of GDAP changes: the newest `lastModifiedDateTime` seen,
/// and the relationships changed at that instant (a `ge` filter returns them again).
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, Serialize)]
struct Watermark {
    at: String,
    ids: Vec<String>,
}

impl Watermark {
    fn of(rels: &[crate::model::DelegatedAdminRelationship]) -> Option<Watermark> {
        let at = observe::newest_change(rels)?;
        let ids = rels
            .iter()
            .filter(|r| r.last_modified_date_time.as_ref() == Some(&at))
            .filter_map(|r| r.id.as_ref().cloned())
            .collect();
        Some(Watermark { at, ids })
    }

    fn is_new(&self, r: &crate::model::DelegatedAdminRelationship) -> bool {
        let at = r.last_modified_date_time.as_ref().map_or("", String::as_str);
        at > self.at.as_str() || (at == self.at && !r.id.as_ref().is_some_and(|id| self.ids.contains(id)))
    }
}

async fn watermark(store: &dyn Store) -> Result<Option<Watermark>, StoreError> {
    let rows = store.records(WATERMARK.0).await?;
    Ok(rows.into_iter().find(|(k, _)| k == WATERMARK.1).and_then(|(_, v)| serde_json::from_value(v).ok()))
}

async fn put_watermark(store: &dyn Store, w: Option<Watermark>) -> Result<(), StoreError> {
    match w {
        Some(w) => store.put_record(WATERMARK.0, WATERMARK.1, serde_json::to_value(w).expect("json")).await,
        None => Ok(()),
    }
}

/// The customers to watch, whether GDAP relationships were listed in full for them,
/// and the customers newly active since the last tick.
async fn customers(
    client: &GraphClient,
    config: &Config,
    cipp: Option<&crate::cipp::Cipp>,
    store: &dyn Store,
    rediscover: bool,
) -> Result<(Vec<Customer>, bool, Vec<Customer>), GraphError> {
    let store_err =
        |e: StoreError| GraphError::Invalid { tenant: config.msp_tenant_id.clone(), message: e.to_string() };
    let gdap = config.mode == crate::config::Mode::Gdap;
    if !rediscover && let Some(list) = remembered(store, config.watch_rediscover_minutes).await.map_err(store_err)? {
        let mark = watermark(store).await.map_err(store_err)?;
        let (list, mut new) = match mark {
            // A GDAP outage must not stop the CA watch: the remembered list is watched.
            Some(mark) if gdap => match gdap_changes(client, config, store, list.clone(), &mark).await {
                Ok(changed) => changed,
                Err(e) => {
                    tracing::warn!("watch: the GDAP change check failed ({e}); watching the remembered tenants");
                    (list, vec![])
                }
            },
            // No watermark (relationships without lastModifiedDateTime, or a list
            // remembered by an older caguard): the remembered list is watched, and the
            // next full listing sets one.
            _ => (list, vec![]),
        };
        let (list, new_direct) = direct_changes(config, cipp, store, list).await.map_err(store_err)?;
        new.extend(new_direct);
        return Ok((list, false, new));
    }
    let known = last_known_tenants(store).await;
    let (found, mark) = if gdap {
        let rels = observe::discover_relationships(client, config).await?;
        let direct = observe::direct_customers(config, cipp).await?;
        (observe::with_direct(observe::customers_from(&rels), direct), Watermark::of(&rels))
    } else {
        (observe::discover(client, config, cipp).await?, None)
    };
    remember_tenants(store, &found).await.map_err(store_err)?;
    put_watermark(store, mark).await.map_err(store_err)?;
    // Nothing known before (the first tick): every tenant is a baseline, not news.
    let new = if known.is_empty() { vec![] } else { newly_active(&known, &found) };
    Ok((found, true, new))
}

/// One cheap read per tick (a filtered query of CIPP's `Tenants` table; nothing
/// without `[cipp]`): the direct tenants laid over the remembered list, changes
/// written back, the new ones returned. A tenant no longer direct leaves the list
/// until the next full discovery finds it through GDAP. A table that cannot be read
/// keeps the remembered list (it must not stop the CA watch).
async fn direct_changes(
    config: &Config,
    cipp: Option<&crate::cipp::Cipp>,
    store: &dyn Store,
    list: Vec<Customer>,
) -> Result<(Vec<Customer>, Vec<Customer>), StoreError> {
    let direct = match observe::direct_customers(config, cipp).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("watch: CIPP's direct tenants could not be read ({e}); watching the remembered tenants");
            return Ok((list, vec![]));
        }
    };
    let before = list.clone();
    let after = observe::with_direct(list.into_iter().filter(|c| !c.direct).collect(), direct);
    let key = |c: &Customer| c.tenant_id.to_ascii_lowercase();
    let put: Vec<(String, Value)> = after
        .iter()
        .filter(|c| !before.contains(c))
        .map(|c| (key(c), serde_json::to_value(c).expect("json")))
        .collect();
    let gone: Vec<String> = before.iter().filter(|b| !after.iter().any(|a| key(a) == key(b))).map(key).collect();
    store.put_records(TENANTS, put).await?;
    store.delete_records(TENANTS, gone).await?;
    let new = newly_active(&before, &after);
    Ok((after, new))
}

/// Customers active in `now` that were not active (or not there) in `before`.
fn newly_active(before: &[Customer], now: &[Customer]) -> Vec<Customer> {
    now.iter()
        .filter(|c| c.active && !before.iter().any(|b| b.active && b.tenant_id.eq_ignore_ascii_case(&c.tenant_id)))
        .cloned()
        .collect()
}

/// One cheap request per tick: the relationships changed since the watermark.
/// Each customer they touch is re-read (all its relationships) and its entry in
/// the remembered list replaced; the newly active ones are returned.
async fn gdap_changes(
    client: &GraphClient,
    config: &Config,
    store: &dyn Store,
    mut list: Vec<Customer>,
    mark: &Watermark,
) -> Result<(Vec<Customer>, Vec<Customer>), GraphError> {
    let store_err =
        |e: StoreError| GraphError::Invalid { tenant: config.msp_tenant_id.clone(), message: e.to_string() };
    let changed = observe::relationships_changed_since(client, config, &mark.at).await?;
    let fresh: Vec<_> = changed.iter().filter(|r| mark.is_new(r)).collect();
    if fresh.is_empty() {
        return Ok((list, vec![]));
    }
    let mut touched: Vec<String> =
        fresh.iter().filter_map(|r| r.customer_tenant_id()).map(|t| t.to_ascii_lowercase()).collect();
    touched.sort();
    touched.dedup();
    let before = list.clone();
    let (mut put, mut gone) = (Vec::new(), Vec::new());
    for tenant in touched.iter().filter(|t| crate::config::is_guid(t)) {
        let now = observe::customers_from(&observe::relationships_of(client, config, tenant).await?);
        list.retain(|c| !c.tenant_id.eq_ignore_ascii_case(tenant));
        match now.into_iter().next() {
            Some(c) => {
                put.push((tenant.clone(), serde_json::to_value(&c).expect("json")));
                list.push(c);
            }
            None => gone.push(tenant.clone()),
        }
    }
    store.put_records(TENANTS, put).await.map_err(store_err)?;
    store.delete_records(TENANTS, gone).await.map_err(store_err)?;
    let next = Watermark::of(&changed).filter(|w| w.at >= mark.at);
    put_watermark(store, next).await.map_err(store_err)?;
    let new = newly_active(&before, &list);
    Ok((list, new))
}

/// The fingerprint of a tenant's CA objects: ids and modification times, in order.
pub fn fingerprint(policies: &[ConditionalAccessPolicy], locations: &[NamedLocation]) -> String {
    let mut lines: Vec<String> = policies
        .iter()
        .map(|p| format!("p|{}|{}", p.id(), p.modified_date_time.as_ref().map_or("", String::as_str)))
        .chain(
            locations
                .iter()
                .map(|l| format!("l|{}|{}", l.id(), l.modified_date_time.as_ref().map_or("", String::as_str))),
        )
        .collect();
    lines.sort();
    let digest = Sha256::digest(lines.join("\n").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

const SELECT: &str = "?$select=id,modifiedDateTime";

async fn tenant_fingerprint(client: &GraphClient, tenant: &str, msp: bool) -> Result<String, GraphError> {
    let policies: Vec<ConditionalAccessPolicy> = client.list(tenant, &format!("{POLICIES}{SELECT}")).await?;
    let locations: Vec<NamedLocation> =
        if msp { client.list(tenant, &format!("{LOCATIONS}{SELECT}")).await? } else { vec![] };
    Ok(fingerprint(&policies, &locations))
}

/// One tick over the MSP tenant and every active, enforced customer; `rediscover`
/// lists GDAP relationships even when the remembered list is fresh.
pub async fn tick(
    client: &GraphClient,
    config: &Config,
    cipp: Option<&crate::cipp::Cipp>,
    store: &Arc<dyn Store>,
    concurrency: usize,
    rediscover: bool,
) -> Result<TickReport, GraphError> {
    let (customers, rediscovered, new_tenants) = customers(client, config, cipp, store.as_ref(), rediscover).await?;
    observe::mark_direct(client, &customers).await;
    let mut tenants: Vec<Customer> =
        customers.into_iter().filter(|c| c.active && !config.is_skipped(&c.tenant_id)).collect();
    tenants.push(Customer {
        tenant_id: config.msp_tenant_id.clone(),
        name: "MSP tenant".into(),
        active: true,
        status: "msp".into(),
        can_write_ca: None,
        direct: false,
    });
    let previous = store
        .fingerprints()
        .await
        .map_err(|e| GraphError::Invalid { tenant: config.msp_tenant_id.clone(), message: e.to_string() })?;
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for c in tenants {
        let (client, gate, msp) =
            (client.clone(), gate.clone(), c.tenant_id.eq_ignore_ascii_case(&config.msp_tenant_id));
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("open");
            let fp = tenant_fingerprint(&client, &c.tenant_id, msp).await;
            (c, fp)
        });
    }
    let new_tenants: Vec<Customer> = new_tenants.into_iter().filter(|c| !config.is_skipped(&c.tenant_id)).collect();
    let mut report = TickReport { rediscovered, new_tenants, ..TickReport::default() };
    // Only moved fingerprints are written: a quiet tick writes nothing.
    let mut moved = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (c, fp) = done.expect("watch task does not panic");
        match fp {
            Err(e) => report.errors.push((c.tenant_id.clone(), e.to_string())),
            Ok(fp) => {
                match previous.get(&c.tenant_id) {
                    None => report.baseline += 1,
                    Some(old) if *old == fp => {
                        report.unchanged += 1;
                        continue;
                    }
                    Some(_) => report.changed.push(c.clone()),
                }
                moved.insert(c.tenant_id.clone(), fp);
            }
        }
    }
    store
        .put_fingerprints(moved)
        .await
        .map_err(|e| GraphError::Invalid { tenant: config.msp_tenant_id.clone(), message: e.to_string() })?;
    report.changed.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
    // A new tenant's first fingerprint is a baseline; its reconcile is queued as new, not as drift.
    report.changed.retain(|c| !report.new_tenants.iter().any(|n| n.tenant_id == c.tenant_id));
    Ok(report)
}
