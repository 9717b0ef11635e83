//! Who changed an object: the newest `directoryAudit` for it not made by caguard.

use crate::graph::{GraphClient, GraphError};
use crate::model::{Collection, DirectoryAudit};

/// Who changed it and when.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub who: String,
    /// The object id of the user who made it (`None` for an app).
    pub user_id: Option<String>,
    pub when: String,
    pub activity: String,
}

/// The newest change to `object_id` in `tenant` not made by the app `own_app_id`.
/// `None` when the audit log has no such record (yet): audit latency is minutes at p95.
pub async fn who_changed(
    client: &GraphClient,
    tenant: &str,
    object_id: &str,
    own_app_id: &str,
) -> Result<Option<Change>, GraphError> {
    let filter = format!("targetResources/any(t:t/id eq '{object_id}')");
    let path = format!(
        "/auditLogs/directoryAudits?$top=20&$filter={}",
        url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
    );
    let page: Collection<DirectoryAudit> = client.get(tenant, &path).await?;
    let theirs = page.value.into_iter().find(|a| {
        let app = a.initiated_by.as_ref().and_then(|i| i.app.as_ref()).and_then(|a| a.app_id.as_ref());
        app.is_none_or(|id| !id.eq_ignore_ascii_case(own_app_id))
    });
    Ok(theirs.map(|a| Change {
        who: a.initiated_by.as_ref().map_or_else(|| "unknown".into(), |i| i.describe()),
        user_id: a.initiated_by.as_ref().and_then(|i| i.user.as_ref()).and_then(|u| u.id.as_ref().cloned()),
        when: a.activity_date_time.into_option().unwrap_or_default(),
        activity: a.activity_display_name.into_option().unwrap_or_default(),
    }))
}
