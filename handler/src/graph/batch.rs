//! `$batch`: up to 20 requests in one POST, with Graph's per-request throttling
//! respected (one CA request per batch, throttled items re-sent on their own).

use super::client::retryable;
use super::{GraphClient, GraphError, is_ca_url};
use crate::model::{BatchRequest, BatchRequestItem, BatchResponse, BatchResponseItem, MAX_BATCH};
use reqwest::{Method, StatusCode};
use std::sync::atomic::Ordering;

impl GraphClient {
    /// Sends up to 20 requests in one `$batch`.
    ///
    /// Graph throttles each request inside a batch on its own, so a batch may
    /// carry at most one CA request: it is paced like a direct one. Sub-requests
    /// answered 429/503/504 are re-sent on their own with the usual retries.
    pub async fn batch(
        &self,
        tenant: &str,
        items: Vec<BatchRequestItem>,
    ) -> Result<Vec<BatchResponseItem>, GraphError> {
        if items.len() > MAX_BATCH {
            return Err(GraphError::Invalid {
                tenant: tenant.into(),
                message: format!("a batch holds at most {MAX_BATCH} requests, got {}", items.len()),
            });
        }
        let ca_items = items
            .iter()
            .filter(|i| i.url.as_ref().is_some_and(|u| is_ca_url(&format!("/{}", u.trim_start_matches('/')))))
            .count();
        if ca_items > 1 {
            return Err(GraphError::Invalid {
                tenant: tenant.into(),
                message: format!(
                    "a batch may carry one Conditional Access request (1 request/second/tenant), got {ca_items}"
                ),
            });
        }
        if ca_items == 1 {
            // Reserve the CA slot before the batch leaves.
            self.inner.tokens.get(tenant).await?;
            self.inner.pacer.wait(tenant).await;
        }
        let body = serde_json::to_value(BatchRequest { requests: items.clone().into(), extra: Default::default() })
            .expect("serializable");
        let a = self.send(tenant, Method::POST, "/$batch", Some(&body)).await;
        if ca_items == 1 {
            self.inner.pacer.completed(tenant);
        }
        let a = a?;
        // The POST itself is a read when every item is.
        if items.iter().all(|i| i.method.as_ref().is_some_and(|m| m.eq_ignore_ascii_case("GET"))) {
            self.inner.counters.writes.fetch_sub(1, Ordering::Relaxed);
            self.inner.counters.reads.fetch_add(1, Ordering::Relaxed);
        }
        let resp: BatchResponse = Self::decode(tenant, &self.url("/$batch"), &a)?;
        let mut out = resp.responses.into_option().unwrap_or_default();
        for r in out.iter_mut() {
            let status = r.status.as_ref().copied().unwrap_or(0);
            if status == 429 {
                self.inner.counters.throttled.fetch_add(1, Ordering::Relaxed);
            }
            if !retryable(StatusCode::from_u16(status).unwrap_or(StatusCode::OK)) {
                continue;
            }
            let Some(item) = items.iter().find(|i| i.id == r.id) else { continue };
            self.inner.counters.retries.fetch_add(1, Ordering::Relaxed);
            *r = self.resend(tenant, item).await?;
        }
        out.sort_by(|a, b| a.id.as_ref().cmp(&b.id.as_ref()));
        Ok(out)
    }

    /// Re-sends one batch item on its own, returning it in batch-response shape.
    async fn resend(&self, tenant: &str, item: &BatchRequestItem) -> Result<BatchResponseItem, GraphError> {
        let method = item
            .method
            .as_ref()
            .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
            .unwrap_or(Method::GET);
        let path = item.url.as_ref().cloned().unwrap_or_default();
        let body = item.body.as_ref();
        let result = self.send(tenant, method, &format!("/{}", path.trim_start_matches('/')), body).await;
        let (status, body) = match result {
            Ok(a) => (a.status.as_u16(), serde_json::from_slice(&a.body).ok()),
            Err(GraphError::Api { status, code, message, .. }) => {
                (status, Some(serde_json::json!({"error": {"code": code, "message": message}})))
            }
            Err(e) => return Err(e),
        };
        Ok(BatchResponseItem {
            id: item.id.clone(),
            status: status.into(),
            headers: Default::default(),
            body: body.into(),
            extra: Default::default(),
        })
    }
}
