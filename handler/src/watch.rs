//! The minute-level change check (`WatchTimer`, `caguard watch`).
//!
//! Graph change notifications do not cover CA policies or named locations, and
//! audit logs arrive minutes late and are throttled, so each tenant gets one cheap
//! list per tick: policies with `$select=id,modifiedDateTime` (named locations too
//! in the MSP tenant), hashed into a fingerprint. A tenant whose fingerprint moved
//! is reconciled. A changed, deleted or re-created object changes the fingerprint.
//! See `docs/watch.md`.

use crate::config::Config;
use crate::graph::{GraphClient, GraphError};
use crate::model::{ConditionalAccessPolicy, NamedLocation};
use crate::observe::{self, Customer, LOCATIONS, POLICIES};
use crate::store::Store;
use serde::Serialize;
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

/// One tick over the MSP tenant and every active, enforced customer.
pub async fn tick(
    client: &GraphClient,
    config: &Config,
    store: &Arc<dyn Store>,
    concurrency: usize,
) -> Result<TickReport, GraphError> {
    let mut tenants: Vec<Customer> = observe::discover(client, config)
        .await?
        .into_iter()
        .filter(|c| c.active && !config.is_skipped(&c.tenant_id))
        .collect();
    tenants.push(Customer {
        tenant_id: config.msp_tenant_id.clone(),
        name: "MSP tenant".into(),
        active: true,
        status: "msp".into(),
        can_write_ca: None,
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
    let mut report = TickReport::default();
    let mut current = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (c, fp) = done.expect("watch task does not panic");
        match fp {
            Err(e) => report.errors.push((c.tenant_id.clone(), e.to_string())),
            Ok(fp) => {
                match previous.get(&c.tenant_id) {
                    None => report.baseline += 1,
                    Some(old) if *old == fp => report.unchanged += 1,
                    Some(_) => report.changed.push(c.clone()),
                }
                current.insert(c.tenant_id.clone(), fp);
            }
        }
    }
    store
        .put_fingerprints(current)
        .await
        .map_err(|e| GraphError::Invalid { tenant: config.msp_tenant_id.clone(), message: e.to_string() })?;
    report.changed.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
    Ok(report)
}
