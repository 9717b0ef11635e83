//! Sign-in logs and directory audits: who did what.

use super::graph_object;
use serde_json::Value;

graph_object! {
    /// `signIn`.
    pub struct SignIn {
        id: String,
        created_date_time: String,
        user_display_name: String,
        user_principal_name: String,
        user_id: String,
        app_id: String,
        app_display_name: String,
        ip_address: String,
        client_app_used: String,
        correlation_id: String,
        conditional_access_status: String,
        is_interactive: bool,
        status: Value,
        applied_conditional_access_policies: Vec<AppliedConditionalAccessPolicy>,
    }
}

graph_object! {
    /// `appliedConditionalAccessPolicy`.
    pub struct AppliedConditionalAccessPolicy {
        id: String,
        display_name: String,
        enforced_grant_controls: Vec<String>,
        enforced_session_controls: Vec<String>,
        result: String,
    }
}

graph_object! {
    /// `directoryAudit`.
    pub struct DirectoryAudit {
        id: String,
        category: String,
        correlation_id: String,
        result: String,
        result_reason: String,
        activity_display_name: String,
        activity_date_time: String,
        logged_by_service: String,
        operation_type: String,
        initiated_by: AuditActivityInitiator,
        target_resources: Vec<TargetResource>,
        additional_details: Vec<Value>,
    }
}

graph_object! {
    /// `auditActivityInitiator`: a user or an app.
    pub struct AuditActivityInitiator {
        user: UserIdentity,
        app: AppIdentity,
    }
}

graph_object! {
    /// `userIdentity`.
    pub struct UserIdentity {
        id: String,
        display_name: String,
        user_principal_name: String,
        ip_address: String,
    }
}

graph_object! {
    /// `appIdentity`.
    pub struct AppIdentity {
        app_id: String,
        display_name: String,
        service_principal_id: String,
        service_principal_name: String,
    }
}

graph_object! {
    /// `targetResource`.
    pub struct TargetResource {
        id: String,
        display_name: String,
        #[serde(rename = "type")]
        kind: String,
        user_principal_name: String,
        group_type: String,
        modified_properties: Vec<ModifiedProperty>,
    }
}

graph_object! {
    /// `modifiedProperty`. Graph sends old and new values as JSON text.
    pub struct ModifiedProperty {
        display_name: String,
        old_value: String,
        new_value: String,
    }
}

impl AuditActivityInitiator {
    /// A one-line description of who did it: the user's UPN or the app's name.
    pub fn describe(&self) -> String {
        if let Some(u) = self.user.as_ref() {
            let name = u.display_name.as_ref().cloned().unwrap_or_default();
            let upn = u.user_principal_name.as_ref().cloned().unwrap_or_default();
            return match (name.is_empty(), upn.is_empty()) {
                (false, false) => format!("{name} <{upn}>"),
                (true, false) => upn,
                _ => u.id.as_ref().cloned().unwrap_or_else(|| "unknown user".into()),
            };
        }
        if let Some(a) = self.app.as_ref() {
            let name = a.display_name.as_ref().cloned().unwrap_or_default();
            let id = a.app_id.as_ref().cloned().unwrap_or_default();
            return format!("app {name} ({id})");
        }
        "unknown".into()
    }
}
