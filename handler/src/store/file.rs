//! An embedded store in one JSON file, for the CLI, the demo and local runs.
//! Writers in other processes are kept out with an OS file lock; each write
//! replaces the file atomically.

use super::{BoxFuture, Store, StoreError, TenantStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;

#[derive(Default, Serialize, Deserialize)]
struct Contents {
    #[serde(default)]
    statuses: BTreeMap<String, TenantStatus>,
    /// sweep correlation id → tenants that changed in it.
    #[serde(default)]
    changes: BTreeMap<String, Vec<String>>,
    /// tenant → the watch's last fingerprint.
    #[serde(default)]
    fingerprints: BTreeMap<String, String>,
    /// record key → drift record.
    #[serde(default)]
    drift: BTreeMap<String, super::DriftRecord>,
    /// "key|window" → alerts counted.
    #[serde(default)]
    alerts: BTreeMap<String, u32>,
    /// kind → key → record.
    #[serde(default)]
    records: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStore { path: path.into() }
    }

    /// Runs `f` on the contents under an exclusive lock and writes them back.
    fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Contents) -> T + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        self.locked(true, f)
    }

    /// Runs `f` on the contents under the lock, leaving the file as it is.
    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Contents) -> T + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        self.locked(false, move |c| f(c))
    }

    fn locked<T: Send + 'static>(
        &self,
        write: bool,
        f: impl FnOnce(&mut Contents) -> T + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        let path = self.path.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || -> Result<T, StoreError> {
                let err = |e: std::io::Error| StoreError(format!("{}: {e}", path.display()));
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(err)?;
                }
                let lock_path = path.with_extension("lock");
                let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(err)?;
                lock.lock().map_err(err)?;
                let mut contents: Contents = match std::fs::read(&path) {
                    Ok(bytes) => serde_json::from_slice(&bytes)
                        .map_err(|e| StoreError(format!("{}: not a caguard store: {e}", path.display())))?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Contents::default(),
                    Err(e) => return Err(err(e)),
                };
                let out = f(&mut contents);
                if !write {
                    return Ok(out);
                }
                let tmp = path.with_extension("tmp");
                let mut file = File::create(&tmp).map_err(err)?;
                serde_json::to_writer_pretty(&mut file, &contents).map_err(|e| StoreError(e.to_string()))?;
                file.sync_all().map_err(err)?;
                std::fs::rename(&tmp, &path).map_err(err)?;
                drop(lock);
                Ok(out)
            })
            .await
            .map_err(|e| StoreError(format!("store task failed: {e}")))?
        })
    }
}

impl Store for FileStore {
    fn put_record(&self, kind: &str, key: &str, value: serde_json::Value) -> BoxFuture<'_, Result<(), StoreError>> {
        let (kind, key) = (kind.to_string(), key.to_string());
        self.with(move |c| {
            c.records.entry(kind).or_default().insert(key, value);
        })
    }

    fn records(&self, kind: &str) -> BoxFuture<'_, Result<Vec<(String, serde_json::Value)>, StoreError>> {
        let kind = kind.to_string();
        self.read(move |c| {
            c.records.get(&kind).map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
        })
    }

    fn put_records(
        &self,
        kind: &str,
        records: Vec<(String, serde_json::Value)>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let kind = kind.to_string();
        self.with(move |c| c.records.entry(kind).or_default().extend(records))
    }

    fn delete_records(&self, kind: &str, keys: Vec<String>) -> BoxFuture<'_, Result<(), StoreError>> {
        let kind = kind.to_string();
        self.with(move |c| {
            if let Some(m) = c.records.get_mut(&kind) {
                for k in &keys {
                    m.remove(k);
                }
            }
        })
    }

    fn delete_record(&self, kind: &str, key: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let (kind, key) = (kind.to_string(), key.to_string());
        self.with(move |c| {
            if let Some(m) = c.records.get_mut(&kind) {
                m.remove(&key);
            }
        })
    }

    fn record_drift(&self, record: super::DriftRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        self.with(move |c| {
            c.drift.insert(record.key(), record);
        })
    }

    fn drift_records(&self, tenant: Option<&str>) -> BoxFuture<'_, Result<Vec<super::DriftRecord>, StoreError>> {
        let tenant = tenant.map(str::to_ascii_lowercase);
        self.read(move |c| {
            let mut v: Vec<_> = c
                .drift
                .values()
                .filter(|r| tenant.as_ref().is_none_or(|t| r.tenant_id.eq_ignore_ascii_case(t)))
                .cloned()
                .collect();
            v.sort_by(|a, b| b.detected_at.cmp(&a.detected_at));
            v
        })
    }

    fn alert_count(&self, key: &str, window: &str) -> BoxFuture<'_, Result<u32, StoreError>> {
        let k = format!("{key}|{window}");
        self.read(move |c| c.alerts.get(&k).copied().unwrap_or(0))
    }

    fn count_alert(&self, key: &str, window: &str) -> BoxFuture<'_, Result<u32, StoreError>> {
        let k = format!("{key}|{window}");
        self.with(move |c| {
            let n = c.alerts.entry(k).or_insert(0);
            *n += 1;
            *n
        })
    }

    fn fingerprints(&self) -> BoxFuture<'_, Result<BTreeMap<String, String>, StoreError>> {
        self.read(|c| c.fingerprints.clone())
    }

    fn put_fingerprints(&self, fps: BTreeMap<String, String>) -> BoxFuture<'_, Result<(), StoreError>> {
        self.with(move |c| c.fingerprints.extend(fps))
    }

    fn put_status(&self, status: TenantStatus) -> BoxFuture<'_, Result<(), StoreError>> {
        self.with(move |c| {
            c.statuses.insert(status.tenant_id.to_ascii_lowercase(), status);
        })
    }

    fn statuses(&self) -> BoxFuture<'_, Result<Vec<TenantStatus>, StoreError>> {
        self.read(|c| c.statuses.values().cloned().collect())
    }

    fn claim_change(&self, sweep: &str, tenant: &str, limit: usize) -> BoxFuture<'_, Result<bool, StoreError>> {
        let (sweep, tenant) = (sweep.to_string(), tenant.to_ascii_lowercase());
        self.with(move |c| {
            let claimed = c.changes.entry(sweep).or_default();
            if claimed.contains(&tenant) {
                return true;
            }
            if claimed.len() >= limit {
                return false;
            }
            claimed.push(tenant);
            true
        })
    }
}
