//! The estate file: what the simulator is seeded with.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A whole simulated estate: the MSP tenant, its customers and the apps
/// that may ask for tokens. See `docs/estate-format.md`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Estate {
    /// The MSP (partner) tenant. Its GDAP relationships are `relationships`.
    pub msp_tenant_id: String,
    /// App registrations the token endpoint knows (client-credentials grant).
    #[serde(default)]
    pub apps: Vec<App>,
    /// Refresh tokens the token endpoint accepts (CIPP's delegated model).
    #[serde(default)]
    pub refresh_tokens: Vec<RefreshTokenSpec>,
    /// `delegatedAdminRelationship` objects, as Graph returns them.
    #[serde(default)]
    pub relationships: Vec<Value>,
    #[serde(default)]
    pub tenants: Vec<TenantSpec>,
    /// CIPP's App Service sites, as ARM answers about them ([`crate::arm`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipp_sites: Vec<CippSite>,
}

/// A CIPP site: its authentication settings, readable through ARM with `reader_token`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CippSite {
    /// `/subscriptions/{id}/resourceGroups/{rg}/providers/Microsoft.Web/sites/{name}`.
    pub resource_id: String,
    /// The `properties` of `authsettingsV2`, as `config/authsettingsV2/list` returns them.
    pub auth_settings: Value,
    /// The bearer token of an identity allowed `Microsoft.Web/sites/config/list/Action`
    /// on the site; any other token is refused with 403 `AuthorizationFailed`.
    pub reader_token: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct App {
    pub client_id: String,
    pub client_secret: String,
    #[serde(default)]
    pub display_name: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshTokenSpec {
    pub token: String,
    pub client_id: String,
    /// The user the token belongs to (CIPP's service account).
    pub user_id: String,
    #[serde(default)]
    pub user_principal_name: String,
    /// The one tenant a direct tenant's token reaches (CIPP keeps such tokens as a Key
    /// Vault secret named after the tenant). None: the partner's token, which reaches the
    /// MSP tenant and every customer with an active GDAP relationship.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

fn yes() -> bool {
    true
}

fn enabled() -> String {
    "Enabled".into()
}

/// Empty (a `TenantSpec::default()`) reads as `Enabled`.
fn is_enabled(s: &String) -> bool {
    s.is_empty() || s == "Enabled"
}

/// One Entra tenant.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub default_domain: String,
    /// Security defaults on: CA policies cannot be enabled.
    #[serde(default)]
    pub security_defaults: bool,
    /// Entra ID P1 licensed: without it CA writes are refused.
    #[serde(default = "yes")]
    pub p1: bool,
    /// `capabilityStatus` of the P1 SKU: `Enabled`, `Warning` (grace period: CA still
    /// works), `Suspended`, `LockedOut` or `Deleted` (CA writes refused).
    #[serde(default = "enabled", skip_serializing_if = "is_enabled")]
    pub licence_status: String,
    /// The caguard/CIPP app is consented here: without it no app-only token is issued.
    #[serde(default = "yes")]
    pub consented: bool,
    /// The app lacks Policy permissions: CA endpoints answer 403 Authorization_RequestDenied.
    #[serde(default)]
    pub permissions_denied: bool,
    /// The app lacks Mail.Send: `sendMail` answers 403 ErrorAccessDenied.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mail_send_denied: bool,
    #[serde(default)]
    pub users: Vec<Value>,
    /// Groups: `{id, displayName, members: [userId]}`.
    #[serde(default)]
    pub groups: Vec<Value>,
    /// Activated directory roles, as `GET /directoryRoles` lists them, with their
    /// members: `{id, displayName, roleTemplateId, members: [userId]}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directory_roles: Vec<Value>,
    #[serde(default)]
    pub policies: Vec<Value>,
    /// Enterprise applications (`servicePrincipal`): id, appId, displayName.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_principals: Vec<Value>,
    #[serde(default)]
    pub named_locations: Vec<Value>,
    #[serde(default)]
    pub audits: Vec<Value>,
    #[serde(default)]
    pub sign_ins: Vec<Value>,
    #[serde(default)]
    pub subscriptions: Vec<Value>,
}
