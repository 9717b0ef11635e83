//! Plays the Azure Functions host against the real `caguard` binary and the simulator:
//! start with FUNCTIONS_CUSTOMHANDLER_PORT, wait on GET /, post a timer invocation,
//! feed every queue message back (both encodings), and check the estate ends compliant.

use caguard::demo::{sample_client, sample_config, sample_config_toml};
use caguard::sweep::{self, SweepOptions};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Handler {
    child: Child,
    base: String,
    /// Everything the handler wrote: INFO and below on stdout, WARN and ERROR on
    /// stderr (as the Functions host reads them), drained as it runs.
    readers: Vec<std::thread::JoinHandle<String>>,
}

/// Drains a pipe on its own thread, so a chatty handler never blocks on a full pipe.
fn drain(pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut out = String::new();
        let mut pipe = pipe;
        let _ = std::io::Read::read_to_string(&mut pipe, &mut out);
        out
    })
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_handler(envs: &[(&str, String)]) -> (Handler, Duration) {
    let port = free_port();
    let started = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_caguard"));
    cmd.env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let readers = vec![drain(child.stdout.take().unwrap()), drain(child.stderr.take().unwrap())];
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = http.get(&base).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the handler never answered GET /");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (Handler { child, base, readers }, started.elapsed())
}

fn timer_invocation() -> Value {
    json!({"Data": {"timer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}},
           "Metadata": {"sys": {"MethodName": "SweepTimer", "UtcNow": "2026-11-21T10:00:00Z", "RandGuid": "3d3c7a8e-1111-4a4a-9c9c-0123456789ab"}}})
}

/// The app settings of a handler on the sample estate's simulator: app-only
/// credentials, a file store, large plans confirmed; plus `extra`.
fn sample_settings(
    sim: &caguard_sim::SimHandle,
    estate: &caguard_sim::Estate,
    store: &std::path::Path,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    let app = &estate.apps[0];
    let mut settings = vec![
        ("CAGUARD_CONFIG", sample_config_toml(estate)),
        ("CAGUARD_GRAPH_URL", sim.base_url.clone()),
        ("CAGUARD_LOGIN_URL", sim.base_url.clone()),
        ("ApplicationID", app.client_id.clone()),
        ("ApplicationSecret", app.client_secret.clone()),
        ("CAGUARD_STORE_PATH", store.display().to_string()),
        ("CAGUARD_CONFIRM_LARGE_PLANS", "true".into()),
    ];
    settings.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_fans_out_a_sweep_through_the_queue_and_the_estate_ends_compliant() {
    let estate = caguard_sim::sample_estate();
    let sim = caguard_sim::start(estate.clone(), Default::default()).await.unwrap();
    let store = std::env::temp_dir().join(format!("caguard-host-{}", std::process::id())).join("store.json");
    let (handler, ready_in) = start_handler(&sample_settings(&sim, &estate, &store, &[])).await;
    println!("ready in {ready_in:?}");
    let http = reqwest::Client::new();

    let resp = http.post(format!("{}/SweepTimer", handler.base)).json(&timer_invocation()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let messages = body["Outputs"]["reconcile"].as_array().expect("queue output").clone();
    let active = estate.relationships.iter().filter(|r| r["status"] == "active").count();
    let direct = estate.refresh_tokens.iter().filter(|t| t.tenant_id.is_some()).count();
    assert_eq!(direct, 2, "the sample estate has two direct tenants");
    assert_eq!(
        messages.len(),
        active + direct + 1,
        "one message per active GDAP tenant and direct tenant plus the MSP tenant"
    );
    assert!(messages.iter().all(|m| m.is_object() && m["correlationId"] == "3d3c7a8e-1111-4a4a-9c9c-0123456789ab"));

    let mut tasks = Vec::new();
    for (i, m) in messages.into_iter().enumerate() {
        // The host may pass a JSON message as JSON or as a string holding JSON.
        let data = if i % 2 == 0 { m.clone() } else { Value::String(m.to_string()) };
        let count = if i % 3 == 0 { json!("1") } else { json!(1) };
        let inv = json!({"Data": {"reconcile": data}, "Metadata": {"DequeueCount": count, "sys": {"MethodName": "ReconcileTenant"}}});
        let (http, url) = (http.clone(), format!("{}/ReconcileTenant", handler.base));
        tasks.push(tokio::spawn(async move {
            let r = http.post(url).json(&inv).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        let outcome = body["ReturnValue"]["outcome"].as_str().unwrap();
        assert!(["fixed", "compliant", "skipped"].contains(&outcome), "{body}");
    }

    // At-least-once delivery: a redelivered message changes nothing.
    sim.clear_journal();
    let again =
        sweep::run(&sample_client(&sim, &estate), &sample_config(&estate), &SweepOptions::default()).await.unwrap();
    assert_eq!(again.drifted(), 0, "{}", caguard::report::sweep_text(&again, false, None));
    assert_eq!(sim.journal().iter().filter(|e| e.is_write()).count(), 0);

    let status: Value = http.get(format!("{}/api/Status", handler.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["tenants"].as_array().unwrap().len(), estate.tenants.len(), "{status}");
}

#[tokio::test]
async fn bad_invocations_get_400_or_404_naming_the_problem_and_never_crash() {
    let (handler, _) = start_handler(&[
        ("CAGUARD_CONFIG", sample_config_toml(&caguard_sim::sample_estate())),
        ("CAGUARD_GRAPH_URL", "http://127.0.0.1:9".into()),
        ("CAGUARD_LOGIN_URL", "http://127.0.0.1:9".into()),
        ("ApplicationID", "id".into()),
        ("ApplicationSecret", "s".into()),
        (
            "CAGUARD_STORE_PATH",
            std::env::temp_dir().join(format!("caguard-bad-{}.json", std::process::id())).display().to_string(),
        ),
    ])
    .await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: String| {
        let req = http.post(format!("{}/{path}", handler.base)).header("content-type", "application/json").body(body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("ReconcileTenant", "not json".into(), 400, "not a Functions invocation"),
        ("ReconcileTenant", json!({"Data": {}, "Metadata": {}}).to_string(), 400, "Data is empty"),
        ("ReconcileTenant", json!({"Data": {"reconcile": {"reason": "x"}}, "Metadata": {}}).to_string(), 400, "tenantId"),
        ("ReconcileTenant", json!({"Data": {"reconcile": {"tenantId": "6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7d", "reason": "x", "correlationId": "c"}}, "Metadata": {"DequeueCount": "many"}}).to_string(), 400, "DequeueCount"),
        // A tenant id goes into token and Graph URLs: anything but a GUID is refused before any request.
        ("ReconcileTenant", json!({"Data": {"reconcile": {"tenantId": "../../evil?x=", "reason": "x", "correlationId": "c"}}, "Metadata": {}}).to_string(), 400, "is not a GUID"),
        ("SweepTimer", json!({"Data": {"timer": {"IsPastDue": "soon"}}, "Metadata": {}}).to_string(), 400, "TimerInfo"),
        ("SweepTimer", json!([1, 2]).to_string(), 400, "not a Functions invocation"),
        ("NoSuchFunction", json!({"Data": {}, "Metadata": {}}).to_string(), 404, "unknown function 'NoSuchFunction'"),
    ];
    for (path, body, want, needle) in cases {
        let (status, text) = post(path, body.clone()).await;
        assert_eq!(status, want, "{path} {body}: {text}");
        assert!(text.contains(needle), "{path} {body}: {text}");
    }
    let r = http.get(format!("{}/nowhere/at/all", handler.base)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // Still alive.
    assert!(http.get(&handler.base).send().await.unwrap().status().is_success());
    let logs = stop_and_read_logs(handler);
    assert!(
        logs.contains("not a Functions invocation") && logs.contains("unknown function 'NoSuchFunction'"),
        "each bad invocation is logged: {logs}"
    );
}

fn stop_and_read_logs(mut handler: Handler) -> String {
    let _ = handler.child.kill();
    let _ = handler.child.wait();
    handler.readers.drain(..).map(|r| r.join().unwrap_or_default()).collect::<Vec<_>>().join("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_value_ever_reaches_a_log_line() {
    let mut estate = caguard_sim::sample_estate();
    let secret = "Zq9-THIS-IS-THE-CLIENT-SECRET-7Hk";
    let refresh = "Rt4-THIS-IS-THE-REFRESH-TOKEN-2Lm";
    estate.apps[0].client_secret = secret.into();
    estate.refresh_tokens[0].token = refresh.into();
    let sim = caguard_sim::start(estate.clone(), Default::default()).await.unwrap();
    for auth in ["app", "delegated"] {
        // Rejected credentials, re-reads and errors all get logged: none may carry a value.
        sim.set_faults(caguard_sim::Faults {
            ca_throttling: true,
            token_failure: Some(caguard_sim::TokenFailure {
                error: "invalid_client".into(),
                tenant: None,
                remaining: Some(3),
            }),
            ..Default::default()
        });
        let (handler, _) = start_handler(&[
            ("CAGUARD_CONFIG", sample_config_toml(&estate)),
            ("CAGUARD_GRAPH_URL", sim.base_url.clone()),
            ("CAGUARD_LOGIN_URL", sim.base_url.clone()),
            ("CAGUARD_AUTH", auth.into()),
            ("ApplicationID", estate.apps[0].client_id.clone()),
            ("ApplicationSecret", secret.into()),
            ("RefreshToken", refresh.into()),
            ("CAGUARD_LOG", "trace".into()),
            (
                "CAGUARD_STORE_PATH",
                std::env::temp_dir()
                    .join(format!("caguard-secret-{}-{auth}.json", std::process::id()))
                    .display()
                    .to_string(),
            ),
        ])
        .await;
        let http = reqwest::Client::new();
        let body: Value = http
            .post(format!("{}/SweepTimer", handler.base))
            .json(&timer_invocation())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let messages = body["Outputs"]["reconcile"].as_array().cloned().unwrap_or_default();
        for m in messages.iter().take(4) {
            let inv = json!({"Data": {"reconcile": m}, "Metadata": {"DequeueCount": 1}});
            let _ = http.post(format!("{}/ReconcileTenant", handler.base)).json(&inv).send().await.unwrap();
        }
        let logs = stop_and_read_logs(handler);
        assert!(logs.lines().count() > 20, "trace logging produced lines ({auth})");
        assert!(logs.contains("invalid_client"), "the rejection itself was logged ({auth})");
        for value in [secret, refresh] {
            assert!(!logs.contains(value), "a secret value reached the log ({auth})");
        }
        assert!(!logs.contains("Bearer ey"), "no access token in the log ({auth})");
    }
}

#[tokio::test]
async fn a_poison_message_raises_an_alert_and_is_recorded() {
    let store = std::env::temp_dir().join(format!("caguard-poison-{}", std::process::id())).join("store.json");
    let (handler, _) = start_handler(&[
        ("CAGUARD_CONFIG", sample_config_toml(&caguard_sim::sample_estate())),
        ("ApplicationID", "id".into()),
        ("ApplicationSecret", "s".into()),
        ("CAGUARD_STORE_PATH", store.display().to_string()),
    ])
    .await;
    let http = reqwest::Client::new();
    let msg = json!({"tenantId": "7c25b26a-818a-41a5-b466-76b47fff092e", "tenantName": "Bellows College", "reason": "sweep", "correlationId": "c1"});
    let inv = json!({"Data": {"poison": msg.to_string()}, "Metadata": {"DequeueCount": 1}});
    let r = http.post(format!("{}/ReconcilePoison", handler.base)).json(&inv).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let status: Value = http.get(format!("{}/api/Status", handler.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["tenants"][0]["outcome"], "failed");
    assert!(status["tenants"][0]["reason"].as_str().unwrap().contains("poison"));
    let err = stop_and_read_logs(handler);
    assert!(err.contains("\"alert\":true") && err.contains("poison queue"), "an alert was logged: {err}");
}

/// #13: `CAGUARD_PAUSED=true` in the app settings is a full stop: every tenant is
/// skipped, saying so, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_paused_app_setting_stops_every_write() {
    let estate = caguard_sim::sample_estate();
    let sim = caguard_sim::start(estate.clone(), Default::default()).await.unwrap();
    let store = std::env::temp_dir().join(format!("caguard-host-paused-{}", std::process::id())).join("store.json");
    let paused = [("CAGUARD_PAUSED", "true"), ("CAGUARD_PAUSED_REASON", "change freeze")];
    let (handler, _) = start_handler(&sample_settings(&sim, &estate, &store, &paused)).await;
    let msg = json!({"tenantId": estate.msp_tenant_id, "reason": "sweep", "correlationId": "paused", "msp": true});
    let inv = json!({"Data": {"reconcile": msg}, "Metadata": {"DequeueCount": 1}});
    let r: Value = reqwest::Client::new()
        .post(format!("{}/ReconcileTenant", handler.base))
        .json(&inv)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["ReturnValue"]["outcome"], "skipped", "{r}");
    assert!(r["ReturnValue"]["reason"].as_str().unwrap().contains("change freeze"), "{r}");
    assert!(sim.journal().iter().all(|e| !e.is_write()), "nothing written");
}
