//! Accounts resolve or hold (#12). Every configured MSP account (break-glass,
//! service account, technicians named one by one) must resolve to a user, and
//! to the same object it resolved to the first time. A UPN reassigned to someone
//! else would otherwise be written into the block policy's exclusions; an
//! unresolved name would be written raw into `includeUsers`.

use super::{Observed, TenantPlan};
use crate::config::Config;

/// The store key an account's first resolution is recorded under.
pub fn account_key(configured: &str) -> String {
    format!("user:{}", configured.to_ascii_lowercase())
}

/// Checks every configured account and records each resolution in `plan.owns`
/// (so the store keeps the object id, and its UPN, from the first resolution).
/// The error is the reason the MSP tenant is held.
pub(super) fn check(config: &Config, o: &Observed, plan: &mut TenantPlan) -> Result<(), String> {
    let roles = config.msp_accounts();
    let mut problems = Vec::new();
    for (role, configured) in roles {
        let key = account_key(configured);
        match (o.account(configured), o.owned.get(&key)) {
            (None, _) => problems.push(format!(
                "{role} '{configured}' did not resolve to a user; caguard never writes an unresolved name into a policy, nor plans without it"
            )),
            (Some(id), Some(first)) if !id.eq_ignore_ascii_case(first) => problems.push(format!(
                "{role} '{configured}' now resolves to a different user ({id}) than the one recorded when caguard first saw it ({first}); \
                 if the account was replaced on purpose, configure its object id instead"
            )),
            (Some(id), _) => {
                plan.owns.insert(key, id.to_string());
            }
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}
