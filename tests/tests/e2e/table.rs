//! The Table Storage client against Azurite.

use caguard::storage::{Auth, TableClient};
use caguard_e2e::{Azurite, unique_table};
use serde_json::{Map, Value, json};

fn props(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn insert_get_merge_with_etags_and_query() {
    let az = Azurite::start();
    let t = az.client();
    let table = unique_table("Tbl");
    t.create_table(&table).await.unwrap();
    t.create_table(&table).await.expect("creating an existing table is fine");

    let etag = t.insert(&table, "P", "r1", &props(json!({"Name": "one", "Count": 1, "On": true}))).await.unwrap();
    let e = t.get(&table, "P", "r1").await.unwrap().expect("row exists");
    assert_eq!(e.etag, etag);
    assert_eq!(e.str("Name"), Some("one"));
    assert_eq!(e.properties["On"], json!(true));
    let dup = t.insert(&table, "P", "r1", &props(json!({"Name": "again"}))).await.unwrap_err();
    assert_eq!(dup.status, 409, "{dup}");

    let new_etag = t.merge(&table, "P", "r1", &props(json!({"Name": "uno"})), &etag).await.unwrap();
    assert_ne!(new_etag, etag);
    let e = t.get(&table, "P", "r1").await.unwrap().unwrap();
    assert_eq!(e.str("Name"), Some("uno"));
    assert_eq!(e.properties["Count"], json!(1), "MERGE leaves other columns alone");

    let stale = t.merge(&table, "P", "r1", &props(json!({"Name": "late"})), &etag).await.unwrap_err();
    assert!(stale.is_precondition_failed(), "{stale}");
    assert_eq!(stale.key.as_deref(), Some("r1"));

    t.insert(&table, "P", "r'2", &props(json!({"Name": "two"}))).await.unwrap();
    t.insert(&table, "Q", "r3", &props(json!({"Name": "three"}))).await.unwrap();
    let p = t.query(&table, Some("PartitionKey eq 'P'")).await.unwrap();
    assert_eq!(p.len(), 2);
    assert!(t.get(&table, "P", "r'2").await.unwrap().is_some(), "quotes in keys are escaped");
    assert!(t.get(&table, "P", "missing").await.unwrap().is_none());
    t.delete(&table, "Q", "r3", "*").await.unwrap();
    assert_eq!(t.query(&table, None).await.unwrap().len(), 2);
    t.delete_table(&table).await.unwrap();
}

#[tokio::test]
async fn a_missing_table_and_a_wrong_key_are_typed_errors() {
    let az = Azurite::start();
    let missing = az.client().query("NoSuchTable", None).await.unwrap_err();
    assert!(missing.is_table_missing(), "{missing}");
    let wrong = TableClient::new(
        &az.endpoint,
        Auth::SharedKey { account: "devstoreaccount1".into(), key: b"not the key".to_vec() },
    );
    let err = wrong.query("Anything", None).await.unwrap_err();
    assert!(err.is_auth_failure(), "{err}");
}
