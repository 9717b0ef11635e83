//! Part C: every CIPP-API client, and every CIPP role's access list, limited to
//! the trusted ranges, kept in CIPP's own tables so CIPP's UI and its access
//! check still read them.
//!
//! - `ApiClients`: PartitionKey `ApiClients`, RowKey = the client's app id,
//!   columns `AppName`, `Role`, `IPRange`, `Enabled` (C1).
//! - `AccessIPRanges`: RowKey = role name in lower case, column `IPRanges` (C2).
//!
//! CIPP's PowerShell writes the ranges as JSON inside a string column, and the
//! encoding depends on the count: `""` for none, a bare JSON string for one, a
//! JSON array for several. A client with no ranges (or `Any`) can be used from any IP.

pub mod auth;
mod ranges;
mod report;
pub mod roles;
pub mod tenants;

use ranges::is_any;
pub use ranges::{decode_ranges, encode_ranges, parse_range, trusted, trusted_in_cipp_form};
pub use report::{CippReport, RowOutcome, RowReport, alerts, drift_records, text};

use crate::config::{Config, Control, ControlMode};
use crate::storage::{Entity, TableClient, TableError};
use ipnet::IpNet;
use serde::Serialize;
use serde_json::{Map, Value};

pub const API_CLIENTS: &str = "ApiClients";
pub const ACCESS_IP_RANGES: &str = "AccessIPRanges";
/// CIPP's log (`Write-LogMessage`): PartitionKey `yyyyMMdd`, columns `API`, `Message`, `Username`.
pub const CIPP_LOGS: &str = "CippLogs";

/// The connection string for CIPP's storage from the environment (local runs).
pub fn connection_string_from_env() -> Option<String> {
    std::env::var("CAGUARD_CIPP_CONNECTION_STRING").ok().filter(|cs| !cs.trim().is_empty())
}

/// The client for CIPP's tables: a connection string (local runs), else `[cipp]`
/// in the config with the managed identity (or developer tools locally).
/// `None` when Part C is not configured.
pub fn table_client(config: &Config, connection_string: Option<&str>) -> Option<Result<TableClient, String>> {
    if let Some(cs) = connection_string {
        return Some(
            TableClient::from_connection_string(cs).map_err(|e| format!("CAGUARD_CIPP_CONNECTION_STRING: {e}")),
        );
    }
    let storage = config.cipp.as_ref()?;
    Some(
        crate::secrets::azure_credential()
            .map(|c| TableClient::new(&storage.table_endpoint, crate::storage::Auth::Token(c))),
    )
}

/// What one row needs.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RowPlan {
    pub control: Control,
    pub table: String,
    pub row_key: String,
    /// `AppName`, or the role.
    pub name: String,
    pub enabled: bool,
    /// Why the row drifted; `None` when it is compliant.
    pub drift: Option<String>,
    /// The column value to write (CIPP's encoding), when a write would fix it.
    pub write: Option<String>,
    pub before: String,
}

/// Plans one row: keeps the trusted ranges (as written), drops foreign ones,
/// and falls back to the whole trusted set when nothing trusted is left.
pub fn plan_row(
    control: Control,
    trusted: &[IpNet],
    table: &str,
    column: &str,
    row: &Entity,
) -> Result<RowPlan, String> {
    let before = row.str(column).unwrap_or_default().to_string();
    let name = if control == Control::C1 {
        row.str("AppName").unwrap_or(&row.row_key).to_string()
    } else {
        row.row_key.clone()
    };
    let enabled = control == Control::C2 || row.properties.get("Enabled").and_then(Value::as_bool).unwrap_or(true);
    let superadmin = control == Control::C2 && row.row_key.eq_ignore_ascii_case(roles::SUPERADMIN);
    let ranges = decode_ranges(&before).map_err(|e| format!("{column}: {e}"))?;
    let mut plan = RowPlan {
        control,
        table: table.into(),
        row_key: row.row_key.clone(),
        name,
        enabled,
        drift: None,
        write: None,
        before,
    };
    // CIPP never restricts superadmin (Get-CIPPRoleIPRanges) and refuses it ranges.
    if superadmin {
        return Ok(plan);
    }
    let all_trusted = trusted_in_cipp_form(trusted);
    if ranges.is_empty() || ranges.iter().any(|r| is_any(r)) {
        plan.drift = Some("no IP ranges: usable from any IP".into());
        plan.write = Some(encode_ranges(&all_trusted));
        return Ok(plan);
    }
    let mut kept = Vec::new();
    let mut foreign = Vec::new();
    let mut reformed = Vec::new();
    for r in &ranges {
        let net = parse_range(r).map_err(|e| format!("{column}: {e}"))?;
        if !trusted.iter().any(|t| t.contains(&net)) {
            foreign.push(r.clone());
        } else if !roles::cipp_accepts(r.trim()) {
            // Trusted, but a re-save in CIPP would drop it: written in CIPP's form.
            reformed.push(r.clone());
            kept.push(roles::cipp_form(&net));
        } else {
            kept.push(r.clone());
        }
    }
    let mut why = Vec::new();
    if !foreign.is_empty() {
        why.push(format!("outside the trusted ranges: {}", foreign.join(", ")));
    }
    if !reformed.is_empty() {
        why.push(format!(
            "not in the form CIPP's save accepts (a re-save in CIPP would drop it): {}",
            reformed.join(", ")
        ));
    }
    if !why.is_empty() {
        plan.drift = Some(why.join("; "));
        plan.write = Some(encode_ranges(if kept.is_empty() { &all_trusted } else { &kept }));
    }
    Ok(plan)
}

/// Where CIPP keeps them (its own names by default; tests use others).
#[derive(Clone, Debug)]
pub struct Tables {
    pub api_clients: String,
    pub access_ip_ranges: String,
    pub logs: String,
    /// CIPP's custom roles (PartitionKey `CustomRoles`).
    pub custom_roles: String,
    /// CIPP's tenant list, where direct tenants are marked ([`tenants`]).
    pub tenants: String,
}

/// CIPP's storage as caguard reads it: the table client and the table names.
#[derive(Clone, Debug)]
pub struct Cipp {
    pub client: TableClient,
    pub tables: Tables,
}

impl Cipp {
    /// CIPP's storage with CIPP's own table names, when it is configured
    /// ([`table_client`]); an error names what is wrong with the setting.
    pub fn from_config(config: &Config, connection_string: Option<&str>) -> Option<Result<Cipp, String>> {
        Some(table_client(config, connection_string)?.map(|client| Cipp { client, tables: Tables::default() }))
    }
}

impl Default for Tables {
    fn default() -> Self {
        Tables {
            api_clients: API_CLIENTS.into(),
            access_ip_ranges: ACCESS_IP_RANGES.into(),
            logs: CIPP_LOGS.into(),
            custom_roles: roles::CUSTOM_ROLES.into(),
            tenants: tenants::TENANTS.into(),
        }
    }
}

/// One table caguard watches: which control, where, and which column.
pub struct Target {
    pub control: Control,
    pub table: String,
    pub partition: &'static str,
    pub column: &'static str,
}

impl Tables {
    pub fn targets(&self) -> [Target; 2] {
        [
            Target { control: Control::C1, table: self.api_clients.clone(), partition: API_CLIENTS, column: "IPRange" },
            Target {
                control: Control::C2,
                table: self.access_ip_ranges.clone(),
                partition: ACCESS_IP_RANGES,
                column: "IPRanges",
            },
        ]
    }
}

/// Checks (and in enforce mode fixes) both tables, and with `site` which API
/// clients CIPP's front door lets in ([`auth`]). Never fails as a whole: each
/// problem is reported with its table and row.
pub async fn run(
    client: &TableClient,
    config: &Config,
    tables: &Tables,
    site: Option<&auth::Site>,
    apply: bool,
) -> CippReport {
    let trusted = trusted(config);
    let mut report = CippReport::default();
    let allowed = match site.filter(|_| config.control(Control::C1) != ControlMode::Off) {
        Some(site) => {
            auth::read(&reqwest::Client::new(), site).await.map_err(|e| report.errors.push(auth::unread(&e))).ok()
        }
        None => None,
    };
    for t in &tables.targets() {
        let mode = config.control(t.control);
        if mode == ControlMode::Off {
            continue;
        }
        let rows = match client.query(&t.table, Some(&format!("PartitionKey eq '{}'", t.partition))).await {
            Ok(rows) => rows,
            Err(e) => {
                report.errors.push(describe_table_error(t.control, &e));
                continue;
            }
        };
        let keys: Vec<String> = rows.iter().map(|r| r.row_key.clone()).collect();
        for row in rows {
            let live = t.control == Control::C1 && auth::disabled_but_allowed(allowed.as_ref(), &row);
            let write = apply && mode == ControlMode::Enforce;
            let outcome = reconcile_row(client, t, &trusted, row.clone(), write, live).await;
            let outcome = if live { auth::with_note(outcome) } else { outcome };
            let name = row.str("AppName").unwrap_or(&row.row_key).to_string();
            let after = match &outcome {
                RowOutcome::Fixed(_) => client
                    .get(&t.table, &row.partition_key, &row.row_key)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|r| r.str(t.column).map(str::to_string)),
                _ => None,
            };
            report.rows.push(RowReport {
                control: t.control,
                table: t.table.clone(),
                row_key: row.row_key.clone(),
                name,
                outcome,
                before: row.str(t.column).unwrap_or_default().to_string(),
                after,
                last_written: row.timestamp.clone(),
                changed_by: None,
                changed_at: None,
            });
        }
        if t.control == Control::C2 {
            let write = apply && mode == ControlMode::Enforce;
            missing_role_rows(client, t, tables, &trusted, &keys, write, &mut report).await;
        }
        if t.control == Control::C1 {
            report.rows.extend(auth::clients_without_rows(allowed.as_ref(), &t.table, &keys));
        }
    }
    if report.drifted() > 0 {
        attribute(client, tables, &mut report).await;
    }
    report
}

/// [`run`] on CIPP's own tables and, when `[cipp] site_id` is set, its site
/// (read with caguard's managed identity).
pub async fn run_configured(client: &TableClient, config: &Config, apply: bool) -> CippReport {
    let site = auth::configured(config);
    let ok = site.as_ref().and_then(|s| s.as_ref().ok());
    let mut report = run(client, config, &Tables::default(), ok, apply).await;
    if let Some(Err(e)) = site {
        report.errors.push(auth::unread(&e));
    }
    report
}

/// How far back CIPP's log is read, and how close a log line must be to the row's
/// last write to be taken as that write.
const LOG_LOOKBACK_DAYS: i64 = 7;
const LOG_SKEW_SECONDS: i64 = 300;

/// Names who last saved each drifted row through CIPP. A log that cannot be read
/// leaves them unknown: attribution never fails the pass.
async fn attribute(client: &TableClient, tables: &Tables, report: &mut CippReport) {
    let since = (chrono::Utc::now() - chrono::Duration::days(LOG_LOOKBACK_DAYS)).format("%Y%m%d");
    let filter = format!("PartitionKey ge '{since}' and (API eq 'ExecApiClient' or API eq 'ExecCustomRole')");
    let logs = match client.query(&tables.logs, Some(&filter)).await {
        Ok(logs) => logs,
        Err(e) => {
            tracing::warn!("CIPP-API: could not read {} to say who changed a row: {e}", tables.logs);
            return;
        }
    };
    for row in report.rows.iter_mut().filter(|r| !matches!(r.outcome, RowOutcome::Compliant)) {
        if let Some((who, when)) = who_saved(&logs, row) {
            row.changed_by = Some(who);
            row.changed_at = Some(when);
        }
    }
}

/// The CIPP user behind a row's last write: the newest `ExecApiClient` line
/// "Updated API client {id}" (C1) or `ExecCustomRole` line "Saved custom role {role}"
/// (C2) written within a few minutes of it. CIPP logs just before it writes; a row
/// edited outside CIPP (Storage Explorer, a script) has no such line and stays unknown.
pub fn who_saved(logs: &[Entity], row: &RowReport) -> Option<(String, String)> {
    let time = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
    let written = time(row.last_written.as_deref()?)?;
    let (api, message) = match row.control {
        Control::C1 => ("ExecApiClient", format!("Updated API client {}", row.row_key)),
        _ => ("ExecCustomRole", format!("Saved custom role {}", row.row_key)),
    };
    logs.iter()
        .filter(|l| l.str("API") == Some(api) && l.str("Message").is_some_and(|m| m.eq_ignore_ascii_case(&message)))
        .filter_map(|l| Some((l, time(l.timestamp.as_deref()?)?)))
        .filter(|(_, at)| (written - *at).num_seconds().abs() <= LOG_SKEW_SECONDS)
        .max_by_key(|(_, at)| *at)
        .and_then(|(l, at)| Some((l.str("Username").filter(|u| !u.is_empty())?.to_string(), at.to_rfc3339())))
}

/// Every CIPP role: the built-in ones and the rows of `CustomRoles` (a missing
/// table means no custom roles).
async fn cipp_roles(client: &TableClient, tables: &Tables) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = roles::DEFAULT_ROLES.iter().map(|r| r.to_string()).collect();
    let filter = format!("PartitionKey eq '{}'", roles::CUSTOM_ROLES);
    match client.query(&tables.custom_roles, Some(&filter)).await {
        Ok(rows) => out.extend(rows.into_iter().map(|r| r.row_key)),
        Err(e) if e.is_table_missing() => {}
        Err(e) => return Err(describe_table_error(Control::C2, &e)),
    }
    Ok(out)
}

/// A role with no `AccessIPRanges` row can be used from any IP (and clearing its
/// ranges in CIPP deletes the row): the row is created in CIPP's format.
async fn missing_role_rows(
    client: &TableClient,
    t: &Target,
    tables: &Tables,
    trusted: &[IpNet],
    existing: &[String],
    write: bool,
    report: &mut CippReport,
) {
    let roles = match cipp_roles(client, tables).await {
        Ok(r) => r,
        Err(e) => return report.errors.push(e),
    };
    let value = encode_ranges(&trusted_in_cipp_form(trusted));
    for role in roles::missing_rows(&roles, existing) {
        let drift = "no AccessIPRanges row: the role can be used from any IP";
        let outcome = if !write {
            RowOutcome::Reported(drift.into())
        } else {
            let mut props = Map::new();
            props.insert(t.column.to_string(), Value::String(value.clone()));
            match client.insert(&t.table, t.partition, &role, &props).await {
                Ok(_) => RowOutcome::Fixed(format!("{drift}; row created with {} {value}", t.column)),
                // Created meanwhile (by CIPP): the next pass checks it.
                Err(e) if e.status == 409 => {
                    RowOutcome::Reported(format!("{drift}; created meanwhile by someone else"))
                }
                Err(e) => RowOutcome::Failed(format!("row {role}: {e}")),
            }
        };
        let fixed = matches!(outcome, RowOutcome::Fixed(_));
        report.rows.push(RowReport {
            control: Control::C2,
            table: t.table.clone(),
            row_key: role.clone(),
            name: role,
            outcome,
            before: String::new(),
            after: fixed.then(|| value.clone()),
            last_written: None,
            changed_by: None,
            changed_at: None,
        });
    }
}

fn describe_table_error(control: Control, e: &TableError) -> String {
    let what = if e.is_table_missing() {
        "the table does not exist (is this CIPP's storage account?)"
    } else if e.is_auth_failure() {
        "storage authentication failed (check the connection string or the identity's Table Data role)"
    } else {
        "could not be read"
    };
    format!("{control}: table {}: {what}: {e}", e.table)
}

/// One row: plan, then write with the row's ETag; a concurrent edit in CIPP
/// (412) means re-read and re-plan, never a blind overwrite.
pub async fn reconcile_row(
    client: &TableClient,
    t: &Target,
    trusted: &[IpNet],
    mut row: Entity,
    write: bool,
    still_allowed: bool,
) -> RowOutcome {
    for _attempt in 0..3 {
        let plan = match plan_row(t.control, trusted, &t.table, t.column, &row) {
            Ok(p) => p,
            Err(e) => return RowOutcome::Failed(format!("row {}: {e}", row.row_key)),
        };
        let Some(drift) = plan.drift.clone() else { return RowOutcome::Compliant };
        // A disabled client CIPP's front door still lets in is live: restricted like an enabled one.
        if !plan.enabled && !still_allowed {
            return RowOutcome::Reported(format!("{drift} (client disabled: reported, not changed)"));
        }
        let (Some(value), true) = (plan.write.clone(), write) else { return RowOutcome::Reported(drift) };
        let mut column = Map::new();
        column.insert(t.column.to_string(), Value::String(value.clone()));
        match client.merge(&t.table, &row.partition_key, &row.row_key, &column, &row.etag).await {
            Ok(_) => return RowOutcome::Fixed(format!("{drift}; {} set to {value}", t.column)),
            Err(e) if e.is_precondition_failed() => {
                match client.get(&t.table, &row.partition_key, &row.row_key).await {
                    Ok(Some(fresh)) => row = fresh,
                    Ok(None) => {
                        return RowOutcome::Reported(format!("{drift}; the row was deleted while caguard worked"));
                    }
                    Err(e) => {
                        return RowOutcome::Failed(format!(
                            "row {}: re-read after a concurrent change failed: {e}",
                            row.row_key
                        ));
                    }
                }
            }
            Err(e) => return RowOutcome::Failed(format!("row {}: {e}", row.row_key)),
        }
    }
    RowOutcome::Failed(format!("row {}: changed concurrently three times; left for the next pass", row.row_key))
}
