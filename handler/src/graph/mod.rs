//! The Microsoft Graph client: tokens, pacing, retries, paging and `$batch`.
//!
//! Limits it lives within (Microsoft's documentation):
//! - CA policy and named-location endpoints: 1 request/second per tenant, shared
//!   by all apps, and their 429s carry no Retry-After. The [`Pacer`] keeps each
//!   tenant under that instead of bouncing off it.
//! - `$batch`: at most 20 requests, each throttled on its own, so one batch
//!   carries at most one CA request.
//! - 429/503/504 are retried, honouring Retry-After when sent and with jittered
//!   exponential backoff when not. Retries are bounded.

mod batch;
mod client;
mod error;
mod pacer;
mod token;

pub use client::{GraphClient, GraphConfig, RetryPolicy, Stats};
pub use error::GraphError;
pub use pacer::Pacer;
pub use token::{CredentialSource, Credentials, StaticCredentials};

/// The boxed future a [`CredentialSource`] returns.
pub mod token_future {
    pub use super::token::BoxFuture;
}

/// True for URLs under the CA limit of 1 request/second/tenant.
pub fn is_ca_url(url: &str) -> bool {
    url.to_ascii_lowercase().contains("/identity/conditionalaccess/")
}
