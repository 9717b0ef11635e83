//! Customer tenants: the MSP's service-provider users excluded from every
//! policy that can apply to them (D1), or in direct mode the service account
//! user (D2). Only exclusions are ever added; nothing else is touched.

use super::{Action, Block, Observed, Op, TenantPlan, exclude_user, to_value, union};
use crate::config::{Config, Control, ControlMode, Mode};
use crate::model::{
    ENUMERATED_EXTERNAL_TENANTS, ExternalTenants, GuestOrExternalUserType, GuestTypes, GuestsOrExternalUsers, Maybe,
    MembershipKind, UsersCondition, list,
};
use serde_json::json;

pub(super) fn plan(config: &Config, o: &Observed) -> TenantPlan {
    let mut plan = TenantPlan::new(o, false);
    if config.is_skipped(&o.tenant_id) {
        plan.block = Some(Block::Skip("excluded by scope.skip_tenants".into()));
        return plan;
    }
    if o.security_defaults {
        plan.block = Some(Block::Skip("security defaults are on: Conditional Access cannot run here".into()));
        return plan;
    }
    if o.p1 == Some(false) {
        plan.block = Some(Block::Skip("no Entra ID P1 licence: Conditional Access is unavailable".into()));
        return plan;
    }
    if o.gdap_can_write_ca == Some(false) {
        plan.block = Some(Block::Skip(
            "the GDAP relationship lacks Conditional Access Administrator or Security Administrator".into(),
        ));
        return plan;
    }
    match config.mode {
        Mode::Gdap => plan_service_provider_exclusions(config, o, &mut plan),
        Mode::Direct => plan_service_account_exclusions(config, o, &mut plan),
    }
    plan
}

/// Users include All users, all guests/external users (or service providers), or directory roles.
pub fn can_apply_to_service_providers(u: &UsersCondition) -> bool {
    let include = list(&u.include_users);
    let guests = u
        .include_guests_or_external_users
        .as_ref()
        .and_then(|g| g.guest_or_external_user_types.as_ref())
        .is_some_and(|t| t.contains(&GuestOrExternalUserType::ServiceProvider));
    include.iter().any(|x| x.eq_ignore_ascii_case("All") || x.eq_ignore_ascii_case("GuestsOrExternalUsers"))
        || !list(&u.include_roles).is_empty()
        || guests
}

/// The policy already excludes the MSP's service-provider users.
pub fn excludes_service_provider(u: &UsersCondition, msp: &str) -> bool {
    if list(&u.exclude_users).iter().any(|x| x.eq_ignore_ascii_case("GuestsOrExternalUsers")) {
        return true; // the legacy value excludes every guest and external user
    }
    let Some(ex) = u.exclude_guests_or_external_users.as_ref() else { return false };
    let sp =
        ex.guest_or_external_user_types.as_ref().is_some_and(|t| t.contains(&GuestOrExternalUserType::ServiceProvider));
    sp && match ex.external_tenants.as_ref() {
        None => true,
        Some(t) if t.membership_kind.as_ref() == Some(&MembershipKind::All) => true,
        Some(t) => list(&t.members).iter().any(|m| m.eq_ignore_ascii_case(msp)),
    }
}

/// Adds `serviceProvider` for the MSP tenant to an existing exclusion, keeping
/// every guest type, tenant and property already there.
pub fn merge_service_provider_exclusion(existing: Option<&GuestsOrExternalUsers>, msp: &str) -> GuestsOrExternalUsers {
    let mut merged = existing.cloned().unwrap_or_default();
    let mut types = merged.guest_or_external_user_types.as_ref().cloned().unwrap_or(GuestTypes::default());
    types.insert(GuestOrExternalUserType::ServiceProvider);
    merged.guest_or_external_user_types = Maybe::Value(types);
    let tenants = match merged.external_tenants.as_ref() {
        Some(t) if t.membership_kind.as_ref() == Some(&MembershipKind::All) => t.clone(),
        Some(t) => {
            let mut t = t.clone();
            t.members = Maybe::Value(union(list(&t.members), &[msp.to_string()]));
            t
        }
        None => ExternalTenants {
            odata_type: ENUMERATED_EXTERNAL_TENANTS.to_string().into(),
            membership_kind: MembershipKind::Enumerated.into(),
            members: vec![msp.to_string()].into(),
            extra: Default::default(),
        },
    };
    merged.external_tenants = Maybe::Value(tenants);
    merged
}

/// D1: every policy that can apply to service-provider users excludes the MSP's.
fn plan_service_provider_exclusions(config: &Config, o: &Observed, plan: &mut TenantPlan) {
    let msp = &config.msp_tenant_id;
    for p in &o.policies {
        let Some(users) = p.users() else { continue };
        if !can_apply_to_service_providers(users) || excludes_service_provider(users, msp) {
            continue;
        }
        let existing = users.exclude_guests_or_external_users.as_ref();
        let merged = merge_service_provider_exclusion(existing, msp);
        let all_tenants = existing
            .and_then(|e| e.external_tenants.as_ref())
            .is_some_and(|t| t.membership_kind.as_ref() == Some(&MembershipKind::All));
        let scope = if all_tenants {
            " (the existing exclusion covers all external tenants, so service providers of all tenants are excluded)"
        } else {
            ""
        };
        plan.push(config, Action {
            control: Control::D1,
            mode: ControlMode::Enforce,
            op: Op::UpdatePolicy { id: p.id().to_string() },
            target: p.name().to_string(),
            reason: format!("{}; the MSP's service-provider users are not excluded{scope}", applies_because(users)),
            body: json!({"conditions": {"users": {"excludeGuestsOrExternalUsers": to_value(&merged)}}}),
            before: json!({"conditions": {"users": {"excludeGuestsOrExternalUsers": to_value(&users.exclude_guests_or_external_users)}}}),
        });
    }
}

fn applies_because(u: &UsersCondition) -> &'static str {
    let include = list(&u.include_users);
    if include.iter().any(|x| x.eq_ignore_ascii_case("All")) {
        "targets all users"
    } else if !list(&u.include_roles).is_empty() {
        "targets directory roles"
    } else {
        "targets guests or external users"
    }
}

/// D2 (direct mode): every policy excludes the service account user of this tenant.
fn plan_service_account_exclusions(config: &Config, o: &Observed, plan: &mut TenantPlan) {
    let configured = config.direct_service_accounts.get(&o.tenant_id).unwrap_or(&config.service_account);
    let Some(id) = o.account(configured) else {
        plan.block = Some(Block::Skip(format!("service account '{configured}' does not exist in this tenant")));
        return;
    };
    for p in &o.policies {
        if let Some(action) = exclude_user(Control::D2, p, id, "direct mode: the service account user is not excluded")
        {
            plan.push(config, action);
        }
    }
}
