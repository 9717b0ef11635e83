//! CIPP's `Tenants` table: which customers CIPP manages *directly* (no GDAP).
//!
//! CyberDrain/CIPP `backend/.../Setup/Invoke-ExecAddTenant.ps1` writes a direct
//! tenant as PartitionKey `Tenants`, RowKey and `customerId` the tenant id,
//! `displayName`, `defaultDomainName`, `delegatedPrivilegeStatus = 'directTenant'`
//! and `Excluded`. `GraphHelper/Get-GraphToken.ps1` reads exactly
//! `PartitionKey eq 'Tenants' and delegatedPrivilegeStatus eq 'directTenant'` to
//! decide which tenants get their own refresh token, so caguard reads the same.

use crate::storage::{Entity, TableClient};

/// CIPP's table name.
pub const TENANTS: &str = "Tenants";

const DIRECT_FILTER: &str = "PartitionKey eq 'Tenants' and delegatedPrivilegeStatus eq 'directTenant'";

/// A tenant CIPP manages directly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectTenant {
    /// Lower case GUID.
    pub tenant_id: String,
    pub name: String,
}

/// The direct tenants CIPP lists, excluded ones left out (CIPP skips them too).
/// A row whose `customerId` is not a GUID is skipped with a warning: it would go
/// into token and Graph URLs.
pub async fn direct_tenants(client: &TableClient, table: &str) -> Result<Vec<DirectTenant>, String> {
    let rows = match client.query(table, Some(DIRECT_FILTER)).await {
        Ok(rows) => rows,
        // CIPP creates the table with its first tenant list: none yet means no direct tenants.
        Err(e) if e.is_table_missing() => {
            tracing::warn!("CIPP table {table} does not exist: no direct tenants");
            return Ok(vec![]);
        }
        Err(e) => return Err(format!("CIPP table {table}: {e}")),
    };
    Ok(rows.iter().filter_map(direct_tenant).collect())
}

/// One row as a direct tenant, or `None` (excluded, or no usable id).
pub fn direct_tenant(row: &Entity) -> Option<DirectTenant> {
    let excluded = row.properties.get("Excluded").is_some_and(|v| v == true || v == "true" || v == "True");
    if excluded {
        return None;
    }
    let id = row.str("customerId").filter(|s| !s.is_empty()).unwrap_or(&row.row_key).to_ascii_lowercase();
    if !crate::config::is_guid(&id) {
        let shown: String = id.chars().take(60).collect();
        tracing::warn!("CIPP's Tenants table lists a direct tenant whose id is not a GUID ('{shown}'); ignored");
        return None;
    }
    let name = ["displayName", "defaultDomainName"]
        .iter()
        .find_map(|k| row.str(k).filter(|s| !s.is_empty()))
        .unwrap_or(&id)
        .to_string();
    Some(DirectTenant { tenant_id: id, name })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(props: serde_json::Value) -> Entity {
        Entity {
            partition_key: "Tenants".into(),
            row_key: "RK".into(),
            etag: String::new(),
            timestamp: None,
            properties: props.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn rows_become_direct_tenants_as_cipp_writes_them() {
        let id = "11111111-2222-3333-4444-555555555555";
        let t =
            direct_tenant(&row(json!({"customerId": id.to_uppercase(), "displayName": "Contoso", "Excluded": false})));
        assert_eq!(t, Some(DirectTenant { tenant_id: id.into(), name: "Contoso".into() }));
        assert_eq!(direct_tenant(&row(json!({"customerId": id, "Excluded": true}))), None, "excluded in CIPP");
        assert_eq!(direct_tenant(&row(json!({"customerId": "contoso.com"}))), None, "not a GUID");
        let named = direct_tenant(&row(json!({"customerId": id, "defaultDomainName": "contoso.com"}))).unwrap();
        assert_eq!(named.name, "contoso.com");
    }
}
