//! Graph's side of What If: the evaluate call, the memberships it resolves
//! server-side (caguard reads them to evaluate the same sign-in), and where
//! Graph's answer and caguard's disagree.

use super::eval::{Answer, Reason};
use crate::graph::{GraphClient, GraphError};
use crate::model::Collection;
use serde_json::Value;

/// `POST /identity/conditionalAccess/evaluate` (v1.0; Policy.Read.ConditionalAccess).
/// A Conditional Access request: paced at one a second per tenant.
pub async fn evaluate(client: &GraphClient, tenant: &str, request: &Value) -> Result<Vec<Value>, GraphError> {
    let answer: Collection<Value> = client.post(tenant, "/identity/conditionalAccess/evaluate", request).await?;
    Ok(answer.value)
}

/// A user's groups and directory roles (role template ids), transitively, as
/// What If sees them (`GET /users/{id}/transitiveMemberOf`).
pub async fn memberships(
    client: &GraphClient,
    tenant: &str,
    user: &str,
) -> Result<(Vec<String>, Vec<String>), GraphError> {
    let path = format!("/users/{user}/transitiveMemberOf?$select=id,roleTemplateId");
    let all: Vec<Value> = client.list(tenant, &path).await?;
    let mut groups = Vec::new();
    let mut roles = Vec::new();
    for m in all {
        let kind = m["@odata.type"].as_str().unwrap_or_default();
        if kind.ends_with("directoryRole") {
            roles.extend(m["roleTemplateId"].as_str().map(str::to_ascii_lowercase));
        } else if kind.ends_with("group") {
            groups.extend(m["id"].as_str().map(str::to_ascii_lowercase));
        }
    }
    Ok((groups, roles))
}

/// Graph's answer for a policy and caguard's differ on whether it applies. A
/// policy either side could not decide (`notEnoughInformation`) is not compared.
pub fn differs(graph: &Value, mine: &Answer) -> bool {
    let undecided = graph["analysisReasons"] == "notEnoughInformation" || mine.reason == Reason::NotEnoughInformation;
    !undecided && (graph["policyApplies"] == true) != mine.applies
}

/// Every policy on which Graph's answer and caguard's [`differs`], said in a line.
pub fn disagreement(graph: &[Value], mine: &[Answer]) -> Option<String> {
    let mut out = Vec::new();
    for g in graph {
        let Some(id) = g["id"].as_str() else { continue };
        let Some(m) = mine.iter().find(|a| a.policy_id.eq_ignore_ascii_case(id)) else { continue };
        let graph_applies = g["policyApplies"] == true;
        if differs(g, m) {
            let said = |applies: bool| if applies { "applies" } else { "does not apply" };
            out.push(format!(
                "\"{}\": Graph says it {} ({}), caguard says it {} ({})",
                m.name,
                said(graph_applies),
                g["analysisReasons"].as_str().unwrap_or("?"),
                said(m.applies),
                m.reason.as_str()
            ));
        }
    }
    (!out.is_empty()).then(|| out.join("; "))
}

/// Graph's answer in a line: the policies that apply.
pub fn summary(graph: &[Value]) -> String {
    let applying: Vec<String> = graph
        .iter()
        .filter(|g| g["policyApplies"] == true)
        .map(|g| format!("\"{}\"", g["displayName"].as_str().unwrap_or_default()))
        .collect();
    if applying.is_empty() { "no policy applies now".into() } else { format!("applies now: {}", applying.join(", ")) }
}
