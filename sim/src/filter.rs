//! The small part of OData `$filter` the simulated endpoints understand:
//! clauses joined by `and`, each one of
//! - `path eq 'text'` / `path ne 'text'`,
//! - `path ge 2024-01-01T00:00:00Z` / `le` / `gt` / `lt` (timestamps compare as text),
//! - `collection/any(x:x/prop eq 'text')`, and `collection/any(x:x eq 'text')` for a
//!   collection of strings (sign-ins' `signInEventTypes`).
//!
//! Anything else is rejected, so a client cannot silently rely on a filter
//! the simulator ignores.

use serde_json::Value;

#[derive(Debug, PartialEq)]
enum Clause {
    Compare { path: Vec<String>, op: String, value: String },
    Any { collection: String, prop: String, value: String },
}

#[derive(Debug)]
pub struct Filter(Vec<Clause>);

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, String> {
        let mut clauses = Vec::new();
        for raw in split_and(text) {
            clauses.push(parse_clause(raw.trim())?);
        }
        Ok(Filter(clauses))
    }

    pub fn matches(&self, item: &Value) -> bool {
        self.0.iter().all(|c| match c {
            Clause::Compare { path, op, value } => {
                let got = path.iter().try_fold(item, |v, seg| v.get(seg));
                let got = match got {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Bool(b)) => b.to_string(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => return op == "ne",
                };
                match op.as_str() {
                    "eq" => got.eq_ignore_ascii_case(value),
                    "ne" => !got.eq_ignore_ascii_case(value),
                    "ge" => got.as_str() >= value.as_str(),
                    "gt" => got.as_str() > value.as_str(),
                    "le" => got.as_str() <= value.as_str(),
                    "lt" => got.as_str() < value.as_str(),
                    _ => false,
                }
            }
            Clause::Any { collection, prop, value } => {
                item.get(collection).and_then(Value::as_array).is_some_and(|a| {
                    a.iter().any(|e| {
                        let v = if prop.is_empty() { Some(e) } else { e.get(prop) };
                        v.and_then(Value::as_str).is_some_and(|s| s.eq_ignore_ascii_case(value))
                    })
                })
            }
        })
    }
}

fn split_and(text: &str) -> Vec<&str> {
    // ` and ` never appears inside the quoted values caguard sends.
    text.split(" and ").collect()
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')).unwrap_or(v).replace("''", "'")
}

fn parse_clause(c: &str) -> Result<Clause, String> {
    if let Some(open) = c.find("/any(") {
        let collection = c[..open].trim().to_string();
        let inner = c[open + 5..].strip_suffix(')').ok_or_else(|| format!("unclosed any() in '{c}'"))?;
        let (var, body) = inner.split_once(':').ok_or_else(|| format!("any() without a lambda in '{c}'"))?;
        let body = body.trim();
        let var = var.trim();
        if let Some(value) = body.strip_prefix(&format!("{var} eq ")) {
            return Ok(Clause::Any { collection, prop: String::new(), value: unquote(value) });
        }
        let prefix = format!("{var}/");
        let rest = body.strip_prefix(&prefix).ok_or_else(|| format!("unsupported lambda '{body}'"))?;
        let parts: Vec<&str> = rest.splitn(3, ' ').collect();
        if parts.len() != 3 || parts[1] != "eq" {
            return Err(format!("unsupported lambda '{body}'"));
        }
        return Ok(Clause::Any { collection, prop: parts[0].to_string(), value: unquote(parts[2]) });
    }
    let parts: Vec<&str> = c.splitn(3, ' ').collect();
    if parts.len() != 3 || !["eq", "ne", "ge", "gt", "le", "lt"].contains(&parts[1]) {
        return Err(format!("unsupported filter clause '{c}'"));
    }
    Ok(Clause::Compare {
        path: parts[0].split('/').map(str::to_string).collect(),
        op: parts[1].to_string(),
        value: unquote(parts[2]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_audits_by_target_and_time() {
        let f =
            Filter::parse("activityDateTime ge 2024-01-01T00:00:00Z and targetResources/any(t:t/id eq 'abc')").unwrap();
        assert!(f.matches(&json!({"activityDateTime": "2024-05-01T00:00:00Z", "targetResources": [{"id": "abc"}]})));
        assert!(!f.matches(&json!({"activityDateTime": "2023-05-01T00:00:00Z", "targetResources": [{"id": "abc"}]})));
        assert!(!f.matches(&json!({"activityDateTime": "2024-05-01T00:00:00Z", "targetResources": [{"id": "x"}]})));
    }

    #[test]
    fn any_over_a_collection_of_strings() {
        let f = Filter::parse("signInEventTypes/any(t: t eq 'nonInteractiveUser')").unwrap();
        assert!(f.matches(&json!({"signInEventTypes": ["nonInteractiveUser"]})));
        assert!(!f.matches(&json!({"signInEventTypes": ["interactiveUser"]})));
    }

    #[test]
    fn nested_paths_and_rejections() {
        let f = Filter::parse("customer/tenantId eq 'T1'").unwrap();
        assert!(f.matches(&json!({"customer": {"tenantId": "t1"}})));
        assert!(Filter::parse("startswith(displayName,'a')").is_err());
    }
}
