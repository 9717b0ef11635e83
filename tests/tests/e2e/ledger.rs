//! The store contract: the same suite on the embedded file store and on Azure
//! Table Storage (Azurite), including two writers at once.

use caguard::store::{DriftRecord, FileStore, Store, TableStore, TenantStatus};
use caguard_e2e::{Azurite, unique_table};
use serde_json::json;
use std::sync::Arc;

fn status(tenant: &str, outcome: &str) -> TenantStatus {
    TenantStatus {
        tenant_id: tenant.into(),
        tenant_name: "T".into(),
        outcome: outcome.into(),
        reason: None,
        written: 0,
        at: "2026-11-21T10:00:00Z".into(),
        correlation_id: "c".into(),
    }
}

fn drift(tenant: &str, object: &str, correlation: &str, at: &str) -> DriftRecord {
    DriftRecord {
        tenant_id: tenant.into(),
        tenant_name: "T".into(),
        control: "D1".into(),
        object_id: object.into(),
        object_name: "Require MFA".into(),
        before: json!({"conditions": {"users": {"excludeGuestsOrExternalUsers": null}}}),
        after: json!({"conditions": {"users": {"excludeGuestsOrExternalUsers": {"guestOrExternalUserTypes": "serviceProvider"}}}}),
        changed_by: "Mallory Admin <mallory@fabrikam.example>".into(),
        changed_at: Some(at.into()),
        action: "restored".into(),
        result: "fixed".into(),
        detected_at: at.into(),
        correlation_id: correlation.into(),
    }
}

/// The contract every backend keeps. `a` and `b` are two writers over the same data.
async fn contract(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    // Last results: one per tenant, replaced.
    a.put_status(status("t1", "fixed")).await.unwrap();
    b.put_status(status("t1", "compliant")).await.unwrap();
    a.put_status(status("t2", "skipped")).await.unwrap();
    let mut s = b.statuses().await.unwrap();
    s.sort_by(|x, y| x.tenant_id.cmp(&y.tenant_id));
    assert_eq!(
        s.iter().map(|x| (x.tenant_id.as_str(), x.outcome.as_str())).collect::<Vec<_>>(),
        vec![("t1", "compliant"), ("t2", "skipped")]
    );

    // Fingerprints merge.
    a.put_fingerprints([("t1".to_string(), "f1".to_string())].into()).await.unwrap();
    b.put_fingerprints([("t2".to_string(), "f2".to_string())].into()).await.unwrap();
    let fp = a.fingerprints().await.unwrap();
    assert_eq!(fp.get("t1").map(String::as_str), Some("f1"));
    assert_eq!(fp.get("t2").map(String::as_str), Some("f2"));

    // Records: put one or many, read by kind, delete one or many; kinds stay apart.
    let many: Vec<(String, serde_json::Value)> =
        (0..40).map(|i| (format!("k{i:02}"), serde_json::json!({"n": i}))).collect();
    a.put_records("bulk", many).await.unwrap();
    b.put_record("bulk", "k00", serde_json::json!({"n": "replaced"})).await.unwrap();
    b.put_record("other", "k00", serde_json::json!(1)).await.unwrap();
    let mut got = b.records("bulk").await.unwrap();
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(got.len(), 40);
    assert_eq!(got[0].1["n"], "replaced");
    assert_eq!(got[39], ("k39".to_string(), serde_json::json!({"n": 39})));
    a.delete_records("bulk", (0..30).map(|i| format!("k{i:02}")).chain(["missing".to_string()]).collect())
        .await
        .unwrap();
    b.delete_record("bulk", "k30").await.unwrap();
    assert_eq!(a.records("bulk").await.unwrap().len(), 9, "a missing key is no error");
    assert_eq!(a.records("other").await.unwrap().len(), 1);

    // Drift records: idempotent per (correlation, tenant, object, control), newest first.
    a.record_drift(drift("t1", "p1", "c1", "2026-11-21T10:00:00Z")).await.unwrap();
    b.record_drift(drift("t1", "p1", "c1", "2026-11-21T10:00:00Z")).await.unwrap();
    a.record_drift(drift("t1", "p1", "c2", "2026-11-21T11:00:00Z")).await.unwrap();
    a.record_drift(drift("t2", "p9", "c2", "2026-11-21T11:00:00Z")).await.unwrap();
    let t1 = b.drift_records(Some("t1")).await.unwrap();
    assert_eq!(t1.len(), 2, "the retried write is one record");
    assert_eq!(t1[0].correlation_id, "c2", "newest first");
    assert_eq!(t1[0].changed_by, "Mallory Admin <mallory@fabrikam.example>");
    assert_eq!(b.drift_records(None).await.unwrap().len(), 3);

    // Two writers at once never lose a count or overrun a limit.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let n = s.count_alert("t1|p1|D1", "2026-11-21T10").await.unwrap();
            let claimed = s.claim_change("sweep-1", &format!("tenant-{i}"), 5).await.unwrap();
            (n, claimed)
        }));
    }
    let mut counts = Vec::new();
    let mut claimed = 0;
    for t in tasks {
        let (n, c) = t.await.unwrap();
        counts.push(n);
        claimed += usize::from(c);
    }
    counts.sort();
    assert_eq!(counts, (1..=20).collect::<Vec<u32>>(), "every increment counted exactly once");
    assert_eq!(claimed, 5, "the limit holds across writers");
    assert!(!a.claim_change("sweep-1", "tenant-late", 5).await.unwrap(), "no slot left for another tenant");
    assert_eq!(a.count_alert("t1|p1|D1", "2026-11-21T11").await.unwrap(), 1, "a new window starts at one");

    // A record larger than one table property (64 KiB) is kept whole, and a
    // smaller one written over it leaves nothing of the old one behind.
    let big = json!({"message": format!("é<&>{}", "x".repeat(150_000))});
    a.put_record("alert-record", "big", big.clone()).await.unwrap();
    let got = b.records("alert-record").await.unwrap();
    assert_eq!(got.iter().find(|(k, _)| k == "big").map(|(_, v)| v), Some(&big), "read back whole");
    a.put_record("alert-record", "big", json!({"message": "small"})).await.unwrap();
    let got = b.records("alert-record").await.unwrap();
    assert_eq!(got.iter().find(|(k, _)| k == "big").map(|(_, v)| v), Some(&json!({"message": "small"})));
    let huge = json!({"message": "x".repeat(600_000)});
    let err = a.put_record("alert-record", "huge", huge).await;
    assert!(
        err.is_err() || b.records("alert-record").await.unwrap().iter().any(|(k, _)| k == "huge"),
        "refused, never cut"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_store_keeps_the_contract() {
    let path = std::env::temp_dir().join(format!("caguard-ledger-{}", std::process::id())).join("store.json");
    let _ = std::fs::remove_file(&path);
    contract(Arc::new(FileStore::new(&path)), Arc::new(FileStore::new(&path))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_store_keeps_the_contract_on_azurite() {
    let az = Azurite::start();
    let prefix = unique_table("t");
    contract(Arc::new(TableStore::new(az.client(), &prefix)), Arc::new(TableStore::new(az.client(), &prefix))).await;
}
