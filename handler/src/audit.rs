//! Who changed an object: the newest `directoryAudit` for it that caguard did not make.
//!
//! caguard signs in with CIPP's own app (or, delegated, as CIPP's service account),
//! so the initiator alone cannot tell caguard's writes from CIPP's: CIPP's standards
//! run as that same app. caguard therefore knows its own writes from its ledger
//! ([`crate::own`]): each write caguard recorded for the object (when it was sent,
//! when it was answered) claims one audit record by caguard's identity stamped
//! inside that span, give or take [`OWN_WRITE_SKEW_MS`] of clock skew (the
//! nearest first, each record claimed once). Any record by caguard's identity
//! left unclaimed is CIPP's, and says so.

use crate::graph::{GraphClient, GraphError};
use crate::model::{Collection, DirectoryAudit};

/// How far outside a write's span its audit record may be stamped (the clocks of
/// caguard and Graph differ a little).
pub const OWN_WRITE_SKEW_MS: i64 = 500;

/// Who changed it and when.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub who: String,
    /// The object id of the user who made it (`None` for an app).
    pub user_id: Option<String>,
    pub when: String,
    pub activity: String,
    /// Made by caguard's identity but not by caguard: CIPP (its standards, or a person in CIPP).
    pub by_cipp: bool,
}

/// What caguard knows of its own writes to one object.
#[derive(Clone, Debug, Default)]
pub struct Own {
    /// The app caguard signs in as (CIPP's SAM app).
    pub app_id: String,
    /// The service account, which delegated writes are made as (id or UPN).
    pub user: Option<String>,
    /// When caguard wrote this object (sent, answered); `None`: no ledger, so every
    /// record by caguard's identity is taken as caguard's (the demo, a run without a store).
    pub writes: Option<Vec<crate::apply::write::Span>>,
}

impl Own {
    fn is_identity(&self, a: &DirectoryAudit) -> bool {
        let Some(by) = a.initiated_by.as_ref() else { return false };
        let app = by.app.as_ref().and_then(|x| x.app_id.as_ref());
        if app.is_some_and(|id| !self.app_id.is_empty() && id.eq_ignore_ascii_case(&self.app_id)) {
            return true;
        }
        let user = by.user.as_ref();
        let names = user.map(|u| [u.id.as_ref().cloned(), u.user_principal_name.as_ref().cloned()]);
        matches!((&self.user, names), (Some(me), Some(ns)) if ns.iter().flatten().any(|n| n.eq_ignore_ascii_case(me)))
    }

    /// Which of `records` are caguard's own writes: each recorded write claims the
    /// nearest unclaimed record by caguard's identity stamped within its span.
    pub fn claimed(&self, records: &[DirectoryAudit]) -> Vec<bool> {
        let mut mine = vec![false; records.len()];
        let Some(writes) = &self.writes else {
            // No ledger: every record by caguard's identity is taken as caguard's.
            return records.iter().map(|a| self.is_identity(a)).collect();
        };
        let at = |a: &DirectoryAudit| {
            a.activity_date_time.as_ref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).map(|t| t.to_utc())
        };
        let mut pairs: Vec<(i64, usize, usize)> = Vec::new();
        for (ri, r) in records.iter().enumerate().filter(|(_, r)| self.is_identity(r)) {
            let Some(t) = at(r) else { continue };
            for (wi, (sent, answered)) in writes.iter().enumerate() {
                let outside = if t < *sent {
                    (*sent - t).num_milliseconds()
                } else if t > *answered {
                    (t - *answered).num_milliseconds()
                } else {
                    0
                };
                if outside <= OWN_WRITE_SKEW_MS {
                    pairs.push((outside, ri, wi));
                }
            }
        }
        pairs.sort();
        let mut used = vec![false; writes.len()];
        for (_, ri, wi) in pairs {
            if !mine[ri] && !used[wi] {
                mine[ri] = true;
                used[wi] = true;
            }
        }
        mine
    }
}

/// The newest change to `object_id` in `tenant` that caguard did not make.
/// `None` when the audit log has no such record (yet): audit latency is minutes at p95.
pub async fn who_changed(
    client: &GraphClient,
    tenant: &str,
    object_id: &str,
    own: &Own,
) -> Result<Option<Change>, GraphError> {
    let filter = format!("targetResources/any(t:t/id eq '{object_id}')");
    let path = format!(
        "/auditLogs/directoryAudits?$top=20&$filter={}",
        url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
    );
    let page: Collection<DirectoryAudit> = client.get(tenant, &path).await?;
    let mine = own.claimed(&page.value);
    let theirs = page.value.into_iter().zip(mine).find(|(_, m)| !m).map(|(a, _)| a);
    Ok(theirs.map(|a| {
        let by_cipp = own.is_identity(&a);
        let who = a.initiated_by.as_ref().map_or_else(|| "unknown".into(), |i| i.describe());
        Change {
            who: if by_cipp { format!("CIPP ({who}; not a caguard write)") } else { who },
            user_id: a.initiated_by.as_ref().and_then(|i| i.user.as_ref()).and_then(|u| u.id.as_ref().cloned()),
            when: a.activity_date_time.into_option().unwrap_or_default(),
            activity: a.activity_display_name.into_option().unwrap_or_default(),
            by_cipp,
        }
    }))
}
