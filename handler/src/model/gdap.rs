//! GDAP: `delegatedAdminRelationship` and `delegatedAdminCustomer`.

use super::{graph_enum, graph_object};

graph_enum! {
    /// `delegatedAdminRelationshipStatus`.
    pub enum RelationshipStatus {
        Activating => "activating",
        Active => "active",
        ApprovalPending => "approvalPending",
        Approved => "approved",
        Created => "created",
        Expired => "expired",
        Expiring => "expiring",
        Terminated => "terminated",
        Terminating => "terminating",
        TerminationRequested => "terminationRequested",
        UnknownFutureValue => "unknownFutureValue",
    }
}

graph_object! {
    /// `delegatedAdminRelationship`.
    pub struct DelegatedAdminRelationship {
        #[serde(rename = "@odata.type")]
        odata_type: String,
        #[serde(rename = "@odata.etag")]
        etag: String,
        id: String,
        display_name: String,
        duration: String,
        customer: RelationshipCustomer,
        access_details: AccessDetails,
        status: RelationshipStatus,
        auto_extend_duration: String,
        created_date_time: String,
        last_modified_date_time: String,
        activated_date_time: String,
        end_date_time: String,
    }
}

graph_object! {
    /// `delegatedAdminRelationshipCustomerParticipant`.
    pub struct RelationshipCustomer {
        tenant_id: String,
        display_name: String,
    }
}

graph_object! {
    /// `delegatedAdminAccessDetails`.
    pub struct AccessDetails {
        unified_roles: Vec<UnifiedRole>,
    }
}

graph_object! {
    /// `unifiedRole` (a role definition id).
    pub struct UnifiedRole {
        role_definition_id: String,
    }
}

graph_object! {
    /// `delegatedAdminCustomer`.
    pub struct DelegatedAdminCustomer {
        #[serde(rename = "@odata.type")]
        odata_type: String,
        #[serde(rename = "@odata.etag")]
        etag: String,
        id: String,
        tenant_id: String,
        display_name: String,
    }
}

/// Built-in Entra role template ids that let caguard write CA in a customer tenant.
pub mod roles {
    pub const CONDITIONAL_ACCESS_ADMINISTRATOR: &str = "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9";
    pub const SECURITY_ADMINISTRATOR: &str = "194ae4cb-b126-40b2-bd5b-6091b380977d";
    pub const GLOBAL_ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";
}

impl DelegatedAdminRelationship {
    pub fn customer_tenant_id(&self) -> Option<&str> {
        self.customer.as_ref()?.tenant_id.as_ref().map(String::as_str)
    }

    pub fn role_ids(&self) -> Vec<&str> {
        self.access_details
            .as_ref()
            .and_then(|a| a.unified_roles.as_ref())
            .map(|r| r.iter().filter_map(|r| r.role_definition_id.as_ref().map(String::as_str)).collect())
            .unwrap_or_default()
    }

    /// True when the relationship grants a role that can write CA policies.
    pub fn can_write_conditional_access(&self) -> bool {
        self.role_ids().iter().any(|r| {
            [roles::CONDITIONAL_ACCESS_ADMINISTRATOR, roles::SECURITY_ADMINISTRATOR, roles::GLOBAL_ADMINISTRATOR]
                .contains(r)
        })
    }
}
