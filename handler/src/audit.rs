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
//!
//! CIPP names what it was doing in the `User-Agent` it sends Graph
//! (`CIPP/<version> (standard:<template id>)`, `(scheduled-task:<id>; user:<upn>)`,
//! `(user:<upn>)`, `(api:<app id>)`: CyberDrain/CIPP
//! `backend/Modules/CIPPCore/Public/GraphHelper/Get-CippUserAgent.ps1`, set by
//! `Push-CIPPStandard.ps1` for standards). Where the audit record keeps that
//! header (its `additionalDetails` entry `User-Agent`), the change is named after
//! it: the standards template, the scheduled task or the CIPP user behind it.

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
    /// Made by caguard's identity but not by caguard, or carrying CIPP's
    /// `User-Agent`: CIPP (its standards, or a person in CIPP).
    pub by_cipp: bool,
    /// What in CIPP made it, when the audit record keeps CIPP's `User-Agent`.
    pub cipp_source: Option<CippSource>,
}

/// What in CIPP made a change, from the `User-Agent` CIPP sent.
#[derive(Clone, Debug, PartialEq)]
pub enum CippSource {
    /// A standard (`standard:<id>`): the id of the standards template that ran it.
    Standard { template_id: String },
    /// A scheduled task, and the CIPP user who scheduled it when known.
    ScheduledTask { task_id: String, user: Option<String> },
    /// A person in CIPP's UI.
    User(String),
    /// A CIPP-API client, by app id.
    Api(String),
    /// CIPP, with no context in its `User-Agent`.
    Cipp,
}

impl std::fmt::Display for CippSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CippSource::Standard { template_id } => write!(f, "CIPP standards template {template_id}"),
            CippSource::ScheduledTask { task_id, user: Some(u) } => {
                write!(f, "CIPP scheduled task {task_id}, scheduled by {u}")
            }
            CippSource::ScheduledTask { task_id, user: None } => write!(f, "CIPP scheduled task {task_id}"),
            CippSource::User(u) => write!(f, "{u} in CIPP"),
            CippSource::Api(id) => write!(f, "CIPP-API client {id}"),
            CippSource::Cipp => write!(f, "CIPP"),
        }
    }
}

impl CippSource {
    /// Parses CIPP's `User-Agent`: `CIPP/<version>`, optionally followed by
    /// `(<source>:<id>; user:<identity>)`. Anything else is not CIPP's.
    pub fn parse(user_agent: &str) -> Option<CippSource> {
        let rest = user_agent.trim().strip_prefix("CIPP/")?;
        let Some((_version, context)) = rest.split_once(" (") else { return Some(CippSource::Cipp) };
        let context = context.strip_suffix(')').unwrap_or(context);
        let mut source = None;
        let mut user = None;
        for segment in context.split(';').map(str::trim) {
            let (key, value) = segment.split_once(':').unwrap_or((segment, ""));
            let value = value.trim().to_string();
            match key.trim() {
                "user" if source.is_some() => user = Some(value).filter(|v| !v.is_empty()),
                "user" if !value.is_empty() => source = Some(CippSource::User(value)),
                "api" if !value.is_empty() => source = Some(CippSource::Api(value)),
                "standard" if !value.is_empty() => source = Some(CippSource::Standard { template_id: value }),
                "scheduled-task" if !value.is_empty() => {
                    source = Some(CippSource::ScheduledTask { task_id: value, user: None })
                }
                _ => {}
            }
        }
        Some(match source {
            Some(CippSource::ScheduledTask { task_id, .. }) => CippSource::ScheduledTask { task_id, user },
            Some(s) => s,
            None => CippSource::Cipp,
        })
    }

    /// From an audit record's `additionalDetails` (`{"key": "User-Agent", "value": …}`).
    pub fn of(a: &DirectoryAudit) -> Option<CippSource> {
        a.additional_details.as_ref()?.iter().find_map(|d| {
            let key = d.get("key")?.as_str()?;
            if !key.eq_ignore_ascii_case("User-Agent") {
                return None;
            }
            CippSource::parse(d.get("value")?.as_str()?)
        })
    }
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
        let cipp_source = CippSource::of(&a);
        let same_identity = own.is_identity(&a);
        let by_cipp = same_identity || cipp_source.is_some();
        let who = a.initiated_by.as_ref().map_or_else(|| "unknown".into(), |i| i.describe());
        let who = match (&cipp_source, same_identity) {
            (Some(CippSource::Cipp) | None, true) => format!("CIPP ({who}; not a caguard write)"),
            (Some(CippSource::Cipp), false) => format!("CIPP ({who})"),
            (Some(source), true) => format!("CIPP ({source}; {who}; not a caguard write)"),
            (Some(source), false) => format!("CIPP ({source}; {who})"),
            (None, false) => who,
        };
        Change {
            who,
            user_id: a.initiated_by.as_ref().and_then(|i| i.user.as_ref()).and_then(|u| u.id.as_ref().cloned()),
            when: a.activity_date_time.into_option().unwrap_or_default(),
            activity: a.activity_display_name.into_option().unwrap_or_default(),
            by_cipp,
            cipp_source,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::CippSource;

    #[test]
    fn cipp_user_agents_name_their_source() {
        let standard = CippSource::parse("CIPP/8.2.0 (standard:0c6b1f0e-7a1e-4a47-9d8c-2f1e3d4c5b6a)");
        assert_eq!(standard, Some(CippSource::Standard { template_id: "0c6b1f0e-7a1e-4a47-9d8c-2f1e3d4c5b6a".into() }));
        let task = CippSource::parse("CIPP/8.2.0 (scheduled-task:abc; user:john@msp.com)").unwrap();
        assert_eq!(task.to_string(), "CIPP scheduled task abc, scheduled by john@msp.com");
        assert_eq!(CippSource::parse("CIPP/8.2.0 (user:john@msp.com)"), Some(CippSource::User("john@msp.com".into())));
        assert_eq!(CippSource::parse("CIPP/8.2.0 (api:1234)"), Some(CippSource::Api("1234".into())));
        assert_eq!(CippSource::parse("CIPP/1.0"), Some(CippSource::Cipp));
        assert_eq!(CippSource::parse("Mozilla/5.0 (CIPP/8.2.0)"), None);
        assert_eq!(CippSource::parse("python-requests/2.31"), None);
    }
}
