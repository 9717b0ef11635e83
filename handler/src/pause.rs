//! Pause and resume (#13): the people on call can always stop caguard.
//!
//! A pause covers everything, one tenant, one control, or one tenant's control.
//! It has a reason, who set it, and an expiry; it is kept in the store (records
//! of kind `pause`) so the CLI, the Functions app and every function honour the
//! same pauses. `CAGUARD_PAUSED=true` in the app settings is a full stop that
//! needs no store. A paused tenant is skipped (its drift is still planned and
//! shown); a paused control is planned in `report` mode, so nothing is written
//! for it. An expired pause is never honoured: it is removed, and said so.

use crate::config::{Config, Control, ControlMode};
use crate::store::Store;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Store record kind.
pub const KIND: &str = "pause";
/// How long a pause lasts when no expiry is given.
pub const DEFAULT_HOURS: i64 = 24;
/// The longest pause: a week (a longer stop is `CAGUARD_PAUSED`, or `off` in config).
pub const MAX_HOURS: i64 = 24 * 7;

/// What a pause covers: nothing named means everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<Control>,
}

impl Scope {
    /// A scope from what a person typed: the tenant must be a GUID, the control a known one.
    pub fn parse(tenant: Option<&str>, control: Option<&str>) -> Result<Scope, String> {
        let tenant = match tenant.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) if crate::config::is_guid(t) => Some(t.to_ascii_lowercase()),
            Some(t) => return Err(format!("tenant '{}' is not a tenant id (a GUID)", crate::logging::bounded(t))),
            None => None,
        };
        let control =
            match control.map(str::trim).filter(|c| !c.is_empty()) {
                Some(c) => Some(Control::parse(c).ok_or_else(|| {
                    format!("control '{}' is not one of caguard's controls", crate::logging::bounded(c))
                })?),
                None => None,
            };
        Ok(Scope { tenant, control })
    }

    /// The record key (safe as a table key).
    pub fn key(&self) -> String {
        match (&self.tenant, &self.control) {
            (None, None) => "all".into(),
            (Some(t), None) => format!("tenant-{t}"),
            (None, Some(c)) => format!("control-{c}"),
            (Some(t), Some(c)) => format!("tenant-{t}-control-{c}"),
        }
    }

    fn covers_tenant(&self, tenant: &str) -> bool {
        self.tenant.as_deref().is_none_or(|t| t.eq_ignore_ascii_case(tenant))
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.tenant, &self.control) {
            (None, None) => f.write_str("everything"),
            (Some(t), None) => write!(f, "tenant {t}"),
            (None, Some(c)) => write!(f, "control {c} in every tenant"),
            (Some(t), Some(c)) => write!(f, "control {c} in tenant {t}"),
        }
    }
}

/// One pause.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pause {
    pub scope: Scope,
    pub reason: String,
    pub by: String,
    pub at: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

impl Pause {
    pub fn new(scope: Scope, reason: &str, by: &str, hours: i64, now: DateTime<Utc>) -> Result<Pause, String> {
        if reason.trim().is_empty() {
            return Err("a pause needs a reason (--reason)".into());
        }
        if !(1..=MAX_HOURS).contains(&hours) {
            return Err(format!("a pause lasts between 1 and {MAX_HOURS} hours, not {hours}"));
        }
        Ok(Pause {
            scope,
            reason: crate::logging::bounded(reason.trim()),
            by: crate::logging::bounded(by),
            at: now,
            expires: now + chrono::Duration::hours(hours),
        })
    }

    /// One line: what, by whom, until when, why, and how to resume.
    pub fn describe(&self) -> String {
        let resume = match (&self.scope.tenant, &self.scope.control) {
            (None, None) => "caguard resume".to_string(),
            (Some(t), None) => format!("caguard resume --tenant {t}"),
            (None, Some(c)) => format!("caguard resume --control {c}"),
            (Some(t), Some(c)) => format!("caguard resume --tenant {t} --control {c}"),
        };
        format!(
            "paused ({}) by {} until {}: {}; resume with `{resume}`",
            self.scope,
            self.by,
            self.expires.format("%Y-%m-%d %H:%M UTC"),
            self.reason
        )
    }
}

/// The pauses in force, read once per run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pauses(pub Vec<Pause>);

impl Pauses {
    /// The pause that stops a whole tenant (everything, or that tenant), if any.
    pub fn tenant(&self, tenant: &str) -> Option<&Pause> {
        self.0.iter().find(|p| p.scope.control.is_none() && p.scope.covers_tenant(tenant))
    }

    /// The controls paused in a tenant.
    pub fn controls(&self, tenant: &str) -> Vec<Control> {
        self.0.iter().filter(|p| p.scope.covers_tenant(tenant)).filter_map(|p| p.scope.control).collect()
    }

    /// The config a tenant is planned with: each paused control in `report` mode
    /// (its drift is shown, nothing is written for it). A control set `off` stays off.
    pub fn effective(&self, config: &Config, tenant: &str) -> Config {
        let mut c = config.clone();
        for control in self.controls(tenant) {
            if c.control(control) == ControlMode::Enforce {
                c.controls.insert(control, ControlMode::Report);
            }
        }
        c
    }
}

/// The full stop from the app settings: `CAGUARD_PAUSED=true` (reason in `CAGUARD_PAUSED_REASON`).
pub fn from_env() -> Option<Pause> {
    let on = std::env::var("CAGUARD_PAUSED").is_ok_and(|v| matches!(v.trim(), "true" | "1" | "yes"));
    on.then(|| Pause {
        scope: Scope::default(),
        reason: std::env::var("CAGUARD_PAUSED_REASON").unwrap_or_else(|_| "CAGUARD_PAUSED is set".into()),
        by: "app setting CAGUARD_PAUSED".into(),
        at: Utc::now(),
        // Until the setting is removed; shown as far ahead.
        expires: Utc::now() + chrono::Duration::days(3650),
    })
}

/// Records a pause (replacing one of the same scope).
pub async fn pause(store: &dyn Store, p: &Pause) -> Result<(), String> {
    let v = serde_json::to_value(p).expect("serializable");
    store.put_record(KIND, &p.scope.key(), v).await.map_err(|e| format!("could not record the pause: {e}"))
}

/// Removes the pause of exactly this scope; returns whether there was one.
pub async fn resume(store: &dyn Store, scope: &Scope) -> Result<bool, String> {
    let key = scope.key();
    let existed = store.records(KIND).await.map_err(|e| e.to_string())?.iter().any(|(k, _)| *k == key);
    if existed {
        store.delete_record(KIND, &key).await.map_err(|e| format!("could not remove the pause: {e}"))?;
    }
    Ok(existed)
}

/// The pauses in force now (the app-setting stop included), and those that have
/// expired, which are removed from the store so they are reported once. When the
/// pauses cannot be read, caguard does not know whether it may write: that is a
/// full stop for this run, saying why.
pub async fn load(store: Option<&dyn Store>, now: DateTime<Utc>) -> (Pauses, Vec<Pause>) {
    let mut active: Vec<Pause> = from_env().into_iter().collect();
    let mut expired = Vec::new();
    if let Some(store) = store {
        let rows = match store.records(KIND).await {
            Ok(rows) => rows,
            Err(e) => {
                active.push(Pause {
                    scope: Scope::default(),
                    reason: format!(
                        "the pauses could not be read from the store ({e}), so nothing is written this run"
                    ),
                    by: "caguard".into(),
                    at: now,
                    expires: now + chrono::Duration::hours(1),
                });
                return (Pauses(active), expired);
            }
        };
        for (key, v) in rows {
            match serde_json::from_value::<Pause>(v) {
                Ok(p) if p.expires > now => active.push(p),
                Ok(p) => {
                    let _ = store.delete_record(KIND, &key).await;
                    expired.push(p);
                }
                // Unreadable: honoured as a full stop rather than ignored (never enforce past a pause).
                Err(e) => active.push(Pause {
                    scope: Scope::default(),
                    reason: format!("the pause record '{key}' cannot be read ({e}); remove it with `caguard resume`"),
                    by: "unknown".into(),
                    at: now,
                    expires: now + chrono::Duration::hours(1),
                }),
            }
        }
    }
    (Pauses(active), expired)
}

/// How long before its expiry a pause is reminded of.
pub const REMINDER_MINUTES: i64 = 60;

/// The reminder for a pause about to expire (deduped per window like every alert).
pub fn expiring_alert(p: &Pause, now: DateTime<Utc>) -> Option<crate::alert::Alert> {
    let left = p.expires - now;
    (left > chrono::Duration::zero() && left <= chrono::Duration::minutes(REMINDER_MINUTES)).then(|| {
        crate::alert::Alert {
            tenant_id: p.scope.tenant.clone().unwrap_or_else(|| "all".into()),
            tenant_name: p.scope.to_string(),
            kind: crate::alert::kind::PAUSE_EXPIRING.into(),
            message: format!(
                "The pause of {} ({}) expires in {} minutes; caguard then enforces it again. Pause again to extend it.",
                p.scope,
                p.reason,
                left.num_minutes().max(1)
            ),
            control: p.scope.control.map(|c| c.to_string()),
            object_id: Some(format!("pause-{}", p.scope.key())),
            ..Default::default()
        }
    })
}

/// The alert for an expired pause: enforcement resumed on its own.
pub fn expired_alert(p: &Pause) -> crate::alert::Alert {
    crate::alert::Alert {
        tenant_id: p.scope.tenant.clone().unwrap_or_else(|| "all".into()),
        tenant_name: p.scope.to_string(),
        kind: crate::alert::kind::PAUSE_EXPIRED.into(),
        message: format!(
            "The pause of {} set by {} ({}) expired at {}; caguard enforces it again.",
            p.scope,
            p.by,
            p.reason,
            p.expires.format("%Y-%m-%d %H:%M UTC")
        ),
        control: p.scope.control.map(|c| c.to_string()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z").unwrap().to_utc() + chrono::Duration::hours(h)
    }

    #[test]
    fn scopes_parse_strictly_and_key_safely() {
        let t = "6F1C2A43-7D5E-4B8A-9C3F-2E1D0A9B8C7D";
        let s = Scope::parse(Some(t), Some("a2")).unwrap();
        assert_eq!(s.key(), "tenant-6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7d-control-A2");
        assert_eq!(Scope::parse(None, None).unwrap().key(), "all");
        assert!(Scope::parse(Some("contoso"), None).unwrap_err().contains("not a tenant id"));
        assert!(Scope::parse(None, Some("Z9")).unwrap_err().contains("not one of"));
    }

    #[test]
    fn a_pause_needs_a_reason_and_a_bounded_expiry() {
        assert!(Pause::new(Scope::default(), " ", "me", 24, at(0)).is_err());
        assert!(Pause::new(Scope::default(), "incident", "me", 0, at(0)).is_err());
        assert!(Pause::new(Scope::default(), "incident", "me", MAX_HOURS + 1, at(0)).is_err());
        let p = Pause::new(Scope::default(), "incident", "me", 2, at(0)).unwrap();
        assert_eq!(p.expires, at(2));
        assert!(p.describe().contains("resume with `caguard resume`"), "{}", p.describe());
    }

    #[test]
    fn tenant_and_control_pauses_apply_where_they_say() {
        let t1 = "6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7d";
        let t2 = "6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7e";
        let control = |tenant: Option<&str>, c| Scope { tenant: tenant.map(str::to_string), control: Some(c) };
        let pauses = Pauses(vec![
            Pause::new(control(Some(t1), Control::D1), "r", "me", 1, at(0)).unwrap(),
            Pause::new(control(None, Control::A2), "r", "me", 1, at(0)).unwrap(),
        ]);
        assert!(pauses.tenant(t1).is_none());
        assert_eq!(pauses.controls(t1), [Control::D1, Control::A2]);
        assert_eq!(pauses.controls(t2), [Control::A2]);
        let whole = Pauses(vec![Pause::new(Scope::parse(Some(t2), None).unwrap(), "r", "me", 1, at(0)).unwrap()]);
        assert!(whole.tenant(t2).is_some() && whole.tenant(t1).is_none());
    }
}
