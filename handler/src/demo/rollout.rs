//! The demo's promotion step (and its test's setup): an MSP that set its CIPP
//! block policy up by hand a week ago, report-only, and lets caguard switch it On
//! on evidence (`rollout = "auto"`). A week of sign-ins is generated: technicians
//! from the office, one from a home office caguard does not know, the
//! break-glass accounts from elsewhere, and the service accounts (non-interactive).

use crate::config::Config;
use crate::sweep::{self, SweepOptions, SweepReport};
use caguard_sim::{Estate, Mfa, SignInSpec, SimHandle};
use serde_json::{Value, json};

/// The home office of one technician: not a configured site.
pub const HOME_OFFICE: &str = "198.51.100.50";
/// The app the generated sign-ins are to (SharePoint Online).
pub const APP: &str = "00000003-0000-0ff1-ce00-000000000000";
pub const BLOCK_POLICY_ID: &str = "a2a2a2a2-0000-4000-8000-000000000001";

/// An RFC 3339 time `n` days ago (to the second).
pub fn days_ago(n: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(n)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The sample estate with the CIPP block policy as the MSP made it by hand eight days ago.
pub fn estate() -> Estate {
    let mut estate = caguard_sim::sample_estate();
    let group =
        estate.tenants[0].groups.iter().find(|g| g["displayName"] == "CIPP Technicians").map(|g| g["id"].clone());
    estate.tenants[0].policies.push(json!({
        "id": BLOCK_POLICY_ID, "displayName": crate::config::DEFAULT_BLOCK_POLICY,
        "state": "enabledForReportingButNotEnforced", "createdDateTime": days_ago(8),
        "conditions": {"clientAppTypes": ["all"], "applications": {"includeApplications": ["All"]},
                       "users": {"includeGroups": [group]}, "locations": {"includeLocations": ["All"]}},
        "grantControls": {"operator": "OR", "builtInControls": ["block"]}}));
    estate
}

/// The sample config with the CIPP lockdown on `auto`, a week's window, quick
/// reads, adoption of the hand-made policy, and `extra_site` (a `[sites]` line) if any.
pub fn config(estate: &Estate, extra_site: &str) -> Config {
    let toml = super::sample_config_toml(estate)
        .replacen("tool = \"cipp\"\ntechnician_groups", "tool = \"cipp\"\nrollout = \"auto\"\ntechnician_groups", 1)
        .replace("[sites]\n", &format!("[sites]\n{extra_site}"))
        .replace("[scope]", "[rollout]\nwindow_days = 7\nmin_sign_ins = 3\nread_every_minutes = 0\n\n[names]\nadopt_existing = true\n\n[scope]");
    crate::config::parse(&toml).expect("the rollout demo config is valid").0
}

/// The `[sites]` line that adds the home office.
pub fn home_office_site() -> String {
    format!("\"Home office\" = [\"{HOME_OFFICE}/32\"]\n")
}

/// Records one sign-in to [`APP`], `days` ago.
pub fn sign_in(
    sim: &SimHandle,
    msp: &str,
    user: &str,
    ip: &str,
    days: i64,
    interactive: bool,
    mfa: Mfa,
) -> Result<(), String> {
    let ip = ip.parse().map_err(|_| format!("'{ip}' is not an IP address"))?;
    let spec = SignInSpec { user: user.into(), app_id: APP.into(), ip, interactive, mfa, at: Some(days_ago(days)) };
    sim.sign_in(msp, &spec).map(|_| ())
}

/// A week of sign-ins in the MSP tenant (the users of the sample estate).
pub fn a_week_of_sign_ins(sim: &SimHandle, msp: &str) -> Result<(), String> {
    for d in (1..=6).rev() {
        sign_in(sim, msp, "alex@contosomsp.onmicrosoft.com", "203.0.113.10", d, true, Mfa::Done)?;
        sign_in(sim, msp, "casey@contosomsp.onmicrosoft.com", "2001:db8:10::25", d, true, Mfa::Done)?;
        sign_in(sim, msp, "cipp-svc@contosomsp.onmicrosoft.com", "20.40.60.80", d, false, Mfa::Done)?;
    }
    for d in [2, 1] {
        sign_in(sim, msp, "blair@contosomsp.onmicrosoft.com", HOME_OFFICE, d, true, Mfa::Done)?;
    }
    sign_in(sim, msp, "bg1@contosomsp.onmicrosoft.com", "192.0.2.200", 3, true, Mfa::Done)
}

fn store() -> std::sync::Arc<dyn crate::store::Store> {
    let dir = std::env::temp_dir().join(format!("caguard-demo-rollout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::sync::Arc::new(crate::store::FileStore::new(dir.join("store.json")))
}

fn state(sim: &SimHandle, msp: &str) -> Value {
    let t = sim.tenant(msp).unwrap_or_default();
    t.policies.iter().find(|p| p["id"] == BLOCK_POLICY_ID).map(|p| p["state"].clone()).unwrap_or(Value::Null)
}

fn print_notes(r: &SweepReport, about: &str) {
    for n in r.tenants.iter().filter(|t| t.plan.msp).flat_map(|t| &t.plan.notes).filter(|n| n.message.contains(about)) {
        println!("   {}: {}", n.control, n.message);
    }
}

/// The demo's promotion story, on its own simulated MSP; `step` prints a numbered step.
pub async fn story(step: impl Fn(usize, &str)) -> Result<(), String> {
    let estate = estate();
    // Its own simulated MSP, without the CA rate limit, so this part takes seconds.
    let (sim, client) = super::unpaced_sim(&estate).await?;
    let msp = estate.msp_tenant_id.clone();
    let store = store();
    let apply = SweepOptions {
        apply: true,
        confirmed: true,
        only: vec![msp.clone()],
        ledger: sweep::Ledger(Some(store.clone())),
        ..Default::default()
    };
    step(
        0,
        "report-only to On: another MSP set its block policy up by hand a week ago, report-only (rollout = \"auto\")",
    );
    let cfg = config(&estate, "");
    sweep::run(&client, &cfg, &apply).await.map_err(|e| e.to_string())?;
    a_week_of_sign_ins(&sim, &msp)?;
    println!(
        "   a week of sign-ins: Alex and Casey from the office, the CIPP account from CIPP's cloud, Blair twice from home ({HOME_OFFICE})"
    );
    let r = sweep::run(&client, &cfg, &apply).await.map_err(|e| e.to_string())?;
    print_notes(&r, "stays report-only");
    println!("   the block policy is {}", state(&sim, &msp));
    step(1, "Blair's home office is added to [sites]: the week's evidence is clean, so caguard switches it On");
    let cfg = config(&estate, &home_office_site());
    let r = sweep::run(&client, &cfg, &apply).await.map_err(|e| e.to_string())?;
    print_notes(&r, "switching");
    for c in r.tenants.iter().filter(|t| t.plan.msp).flat_map(|t| &t.plan.what_if) {
        println!("   what-if {}: {} from {}: {}", if c.ok { "ok" } else { "FAILED" }, c.who, c.ip, c.after);
    }
    println!("   the block policy is {}", state(&sim, &msp));
    Ok(())
}
