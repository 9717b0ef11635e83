//! Alerts that always arrive (#18): every channel within its documented limits and
//! escaped for its markup, retries on 429/5xx, undelivered alerts kept and sent
//! again, email without Mail.Send said once, CIPP's schema as CIPP reads it, and
//! alert traces with custom dimensions for Azure Monitor.

use caguard::alert::{self, Alert, Alerter, Delivery, Email, Retry, Schema, kind};
use caguard::store::{FileStore, Store};
use caguard_e2e::functions_app::webhook_receiver;
use caguard_sim::chat;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MARKUP: &str = "<&>";

fn new_store(name: &str) -> (Arc<dyn Store>, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("caguard-{name}-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&path);
    (Arc::new(FileStore::new(&path)), path)
}

type Posts = Arc<std::sync::Mutex<Vec<(String, Value)>>>;

/// A stand-in for Application Insights' ingestion endpoint: keeps (path, body).
async fn ingestion_endpoint() -> (String, Posts) {
    let posts: Posts = Arc::default();
    let app = axum::Router::new()
        .fallback(
            |axum::extract::State(p): axum::extract::State<Posts>,
             uri: axum::http::Uri,
             axum::Json(v): axum::Json<Value>| async move {
                p.lock().unwrap().push((uri.path().to_string(), v));
                "{}"
            },
        )
        .with_state(posts.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, posts)
}

fn fast() -> Retry {
    Retry { attempts: 4, base: Duration::from_millis(20), max_wait: Duration::from_secs(5), cooldown: Duration::ZERO }
}

/// A failed write whose Graph error is 10,000 characters long and carries `<&>`.
fn long_alert() -> Alert {
    let graph_error = format!("Graph said {MARKUP}: {}", "x".repeat(10_000));
    Alert {
        tenant_id: "0b7c3f31-6f0e-4d0f-9b0a-2f4c1c0a7e11".into(),
        tenant_name: format!("Fabrikam {MARKUP} Dental"),
        kind: kind::FAILED.into(),
        message: graph_error,
        control: Some("D1".into()),
        object_id: Some("p1".into()),
        object_name: Some("Require *MFA* for [all]".into()),
        changed_by: Some("Mallory Admin <mallory@fabrikam.example>".into()),
        tenant_domain: Some("fabrikamdental.example".into()),
        ..Default::default()
    }
}

fn short_alert(object: &str) -> Alert {
    Alert {
        tenant_id: "0b7c3f31-6f0e-4d0f-9b0a-2f4c1c0a7e11".into(),
        tenant_name: "Fabrikam Dental".into(),
        kind: kind::DRIFT_FIXED.into(),
        message: "D1 \"Require MFA\": restored.".into(),
        control: Some("D1".into()),
        object_id: Some(object.into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_character_error_fits_every_channel_and_is_kept_whole() {
    let chat = chat::serve().await;
    let (hook, inbox) = webhook_receiver().await;
    let (sim, estate) = caguard_e2e::sample_sim(0, false).await;
    let msp = estate.tenants.iter().find(|t| t.id == estate.msp_tenant_id).unwrap();
    let mailbox = msp.users.iter().find(|u| u["displayName"] == "Dana Office").unwrap()["userPrincipalName"]
        .as_str()
        .unwrap()
        .to_string();
    let email = Email {
        client: caguard::demo::sample_client(&sim, &estate),
        tenant: estate.msp_tenant_id.clone(),
        from: mailbox,
        to: vec!["noc@contosomsp.example".into()],
    };
    let (store, _) = new_store("long-alert");
    let alerter = Alerter::new(
        store.clone(),
        60,
        Some(chat.url("teams")),
        Some(chat.url("slack")),
        Some((hook, Schema::Caguard)),
        Some(email),
    )
    .with_retry(fast());
    let a = long_alert();
    let Delivery::Sent { channels, failed, .. } = alerter.send(&a).await else { panic!("sent") };
    assert_eq!(channels, vec!["log", "teams", "slack", "webhook", "email"], "failed: {failed:?}");

    // Slack: within Block Kit's limits, escaped, cut visibly, pointing at the record.
    let slack = chat.accepted("slack").pop().expect("slack accepted it");
    let header = slack["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(header.chars().count() <= 150 && header.contains(MARKUP), "plain_text header, unescaped: {header}");
    let text = slack["blocks"][2]["text"]["text"].as_str().unwrap();
    assert!(text.chars().count() <= 3000, "{}", text.chars().count());
    assert!(text.starts_with("Graph said &lt;&amp;&gt;:"), "mrkdwn escaped: {}", &text[..40]);
    let record = text.rsplit("alert record ").next().unwrap().trim_end_matches(']').to_string();
    assert!(text.contains("…") && text.contains("[truncated; full text in caguard alert record"), "visible cut");
    for f in slack["blocks"][1]["fields"].as_array().unwrap() {
        assert!(!f["text"].as_str().unwrap().contains('<'), "fields escaped too: {f}");
    }

    // Teams: the card envelope, under 28 KB, Markdown controls escaped, cut visibly.
    let teams = chat.accepted("teams").pop().expect("teams accepted it");
    assert!(teams.to_string().len() <= chat::TEAMS_MAX_BYTES);
    let body = &teams["attachments"][0]["content"]["body"];
    let card_text = body[2]["text"].as_str().unwrap();
    assert!(card_text.starts_with("Graph said <&>:"), "{}", &card_text[..60]);
    assert!(
        card_text.contains("[truncated; full text in caguard alert record"),
        "{}",
        &card_text[card_text.len() - 80..]
    );
    let facts = body[1]["facts"].as_array().unwrap();
    assert!(facts.iter().any(|f| f["value"] == "Require \\*MFA\\* for \\[all\\]"), "{facts:?}");

    // The JSON webhook and email carry the full text (HTML-escaped in the mail).
    let webhook = inbox.lock().unwrap().last().cloned().expect("webhook");
    assert_eq!(webhook["message"], a.message);
    assert_eq!(webhook["record"], record);
    let mail = sim.outbox().pop().expect("mailed");
    let html = mail["body"]["message"]["body"]["content"].as_str().unwrap();
    assert!(html.contains("Graph said &lt;&amp;&gt;:") && html.contains(&"x".repeat(10_000)), "mail has it all");

    // The record keeps the whole alert.
    let records = store.records(alert::RECORD).await.unwrap();
    let (key, kept) = records.iter().find(|(k, _)| *k == record).expect("the alert record named in the cut");
    assert_eq!(kept["alert"]["message"], a.message, "record {key} keeps the full text");

    // The stand-ins are as strict as the channels: the uncut message is refused.
    let naive = json!({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": a.message}}]});
    let r = reqwest::Client::new().post(chat.url("slack")).json(&naive).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (400, "invalid_blocks".to_string()));
    let header = json!({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}}]});
    let r = reqwest::Client::new().post(chat.url("slack")).json(&header).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400, "a 151-character header is refused");
    let big = json!({"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
        "content": {"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": a.message.repeat(3)}]}}]});
    let r = reqwest::Client::new().post(chat.url("teams")).json(&big).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 413, "a card over 28 KB is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_failing_with_503_three_times_delivers_on_the_fourth() {
    let chat = chat::serve().await;
    chat.fail("slack", 503, 3, None);
    let (store, _) = new_store("retry-503");
    let alerter = Alerter::new(store.clone(), 60, None, Some(chat.url("slack")), None, None).with_retry(fast());
    let d = alerter.send(&short_alert("p-503")).await;
    assert_eq!(d, Delivery::Sent { channels: vec!["log", "slack"], failed: vec![], skipped: vec![] });
    let statuses: Vec<u16> = chat.requests().iter().map(|(_, s, _)| *s).collect();
    assert_eq!(statuses, vec![503, 503, 503, 200]);
    assert!(alerter.undelivered().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_and_a_long_one_is_not_waited_for() {
    let chat = chat::serve().await;
    chat.fail("teams", 429, 1, Some(1));
    let (store, _) = new_store("retry-after");
    let alerter = Alerter::new(store.clone(), 60, Some(chat.url("teams")), None, None, None).with_retry(fast());
    let started = Instant::now();
    assert!(matches!(alerter.send(&short_alert("p-429")).await, Delivery::Sent { failed, .. } if failed.is_empty()));
    assert!(started.elapsed() >= Duration::from_secs(1), "waited the Retry-After: {:?}", started.elapsed());

    chat.fail("teams", 429, 1, Some(3600));
    let started = Instant::now();
    let Delivery::Sent { failed, .. } = alerter.send(&short_alert("p-429-long")).await else { panic!() };
    assert!(started.elapsed() < Duration::from_secs(5), "an hour's Retry-After is not slept through");
    assert!(failed[0].contains("Retry-After 3600s"), "{failed:?}");
    assert_eq!(alerter.undelivered().await.len(), 1, "kept for the next tick");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_failing_for_good_leaves_one_undelivered_record_and_the_others_deliver() {
    let chat = chat::serve().await;
    let (hook, inbox) = webhook_receiver().await;
    chat.fail("slack", 503, 4, None);
    let (store, path) = new_store("undelivered");
    let alerter = Alerter::new(
        store.clone(),
        60,
        Some(chat.url("teams")),
        Some(chat.url("slack")),
        Some((hook, Schema::Caguard)),
        None,
    )
    .with_retry(fast());
    let Delivery::Sent { channels, failed, .. } = alerter.send(&short_alert("p-down")).await else { panic!() };
    assert_eq!(channels, vec!["log", "teams", "webhook"], "the others still deliver");
    assert_eq!(failed.len(), 1);
    assert!(failed[0].starts_with("slack: HTTP 503"), "{failed:?}");
    assert_eq!(inbox.lock().unwrap().len(), 1);

    let undelivered = alerter.undelivered().await;
    assert_eq!(undelivered.len(), 1);
    assert_eq!(undelivered[0].channel, "slack");
    let stored = std::fs::read_to_string(&path).unwrap();
    assert!(!stored.contains("T000-secret-token") && !stored.contains(&chat.base), "never the URL");

    let out = std::process::Command::new(caguard_e2e::caguard_binary())
        .args(["status", "--store", path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 undelivered alert(s)") && text.contains("slack: Conditional Access drift restored"),
        "{text}"
    );
    let json_out = std::process::Command::new(caguard_e2e::caguard_binary())
        .args(["status", "--json", "--store", path.to_str().unwrap()])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(v["undeliveredAlerts"][0]["channel"], "slack");

    // The next timer tick sends it again; the channel is back.
    let report = alerter.resend_undelivered().await;
    assert_eq!((report.delivered, report.still_undelivered), (1, 0), "{report:?}");
    assert!(alerter.undelivered().await.is_empty());
    assert_eq!(chat.accepted("slack").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_without_mail_send_says_so_once() {
    let mut estate = caguard_sim::sample_estate();
    let msp_id = estate.msp_tenant_id.clone();
    let msp = estate.tenants.iter_mut().find(|t| t.id == msp_id).unwrap();
    msp.mail_send_denied = true;
    let mailbox = msp.users[0]["userPrincipalName"].as_str().unwrap().to_string();
    let sim = caguard_sim::start(estate.clone(), Default::default()).await.unwrap();
    let email = Email {
        client: caguard::demo::sample_client(&sim, &estate),
        tenant: msp_id,
        from: mailbox,
        to: vec!["noc@contosomsp.example".into()],
    };
    let (store, _) = new_store("no-mail-send");
    let alerter = Alerter::new(store, 60, None, None, None, Some(email)).with_retry(fast());
    for object in ["a", "b", "c"] {
        let Delivery::Sent { failed, skipped, .. } = alerter.send(&short_alert(object)).await else { panic!() };
        assert!(failed.is_empty(), "not a failure on every alert: {failed:?}");
        assert!(skipped[0].contains("Mail.Send"), "{skipped:?}");
    }
    let sends = sim.journal().iter().filter(|j| j.path.to_ascii_lowercase().ends_with("/sendmail")).count();
    assert_eq!(sends, 1, "tried once, then switched off");
    assert!(alerter.undelivered().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cipp_schema_as_cipp_reads_it() {
    let (hook, inbox) = webhook_receiver().await;
    let (store, _) = new_store("cipp-schema");
    let alerter = Alerter::new(store, 60, None, None, Some((hook.clone(), Schema::Cipp)), None)
        .with_status_url(Some("https://caguard-x.azurewebsites.net/api/ui".into()));
    let mut a = short_alert("cipp-1");
    a.tenant_domain = Some("fabrikamdental.example".into());
    alerter.send(&a).await;
    let v = inbox.lock().unwrap().last().cloned().unwrap();
    // New-CIPPStandardizedWebhookSchema: alertCount = $NormalizedPayload.Count.
    assert_eq!(v["alertCount"], v["payload"].as_array().unwrap().len());
    // Invoke-CIPPWebhookProcessing passes the default domain as the tenant filter.
    assert_eq!(v["tenant"], "fabrikamdental.example");
    assert_eq!(v["payload"][0]["RawData"]["TenantId"], a.tenant_id);
    // Get-SlackAlertBlocks makes a button of ActionText and ActionUrl together.
    assert_eq!(v["payload"][0]["ActionUrl"], "https://caguard-x.azurewebsites.net/api/ui");
    assert!(v["payload"][0]["ActionText"].is_string());
    for k in ["schemaVersion", "source", "invoking", "title", "tenant", "generatedAt", "alertCount", "payload"] {
        assert!(v.get(k).is_some(), "CIPP's envelope key {k}");
    }

    let (store, _) = new_store("cipp-schema-2");
    let bare = Alerter::new(store, 60, None, None, Some((hook, Schema::Cipp)), None);
    bare.send(&short_alert("cipp-2")).await;
    let v = inbox.lock().unwrap().last().cloned().unwrap();
    assert!(v["payload"][0].get("ActionText").is_none() && v["payload"][0].get("ActionUrl").is_none());
    assert_eq!(v["tenant"], "0b7c3f31-6f0e-4d0f-9b0a-2f4c1c0a7e11", "no domain observed: the id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_reads_the_default_domain_that_names_the_tenant() {
    let (sim, estate) = caguard_e2e::sample_sim(0, false).await;
    let client = caguard::demo::sample_client(&sim, &estate);
    let config = caguard::demo::sample_config(&estate);
    let customer = estate.tenants.iter().find(|t| t.id != estate.msp_tenant_id).unwrap();
    let c = caguard::observe::Customer {
        tenant_id: customer.id.clone(),
        name: customer.display_name.clone(),
        active: true,
        status: "active".into(),
        can_write_ca: Some(true),
        direct: false,
    };
    let o = caguard::observe::customer(&client, &config, &c).await.unwrap();
    assert_eq!(o.default_domain.as_deref(), Some(customer.default_domain.as_str()));
    let batches = sim.journal().iter().filter(|j| j.path.ends_with("$batch")).count();
    assert_eq!(batches, 1, "still one $batch for the tenant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_application_insights_with_custom_dimensions() {
    let (ingest, inbox) = ingestion_endpoint().await;
    let cs = format!("InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint={ingest}/");
    let telemetry = caguard::telemetry::Telemetry::new(&cs, None);
    assert!(telemetry.is_some());
    let chat = chat::serve().await;
    chat.fail("slack", 500, 4, None);
    let (store, _) = new_store("telemetry");
    let alerter =
        Alerter::new(store, 60, None, Some(chat.url("slack")), None, None).with_retry(fast()).with_telemetry(telemetry);
    alerter.send(&short_alert("t-1")).await;
    let got = inbox.lock().unwrap().clone();
    let traces: Vec<&Value> = got.iter().filter(|(path, _)| path == "/v2.1/track").map(|(_, v)| &v[0]).collect();
    assert_eq!(traces.len(), 2, "the alert and its undelivered slack copy: {got:?}");
    let props = &traces[0]["data"]["baseData"]["properties"];
    assert_eq!(props["alert"], "true");
    assert_eq!(props["kind"], "drift-fixed");
    assert_eq!(traces[0]["data"]["baseData"]["severityLevel"], 3);
    assert_eq!(traces[0]["data"]["baseType"], "MessageData");
    let undelivered = &traces[1]["data"]["baseData"]["properties"];
    assert_eq!((undelivered["undelivered"].as_str(), undelivered["channel"].as_str()), (Some("true"), Some("slack")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_channel_is_not_retried_again_within_its_cooldown() {
    let chat = chat::serve().await;
    chat.fail("slack", 503, 100, None);
    let (store, _) = new_store("cooldown");
    let retry = Retry { cooldown: Duration::from_secs(60), ..fast() };
    let alerter = Alerter::new(store, 60, None, Some(chat.url("slack")), None, None).with_retry(retry);
    alerter.send(&short_alert("c-1")).await;
    assert_eq!(chat.requests().len(), 4, "four tries");
    let Delivery::Sent { failed, .. } = alerter.send(&short_alert("c-2")).await else { panic!() };
    assert_eq!(chat.requests().len(), 4, "no new request within the cooldown");
    assert!(failed[0].contains("not sent: the channel failed"), "{failed:?}");
    assert_eq!(alerter.undelivered().await.len(), 2, "both kept for the next tick");
}

/// The handler's own log lines, as the Functions host classifies them: stdout is
/// Information; stderr by words (azure-functions-host `WorkerProcess.cs`).
#[test]
fn log_lines_reach_the_host_with_their_real_severity() {
    use std::io::Read;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // A config error whose text says "warn": an ERROR line the host would call a warning.
    let mut child = std::process::Command::new(caguard_e2e::caguard_binary())
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("CAGUARD_CONFIG", "warn_me = 1\n")
        .env("CAGUARD_LOG", "info")
        .env_remove("APPLICATIONINSIGHTS_CONNECTION_STRING")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut answered = false;
    while started.elapsed() < Duration::from_secs(10) && !answered {
        answered = std::net::TcpStream::connect(("127.0.0.1", port))
            .map(|mut s| {
                use std::io::Write;
                let body = "{}";
                let req = format!(
                    "POST /SweepTimer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(req.as_bytes()).unwrap();
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
            })
            .is_ok();
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let _ = child.kill();
    let mut out = String::new();
    let mut err = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let _ = child.wait();
    let level = |l: &str| serde_json::from_str::<Value>(l).unwrap()["level"].as_str().unwrap().to_string();
    assert!(out.lines().count() >= 1, "an INFO line on stdout: {out}");
    for l in out.lines() {
        assert!(["INFO", "DEBUG", "TRACE"].contains(&level(l).as_str()), "stdout holds INFO and below only: {l}");
    }
    let mut saw_error_with_warn = false;
    let mut saw_warn = false;
    for l in err.lines() {
        let want = match level(l).as_str() {
            "ERROR" => "Error",
            "WARN" => "Warning",
            other => panic!("stderr holds WARN and ERROR only, not {other}: {l}"),
        };
        assert_eq!(caguard::logging::host_level_of_stderr(l), want, "{l}");
        saw_error_with_warn |= want == "Error" && l.replace('\u{2060}', "").to_lowercase().contains("warn");
        saw_warn |= want == "Warning";
    }
    assert!(saw_error_with_warn && saw_warn, "the test saw both cases: {err}");
}

/// An undelivered alert is sent again by the next `WatchTimer` tick, through the
/// Functions app as the host runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_watch_tick_delivers_what_a_channel_missed() {
    let chat = chat::serve().await;
    chat.fail("slack", 503, 4, None);
    let (sim, estate) = caguard_e2e::sample_sim(0, false).await;
    let (store, _) = caguard_e2e::temp_store("resend-tick");
    let alerter = Alerter::new(store.clone(), 60, None, Some(chat.url("slack")), None, None).with_retry(fast());
    let Delivery::Sent { failed, .. } = alerter.send(&short_alert("tick-1")).await else { panic!() };
    assert_eq!(failed.len(), 1);
    assert_eq!(alert::undelivered(store.as_ref()).await.len(), 1);
    let base = caguard_e2e::functions_app::serve(&sim, &estate, &store, alerter, true).await;
    let tick = caguard_e2e::functions_app::invoke(&base, "WatchTimer", caguard_e2e::functions_app::timer()).await;
    assert!(
        tick.logs.iter().any(|l| l.contains("undelivered alerts: 1 delivered now, 0 still undelivered")),
        "{:?}",
        tick.logs
    );
    assert!(alert::undelivered(store.as_ref()).await.is_empty());
    assert_eq!(chat.accepted("slack").len(), 1);
}
