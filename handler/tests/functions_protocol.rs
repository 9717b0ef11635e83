//! Every Functions invocation request in `tests/fixtures/functions/`
//! (files named `*request*`) decodes into the typed protocol. Adding a file adds a case.

use caguard::functions::protocol::{InvocationRequest, InvocationResponse};
use std::path::Path;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/functions")
}

#[test]
fn every_invocation_request_fixture_decodes() {
    let mut n = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.contains("request") || !name.ends_with(".json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let req: InvocationRequest = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!req.data.is_empty(), "{name}: Data decoded");
        // The documented HTTP example has an empty Metadata: no sys.MethodName.
        assert_eq!(req.method_name().is_some(), req.metadata.contains_key("sys"), "{name}: Metadata.sys");
        if name.starts_with("http") {
            let http = req.http("req").unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(http.query.is_object(), "{name}: Query read as an object");
            assert!(!http.method.is_empty() && !http.url.is_empty(), "{name}");
        }
        if name.starts_with("timer") {
            let t = req.timer("timer").unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(t.is_past_due, name.contains("past-due"), "{name}");
        }
        if name.starts_with("queue") {
            assert!(req.dequeue_count().unwrap() >= 1, "{name}");
        }
        n += 1;
    }
    println!("decoded {n} invocation request fixtures");
    assert!(n >= 5);
}

#[test]
fn the_documented_http_invocation_needs_no_metadata() {
    let text = std::fs::read_to_string(fixtures().join("http-request-docs.json")).unwrap();
    let req: InvocationRequest = serde_json::from_str(&text).unwrap();
    assert!(req.metadata.is_empty() && req.method_name().is_none());
    let http = req.http("req").unwrap();
    assert_eq!(http.query, serde_json::json!({}), "the JSON text \"{{}}\" is an empty query");
    assert_eq!(http.method, "POST");
    assert!(http.body.unwrap().as_str().unwrap().contains("1005"));
}

#[test]
fn every_response_fixture_shape_is_one_the_handler_can_produce() {
    // The handler's own responses serialize to the documented keys.
    let r = InvocationResponse::ok().log("x").output("reconcile", serde_json::json!([{"tenantId": "t"}]));
    let v = serde_json::to_value(&r).unwrap();
    for key in ["Outputs", "Logs", "ReturnValue"] {
        assert!(v.get(key).is_some(), "{key}");
    }
    let docs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("response-docs-http-and-queue-outputs.json")).unwrap(),
    )
    .unwrap();
    let decoded: InvocationResponse = serde_json::from_value(docs).unwrap();
    assert_eq!(decoded.logs.len(), 2);
}

#[test]
fn timer_accepts_null_schedule_status_and_queue_accepts_both_encodings() {
    let t: InvocationRequest = serde_json::from_value(serde_json::json!({
        "Data": {"timer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": true}},
        "Metadata": {}
    }))
    .unwrap();
    assert!(t.timer("timer").unwrap().is_past_due);

    let object = serde_json::json!({"tenantId": "t1", "reason": "sweep", "correlationId": "c"});
    for data in [object.clone(), serde_json::Value::String(object.to_string())] {
        for count in [serde_json::json!(2), serde_json::json!("2")] {
            let q: InvocationRequest = serde_json::from_value(serde_json::json!({
                "Data": {"reconcile": data.clone()}, "Metadata": {"DequeueCount": count}
            }))
            .unwrap();
            let m: caguard::functions::ReconcileMessage = q.queue_message("reconcile").unwrap();
            assert_eq!(m.tenant_id, "t1");
            assert_eq!(q.dequeue_count().unwrap(), 2);
        }
    }
}

#[test]
fn string_outputs_are_wrapped_so_the_host_never_base64_decodes_them() {
    // "dGVuYW50" is valid base64: as a bare string output the host would decode it.
    let r = InvocationResponse::ok()
        .output("q", serde_json::json!("dGVuYW50"))
        .output("many", serde_json::json!(["dGVuYW50", {"a": 1}]));
    assert_eq!(r.outputs["q"], serde_json::json!({"value": "dGVuYW50"}));
    assert_eq!(r.outputs["many"], serde_json::json!([{"value": "dGVuYW50"}, {"a": 1}]));
}

/// #13: an unknown function name is 404 whether or not caguard is configured
/// (a known one, unconfigured, is a 500 naming the configuration problem).
#[tokio::test]
async fn an_unknown_function_is_404_even_when_caguard_is_unconfigured() {
    let app: caguard::functions::App = std::sync::Arc::new(Err("CAGUARD_CONFIG is not set".into()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, caguard::functions::router(app)).await });
    let invocation = serde_json::json!({"Data": {}, "Metadata": {}});
    let http = reqwest::Client::new();
    let unknown = http.post(format!("{base}/NoSuchFunction")).json(&invocation).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let known = http.post(format!("{base}/SweepTimer")).json(&invocation).send().await.unwrap();
    assert_eq!(known.status(), 500);
    assert!(known.text().await.unwrap().contains("CAGUARD_CONFIG is not set"));
}
