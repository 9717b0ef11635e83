//! Smaller Graph objects: security defaults, mail, users and groups, What If.

use super::graph_object;
use serde_json::Value;

graph_object! {
    /// `identitySecurityDefaultsEnforcementPolicy`. While enabled, Conditional
    /// Access cannot be used in the tenant.
    pub struct SecurityDefaultsPolicy {
        #[serde(rename = "@odata.context")]
        context: String,
        id: String,
        display_name: String,
        description: String,
        is_enabled: bool,
    }
}

graph_object! {
    /// The body of `POST /users/{id}/sendMail`.
    pub struct SendMailRequest {
        message: Message,
        /// Documented as Boolean, but Microsoft's own example sends `"false"`.
        save_to_sent_items: Value,
    }
}

graph_object! {
    /// `message` (the parts sendMail needs).
    pub struct Message {
        subject: String,
        body: ItemBody,
        to_recipients: Vec<Recipient>,
        cc_recipients: Vec<Recipient>,
    }
}

graph_object! {
    /// `itemBody`.
    pub struct ItemBody {
        content_type: String,
        content: String,
    }
}

graph_object! {
    /// `recipient`.
    pub struct Recipient {
        email_address: EmailAddress,
    }
}

graph_object! {
    /// `emailAddress`.
    pub struct EmailAddress {
        address: String,
        name: String,
    }
}

graph_object! {
    /// `user` (the parts caguard reads).
    pub struct User {
        id: String,
        display_name: String,
        user_principal_name: String,
        user_type: String,
    }
}

graph_object! {
    /// `group` (the parts caguard reads).
    pub struct Group {
        id: String,
        display_name: String,
    }
}

graph_object! {
    /// `subscribedSku` (licence check: Entra ID P1 is service plan `AAD_PREMIUM`).
    pub struct SubscribedSku {
        id: String,
        sku_id: String,
        sku_part_number: String,
        capability_status: String,
        service_plans: Vec<ServicePlanInfo>,
    }
}

graph_object! {
    /// `servicePlanInfo`.
    pub struct ServicePlanInfo {
        service_plan_id: String,
        service_plan_name: String,
        provisioning_status: String,
    }
}

graph_object! {
    /// The body of `POST /identity/conditionalAccess/evaluate` (What If).
    pub struct WhatIfRequest {
        sign_in_identity: Value,
        sign_in_context: Value,
        sign_in_conditions: Value,
        applied_policies_only: bool,
    }
}

/// Service plans that carry Entra ID P1 (P2 includes P1).
pub const P1_SERVICE_PLANS: &[&str] = &["AAD_PREMIUM", "AAD_PREMIUM_P2"];

impl SubscribedSku {
    /// True when this SKU is usable and provisions Entra ID P1 or P2.
    ///
    /// `capabilityStatus` (subscribedSku, v1.0): `Enabled`; `Warning` is the grace
    /// period after expiry, in which the service still works, so it counts;
    /// `Suspended`, `LockedOut` and `Deleted` do not.
    pub fn grants_p1(&self) -> bool {
        let enabled = self.capability_status.as_ref().is_none_or(|s| s == "Enabled" || s == "Warning");
        enabled
            && self.service_plans.as_ref().is_some_and(|plans| {
                plans.iter().any(|p| {
                    p.service_plan_name.as_ref().is_some_and(|n| P1_SERVICE_PLANS.contains(&n.as_str()))
                        && p.provisioning_status.as_ref().is_none_or(|s| s == "Success")
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sku(status: &str) -> SubscribedSku {
        serde_json::from_value(serde_json::json!({
            "capabilityStatus": status, "skuPartNumber": "AAD_PREMIUM",
            "servicePlans": [{"servicePlanName": "AAD_PREMIUM", "provisioningStatus": "Success"}]
        }))
        .unwrap()
    }

    #[test]
    fn a_licence_in_its_grace_period_still_grants_conditional_access() {
        assert!(sku("Enabled").grants_p1());
        assert!(sku("Warning").grants_p1());
        for gone in ["Suspended", "LockedOut", "Deleted"] {
            assert!(!sku(gone).grants_p1(), "{gone}");
        }
    }
}
