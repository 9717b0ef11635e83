//! The store in Azure Table Storage: the function app's own storage account in
//! Azure, Azurite locally. Every read-modify-write is guarded by the entity's
//! ETag, so concurrent instances never lose each other's writes.

use super::{BoxFuture, DriftRecord, Store, StoreError, TenantStatus};
use crate::storage::{TableClient, TableError};
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Tables (created on first use).
const STATUS: &str = "caguardStatus";
const CLAIMS: &str = "caguardClaims";
const FINGERPRINTS: &str = "caguardFingerprints";
const DRIFT: &str = "caguardDrift";
const ALERTS: &str = "caguardAlerts";
const RECORDS: &str = "caguardRecords";

/// Bulk writes in flight at once: well inside an account's 20,000 operations/second.
const PARALLEL_WRITES: usize = 16;

pub struct TableStore {
    client: TableClient,
    /// Prepended to every table name (tests use it to stay apart).
    prefix: String,
    created: tokio::sync::OnceCell<()>,
}

/// Runs `write` on every item, `PARALLEL_WRITES` at a time; the first failure wins.
async fn in_parallel<T, F, Fut>(items: impl IntoIterator<Item = T>, write: F) -> Result<(), StoreError>
where
    F: FnMut(T) -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    futures_util::stream::iter(items).map(write).buffer_unordered(PARALLEL_WRITES).try_collect::<Vec<()>>().await?;
    Ok(())
}

fn err(e: TableError) -> StoreError {
    StoreError(e.to_string())
}

/// Row keys may not hold `/ \ # ?`; tenant ids and hashes never do, sweeps might.
fn safe_key(s: &str) -> String {
    s.chars().map(|c| if matches!(c, '/' | '\\' | '#' | '?') || c.is_control() { '_' } else { c }).collect()
}

impl TableStore {
    pub fn new(client: TableClient, prefix: &str) -> Self {
        TableStore { client, prefix: prefix.to_string(), created: tokio::sync::OnceCell::new() }
    }

    fn t(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.created
            .get_or_try_init(|| async {
                for t in [STATUS, CLAIMS, FINGERPRINTS, DRIFT, ALERTS, RECORDS] {
                    self.client.create_table(&self.t(t)).await.map_err(err)?;
                }
                Ok::<(), StoreError>(())
            })
            .await
            .map(|_| ())
    }

    /// Upserts rows of one partition of `table` (its name without the prefix).
    async fn upsert_many(
        &self,
        table: &str,
        pk: &str,
        rows: impl Iterator<Item = (String, Map<String, Value>)>,
    ) -> Result<(), StoreError> {
        let table = &self.t(table);
        in_parallel(rows, |(rk, props)| async move {
            self.client.upsert(table, pk, &rk, &props).await.map(|_| ()).map_err(err)
        })
        .await
    }

    /// Deletes one row; a row already gone is fine.
    async fn delete_row(&self, table: &str, pk: &str, rk: &str) -> Result<(), StoreError> {
        match self.client.delete(&self.t(table), pk, rk, "*").await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    /// Read-modify-write of one entity under its ETag, retried on conflicts.
    async fn update<T>(
        &self,
        table: &str,
        pk: &str,
        rk: &str,
        f: impl Fn(Option<&Map<String, Value>>) -> (Map<String, Value>, T),
    ) -> Result<T, StoreError> {
        let table = self.t(table);
        for _ in 0..20 {
            let current = self.client.get(&table, pk, rk).await.map_err(err)?;
            let (props, out) = f(current.as_ref().map(|e| &e.properties));
            let written = match &current {
                None => self.client.insert(&table, pk, rk, &props).await.map(|_| ()),
                Some(e) => self.client.replace(&table, pk, rk, &props, &e.etag).await.map(|_| ()),
            };
            match written {
                Ok(()) => return Ok(out),
                // Someone else wrote first: read again and redo.
                Err(e) if e.status == 409 || e.is_precondition_failed() => continue,
                Err(e) => return Err(err(e)),
            }
        }
        Err(StoreError(format!("{table} {pk}/{rk}: too many concurrent writers")))
    }
}

fn alert_row(key: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes()).iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn text(props: &Map<String, Value>, k: &str) -> Option<String> {
    props.get(k).and_then(Value::as_str).map(str::to_string)
}

impl Store for TableStore {
    fn put_record(&self, kind: &str, key: &str, value: Value) -> BoxFuture<'_, Result<(), StoreError>> {
        let (kind, key) = (safe_key(kind), safe_key(key));
        Box::pin(async move {
            self.ready().await?;
            let props = json_props(&value.to_string())?;
            self.client.upsert(&self.t(RECORDS), &kind, &key, &props).await.map_err(err)?;
            Ok(())
        })
    }

    fn records(&self, kind: &str) -> BoxFuture<'_, Result<Vec<(String, Value)>, StoreError>> {
        let filter = format!("PartitionKey eq '{}'", safe_key(kind).replace('\'', "''"));
        Box::pin(async move {
            self.ready().await?;
            let rows = self.client.query(&self.t(RECORDS), Some(&filter)).await.map_err(err)?;
            Ok(rows
                .iter()
                .map(|r| (r.row_key.clone(), serde_json::from_str(&json_text(&r.properties)).unwrap_or(Value::Null)))
                .collect())
        })
    }

    fn delete_record(&self, kind: &str, key: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let (kind, key) = (safe_key(kind), safe_key(key));
        Box::pin(async move {
            self.ready().await?;
            self.delete_row(RECORDS, &kind, &key).await
        })
    }

    fn put_records(&self, kind: &str, records: Vec<(String, Value)>) -> BoxFuture<'_, Result<(), StoreError>> {
        let kind = safe_key(kind);
        Box::pin(async move {
            self.ready().await?;
            let mut rows = Vec::with_capacity(records.len());
            for (key, value) in records {
                rows.push((safe_key(&key), json_props(&value.to_string())?));
            }
            self.upsert_many(RECORDS, &kind, rows.into_iter()).await
        })
    }

    fn delete_records(&self, kind: &str, keys: Vec<String>) -> BoxFuture<'_, Result<(), StoreError>> {
        let kind = safe_key(kind);
        Box::pin(async move {
            self.ready().await?;
            let kind = &kind;
            in_parallel(keys, |key| async move { self.delete_row(RECORDS, kind, &safe_key(&key)).await }).await
        })
    }

    fn put_status(&self, s: TenantStatus) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.ready().await?;
            let mut props = Map::new();
            props.insert("Json".into(), Value::String(serde_json::to_string(&s).expect("serializable")));
            self.client
                .upsert(&self.t(STATUS), "status", &s.tenant_id.to_ascii_lowercase(), &props)
                .await
                .map_err(err)?;
            Ok(())
        })
    }

    fn statuses(&self) -> BoxFuture<'_, Result<Vec<TenantStatus>, StoreError>> {
        Box::pin(async move {
            self.ready().await?;
            let rows = self.client.query(&self.t(STATUS), Some("PartitionKey eq 'status'")).await.map_err(err)?;
            rows.iter()
                .map(|r| {
                    serde_json::from_str(r.str("Json").unwrap_or("{}"))
                        .map_err(|e| StoreError(format!("status {}: {e}", r.row_key)))
                })
                .collect()
        })
    }

    fn claim_change(&self, sweep: &str, tenant: &str, limit: usize) -> BoxFuture<'_, Result<bool, StoreError>> {
        let (sweep, tenant) = (safe_key(sweep), tenant.to_ascii_lowercase());
        Box::pin(async move {
            self.ready().await?;
            self.update(CLAIMS, "claims", &sweep, |current| {
                let mut tenants: Vec<String> = current
                    .and_then(|c| text(c, "Tenants"))
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default();
                let granted = tenants.contains(&tenant) || tenants.len() < limit;
                if granted && !tenants.contains(&tenant) {
                    tenants.push(tenant.clone());
                }
                let mut props = Map::new();
                props.insert("Tenants".into(), Value::String(serde_json::to_string(&tenants).expect("json")));
                (props, granted)
            })
            .await
        })
    }

    fn fingerprints(&self) -> BoxFuture<'_, Result<BTreeMap<String, String>, StoreError>> {
        Box::pin(async move {
            self.ready().await?;
            let rows = self.client.query(&self.t(FINGERPRINTS), Some("PartitionKey eq 'fp'")).await.map_err(err)?;
            Ok(rows.into_iter().filter_map(|r| r.str("Value").map(|v| (r.row_key.clone(), v.to_string()))).collect())
        })
    }

    fn put_fingerprints(&self, fps: BTreeMap<String, String>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.ready().await?;
            let rows = fps.into_iter().map(|(tenant, fp)| {
                let mut props = Map::new();
                props.insert("Value".into(), Value::String(fp));
                (tenant.to_ascii_lowercase(), props)
            });
            self.upsert_many(FINGERPRINTS, "fp", rows).await
        })
    }

    fn record_drift(&self, record: DriftRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.ready().await?;
            let mut props = Map::new();
            props.insert("Json".into(), Value::String(serde_json::to_string(&record).expect("serializable")));
            props.insert("DetectedAt".into(), json!(record.detected_at));
            // Keyed by content, so a retried reconcile rewrites the same row.
            self.client
                .upsert(&self.t(DRIFT), &record.tenant_id.to_ascii_lowercase(), &record.key(), &props)
                .await
                .map_err(err)?;
            Ok(())
        })
    }

    fn drift_records(&self, tenant: Option<&str>) -> BoxFuture<'_, Result<Vec<DriftRecord>, StoreError>> {
        let filter = tenant.map(|t| format!("PartitionKey eq '{}'", t.to_ascii_lowercase().replace('\'', "''")));
        Box::pin(async move {
            self.ready().await?;
            let rows = self.client.query(&self.t(DRIFT), filter.as_deref()).await.map_err(err)?;
            let mut v: Vec<DriftRecord> = rows
                .iter()
                .map(|r| {
                    serde_json::from_str(r.str("Json").unwrap_or("{}"))
                        .map_err(|e| StoreError(format!("drift {}: {e}", r.row_key)))
                })
                .collect::<Result<_, _>>()?;
            v.sort_by(|a, b| b.detected_at.cmp(&a.detected_at));
            Ok(v)
        })
    }

    fn alert_count(&self, key: &str, window: &str) -> BoxFuture<'_, Result<u32, StoreError>> {
        let rk = alert_row(key);
        let window = safe_key(window);
        Box::pin(async move {
            self.ready().await?;
            let row = self.client.get(&self.t(ALERTS), &window, &rk).await.map_err(err)?;
            Ok(row.and_then(|r| r.properties.get("Count").and_then(Value::as_u64)).unwrap_or(0) as u32)
        })
    }

    fn count_alert(&self, key: &str, window: &str) -> BoxFuture<'_, Result<u32, StoreError>> {
        let rk = alert_row(key);
        let window = safe_key(window);
        Box::pin(async move {
            self.ready().await?;
            self.update(ALERTS, &window, &rk, |current| {
                let n = current.and_then(|c| c.get("Count")).and_then(Value::as_u64).unwrap_or(0) as u32 + 1;
                let mut props = Map::new();
                props.insert("Count".into(), json!(n));
                props.insert("Count@odata.type".into(), json!("Edm.Int32"));
                (props, n)
            })
            .await
        })
    }
}

/// A table property holds at most 64 KiB (32 K UTF-16 units) and an entity 1 MiB,
/// so a record's JSON is split over `Json`, `Json1`, `Json2`, … of at most
/// [`CHUNK_CHARS`] characters each (at most two UTF-16 units per character).
const CHUNK_CHARS: usize = 16_000;
/// 30 chunks stay well inside the entity's 1 MiB.
const MAX_CHUNKS: usize = 30;

fn json_props(text: &str) -> Result<Map<String, Value>, StoreError> {
    let chars: Vec<char> = text.chars().collect();
    let chunks: Vec<String> = chars.chunks(CHUNK_CHARS).map(|c| c.iter().collect()).collect();
    if chunks.len() > MAX_CHUNKS {
        return Err(StoreError(format!(
            "a record of {} characters is larger than a table entity holds ({} characters)",
            chars.len(),
            CHUNK_CHARS * MAX_CHUNKS
        )));
    }
    let mut props = Map::new();
    for (i, c) in chunks.into_iter().enumerate() {
        let name = if i == 0 { "Json".to_string() } else { format!("Json{i}") };
        props.insert(name, Value::String(c));
    }
    if props.is_empty() {
        props.insert("Json".into(), Value::String(String::new()));
    }
    Ok(props)
}

/// The JSON text of a record written by [`json_props`] (or by an older caguard, in one piece).
fn json_text(props: &Map<String, Value>) -> String {
    let mut text = props.get("Json").and_then(Value::as_str).unwrap_or("null").to_string();
    for i in 1..=MAX_CHUNKS {
        match props.get(&format!("Json{i}")).and_then(Value::as_str) {
            Some(c) => text.push_str(c),
            None => break,
        }
    }
    text
}
