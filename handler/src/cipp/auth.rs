//! C1's second half: which API clients CIPP's front door lets in.
//!
//! CIPP-API clients get in through App Service Authentication on CIPP's site: its
//! `authsettingsV2` lists them in
//! `identityProviders.azureActiveDirectory.validation.defaultAuthorizationPolicy.allowedApplications`,
//! next to the SSO app's own `registration.clientId` (CyberDrain/CIPP
//! `backend/Modules/CIPPCore/Public/Authentication/Get-CippApiAuth.ps1`, which
//! reads it with the same ARM call, and `Set-CippApiAuth.ps1`, which writes the
//! enabled clients there). CIPP's access check (`Test-CIPPAccess.ps1`) never
//! reads a client's `Enabled` column: a client still on that list is usable
//! whatever the table says, and one with no `ApiClients` row at all gets the
//! `cipp-api` role with no IP check.

use super::{RowOutcome, RowReport};
use crate::config::Control;
use crate::storage::Entity;
use azure_core::credentials::TokenCredential;
use serde_json::Value;
use std::sync::Arc;

/// The ARM API version CIPP reads the settings with.
pub const API_VERSION: &str = "2020-06-01";
/// ARM's audience (public cloud).
const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// Where CIPP's site is, and how to ask ARM about it.
#[derive(Clone, Debug)]
pub struct Site {
    /// `https://management.azure.com` (a stand-in's URL in tests).
    pub arm_endpoint: String,
    /// `/subscriptions/{id}/resourceGroups/{rg}/providers/Microsoft.Web/sites/{name}`.
    pub resource_id: String,
    pub credential: Arc<dyn TokenCredential>,
}

/// CIPP's site as `[cipp] site_id` names it, read with caguard's managed identity
/// (developer tools locally); `None` when it is not configured.
pub fn configured(config: &crate::config::Config) -> Option<Result<Site, String>> {
    let cipp = config.cipp.as_ref()?;
    let resource_id = cipp.site_id.clone()?;
    Some(crate::secrets::azure_credential().map(|credential| Site {
        arm_endpoint: cipp.arm_endpoint.clone(),
        resource_id,
        credential,
    }))
}

/// The API clients CIPP's front door lets in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Allowed {
    /// Whether Entra ID authentication is on at all.
    pub enabled: bool,
    /// `allowedApplications` less the SSO app's own client id, as CIPP lists them.
    pub clients: Vec<String>,
}

impl Allowed {
    pub fn contains(&self, app_id: &str) -> bool {
        self.clients.iter().any(|c| c.eq_ignore_ascii_case(app_id))
    }
}

/// Checks a CIPP site's resource id, so a typo is named in the config, not in an ARM 404.
pub fn parse_resource_id(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('/');
    let parts: Vec<&str> = s.trim_start_matches('/').split('/').collect();
    let shape_ok = parts.len() == 8
        && parts[0].eq_ignore_ascii_case("subscriptions")
        && crate::config::is_guid(parts[1])
        && parts[2].eq_ignore_ascii_case("resourceGroups")
        && !parts[3].is_empty()
        && parts[4].eq_ignore_ascii_case("providers")
        && parts[5].eq_ignore_ascii_case("Microsoft.Web")
        && parts[6].eq_ignore_ascii_case("sites")
        && !parts[7].is_empty()
        && s.starts_with('/');
    if shape_ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not an App Service resource id \
             (/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Web/sites/<name>)"
        ))
    }
}

/// Reads what `Get-CippApiAuth` reads: the ARM `properties` of the settings
/// (`WEBSITE_AUTH_V2_CONFIG_JSON` holds the same object inside CIPP's own app).
pub fn from_settings(properties: &Value) -> Result<Allowed, String> {
    let aad = properties
        .pointer("/identityProviders/azureActiveDirectory")
        .filter(|v| v.is_object())
        .ok_or("the settings have no identityProviders.azureActiveDirectory")?;
    let sso = aad.pointer("/registration/clientId").and_then(Value::as_str).unwrap_or_default();
    let list = aad.pointer("/validation/defaultAuthorizationPolicy/allowedApplications");
    let clients = match list {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or(format!("allowedApplications has {i}, not an app id")))
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(format!("allowedApplications is {other}, not a list")),
    };
    Ok(Allowed {
        enabled: aad.get("enabled").and_then(Value::as_bool).unwrap_or(true),
        clients: clients.into_iter().filter(|c| !c.eq_ignore_ascii_case(sso) && !c.is_empty()).collect(),
    })
}

/// `POST {site}/config/authsettingsV2/list`, as CIPP does. Needs
/// `Microsoft.Web/sites/config/list/Action` on the site (docs/deploy.md).
pub async fn read(http: &reqwest::Client, site: &Site) -> Result<Allowed, String> {
    let token = site.credential.get_token(&[ARM_SCOPE], None).await.map_err(|e| format!("ARM token: {e}"))?;
    let url = format!(
        "{}{}/config/authsettingsV2/list?api-version={API_VERSION}",
        site.arm_endpoint.trim_end_matches('/'),
        site.resource_id
    );
    let resp = http
        .post(&url)
        .bearer_auth(token.token.secret())
        .header("Content-Length", "0")
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| format!("ARM: {e}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let code = body.pointer("/error/code").and_then(Value::as_str).unwrap_or("");
        let hint = match status.as_u16() {
            401 | 403 => " (caguard's identity needs Microsoft.Web/sites/config/list/Action on CIPP's site)",
            404 => " (is [cipp] site_id CIPP's App Service?)",
            _ => "",
        };
        return Err(format!("ARM answered {status} {code} for {}{hint}", site.resource_id));
    }
    from_settings(body.get("properties").unwrap_or(&Value::Null))
}

/// Why disabled clients went unchecked this pass.
pub fn unread(e: &str) -> String {
    format!(
        "C1: CIPP's authentication settings could not be read, so disabled clients were not checked against them: {e}"
    )
}

/// A row marked disabled in `ApiClients` whose app CIPP's front door still lets in.
pub fn disabled_but_allowed(allowed: Option<&Allowed>, row: &Entity) -> bool {
    let disabled = row.properties.get("Enabled").and_then(Value::as_bool) == Some(false);
    disabled && allowed.is_some_and(|a| a.enabled && a.contains(&row.row_key))
}

const STILL_ALLOWED: &str = "disabled in ApiClients but still in CIPP's authentication settings \
    (allowedApplications), and CIPP's access check does not read Enabled: the client can still call CIPP-API. \
    Re-save the API clients in CIPP (which rewrites that list from the enabled ones) or remove the app id there";

/// Adds the finding to a disabled-but-allowed client's outcome: it is reported
/// even when its ranges are in order.
pub fn with_note(outcome: RowOutcome) -> RowOutcome {
    match outcome {
        RowOutcome::Compliant => RowOutcome::Reported(STILL_ALLOWED.into()),
        RowOutcome::Reported(d) => RowOutcome::Reported(format!("{d}; {STILL_ALLOWED}")),
        RowOutcome::Fixed(d) => RowOutcome::Fixed(format!("{d}; {STILL_ALLOWED}")),
        RowOutcome::Failed(d) => RowOutcome::Failed(format!("{d}; {STILL_ALLOWED}")),
    }
}

/// Apps CIPP's front door lets in that have no `ApiClients` row: CIPP gives them
/// the `cipp-api` role with no IP check at all. Reported, never written: the row
/// would need a name and a role only the MSP can choose.
pub fn clients_without_rows(allowed: Option<&Allowed>, table: &str, rows: &[String]) -> Vec<RowReport> {
    let Some(allowed) = allowed.filter(|a| a.enabled) else { return vec![] };
    let detail = "in CIPP's authentication settings (allowedApplications) with no ApiClients row: CIPP lets it \
                  call CIPP-API with the cipp-api role from any IP. Add it in CIPP (Integrations, CIPP-API) with \
                  the trusted ranges, or remove it from allowedApplications";
    allowed
        .clients
        .iter()
        .filter(|c| !rows.iter().any(|r| r.eq_ignore_ascii_case(c)))
        .map(|c| RowReport {
            control: Control::C1,
            table: table.into(),
            row_key: c.clone(),
            name: c.clone(),
            outcome: RowOutcome::Reported(detail.into()),
            before: String::new(),
            after: None,
            last_written: None,
            changed_by: None,
            changed_at: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_sso_app_is_not_an_api_client() {
        let settings = json!({"identityProviders": {"azureActiveDirectory": {
            "enabled": true,
            "registration": {"clientId": "AAAA", "openIdIssuer": "https://sts.windows.net/t/v2.0"},
            "validation": {"defaultAuthorizationPolicy": {"allowedApplications": ["aaaa", "bbbb"]}}
        }}});
        let a = from_settings(&settings).unwrap();
        assert_eq!(a.clients, vec!["bbbb".to_string()]);
        assert!(a.contains("BBBB") && !a.contains("aaaa"));
        assert!(from_settings(&json!({})).is_err());
        let bad = json!({"identityProviders": {"azureActiveDirectory": {"validation": {"defaultAuthorizationPolicy": {"allowedApplications": "x"}}}}});
        assert!(from_settings(&bad).unwrap_err().contains("not a list"));
    }

    #[test]
    fn a_site_id_must_be_an_app_service() {
        let ok = "/subscriptions/0b6f1a2c-3d4e-4f50-8a9b-0c1d2e3f4a5b/resourceGroups/cipp/providers/Microsoft.Web/sites/cipp-abc";
        assert_eq!(parse_resource_id(ok).unwrap(), ok);
        assert!(parse_resource_id("cipp-abc").unwrap_err().contains("not an App Service resource id"));
        assert!(parse_resource_id(&ok.replace("Microsoft.Web/sites", "Microsoft.Storage/storageAccounts")).is_err());
    }
}
