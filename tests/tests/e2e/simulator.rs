//! The simulator behaves like Graph where caguard depends on it, and accepts
//! Microsoft's own request examples.

use caguard::model::*;
use caguard_e2e::*;
use caguard_sim::{Actor, Estate, SimHandle};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;

async fn token(sim: &SimHandle, estate: &Estate, tenant: &str) -> String {
    let app = &estate.apps[0];
    let resp: Value = reqwest::Client::new()
        .post(format!("{}/{tenant}/oauth2/v2.0/token", sim.base_url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    resp["access_token"].as_str().expect("token issued").to_string()
}

struct Raw {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Raw {
    async fn new(sim: &SimHandle, estate: &Estate, tenant: &str) -> Raw {
        Raw {
            http: reqwest::Client::new(),
            base: format!("{}/v1.0", sim.base_url),
            token: token(sim, estate, tenant).await,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        };
        let mut req = self.http.request(method.parse().unwrap(), url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let text = resp.text().await.unwrap();
        (status, headers, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }
}

fn assert_graph_error(body: &Value, what: &str) -> GraphErrorBody {
    let e: GraphErrorBody =
        serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("{what}: not Graph's error shape: {e}"));
    let d = e.error.as_ref().expect("error");
    assert!(d.code.as_ref().is_some_and(|c| !c.is_empty()), "{what}: code");
    assert!(d.inner_error.as_ref().and_then(|i| i.request_id.as_ref()).is_some(), "{what}: innerError.request-id");
    e
}

fn ip_location(name: &str, cidrs: &[&str]) -> Value {
    json!({"@odata.type": IP_NAMED_LOCATION, "displayName": name, "isTrusted": true,
           "ipRanges": cidrs.iter().map(|c| json!({"cidrAddress": c})).collect::<Vec<_>>()})
}

#[tokio::test]
async fn post_and_patch_behave_like_graph() {
    let (sim, estate) = sample_sim(0, false).await;
    let tenant = &estate.tenants[1].id;
    let raw = Raw::new(&sim, &estate, tenant).await;
    let body = json!({"displayName": "Sim test", "state": "enabledForReportingButNotEnforced",
        "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeApplications": ["All"]}},
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]}});
    let (status, _, created) = raw.call("POST", "identity/conditionalAccess/policies", Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["id"].as_str().expect("id").to_string();
    assert!(created["createdDateTime"].as_str().is_some());
    let (status, _, _) = raw
        .call(
            "PATCH",
            &format!("identity/conditionalAccess/policies/{id}"),
            Some(&json!({"conditions": {"users": {"excludeUsers": ["u1"]}}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, _, after) = raw.call("GET", &format!("identity/conditionalAccess/policies/{id}"), None).await;
    assert_eq!(after["conditions"]["users"]["includeUsers"], json!(["All"]), "unsent properties are kept");
    assert_eq!(after["conditions"]["users"]["excludeUsers"], json!(["u1"]));
    assert_eq!(after["grantControls"]["builtInControls"], json!(["mfa"]));
    assert_eq!(after["state"], "enabledForReportingButNotEnforced");
}

#[tokio::test]
async fn named_location_validation_matches_graph() {
    let (sim, estate) = sample_sim(0, false).await;
    let tenant = &estate.tenants[1].id;
    let raw = Raw::new(&sim, &estate, tenant).await;
    let (status, _, loc) = raw
        .call("POST", "identity/conditionalAccess/namedLocations", Some(&ip_location("Office", &["203.0.113.0/24"])))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let path = format!("identity/conditionalAccess/namedLocations/{}", loc["id"].as_str().unwrap());

    let (status, _, body) = raw.call("PATCH", &path, Some(&json!({"displayName": "renamed"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "PATCH without @odata.type");
    assert_graph_error(&body, "no @odata.type");

    let (status, _, body) = raw
        .call("POST", "identity/conditionalAccess/namedLocations", Some(&ip_location("Too wide", &["12.0.0.0/8"])))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a /8 is refused");
    assert!(assert_graph_error(&body, "/8").error.as_ref().unwrap().message.as_ref().unwrap().contains("/8"));

    let many: Vec<String> = (0..2001).map(|i| format!("20.{}.{}.0/24", i / 256, i % 256)).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let (status, _, body) =
        raw.call("POST", "identity/conditionalAccess/namedLocations", Some(&ip_location("Too many", &many))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "more than 2000 ranges");
    assert_graph_error(&body, "2001 ranges");

    let (status, _, _) =
        raw.call("PATCH", &path, Some(&json!({"@odata.type": IP_NAMED_LOCATION, "displayName": "renamed"}))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn unknown_enum_values_get_graphs_400() {
    let (sim, estate) = sample_sim(0, false).await;
    let tenant = &estate.tenants[1].id;
    let raw = Raw::new(&sim, &estate, tenant).await;
    let id = estate.tenants[1].policies[0]["id"].as_str().unwrap();
    for patch in [
        json!({"state": "on"}),
        json!({"grantControls": {"builtInControls": ["mfaPlease"]}}),
        json!({"conditions": {"users": {"excludeGuestsOrExternalUsers": {"guestOrExternalUserTypes": "serviceProviders"}}}}),
        json!({"sessionControls": {"signInFrequency": {"frequencyInterval": "sometimes", "isEnabled": true}}}),
    ] {
        let (status, _, body) =
            raw.call("PATCH", &format!("identity/conditionalAccess/policies/{id}"), Some(&patch)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{patch}");
        assert_graph_error(&body, &patch.to_string());
    }
}

#[tokio::test]
async fn ca_endpoints_throttle_at_one_per_second_without_retry_after() {
    let (sim, estate) = sample_sim(0, true).await;
    let tenant = &estate.tenants[1].id;
    let raw = Raw::new(&sim, &estate, tenant).await;
    let (first, _, _) = raw.call("GET", "identity/conditionalAccess/policies", None).await;
    let (second, headers, body) = raw.call("GET", "identity/conditionalAccess/namedLocations", None).await;
    assert_eq!(first, StatusCode::OK);
    assert_eq!(second, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.get("retry-after").is_none(), "CA 429s carry no Retry-After");
    assert_graph_error(&body, "429");
    // Other tenants and other endpoints are unaffected.
    let (other, _, _) = raw.call("GET", "subscribedSkus", None).await;
    assert_eq!(other, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let (later, _, _) = raw.call("GET", "identity/conditionalAccess/namedLocations", None).await;
    assert_eq!(later, StatusCode::OK);
}

/// CA policies come back whole (no server paging; `$top` truncates with no nextLink,
/// as Graph does), while directory collections page.
#[tokio::test]
async fn policies_list_whole_other_lists_page_and_batch_works() {
    let (sim, estate) = sample_sim(0, false).await;
    let large = estate.tenants.iter().find(|t| t.policies.len() > 100).unwrap();
    let raw = Raw::new(&sim, &estate, &large.id).await;
    let (_, _, all) =
        raw.call("GET", "identity/conditionalAccess/policies?$select=id,displayName,modifiedDateTime", None).await;
    assert!(all.get("@odata.nextLink").is_none(), "CA policies are not server-paged");
    assert_eq!(all["value"].as_array().unwrap().len(), large.policies.len());
    assert_eq!(all["value"][0].as_object().unwrap().len(), 3, "$select keeps only what was asked");
    let (_, _, top) = raw.call("GET", "identity/conditionalAccess/policies?$top=20", None).await;
    assert_eq!(top["value"].as_array().unwrap().len(), 20);
    assert!(top.get("@odata.nextLink").is_none(), "$top truncates the CA list without a nextLink");

    let msp = Raw::new(&sim, &estate, &estate.tenants[0].id).await;
    let (_, _, page) = msp.call("GET", "tenantRelationships/delegatedAdminRelationships?$top=5", None).await;
    let next = page["@odata.nextLink"].as_str().expect("paged");
    assert_eq!(page["value"].as_array().unwrap().len(), 5);
    let (_, _, rest) = msp.call("GET", next, None).await;
    assert!(!rest["value"].as_array().unwrap().is_empty());
    let (status, _, body) = raw
        .call(
            "POST",
            "$batch",
            Some(&json!({"requests": [
        {"id": "1", "method": "GET", "url": "/policies/identitySecurityDefaultsEnforcementPolicy"},
        {"id": "2", "method": "GET", "url": "/subscribedSkus"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let b: BatchResponse = serde_json::from_value(body).unwrap();
    assert_eq!(b.responses.as_ref().unwrap().len(), 2);
}

/// GDAP lists take `$top` up to 300, as Graph's reference says; without it, the usual page.
#[tokio::test]
async fn gdap_relationships_page_up_to_300() {
    let estate = caguard_sim::generate::generate(350, 7, 0.0);
    let sim = caguard_sim::start(estate.clone(), caguard_sim::SimOptions::default()).await.unwrap();
    let msp = Raw::new(&sim, &estate, caguard_sim::generate::MSP_TENANT).await;
    let path = "tenantRelationships/delegatedAdminRelationships";
    let (_, _, first) = msp.call("GET", &format!("{path}?$top=300"), None).await;
    assert_eq!(first["value"].as_array().unwrap().len(), 300);
    let (_, _, rest) = msp.call("GET", first["@odata.nextLink"].as_str().expect("paged"), None).await;
    assert_eq!(rest["value"].as_array().unwrap().len(), 50);
    assert!(rest.get("@odata.nextLink").is_none());
    let (_, _, default) = msp.call("GET", path, None).await;
    assert_eq!(default["value"].as_array().unwrap().len(), 100);
    let (status, _, err) = msp.call("GET", &format!("{path}?$top=301"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_graph_error(&err, "BadRequest");
}

/// Entra refuses the 196th policy in a tenant.
#[tokio::test]
async fn a_tenant_holds_at_most_195_policies() {
    let (sim, estate) = sample_sim(0, false).await;
    let large = estate.tenants.iter().find(|t| t.policies.len() > 100).unwrap();
    let raw = Raw::new(&sim, &estate, &large.id).await;
    let body = json!({"displayName": "Filler", "state": "disabled",
        "conditions": {"users": {"includeUsers": ["None"]}, "applications": {"includeApplications": ["None"]}},
        "grantControls": {"operator": "OR", "builtInControls": ["block"]}});
    for _ in large.policies.len()..195 {
        let (status, _, _) = raw.call("POST", "identity/conditionalAccess/policies", Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _, err) = raw.call("POST", "identity/conditionalAccess/policies", Some(&body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["error"]["message"].as_str().unwrap().contains("195"), "{err}");
    let (_, _, all) = raw.call("GET", "identity/conditionalAccess/policies", None).await;
    assert_eq!(all["value"].as_array().unwrap().len(), 195);
}

#[tokio::test]
async fn every_write_is_audited_with_who_made_it() {
    let (sim, estate) = sample_sim(0, false).await;
    let tenant = &estate.tenants[1].id;
    let raw = Raw::new(&sim, &estate, tenant).await;
    let id = estate.tenants[1].policies[0]["id"].as_str().unwrap();
    raw.call("PATCH", &format!("identity/conditionalAccess/policies/{id}"), Some(&json!({"displayName": "by app"})))
        .await;
    let mallory = Actor::User {
        id: "u-mallory".into(),
        display_name: "Mallory Admin".into(),
        user_principal_name: "mallory@fabrikam.example".into(),
    };
    let (status, _) = sim.portal_edit(
        tenant,
        &mallory,
        "PATCH",
        &format!("identity/conditionalAccess/policies/{id}"),
        Some(json!({"displayName": "by hand"})),
    );
    assert_eq!(status, 204);
    let filter = url_escape(&format!("targetResources/any(t:t/id eq '{id}')"));
    let (_, _, audits) = raw.call("GET", &format!("auditLogs/directoryAudits?$filter={filter}"), None).await;
    let audits: Collection<DirectoryAudit> = serde_json::from_value(audits).unwrap();
    assert_eq!(audits.value.len(), 2);
    let who: Vec<String> = audits.value.iter().map(|a| a.initiated_by.as_ref().unwrap().describe()).collect();
    assert_eq!(who[0], "Mallory Admin <mallory@fabrikam.example>", "newest first");
    assert!(who[1].starts_with("app CIPP-SAM"), "{who:?}");
    let modified = &audits.value[0].target_resources.as_ref().unwrap()[0].modified_properties.as_ref().unwrap()[0];
    assert!(modified.new_value.as_ref().unwrap().contains("by hand"));
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Where each Graph request fixture goes. Notification payloads are bodies
/// Graph POSTs *to* a webhook, not requests to Graph, so they are not sent here.
fn target(folder: &str, body: &Value) -> Option<(&'static str, String)> {
    if body.get("value").is_some() {
        return None; // a change or lifecycle notification
    }
    Some(match folder {
        "conditionalaccessroot-post-policies" => ("POST", "identity/conditionalAccess/policies".into()),
        "conditionalaccessroot-post-namedlocations" => ("POST", "identity/conditionalAccess/namedLocations".into()),
        "conditionalaccessroot-evaluate" => ("POST", "identity/conditionalAccess/evaluate".into()),
        "conditionalaccesspolicy-update" => ("PATCH", "identity/conditionalAccess/policies/{policy}".into()),
        "ipnamedlocation-update" => ("PATCH", "identity/conditionalAccess/namedLocations/{ip}".into()),
        "countrynamedlocation-update" => ("PATCH", "identity/conditionalAccess/namedLocations/{country}".into()),
        "json-batching" => ("POST", "$batch".into()),
        "user-sendmail" => ("POST", "users/{user}/sendMail".into()),
        _ if body.get("notificationUrl").is_some() => ("POST", "subscriptions".into()),
        _ if body.get("expirationDateTime").is_some() => ("PATCH", "subscriptions/{subscription}".into()),
        other => panic!("{other}: no Graph endpoint known for this request fixture"),
    })
}

/// Graph refuses subscriptions that expire in the past, and Microsoft's
/// examples date from 2016-2020, so the expiry is moved to an hour from now.
fn refresh_expiry(body: &mut Value) {
    if body.get("expirationDateTime").is_some() {
        body["expirationDateTime"] = json!(now_plus_hour());
    }
}

fn now_plus_hour() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
    let days = secs / 86400;
    let (y, m, d) = civil(days as i64);
    let t = secs % 86400;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.0000000Z", t / 3600, t % 3600 / 60, t % 60)
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

#[tokio::test]
async fn accepts_every_request_fixture_and_answers_in_the_documented_shapes() {
    let (sim, estate) = sample_sim(0, false).await;
    let tenant = estate.tenants[1].id.clone();
    let raw = Raw::new(&sim, &estate, &tenant).await;
    // Objects the update examples act on.
    let (_, _, ip) = raw
        .call("POST", "identity/conditionalAccess/namedLocations", Some(&ip_location("ip", &["198.51.100.0/24"])))
        .await;
    let (_, _, country) = raw
        .call(
            "POST",
            "identity/conditionalAccess/namedLocations",
            Some(&json!({
        "@odata.type": COUNTRY_NAMED_LOCATION, "displayName": "c", "countriesAndRegions": ["US"]})),
        )
        .await;
    let mut sub = json!({"changeType": "updated", "notificationUrl": "https://example.invalid/hook",
                         "resource": "/groups", "clientState": "x", "expirationDateTime": ""});
    refresh_expiry(&mut sub);
    let (_, _, subscription) = raw.call("POST", "subscriptions", Some(&sub)).await;
    let ids = [
        ("{policy}", estate.tenants[1].policies[0]["id"].as_str().unwrap().to_string()),
        ("{ip}", ip["id"].as_str().unwrap().to_string()),
        ("{country}", country["id"].as_str().unwrap().to_string()),
        ("{user}", estate.tenants[1].users[0]["id"].as_str().unwrap().to_string()),
        ("{subscription}", subscription["id"].as_str().expect("subscription created").to_string()),
    ];
    let dir = fixtures_dir().join("graph");
    let mut sent = 0;
    let mut shapes = 0;
    for folder in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()) {
        let name = folder.file_name().unwrap().to_string_lossy().to_string();
        let mut files: Vec<_> = std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files.iter().filter(|f| f.to_string_lossy().ends_with("-request.json")) {
            let mut body: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            let Some((method, mut path)) = target(&name, &body) else { continue };
            for (k, v) in &ids {
                path = path.replace(k, v);
            }
            refresh_expiry(&mut body);
            let (status, _, answer) = raw.call(method, &path, Some(&body)).await;
            assert!(status.is_success(), "{}: {method} {path} answered {status}: {answer}", file.display());
            sent += 1;
            if let Some(expected) = response_for(file) {
                for k in keys(&expected) {
                    assert!(
                        answer.get(&k).is_some(),
                        "{}: the answer lacks '{k}' that {} shows: {answer}",
                        file.display(),
                        response_name(file)
                    );
                }
                shapes += 1;
            }
        }
    }
    println!("the simulator accepted {sent} request fixtures; {shapes} answers matched their response fixture's shape");
    assert!(sent >= 40);
}

/// The response fixture that answers a request fixture: the next number in the same folder.
fn response_for(request: &Path) -> Option<Value> {
    let p = request.with_file_name(response_name(request));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
    (v.get("error").is_none()).then_some(v)
}

fn response_name(request: &Path) -> String {
    let name = request.file_name().unwrap().to_string_lossy();
    let n: u32 = name[..2].parse().unwrap();
    format!("{:02}-response.json", n + 1)
}

/// The admin API takes the camelCase actor `docs/estate-format.md` documents.
#[tokio::test]
async fn a_portal_edit_over_http_takes_the_documented_camel_case_actor() {
    let (sim, estate) = sample_sim(0, false).await;
    let tenant = &estate.tenants[1].id;
    let id = estate.tenants[1].policies[0]["id"].as_str().unwrap();
    let edit = json!({"actor": {"kind": "user", "id": "u-1", "displayName": "Robin Admin",
                                "userPrincipalName": "robin@customer.example"},
                      "method": "PATCH", "path": format!("identity/conditionalAccess/policies/{id}"),
                      "body": {"displayName": "renamed in the portal"}});
    let resp = reqwest::Client::new()
        .post(format!("{}/_sim/tenants/{tenant}/edit", sim.base_url))
        .json(&edit)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{}", resp.text().await.unwrap());
    let audit = sim.tenant(tenant).unwrap().audits.last().cloned().unwrap();
    assert_eq!(audit["initiatedBy"]["user"]["displayName"], "Robin Admin");
    assert_eq!(audit["initiatedBy"]["user"]["userPrincipalName"], "robin@customer.example");
}

/// With replication lag, a read right after a write returns the object from
/// before it, and a named location created a moment ago cannot be referenced.
#[tokio::test]
async fn replication_lag_serves_stale_reads_and_refuses_young_locations() {
    let estate = caguard_sim::sample_estate();
    let mut opts = caguard_sim::SimOptions::default();
    opts.faults.ca_throttling = false;
    opts.faults.replication_lag_ms = 800;
    let sim = caguard_sim::start(estate.clone(), opts).await.unwrap();
    let tenant = &estate.tenants[1].id;
    let raw = Raw::new(&sim, &estate, tenant).await;
    let id = estate.tenants[1].policies[0]["id"].as_str().unwrap();
    let path = format!("identity/conditionalAccess/policies/{id}");
    let (s, _, _) = raw.call("PATCH", &path, Some(&json!({"displayName": "new name"}))).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, _, stale) = raw.call("GET", &path, None).await;
    assert_ne!(stale["displayName"], "new name", "inside the lag the old version is read");
    let (s, _, loc) = raw
        .call("POST", "identity/conditionalAccess/namedLocations", Some(&ip_location("young", &["198.51.100.0/24"])))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, _) = raw
        .call("GET", &format!("identity/conditionalAccess/namedLocations/{}", loc["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a new object is not readable yet");
    let patch = json!({"conditions": {"locations": {"includeLocations": ["All"], "excludeLocations": [loc["id"]]}}});
    let (s, _, err) = raw.call("PATCH", &path, Some(&patch)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(err["error"]["message"].as_str().unwrap().starts_with("1040: NamedLocation with id"), "{err}");
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    let (_, _, fresh) = raw.call("GET", &path, None).await;
    assert_eq!(fresh["displayName"], "new name", "after the lag the write is visible");
    let (s, _, _) = raw.call("PATCH", &path, Some(&patch)).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "and the location can be referenced");
}
