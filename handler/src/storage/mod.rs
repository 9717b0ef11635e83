//! A small typed client for Azure Table Storage (no maintained crate exists).
//!
//! Used for CIPP's own tables (`ApiClients`, `AccessIPRanges`) and for caguard's
//! ledger. Authenticates with a connection string's account key (SharedKeyLite;
//! Azurite locally) or with an Entra token from the managed identity in Azure.
//! REST reference: <https://learn.microsoft.com/rest/api/storageservices/table-service-rest-api>.

mod queue;
mod table;

pub use queue::QueueClient;
pub use table::{Auth, DEV_ACCOUNT, DEV_KEY, Entity, TableClient, TableError};

/// Parses a storage connection string for one service (`table`, `queue`):
/// `UseDevelopmentStorage=true` (Azurite on `dev_port`), or `AccountName` and
/// `AccountKey` with `<Service>Endpoint` or `DefaultEndpointsProtocol`/`EndpointSuffix`.
/// Returns the service endpoint and the shared-key auth.
fn parse_connection_string(cs: &str, service: &str, dev_port: u16) -> Result<(String, Auth), String> {
    use base64::Engine;
    let parts: std::collections::HashMap<String, String> = cs
        .split(';')
        .filter(|p| !p.trim().is_empty())
        .filter_map(|p| p.split_once('=').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())))
        .collect();
    if parts.get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        let key = base64::engine::general_purpose::STANDARD.decode(DEV_KEY).expect("the well-known key");
        let endpoint = format!("http://127.0.0.1:{dev_port}/{DEV_ACCOUNT}");
        return Ok((endpoint, Auth::SharedKey { account: DEV_ACCOUNT.into(), key }));
    }
    let account = parts.get("accountname").ok_or("connection string: AccountName is missing")?.clone();
    let key = parts.get("accountkey").ok_or("connection string: AccountKey is missing")?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| "connection string: AccountKey is not base64")?;
    let endpoint = parts.get(&format!("{service}endpoint")).cloned().unwrap_or_else(|| {
        let protocol = parts.get("defaultendpointsprotocol").map_or("https", String::as_str);
        let suffix = parts.get("endpointsuffix").map_or("core.windows.net", String::as_str);
        format!("{protocol}://{account}.{service}.{suffix}")
    });
    Ok((endpoint, Auth::SharedKey { account, key }))
}

/// The HTTP client of the storage clients: every request, reading its answer
/// included, times out (a stalled storage endpoint never hangs a function).
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("storage HTTP client")
}
