//! Customer tenants: the MSP's service-provider users excluded from every
//! policy that can apply to them (D1), or in direct mode the service account
//! user (D2). Only exclusions are ever added; nothing else is touched.

use super::{Action, Block, Observed, Op, TenantPlan, Withheld, exclude_users, to_value, union};
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
    let direct = o.direct || config.mode == Mode::Direct;
    if direct {
        plan_service_account_exclusions(config, o, &mut plan);
    } else {
        plan_service_provider_exclusions(config, o, &mut plan);
    }
    let control = if direct { Control::D2 } else { Control::D1 };
    super::report_unreadable(&mut plan, control, o);
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
    let types = merged.guest_or_external_user_types.as_ref().cloned().unwrap_or(GuestTypes::default());
    let crossed =
        types.0.iter().any(|t| !matches!(t, GuestOrExternalUserType::InternalGuest | GuestOrExternalUserType::None));
    let tenants = match merged.external_tenants.as_ref() {
        Some(t) if t.membership_kind.as_ref() == Some(&MembershipKind::All) => t.clone(),
        Some(t) => {
            let mut t = t.clone();
            t.members = Maybe::Value(union(list(&t.members), &[msp.to_string()]));
            t
        }
        // Types that name no tenants apply to every tenant: narrowing that to the MSP
        // would drop the customer's exclusion of everyone else's users. Leave it.
        None if crossed => return merged_with(merged, types),
        None => ExternalTenants {
            odata_type: ENUMERATED_EXTERNAL_TENANTS.to_string().into(),
            membership_kind: MembershipKind::Enumerated.into(),
            members: vec![msp.to_string()].into(),
            extra: Default::default(),
        },
    };
    merged.external_tenants = Maybe::Value(tenants);
    merged_with(merged, types)
}

fn merged_with(mut merged: GuestsOrExternalUsers, mut types: GuestTypes) -> GuestsOrExternalUsers {
    types.insert(GuestOrExternalUserType::ServiceProvider);
    merged.guest_or_external_user_types = Maybe::Value(types);
    merged
}

/// What D1 would do to one policy.
#[derive(Clone, Debug, PartialEq)]
pub enum D1Change {
    /// The MSP's service-provider users are already excluded.
    Nothing,
    /// This exclusion adds exactly (serviceProvider, MSP tenant) and nothing else.
    Exact(GuestsOrExternalUsers),
    /// No exact addition exists. `merged` is what a knowing widening would write
    /// (`None` when Graph would refuse any exclusion object); `pairs` says what it
    /// would newly exclude besides the MSP's service-provider users.
    Widening { merged: Option<GuestsOrExternalUsers>, pairs: Vec<String>, why: String },
}

/// The tenants an exclusion object's guest types apply to.
enum Tenants {
    All,
    Listed(Vec<String>),
}

/// Works out the one D1 write for a policy, by meaning.
///
/// One `excludeGuestsOrExternalUsers` object crosses its guest types with its tenants
/// ("the tenant IDs of the selected types of external users", Graph's
/// `conditionalAccessGuestsOrExternalUsers`). So adding `serviceProvider` and the MSP
/// tenant to an object that already names other types or tenants also excludes
/// those crossings. `internalGuest` has no home tenant and is not crossed.
pub fn d1_change(u: &UsersCondition, msp: &str) -> D1Change {
    if excludes_service_provider(u, msp) {
        return D1Change::Nothing;
    }
    if list(&u.include_users).iter().any(|x| x.eq_ignore_ascii_case("GuestsOrExternalUsers")) {
        return D1Change::Widening {
            merged: None,
            pairs: vec![],
            why: "it targets the legacy 'GuestsOrExternalUsers' value, which Graph refuses to combine with a guest \
                  exclusion ('GuestsOrExternalUsers' cannot be combined with guestOrExternalUsers); change its \
                  users to the guest and external user types to let caguard exclude the MSP"
                .into(),
        };
    }
    let existing = u.exclude_guests_or_external_users.as_ref();
    let types: Vec<GuestOrExternalUserType> = existing
        .and_then(|e| e.guest_or_external_user_types.as_ref())
        .map(|t| {
            t.0.iter()
                .filter(|t| !matches!(t, GuestOrExternalUserType::InternalGuest | GuestOrExternalUserType::None))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let tenants = match existing.and_then(|e| e.external_tenants.as_ref()) {
        Some(t) if t.membership_kind.as_ref() == Some(&MembershipKind::All) => Tenants::All,
        Some(t) if t.membership_kind.as_ref() == Some(&MembershipKind::Enumerated) || t.members.as_ref().is_some() => {
            Tenants::Listed(list(&t.members).to_vec())
        }
        Some(_) => Tenants::All,
        // No tenants named: for external types that reads as every tenant.
        None if !types.is_empty() => Tenants::All,
        None => Tenants::Listed(vec![]),
    };
    let merged = merge_service_provider_exclusion(existing, msp);
    let has_sp = types.contains(&GuestOrExternalUserType::ServiceProvider);
    let mut pairs = Vec::new();
    match &tenants {
        Tenants::All if !has_sp => pairs.push("service-provider users of every external tenant".to_string()),
        Tenants::All => {}
        Tenants::Listed(members) => {
            if !has_sp {
                for m in members.iter().filter(|m| !m.eq_ignore_ascii_case(msp)) {
                    pairs.push(format!("service-provider users of tenant {m}"));
                }
            }
            if !members.iter().any(|m| m.eq_ignore_ascii_case(msp)) {
                for t in types.iter().filter(|t| **t != GuestOrExternalUserType::ServiceProvider) {
                    pairs.push(format!("{t} users of the MSP tenant"));
                }
            }
        }
    }
    if pairs.is_empty() {
        return D1Change::Exact(merged);
    }
    let why = "its existing guest exclusion crosses other guest types or tenants with the ones it names, so adding \
               the MSP would exclude more than the MSP's service-provider users"
        .into();
    D1Change::Widening { merged: Some(merged), pairs, why }
}

/// D1: every policy that can apply to service-provider users excludes the MSP's.
/// A policy where that cannot be added exactly is withheld, unless the MSP accepts
/// the widening for this tenant (`scope.accept_widening`).
fn plan_service_provider_exclusions(config: &Config, o: &Observed, plan: &mut TenantPlan) {
    let msp = &config.msp_tenant_id;
    for p in &o.policies {
        let Some(users) = p.users() else { continue };
        if !can_apply_to_service_providers(users) {
            continue;
        }
        let (merged, extra) = match d1_change(users, msp) {
            D1Change::Nothing => continue,
            D1Change::Exact(m) => (m, String::new()),
            D1Change::Widening { merged: Some(m), pairs, .. } if config.accepts_widening(&o.tenant_id) => {
                (m, format!(" (widening accepted by scope.accept_widening: also excludes {})", pairs.join(", ")))
            }
            D1Change::Widening { pairs, why, .. } => {
                plan.withheld.push(Withheld {
                    control: Control::D1,
                    policy_id: p.id().to_string(),
                    target: p.name().to_string(),
                    reason: format!("not written: {why}"),
                    would_also_exclude: pairs,
                });
                continue;
            }
        };
        plan.push(config, Action {
            control: Control::D1,
            mode: ControlMode::Enforce,
            op: Op::UpdatePolicy { id: p.id().to_string() },
            target: p.name().to_string(),
            reason: format!("{}; the MSP's service-provider users are not excluded{extra}", applies_because(users)),
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

/// D2 (direct mode): every policy excludes each service account's user in this
/// tenant, in one write per policy. CIPP's account must resolve (caguard works
/// through it); another tool's account that does not is noted and left out.
fn plan_service_account_exclusions(config: &Config, o: &Observed, plan: &mut TenantPlan) {
    let mut ids = Vec::new();
    for (n, configured) in config.direct_service_accounts(&o.tenant_id).into_iter().enumerate() {
        match o.account(configured) {
            Some(id) => ids.push(id.to_string()),
            None if n > 0 => plan.note(
                Control::D2,
                format!("service account '{configured}' does not exist in this tenant, so it is not excluded here"),
            ),
            None => {
                plan.block = Some(Block::Skip(missing_account(configured, &o.tenant_id)));
                return;
            }
        }
    }
    if ids.is_empty() {
        return;
    }
    for p in &o.policies {
        if let Some(action) =
            exclude_users(Control::D2, p, &ids, "direct mode: the service account user is not excluded")
        {
            plan.push(config, action);
        }
    }
}

fn missing_account(configured: &str, tenant: &str) -> String {
    if configured == crate::config::SIGNED_IN_ACCOUNT {
        format!(
            "direct tenant without a service account: caguard's token here has no signed-in user (app-only); \
             name the account in the CIPP service account's direct accounts (accounts.direct_service_accounts.\"{tenant}\")"
        )
    } else {
        format!("service account '{configured}' does not exist in this tenant")
    }
}
