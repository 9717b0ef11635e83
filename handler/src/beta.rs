//! The one beta-only property caguard reads and writes: S4's
//! `sessionControls.continuousAccessEvaluation` (strict location enforcement, a
//! preview). v1.0's `conditionalAccessSessionControls` has no such property, so
//! a v1.0 read never shows it; beta shows `strictLocation` only with
//! `Prefer: include-unknown-enum-members` (learn.microsoft.com,
//! continuousAccessEvaluationSessionControl, beta). caguard reads policies from
//! v1.0 as always and lays this one property over them from beta.

use crate::config::{Config, ControlMode};
use crate::graph::{GraphClient, GraphError};
use crate::model::{Collection, ConditionalAccessPolicy};
use crate::observe::POLICIES;
use serde_json::Value;

const CAE: &str = "continuousAccessEvaluation";

/// Some lockdown's S4 wants strict location, so the MSP tenant's read needs beta.
pub fn needed(config: &Config) -> bool {
    config.lockdowns.iter().any(|l| l.session.strict_location && config.session_mode(l) != ControlMode::Off)
}

/// The body writes to beta: it sets the beta-only property.
pub fn writes_beta(body: &Value) -> bool {
    body.pointer(&format!("/sessionControls/{CAE}")).is_some_and(|v| !v.is_null())
}

/// Lays each policy's beta `continuousAccessEvaluation` over its v1.0 copy (one
/// more CA request per read of the MSP tenant).
pub async fn overlay(client: &GraphClient, tenant: &str, policies: &mut [Value]) -> Result<(), GraphError> {
    let path = format!("{POLICIES}?$select=id,sessionControls");
    let beta: Collection<Value> = client.get_beta(tenant, &path).await?;
    for b in &beta.value {
        if let Some(p) = policies.iter_mut().find(|p| p["id"].as_str().is_some_and(|id| Some(id) == b["id"].as_str())) {
            lay(p, b);
        }
    }
    Ok(())
}

/// One policy, v1.0 with the beta property laid over; `None` when it does not exist.
pub async fn policy(
    client: &GraphClient,
    tenant: &str,
    id: &str,
) -> Result<Option<ConditionalAccessPolicy>, GraphError> {
    let mut v: Value = match client.get(tenant, &format!("{POLICIES}/{id}")).await {
        Ok(v) => v,
        Err(e) if e.status() == Some(404) => return Ok(None),
        Err(e) => return Err(e),
    };
    let b: Value = client.get_beta(tenant, &format!("{POLICIES}/{id}?$select=id,sessionControls")).await?;
    lay(&mut v, &b);
    serde_json::from_value(v).map(Some).map_err(|e| GraphError::Decode {
        tenant: tenant.into(),
        url: format!("{POLICIES}/{id}"),
        request_id: String::new(),
        message: e.to_string(),
    })
}

fn lay(p: &mut Value, beta: &Value) {
    let Some(cae) = beta.pointer(&format!("/sessionControls/{CAE}")).filter(|c| !c.is_null()) else { return };
    if !p["sessionControls"].is_object() {
        p["sessionControls"] = Value::Object(Default::default());
    }
    p["sessionControls"][CAE] = cae.clone();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_beta_property_is_laid_over_the_v1_copy_and_nothing_else() {
        let mut p = json!({"id": "a", "sessionControls": null, "state": "enabled"});
        lay(
            &mut p,
            &json!({"id": "a", "sessionControls": {"continuousAccessEvaluation": {"mode": "strictLocation"}, "x": 1}}),
        );
        assert_eq!(
            p,
            json!({"id": "a", "state": "enabled", "sessionControls": {"continuousAccessEvaluation": {"mode": "strictLocation"}}})
        );
        let mut q = json!({"id": "b", "sessionControls": {"signInFrequency": {"value": 8}}});
        lay(&mut q, &json!({"id": "b", "sessionControls": null}));
        assert_eq!(q, json!({"id": "b", "sessionControls": {"signInFrequency": {"value": 8}}}));
        assert!(writes_beta(&json!({"sessionControls": {"continuousAccessEvaluation": {"mode": "strictLocation"}}})));
        assert!(!writes_beta(&json!({"sessionControls": {"signInFrequency": {}}})));
    }
}
