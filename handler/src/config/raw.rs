//! The file's shape as serde reads it (every value that can be wrong keeps its
//! span), and the line lookup that turns spans into the line numbers errors name.

use super::policies::{RawCippApp, RawLockdown, RawServiceAccount, RawSession};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub(super) msp_tenant_id: Spanned<String>,
    #[serde(default)]
    pub(super) mode: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) sites: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    pub(super) accounts: Spanned<RawAccounts>,
    #[serde(default)]
    pub(super) apps: RawApps,
    #[serde(default)]
    pub(super) names: RawNames,
    #[serde(default)]
    pub(super) rollout: RawRollout,
    #[serde(default)]
    pub(super) scope: RawScope,
    #[serde(default)]
    pub(super) controls: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub(super) safety: RawSafety,
    #[serde(default)]
    pub(super) cipp: Option<RawCipp>,
    #[serde(default)]
    pub(super) alerts: Option<RawAlerts>,
    #[serde(default)]
    pub(super) watch: RawWatch,
    #[serde(default)]
    pub(super) emergency: RawEmergency,
    #[serde(default)]
    pub(super) lockdown: Vec<Spanned<RawLockdown>>,
    #[serde(default)]
    pub(super) service_account: Vec<Spanned<RawServiceAccount>>,
    #[serde(default)]
    pub(super) session: RawSession,
    #[serde(default)]
    pub(super) cipp_app: Option<Spanned<RawCippApp>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEmergency {
    pub(super) operators_group: Option<Spanned<String>>,
    pub(super) pause_hours: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWatch {
    pub(super) rediscover_minutes: Option<Spanned<i64>>,
    pub(super) concurrency: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    pub(super) window_minutes: Option<Spanned<i64>>,
    pub(super) webhook_schema: Option<Spanned<String>>,
    pub(super) email_from: Option<String>,
    #[serde(default)]
    pub(super) email_to: Vec<String>,
    pub(super) status_url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCipp {
    pub(super) storage_account: Option<Spanned<String>>,
    pub(super) table_endpoint: Option<Spanned<String>>,
    pub(super) site_id: Option<Spanned<String>>,
    pub(super) arm_endpoint: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccounts {
    #[serde(default)]
    pub(super) technician_groups: Vec<String>,
    #[serde(default)]
    pub(super) technician_users: Vec<String>,
    #[serde(default)]
    pub(super) break_glass: Vec<String>,
    pub(super) service_account: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) direct_service_accounts: BTreeMap<String, String>,
    /// The acknowledgement `technician_users = ["All"]` needs.
    #[serde(default)]
    pub(super) all_users_are_technicians: bool,
    /// Object ids (users, groups, roles) an MSP excludes from caguard's own policies on purpose.
    #[serde(default)]
    pub(super) allowed_exclusions: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApps {
    #[serde(default)]
    pub(super) protected: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNames {
    pub(super) location_prefix: Option<String>,
    pub(super) block_policy: Option<String>,
    pub(super) service_account_policy: Option<String>,
    /// Take over a same-named policy caguard has no record of creating.
    #[serde(default)]
    pub(super) adopt_existing: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRollout {
    pub(super) block_policy: Option<Spanned<String>>,
    pub(super) window_days: Option<Spanned<i64>>,
    pub(super) min_sign_ins: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) acknowledged_ips: Vec<Spanned<String>>,
    pub(super) read_every_minutes: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScope {
    #[serde(default)]
    pub(super) skip_tenants: Vec<String>,
    #[serde(default)]
    pub(super) accept_widening: bool,
    #[serde(default)]
    pub(super) accept_widening_tenants: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) direct_tenants: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSafety {
    pub(super) max_policies_per_tenant: Option<usize>,
    pub(super) max_tenant_fraction: Option<Spanned<f64>>,
}

/// The source text, to turn spans and keys into the line numbers errors name.
pub(super) struct Lines<'a>(pub(super) &'a str);

impl Lines<'_> {
    pub(super) fn at(&self, offset: usize) -> usize {
        self.0[..offset.min(self.0.len())].matches('\n').count() + 1
    }

    /// The line of `key = …`, for keys whose values are not spanned.
    pub(super) fn of_key(&self, key: &str) -> usize {
        let quoted = format!("\"{key}\"");
        self.0
            .lines()
            .position(|l| {
                let t = l.trim_start();
                (t.starts_with(key) || t.starts_with(&quoted))
                    && t[if t.starts_with('"') { quoted.len() } else { key.len() }..].trim_start().starts_with('=')
            })
            .map_or(1, |i| i + 1)
    }
}
