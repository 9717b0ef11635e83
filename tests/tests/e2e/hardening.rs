//! #12, item 8: the Functions app's HTTP front under hostile input: log lines are
//! bounded and rate-limited per source. (Alone in its test binary: it captures the
//! log lines of this thread, and tracing caches per call site what is listening.)

use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Every log line written while `f` runs (on this thread's runtime).
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn all(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap()).lines().map(str::to_string).collect()
    }
}

fn capture() -> (Lines, tracing::subscriber::DefaultGuard) {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber =
        tracing_subscriber::fmt().with_writer(move || writer.clone()).with_max_level(tracing::Level::INFO).finish();
    (lines, tracing::subscriber::set_default(subscriber))
}

#[tokio::test(flavor = "current_thread")]
async fn one_anonymous_request_or_a_flood_of_them_writes_a_bounded_number_of_short_lines() {
    let (lines, _guard) = capture();
    let (sim, estate) = caguard_e2e::sample_sim(0, false).await;
    let dir = std::env::temp_dir().join(format!("caguard-hardening-{}", std::process::id()));
    let store: Arc<dyn caguard::store::Store> = Arc::new(caguard::store::FileStore::new(dir.join("store.json")));
    let alerter = caguard::alert::Alerter::new(store.clone(), 60, None, None, None, None);
    let base = caguard_e2e::functions_app::serve(&sim, &estate, &store, alerter, false).await;
    let http = reqwest::Client::new();

    // 30,000 forged notifications in one request to a configured-looking endpoint, and
    // 1,000 forged Partner Center events with a megabyte certificate URL each.
    let forged: Vec<_> = (0..30_000)
        .map(|i| json!({"subscriptionId": format!("sub-{i}"), "clientState": "x", "changeType": "updated"}))
        .collect();
    let _ = http.post(format!("{base}/api/GraphNotifications")).json(&json!({"value": forged})).send().await.unwrap();
    let huge = format!("https://{}.example/cert.cer", "a".repeat(1_000_000));
    for _ in 0..1000 {
        let r = http
            .post(format!("{base}/api/PartnerCenterEvents"))
            .header("x-ms-certificate-url", &huge[..8000])
            .header("authorization", format!("Signature {}", "A".repeat(344)))
            .body(format!("{{\"EventName\": \"{}\"}}", "x".repeat(100_000)))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error() || r.status().is_server_error());
    }
    let all = lines.all();
    println!("{} lines; longest {} bytes", all.len(), all.iter().map(String::len).max().unwrap_or(0));
    assert!(all.iter().any(|l| l.contains("30000 notification(s) dropped")), "the drop is logged once: {all:#?}");
    assert!(all.iter().any(|l| l.contains("Partner Center event refused")), "{all:#?}");
    assert!(
        all.len() <= 2 * (caguard::logging::LINES_PER_WINDOW as usize) + 5,
        "{} lines: {:#?}",
        all.len(),
        &all[..5.min(all.len())]
    );
    assert!(all.iter().all(|l| l.len() < 1000), "every line is short");
}
