//! #15 items 3 and 4 end to end on the simulator: a report-only block policy
//! validated from the sign-in logs and switched On on evidence; the service
//! account's MFA checked where it happens.

use caguard::sweep::{self, SweepReport};
use caguard_e2e::{apply_msp_only, temp_store, unpaced_sim};
use caguard_sim::{Mfa, sample_estate};
use serde_json::Value;

use caguard::demo::rollout::{HOME_OFFICE, config, home_office_site};

fn block_state(sim: &caguard_sim::SimHandle, msp: &str) -> Value {
    let t = sim.tenant(msp).unwrap();
    t.policies.iter().find(|p| p["displayName"] == "Block CIPP Access - Outside Trusted IPs").unwrap()["state"].clone()
}

fn sign_in(sim: &caguard_sim::SimHandle, msp: &str, user: &str, ip: &str, days: i64, interactive: bool, mfa: Mfa) {
    caguard::demo::rollout::sign_in(sim, msp, user, ip, days, interactive, mfa).unwrap();
}

fn notes(r: &SweepReport) -> Vec<String> {
    r.tenants[0].plan.notes.iter().map(|n| format!("{}: {}", n.control, n.message)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_only_stays_until_the_evidence_is_clean_then_is_switched_on_once() {
    let estate = caguard::demo::rollout::estate();
    let (sim, client) = unpaced_sim(&estate).await;
    let msp = estate.msp_tenant_id.clone();
    let (store, _dir) = temp_store("rollout");
    let cfg = config(&estate, "");

    // caguard adopts the policy and puts it in order; it stays report-only.
    let r = sweep::run(&client, &cfg, &apply_msp_only(&msp, &store)).await.unwrap();
    assert_eq!(r.tenants[0].result.as_ref().unwrap().outcome.label(), "fixed", "{:?}", r.tenants[0].result);
    assert_eq!(block_state(&sim, &msp), "enabledForReportingButNotEnforced");

    // A week of sign-ins: Alex from the office, and from an office caguard does not know.
    for d in [6, 5, 4, 3] {
        sign_in(&sim, &msp, "alex@contosomsp.onmicrosoft.com", "203.0.113.10", d, true, Mfa::Done);
    }
    for d in [2, 1] {
        sign_in(&sim, &msp, "alex@contosomsp.onmicrosoft.com", HOME_OFFICE, d, true, Mfa::Done);
    }
    let r = sweep::run(&client, &cfg, &apply_msp_only(&msp, &store)).await.unwrap();
    assert_eq!(
        block_state(&sim, &msp),
        "enabledForReportingButNotEnforced",
        "would-block sign-ins keep it report-only"
    );
    let listed = notes(&r);
    let would = listed.iter().find(|n| n.contains("stays report-only")).unwrap_or_else(|| panic!("{listed:#?}"));
    assert!(would.contains("alex@contosomsp.onmicrosoft.com from 198.51.100.50") && would.contains("2×"), "{would}");
    let alerts = caguard::cli::apply_alerts(&cfg, &r);
    assert_eq!(alerts.iter().filter(|a| a.message.contains("stays report-only")).count(), 1, "alerted");

    // The office is added as a site: the evidence is clean over the window, so it is switched On.
    let cfg = config(&estate, &home_office_site());
    let r = sweep::run(&client, &cfg, &apply_msp_only(&msp, &store)).await.unwrap();
    let t = &r.tenants[0];
    assert_eq!(t.result.as_ref().unwrap().outcome.label(), "fixed", "{:?}\n{:#?}", t.result, t.plan.what_if);
    assert_eq!(block_state(&sim, &msp), "enabled");
    assert!(notes(&r).iter().any(|n| n.contains("switching") && n.contains("to On")), "{:#?}", notes(&r));
    assert!(
        t.plan.what_if.iter().all(|c| c.ok) && !t.plan.what_if.is_empty(),
        "the What If checks ran first: {:#?}",
        t.plan.what_if
    );
    let records = caguard::rollout::all(store.as_ref()).await;
    let cipp = records.iter().find(|e| e.lockdown == "Block CIPP Access - Outside Trusted IPs").unwrap();
    let why = cipp.why.as_deref().unwrap();
    assert!(cipp.promoted_at.is_some() && why.contains("technician sign-ins") && why.contains("7 days"), "{cipp:?}");

    // Once: a later run changes nothing and switches nothing.
    let r = sweep::run(&client, &cfg, &apply_msp_only(&msp, &store)).await.unwrap();
    let plan = &r.tenants[0].plan;
    assert!(plan.actions.iter().all(|a| a.control.to_string() != "A2"), "{:#?}", plan.actions);
    assert!(notes(&r).iter().all(|n| !n.contains("switching")), "{:#?}", notes(&r));
    assert_eq!(block_state(&sim, &msp), "enabled");
    let again = caguard::rollout::all(store.as_ref()).await;
    assert_eq!(
        again.iter().find(|e| e.lockdown == cipp.lockdown).unwrap().promoted_at,
        cipp.promoted_at,
        "recorded once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_skipping_mfa_by_location_raises_one_alert_naming_the_cause() {
    let estate = sample_estate();
    let (sim, client) = unpaced_sim(&estate).await;
    let msp = estate.msp_tenant_id.clone();
    let (store, _dir) = temp_store("rollout-mfa");
    let cfg = config(&estate, "");
    sweep::run(&client, &cfg, &apply_msp_only(&msp, &store)).await.unwrap();
    // CIPP's account signs in from CIPP's cloud (non-interactive): MFA skipped for the location.
    sign_in(&sim, &msp, "cipp-svc@contosomsp.onmicrosoft.com", "192.0.2.10", 0, false, Mfa::SkippedTrustedLocation);
    sign_in(&sim, &msp, "cipp-svc@contosomsp.onmicrosoft.com", "192.0.2.10", 0, false, Mfa::SkippedTrustedLocation);
    sign_in(&sim, &msp, "syncro-svc@contosomsp.onmicrosoft.com", "192.0.2.11", 0, false, Mfa::Done);
    let r = sweep::run(&client, &cfg, &apply_msp_only(&msp, &store)).await.unwrap();
    let alerts = caguard::cli::apply_alerts(&cfg, &r);
    let mfa: Vec<&caguard::alert::Alert> = alerts.iter().filter(|a| a.message.contains("without MFA")).collect();
    assert_eq!(mfa.len(), 1, "{alerts:#?}");
    let m = &mfa[0].message;
    assert!(m.contains("cipp-svc@") && m.contains("2 time(s)") && m.contains("classic MFA trusted IPs"), "{m}");
    // The next read starts where this one ended: nothing new, nothing said.
    let r = sweep::run(&client, &cfg, &apply_msp_only(&msp, &store)).await.unwrap();
    assert!(notes(&r).iter().all(|n| !n.contains("without MFA")), "{:#?}", notes(&r));
    let reads: Vec<u16> =
        sim.journal().iter().filter(|e| e.path.ends_with("auditLogs/signIns")).map(|e| e.status).collect();
    assert_eq!(
        reads.iter().filter(|s| **s == 200).count(),
        6,
        "two reads (interactive, non-interactive) per run: {reads:?}"
    );
    // Graph allows about 5 sign-in log reads per 10 s: the sixth in a burst is answered 429, and retried.
    assert!(reads.iter().all(|s| *s == 200 || *s == 429), "{reads:?}");
}
