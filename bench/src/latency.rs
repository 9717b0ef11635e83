//! Drift-to-restore latency: how long after a person weakens a policy it is back.
//!
//! Runs the watch loop the Functions app runs (a tick every `interval`; each
//! changed tenant reconciled, as `ReconcileTenant` would be on its queue message)
//! against the simulator with Graph latency and CA throttling, injects one
//! out-of-band change per sample at a random point in the interval, and times
//! until the simulator holds the restored policy. The push path (a GDAP
//! activation → the new tenant's policies carry the exclusion) is timed too.

use crate::pct;
use caguard::store::{FileStore, Store};
use caguard::sweep::{self, SweepOptions};
use caguard_sim::{Actor, SimOptions};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Watch interval in seconds (the product default is 60).
    #[arg(long, default_value_t = 60)]
    interval: u64,
    #[arg(long, default_value_t = 8)]
    samples: usize,
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
}

fn excluded(v: &Value) -> bool {
    v["conditions"]["users"]["excludeGuestsOrExternalUsers"].is_object()
}

pub fn run(args: &Args) -> Value {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime").block_on(measure(args))
}

async fn measure(args: &Args) -> Value {
    let estate = caguard_sim::sample_estate();
    let mut opts = SimOptions::default();
    opts.faults.latency_ms = args.latency_ms;
    let sim = caguard_sim::start(estate.clone(), opts).await.expect("sim");
    let config = caguard::demo::sample_config(&estate);
    let client = caguard::demo::sample_client(&sim, &estate);
    sweep::run(&client, &config, &SweepOptions { apply: true, confirmed: true, ..Default::default() })
        .await
        .expect("rollout");
    let store: Arc<dyn Store> =
        Arc::new(FileStore::new(std::env::temp_dir().join(format!("caguard-latency-{}.json", std::process::id()))));
    caguard::watch::tick(&client, &config, None, &store, 64, false).await.expect("baseline");

    // The watch loop, as WatchTimer + ReconcileTenant run it.
    let interval = Duration::from_secs(args.interval);
    let (loop_client, loop_config, loop_store) = (client.clone(), config.clone(), store.clone());
    let watcher = tokio::spawn(async move {
        let mut next = tokio::time::Instant::now() + interval;
        loop {
            tokio::time::sleep_until(next).await;
            next += interval;
            let Ok(tick) = caguard::watch::tick(&loop_client, &loop_config, None, &loop_store, 64, false).await else {
                continue;
            };
            for c in tick.changed {
                let opts = SweepOptions { apply: true, only: vec![c.tenant_id.clone()], ..Default::default() };
                let _ = sweep::run(&loop_client, &loop_config, &opts).await;
            }
        }
    });

    let fabrikam = estate.tenants.iter().find(|t| t.display_name == "Fabrikam Dental").expect("sample tenant");
    let mallory = Actor::User {
        id: "5f0c2b7e-3d1a-4c55-9e21-7a1d2c3b4e5f".into(),
        display_name: "Mallory Admin".into(),
        user_principal_name: "mallory@fabrikam.example".into(),
    };
    let mut latencies = Vec::new();
    for i in 0..args.samples {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..args.interval * 1000))).await;
        let policy = &fabrikam.policies[i % fabrikam.policies.len()];
        let id = policy["id"].as_str().unwrap_or_default().to_string();
        let path = format!("identity/conditionalAccess/policies/{id}");
        let injected = Instant::now();
        sim.portal_edit(
            &fabrikam.id,
            &mallory,
            "PATCH",
            &path,
            Some(json!({"conditions": {"users": {"excludeGuestsOrExternalUsers": null}}})),
        );
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = sim.tenant(&fabrikam.id).expect("tenant");
            if now.policies.iter().find(|p| p["id"] == id.as_str()).is_some_and(excluded) {
                break;
            }
            assert!(injected.elapsed() < interval * 3, "sample {i} was never restored");
        }
        let s = injected.elapsed().as_secs_f64();
        eprintln!("sample {i}: restored after {s:.1} s");
        latencies.push(s);
    }
    watcher.abort();

    // Push path: a GDAP relationship turns active; the event handler queues the tenant and its reconcile runs.
    let mut push = Vec::new();
    for k in 0..3 {
        let mut t = fabrikam.clone();
        t.id = format!("0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d{k}");
        t.display_name = format!("Newco {k}");
        t.policies.truncate(1);
        if let Some(u) = t.policies[0]["conditions"]["users"].as_object_mut() {
            u.remove("excludeGuestsOrExternalUsers");
        }
        sim.add_tenant(t.clone());
        sim.upsert_relationship(json!({"id": format!("rel-newco-{k}"), "status": "active", "customer": {"tenantId": t.id, "displayName": t.display_name},
            "accessDetails": {"unifiedRoles": [{"roleDefinitionId": "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9"}]}}));
        let started = Instant::now();
        let opts = SweepOptions { apply: true, only: vec![t.id.clone()], ..Default::default() };
        sweep::run(&client, &config, &opts).await.expect("onboard");
        assert!(sim.tenant(&t.id).expect("tenant").policies.iter().all(excluded), "onboarded");
        push.push(started.elapsed().as_secs_f64());
    }
    latencies.sort_by(f64::total_cmp);
    push.sort_by(f64::total_cmp);
    json!({
        "benchmark": "latency",
        "command": format!("cargo run --release -p bench -- latency --interval {} --samples {} --latency-ms {}", args.interval, args.samples, args.latency_ms),
        "intervalSeconds": args.interval,
        "samples": latencies.len(),
        "driftToRestoreSeconds": {"min": latencies[0], "p50": pct(&latencies, 50.0), "p99": pct(&latencies, 99.0), "max": latencies[latencies.len() - 1], "all": latencies},
        "pushToRestoreSeconds": {"min": push[0], "p50": pct(&push, 50.0), "max": push[push.len() - 1], "note": "a new one-policy tenant: discovery, one list and one write (1 CA request/s)"},
        "targets": {"driftP50": 65, "driftP99": 75, "push": 2}
    })
}
