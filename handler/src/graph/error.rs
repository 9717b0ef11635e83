use thiserror::Error;

/// Everything that can go wrong talking to Graph. Every variant names the
/// tenant, so a sweep over thousands of tenants says which one failed.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GraphError {
    /// The token endpoint refused (for example `invalid_grant`, `invalid_client`,
    /// `unauthorized_client` when the app is not consented in the tenant).
    #[error("tenant {tenant}: token request failed with HTTP {status} {code}: {description}")]
    Token { tenant: String, status: u16, code: String, description: String },
    /// Graph answered with an error status.
    #[error(
        "tenant {tenant}: {method} {url} failed with HTTP {status} {code}: {message} (request-id {request_id}, after {retries} retries)"
    )]
    Api {
        tenant: String,
        method: String,
        url: String,
        status: u16,
        code: String,
        message: String,
        request_id: String,
        retries: u32,
    },
    /// Graph answered 2xx with a body that is not the JSON we expect.
    #[error("tenant {tenant}: {url} returned a malformed body: {message} (request-id {request_id})")]
    Decode { tenant: String, url: String, request_id: String, message: String },
    /// The request never got an HTTP answer.
    #[error("tenant {tenant}: {url}: {message}")]
    Transport { tenant: String, url: String, message: String },
    /// The caller asked for something Graph would refuse (checked before sending).
    #[error("tenant {tenant}: invalid request: {message}")]
    Invalid { tenant: String, message: String },
    /// Credentials could not be loaded from their source.
    #[error("tenant {tenant}: credentials unavailable: {message}")]
    Credentials { tenant: String, message: String },
}

impl GraphError {
    pub fn tenant(&self) -> &str {
        match self {
            GraphError::Token { tenant, .. }
            | GraphError::Api { tenant, .. }
            | GraphError::Decode { tenant, .. }
            | GraphError::Transport { tenant, .. }
            | GraphError::Invalid { tenant, .. }
            | GraphError::Credentials { tenant, .. } => tenant,
        }
    }

    /// HTTP status, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Token { status, .. } | GraphError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Graph's or the token endpoint's error code.
    pub fn code(&self) -> Option<&str> {
        match self {
            GraphError::Token { code, .. } | GraphError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            GraphError::Api { request_id, .. } | GraphError::Decode { request_id, .. } => Some(request_id),
            _ => None,
        }
    }

    /// Consent or credential problems: enforcement cannot run in the tenant until a person acts.
    /// Graph refused a reference to a named location it has not replicated yet:
    /// 400 "1040: NamedLocation with id … does not exist in the directory."
    /// (KelvinTegelaar/CIPP#3932, #4194).
    pub fn is_unreplicated_location(&self) -> bool {
        matches!(self, GraphError::Api { status: 400, message, .. }
            if message.contains("1040") || message.contains("NamedLocation with id"))
    }

    pub fn is_auth_failure(&self) -> bool {
        matches!(self, GraphError::Token { .. } | GraphError::Credentials { .. })
            || matches!(self, GraphError::Api { status: 401 | 403, .. })
    }
}
