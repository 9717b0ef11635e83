//! Every JSON file under `tests/fixtures/graph/` deserializes into the
//! typed models and re-serializes to semantically equal JSON.
//! Adding a file adds a case; the count is printed.

use caguard::model::*;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/graph")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(json_files(&path));
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Round-trips `v` through `T` and asserts nothing was lost or changed.
fn roundtrip<T: Serialize + DeserializeOwned>(v: &Value, what: &str, file: &Path) {
    let typed: T =
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{}: not a {what}: {e}", file.display()));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(&back, v, "{}: {what} round trip changed the JSON", file.display());
}

/// Picks the model for a document from its shape, the way a reader of the
/// docs would: the folder says which API, the keys say which body.
fn classify(folder: &str, v: &Value) -> &'static str {
    let has = |k: &str| v.get(k).is_some();
    let first = v.get("value").and_then(|a| a.get(0));
    let first_has = |k: &str| first.is_some_and(|f| f.get(k).is_some());
    if has("error") {
        return "error";
    }
    if has("requests") {
        return "batch-request";
    }
    if has("responses") {
        return "batch-response";
    }
    if has("message") && folder.contains("sendmail") {
        return "sendmail";
    }
    if has("signInIdentity") {
        return "whatif-request";
    }
    if has("value") {
        if first_has("lifecycleEvent") || first_has("subscriptionId") {
            return "notifications";
        }
        if first_has("notificationUrl") {
            return "subscriptions";
        }
        if first_has("ipRanges") || first_has("countriesAndRegions") {
            return "named-locations";
        }
        if first_has("accessDetails") {
            return "relationships";
        }
        if first_has("tenantId") && folder.contains("delegatedadmincustomers") {
            return "customers";
        }
        if first_has("appliedConditionalAccessPolicies") {
            return "sign-ins";
        }
        if first_has("activityDisplayName") {
            return "audits";
        }
        if first_has("conditions") || first_has("grantControls") {
            return "policies";
        }
    }
    if has("notificationUrl") || (has("expirationDateTime") && v.as_object().unwrap().len() == 1) {
        return "subscription";
    }
    if has("ipRanges") || has("countriesAndRegions") {
        return "named-location";
    }
    if has("accessDetails") {
        return "relationship";
    }
    if has("isEnabled") && folder.contains("securitydefaults") {
        return "security-defaults";
    }
    if has("conditions") || has("grantControls") {
        return "policy";
    }
    panic!("{folder}: no model for a document with keys {:?}", v.as_object().map(|o| o.keys().collect::<Vec<_>>()))
}

#[test]
fn every_graph_fixture_round_trips_through_the_typed_models() {
    let files = json_files(&fixtures_dir());
    assert!(!files.is_empty(), "no fixtures found under {}", fixtures_dir().display());
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let folder = file.parent().unwrap().file_name().unwrap().to_string_lossy().to_string();
        let kind = classify(&folder, &v);
        match kind {
            "error" => roundtrip::<GraphErrorBody>(&v, kind, file),
            "batch-request" => roundtrip::<BatchRequest>(&v, kind, file),
            "batch-response" => roundtrip::<BatchResponse>(&v, kind, file),
            "sendmail" => roundtrip::<SendMailRequest>(&v, kind, file),
            "whatif-request" => roundtrip::<WhatIfRequest>(&v, kind, file),
            "notifications" => roundtrip::<ChangeNotificationCollection>(&v, kind, file),
            "subscriptions" => roundtrip::<Collection<Subscription>>(&v, kind, file),
            "named-locations" => roundtrip::<Collection<NamedLocation>>(&v, kind, file),
            "relationships" => roundtrip::<Collection<DelegatedAdminRelationship>>(&v, kind, file),
            "customers" => roundtrip::<Collection<DelegatedAdminCustomer>>(&v, kind, file),
            "sign-ins" => roundtrip::<Collection<SignIn>>(&v, kind, file),
            "audits" => roundtrip::<Collection<DirectoryAudit>>(&v, kind, file),
            "policies" => roundtrip::<Collection<ConditionalAccessPolicy>>(&v, kind, file),
            "subscription" => roundtrip::<Subscription>(&v, kind, file),
            "named-location" => roundtrip::<NamedLocation>(&v, kind, file),
            "relationship" => roundtrip::<DelegatedAdminRelationship>(&v, kind, file),
            "security-defaults" => roundtrip::<SecurityDefaultsPolicy>(&v, kind, file),
            "policy" => roundtrip::<ConditionalAccessPolicy>(&v, kind, file),
            other => unreachable!("{other}"),
        }
        *counts.entry(kind).or_default() += 1;
    }
    println!("round-tripped {} Graph fixtures: {counts:?}", files.len());
}

/// The typed fields really are typed: a policy's users and state land in
/// named fields, not in `extra`.
#[test]
fn typed_fields_are_populated_not_left_in_extra() {
    let text = std::fs::read_to_string(fixtures_dir().join("conditionalaccesspolicy-get/01-response.json")).unwrap();
    let p: ConditionalAccessPolicy = serde_json::from_str(&text).unwrap();
    assert_eq!(p.state, Maybe::Value(PolicyState::Disabled));
    let users = p.users().unwrap();
    assert!(list(&users.exclude_users).contains(&"GuestsOrExternalUsers".to_string()));
    assert!(!p.extra.contains_key("conditions"));
    assert!(p.extra.contains_key("@odata.context"));
}

#[test]
fn explicit_null_and_absent_stay_distinct() {
    let with_null = serde_json::json!({"id": "1", "sessionControls": null});
    let p: ConditionalAccessPolicy = serde_json::from_value(with_null.clone()).unwrap();
    assert_eq!(p.session_controls, Maybe::Null);
    assert_eq!(serde_json::to_value(&p).unwrap(), with_null);
    let without = serde_json::json!({"id": "1"});
    let p: ConditionalAccessPolicy = serde_json::from_value(without.clone()).unwrap();
    assert_eq!(p.session_controls, Maybe::Absent);
    assert_eq!(serde_json::to_value(&p).unwrap(), without);
}

#[test]
fn guest_types_and_unknown_enums_survive() {
    let v = serde_json::json!({
        "state": "somethingNew",
        "conditions": {"users": {"excludeGuestsOrExternalUsers": {
            "guestOrExternalUserTypes": "internalGuest,serviceProvider",
            "externalTenants": {
                "@odata.type": ENUMERATED_EXTERNAL_TENANTS,
                "membershipKind": "enumerated",
                "members": ["t1"]
            }
        }}}
    });
    let p: ConditionalAccessPolicy = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(p.state, Maybe::Value(PolicyState::Unknown("somethingNew".into())));
    let ex = p.users().unwrap().exclude_guests_or_external_users.as_ref().unwrap();
    assert!(ex.guest_or_external_user_types.as_ref().unwrap().contains(&GuestOrExternalUserType::ServiceProvider));
    assert_eq!(serde_json::to_value(&p).unwrap(), v);
}
