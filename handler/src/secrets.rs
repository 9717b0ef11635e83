//! Where caguard's Graph credentials come from: CIPP's Key Vault, app settings
//! (including Key Vault references, which the platform resolves into
//! environment variables), or the environment for local runs.
//!
//! CIPP keeps its SAM app's credentials in its Key Vault under `ApplicationID`,
//! `ApplicationSecret`, `RefreshToken` and `TenantID` and rotates them weekly;
//! the Graph client calls `load` again after `invalid_client`/`invalid_grant`,
//! so a rotated secret is picked up without a restart. Values never reach a log
//! line: `Credentials` has a redacting `Debug`, and errors name the secret, not its value.

use crate::graph::token_future::BoxFuture;
use crate::graph::{CredentialSource, Credentials};
use azure_core::credentials::TokenCredential;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use std::sync::Arc;

/// Which grant caguard uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// Client credentials (`ApplicationID` + `ApplicationSecret`): app-only, after consent.
    App,
    /// Refresh token (`ApplicationID` + `ApplicationSecret` + `RefreshToken`): CIPP's delegated model.
    Delegated,
}

/// The secret names, CIPP's by default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretNames {
    pub application_id: String,
    pub application_secret: String,
    pub refresh_token: String,
    pub tenant_id: String,
}

impl Default for SecretNames {
    fn default() -> Self {
        SecretNames {
            application_id: "ApplicationID".into(),
            application_secret: "ApplicationSecret".into(),
            refresh_token: "RefreshToken".into(),
            tenant_id: "TenantID".into(),
        }
    }
}

impl SecretNames {
    /// Overrides from `CAGUARD_SECRET_<NAME>` settings.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Self {
        let d = SecretNames::default();
        SecretNames {
            application_id: get("CAGUARD_SECRET_APPLICATION_ID").unwrap_or(d.application_id),
            application_secret: get("CAGUARD_SECRET_APPLICATION_SECRET").unwrap_or(d.application_secret),
            refresh_token: get("CAGUARD_SECRET_REFRESH_TOKEN").unwrap_or(d.refresh_token),
            tenant_id: get("CAGUARD_SECRET_TENANT_ID").unwrap_or(d.tenant_id),
        }
    }
}

/// Builds credentials from a lookup of secret values by name.
async fn assemble<F, Fut>(names: &SecretNames, mode: AuthMode, get: F) -> Result<Credentials, String>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, String>>,
{
    let required = |name: &str, v: Option<String>| {
        v.filter(|v| !v.is_empty()).ok_or_else(|| format!("secret '{name}' is missing or empty"))
    };
    let client_id = required(&names.application_id, get(names.application_id.clone()).await?)?;
    let secret = get(names.application_secret.clone()).await?.filter(|s| !s.is_empty());
    match mode {
        AuthMode::App => {
            Ok(Credentials::ClientSecret { client_id, client_secret: required(&names.application_secret, secret)? })
        }
        AuthMode::Delegated => Ok(Credentials::RefreshToken {
            client_id,
            client_secret: secret,
            refresh_token: required(&names.refresh_token, get(names.refresh_token.clone()).await?)?,
        }),
    }
}

/// Reads the secrets from environment variables / app settings, at every `load`.
pub struct EnvSource {
    pub names: SecretNames,
    pub mode: AuthMode,
}

impl CredentialSource for EnvSource {
    fn load(&self) -> BoxFuture<'_, Result<Credentials, String>> {
        Box::pin(async move { assemble(&self.names, self.mode, |n| async move { Ok(std::env::var(&n).ok()) }).await })
    }

    /// A direct tenant's refresh token: the setting named after the tenant id, or
    /// with `_` for `-` (app-setting names cannot hold `-` on Linux; CIPP's own
    /// development store names them that way too).
    fn load_tenant(&self, tenant: &str) -> BoxFuture<'_, Result<Option<String>, String>> {
        env_tenant_token(tenant)
    }
}

/// Fixed credentials (the CLI's `CAGUARD_CLIENT_ID` …), with direct tenants'
/// refresh tokens from the environment as [`EnvSource`] reads them.
pub struct WithEnvTenantTokens(pub crate::graph::StaticCredentials);

impl CredentialSource for WithEnvTenantTokens {
    fn load(&self) -> BoxFuture<'_, Result<Credentials, String>> {
        self.0.load()
    }

    fn load_tenant(&self, tenant: &str) -> BoxFuture<'_, Result<Option<String>, String>> {
        env_tenant_token(tenant)
    }
}

fn env_tenant_token(tenant: &str) -> BoxFuture<'static, Result<Option<String>, String>> {
    let names = direct_secret_names(tenant);
    Box::pin(async move { Ok(names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))) })
}

/// Where a direct tenant's refresh token is kept: CIPP's Key Vault secret is named
/// exactly the tenant id (`Get-GraphToken.ps1`, `Start-UpdateTokensTimer.ps1`).
pub fn direct_secret_names(tenant: &str) -> [String; 2] {
    let t = tenant.to_ascii_lowercase();
    [t.clone(), t.replace('-', "_")]
}

/// Reads the secrets from a Key Vault, at every `load` (so rotation is picked up).
pub struct KeyVaultSource {
    client: SecretClient,
    vault: String,
    pub names: SecretNames,
    pub mode: AuthMode,
}

impl KeyVaultSource {
    /// A source for `vault_url` with an explicit credential and client options (tests, custom identities).
    pub fn with_credential(
        vault_url: &str,
        credential: Arc<dyn TokenCredential>,
        names: SecretNames,
        mode: AuthMode,
        options: SecretClientOptions,
    ) -> Result<Self, String> {
        let client = SecretClient::new(vault_url, credential, Some(options))
            .map_err(|e| format!("Key Vault {vault_url}: {e}"))?;
        Ok(KeyVaultSource { client, vault: vault_url.to_string(), names, mode })
    }

    /// The managed identity in Azure (`CAGUARD_IDENTITY_CLIENT_ID` picks a user-assigned one),
    /// developer tools (Azure CLI, azd) locally.
    pub fn new(vault_url: &str, names: SecretNames, mode: AuthMode) -> Result<Self, String> {
        let in_azure = std::env::var_os("IDENTITY_ENDPOINT").is_some() || std::env::var_os("MSI_ENDPOINT").is_some();
        let credential: Arc<dyn TokenCredential> = if in_azure {
            let user_assigned_id =
                std::env::var("CAGUARD_IDENTITY_CLIENT_ID").ok().map(azure_identity::UserAssignedId::ClientId);
            let options = azure_identity::ManagedIdentityCredentialOptions { user_assigned_id, ..Default::default() };
            azure_identity::ManagedIdentityCredential::new(Some(options))
                .map_err(|e| format!("managed identity: {e}"))?
        } else {
            azure_identity::DeveloperToolsCredential::new(None)
                .map_err(|e| format!("developer tools credential: {e}"))?
        };
        Self::with_credential(vault_url, credential, names, mode, SecretClientOptions::default())
    }
}

impl KeyVaultSource {
    /// One secret's current value; `None` when the vault has no such secret.
    async fn secret(&self, name: &str) -> Result<Option<String>, String> {
        match self.client.get_secret(name, None).await {
            Ok(resp) => {
                let secret =
                    resp.into_model().map_err(|e| format!("Key Vault {}: secret '{name}': {e}", self.vault))?;
                Ok(secret.value)
            }
            Err(e) if e.http_status() == Some(azure_core::http::StatusCode::NotFound) => Ok(None),
            // A failed read's error names the secret and the cause; a value only ever arrives in a success.
            Err(e) => Err(format!("Key Vault {}: secret '{name}': {e}", self.vault)),
        }
    }
}

impl CredentialSource for KeyVaultSource {
    fn load(&self) -> BoxFuture<'_, Result<Credentials, String>> {
        Box::pin(async move { assemble(&self.names, self.mode, |name| async move { self.secret(&name).await }).await })
    }

    /// A direct tenant's refresh token: the secret named after the tenant id, its
    /// newest version (CIPP writes a new one when it rotates the token).
    fn load_tenant(&self, tenant: &str) -> BoxFuture<'_, Result<Option<String>, String>> {
        let [name, _] = direct_secret_names(tenant);
        Box::pin(async move { self.secret(&name).await })
    }
}

/// caguard's own Azure identity: the managed identity in Azure
/// (`CAGUARD_IDENTITY_CLIENT_ID` picks a user-assigned one), developer tools
/// (Azure CLI, azd) locally. Used for Key Vault and Table Storage.
pub fn azure_credential() -> Result<Arc<dyn TokenCredential>, String> {
    let in_azure = std::env::var_os("IDENTITY_ENDPOINT").is_some() || std::env::var_os("MSI_ENDPOINT").is_some();
    if in_azure {
        let user_assigned_id =
            std::env::var("CAGUARD_IDENTITY_CLIENT_ID").ok().map(azure_identity::UserAssignedId::ClientId);
        let options = azure_identity::ManagedIdentityCredentialOptions { user_assigned_id, ..Default::default() };
        Ok(azure_identity::ManagedIdentityCredential::new(Some(options))
            .map_err(|e| format!("managed identity: {e}"))?)
    } else {
        Ok(azure_identity::DeveloperToolsCredential::new(None)
            .map_err(|e| format!("developer tools credential: {e}"))?)
    }
}

/// The source the environment asks for: `CAGUARD_KEYVAULT_URL` (CIPP's vault)
/// or app settings / environment variables named as the secrets.
/// `CAGUARD_AUTH` is `app` (default) or `delegated`.
pub fn from_env() -> Result<Arc<dyn CredentialSource>, String> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let names = SecretNames::from_env(get);
    let mode = match get("CAGUARD_AUTH").as_deref() {
        None | Some("app") => AuthMode::App,
        Some("delegated") => AuthMode::Delegated,
        Some(other) => return Err(format!("CAGUARD_AUTH: unknown mode '{other}'; expected app or delegated")),
    };
    match get("CAGUARD_KEYVAULT_URL") {
        Some(url) => Ok(Arc::new(KeyVaultSource::new(&url, names, mode)?)),
        None => Ok(Arc::new(EnvSource { names, mode })),
    }
}
