//! `caguard demo`: the whole cycle on the embedded simulated estate.

pub mod rollout;

use crate::audit;
use crate::config::{self, Config};
use crate::graph::{Credentials, GraphClient, GraphConfig, StaticCredentials};
use crate::plan::Op;
use crate::report;
use crate::sweep::{self, SweepOptions, SweepReport};
use caguard_sim::{Actor, Estate, SimHandle, SimOptions};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The caguard.toml that fits the sample estate (ids looked up by name there).
pub fn sample_config_toml(estate: &Estate) -> String {
    let msp = estate.tenants.iter().find(|t| t.id == estate.msp_tenant_id).expect("the estate has its MSP tenant");
    let group = msp.groups.iter().find(|g| g["displayName"] == "CIPP Technicians").expect("technician group");
    let upn = |name: &str| {
        msp.users
            .iter()
            .find(|u| u["displayName"] == name)
            .and_then(|u| u["userPrincipalName"].as_str())
            .expect("user")
            .to_string()
    };
    // Direct tenants: each refresh token bound to one tenant, and the account it belongs to.
    let direct: Vec<(&str, &str)> = estate
        .refresh_tokens
        .iter()
        .filter_map(|t| Some((t.tenant_id.as_deref()?, t.user_principal_name.as_str())))
        .collect();
    let app = |name: &str| {
        msp.service_principals
            .iter()
            .find(|a| a["displayName"] == name)
            .and_then(|a| a["appId"].as_str())
            .expect("application")
            .to_string()
    };
    // A CIPP-plus-Syncro MSP: the source documents' two block policies, two
    // service accounts, MFA on the CIPP app, and sessions that follow the network.
    format!(
        r#"msp_tenant_id = "{msp}"
mode = "gdap"

[sites]
"MSP Office" = ["203.0.113.10/32", "2001:db8:10::/48"]

[accounts]
break_glass = ["{bg1}", "{bg2}"]

[[lockdown]]
tool = "cipp"
technician_groups = ["{group}"]

[[lockdown]]
tool = "syncro"
technician_users = ["All"]
all_users_are_technicians = true
apps = ["{syncro_app}"]

[[service_account]]
tool = "cipp"
account = "{svc}"
direct_accounts = {{ {direct_accounts} }}

[[service_account]]
tool = "syncro"
account = "{syncro_svc}"

[cipp_app]
app_id = "{cipp_app}"

[session]
mode = "enforce"

[scope]
direct_tenants = [{direct_tenants}]
"#,
        msp = estate.msp_tenant_id,
        group = group["id"].as_str().unwrap_or_default(),
        bg1 = upn("Break Glass 1"),
        bg2 = upn("Break Glass 2"),
        svc = upn("CIPP Service Account"),
        syncro_svc = upn("Syncro Service Account"),
        syncro_app = app("Syncro"),
        cipp_app = app("CIPP-SSO"),
        direct_accounts = direct.iter().map(|(t, u)| format!("\"{t}\" = \"{u}\"")).collect::<Vec<_>>().join(", "),
        direct_tenants = direct.iter().map(|(t, _)| format!("\"{t}\"")).collect::<Vec<_>>().join(", "),
    )
}

/// The sample estate's config, parsed.
pub fn sample_config(estate: &Estate) -> Config {
    config::parse(&sample_config_toml(estate)).expect("the sample config is valid").0
}

/// A simulator without the CA rate limit, and a client for the estate's app that
/// does not pace for it: for what caguard writes, not how politely (the demo's
/// promotion story, and tests; pacing has its own tests, against the limit).
pub async fn unpaced_sim(estate: &Estate) -> Result<(SimHandle, GraphClient), String> {
    unpaced_sim_with(estate, SimOptions::default()).await
}

/// [`unpaced_sim`] with other faults (replication lag, refused writes) as well.
pub async fn unpaced_sim_with(estate: &Estate, mut options: SimOptions) -> Result<(SimHandle, GraphClient), String> {
    options.faults.ca_throttling = false;
    let sim = caguard_sim::start(estate.clone(), options).await.map_err(|e| e.to_string())?;
    let mut cfg = GraphConfig::for_base(&sim.base_url);
    cfg.ca_interval = Duration::from_millis(10);
    let app = &estate.apps[0];
    let creds =
        Credentials::ClientSecret { client_id: app.client_id.clone(), client_secret: app.client_secret.clone() };
    let client = GraphClient::new(cfg, Arc::new(StaticCredentials(creds))).map_err(|e| e.to_string())?;
    Ok((sim, client))
}

/// A client for the sample estate's app registration against a simulator.
pub fn sample_client(sim: &SimHandle, estate: &Estate) -> GraphClient {
    let app = &estate.apps[0];
    let creds =
        Credentials::ClientSecret { client_id: app.client_id.clone(), client_secret: app.client_secret.clone() };
    GraphClient::new(GraphConfig::for_base(&sim.base_url), Arc::new(StaticCredentials(creds))).expect("client builds")
}

fn step(start: Instant, text: &str) {
    println!("\n[{:>5.1}s] {text}", start.elapsed().as_secs_f64());
}

/// Runs the demo for `length` (or until Ctrl-C).
pub async fn run(length: Duration, latency_ms: u64) -> Result<(), String> {
    let start = Instant::now();
    let estate = caguard_sim::sample_estate();
    let mut opts = SimOptions::default();
    opts.faults.latency_ms = latency_ms;
    let sim = caguard_sim::start(estate.clone(), opts).await.map_err(|e| e.to_string())?;
    let config = sample_config(&estate);
    let client = sample_client(&sim, &estate);
    println!(
        "caguard demo: simulated estate at {} — 1 MSP tenant, {} customer tenants, {latency_ms} ms latency, CA throttling at 1 request/s/tenant.",
        sim.base_url,
        estate.tenants.len() - 1
    );
    let deadline = start + length;
    tokio::select! {
        r = cycle(&sim, &estate, &config, &client, start, deadline) => r,
        _ = tokio::signal::ctrl_c() => { println!("\nstopped (Ctrl-C)"); Ok(()) }
    }
}

async fn cycle(
    sim: &SimHandle,
    estate: &Estate,
    config: &Config,
    client: &GraphClient,
    start: Instant,
    deadline: Instant,
) -> Result<(), String> {
    let plan_only = SweepOptions::default();
    step(start, "1. plan: what caguard would change");
    let r = sweep::run(client, config, &plan_only).await.map_err(|e| e.to_string())?;
    print!("{}", report::sweep_text(&r, false, Some(2)));

    step(start, "2. apply --yes (first rollout, confirmed): making it true");
    let applied = sweep::run(client, config, &SweepOptions { apply: true, confirmed: true, ..Default::default() })
        .await
        .map_err(|e| e.to_string())?;
    print!("{}", report::sweep_text(&applied, true, Some(3)));

    step(start, "3. plan again: nothing left to do");
    sim.clear_journal();
    let again = sweep::run(client, config, &plan_only).await.map_err(|e| e.to_string())?;
    let writes = sim.journal().iter().filter(|e| e.is_write()).count();
    println!("{} tenants with changes planned; {writes} writes in the simulator's journal.", again.drifted());

    let changes = out_of_band_changes(sim, estate, config);
    // The story always runs to its end; the deadline only bounds the watching after it.
    for (i, (tenant, actor, path, body, what)) in changes.iter().enumerate() {
        step(start, &format!("{}. out-of-band change: {} {what}", 4 + i * 2, actor_name(actor)));
        let (status, _) = sim.portal_edit(tenant, actor, "PATCH", path, Some(body.clone()));
        println!("   the portal answered {status}");
        step(start, &format!("{}. watch: next tick notices the drift, puts it back, says who", 5 + i * 2));
        let healed = heal(client, config, estate).await?;
        for line in healed {
            println!("   {line}");
        }
    }
    let n = 4 + changes.len() * 2;
    rollout::story(|i, text| step(start, &format!("{}. {text}", n + i))).await?;
    let left = deadline.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        step(start, &format!("watching for {:.0}s more (Ctrl-C stops)", left.as_secs_f64()));
        // A tick takes a couple of seconds (CA pacing), so none starts too close to the deadline.
        while deadline.saturating_duration_since(Instant::now()) > Duration::from_secs(6) {
            tokio::time::sleep(Duration::from_secs(3)).await;
            for line in heal(client, config, estate).await? {
                println!("   {line}");
            }
        }
        tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
    }
    step(start, "done");
    Ok(())
}

fn actor_name(a: &Actor) -> String {
    match a {
        Actor::User { display_name, user_principal_name, .. } => format!("{display_name} <{user_principal_name}>"),
        Actor::App { display_name, .. } => display_name.clone(),
    }
}

type Change = (String, Actor, String, Value, String);

fn user_actor(u: &Value) -> Actor {
    Actor::User {
        id: u["id"].as_str().unwrap_or_default().into(),
        display_name: u["displayName"].as_str().unwrap_or_default().into(),
        user_principal_name: u["userPrincipalName"].as_str().unwrap_or_default().into(),
    }
}

/// Two changes a person might make by hand: one in a customer tenant, one in
/// the MSP tenant. Ids are read from the simulator as it is now.
fn out_of_band_changes(sim: &SimHandle, estate: &Estate, config: &Config) -> Vec<Change> {
    let mut out = Vec::new();
    if let Some(customer) = sim.tenant(
        &estate.tenants.iter().find(|t| t.display_name == "Fabrikam Dental").map(|t| t.id.clone()).unwrap_or_default(),
    ) {
        let policy = &customer.policies[0];
        let mallory = json!({"id": "5f0c2b7e-3d1a-4c55-9e21-7a1d2c3b4e5f", "displayName": "Mallory Admin",
                             "userPrincipalName": format!("mallory@{}", customer.default_domain)});
        out.push((
            customer.id.clone(),
            user_actor(&mallory),
            format!("identity/conditionalAccess/policies/{}", policy["id"].as_str().unwrap_or_default()),
            json!({"conditions": {"users": {"excludeGuestsOrExternalUsers": null}}}),
            format!(
                "removes the MSP exclusion from \"{}\" in {}",
                policy["displayName"].as_str().unwrap_or_default(),
                customer.display_name
            ),
        ));
    }
    if let Some(msp) = sim.tenant(&estate.msp_tenant_id) {
        let blair = msp.users.iter().find(|u| u["displayName"] == "Blair Tech");
        let block = msp.policies.iter().find(|p| p["displayName"].as_str() == Some(config.lockdowns[0].name.as_str()));
        if let (Some(blair), Some(block)) = (blair, block) {
            out.push((
                msp.id.clone(),
                user_actor(blair),
                format!("identity/conditionalAccess/policies/{}", block["id"].as_str().unwrap_or_default()),
                json!({"state": "disabled"}),
                format!("turns off \"{}\" in the MSP tenant", config.lockdowns[0].name),
            ));
        }
    }
    out
}

/// One watch tick: a sweep that applies, then who made each drift.
async fn heal(client: &GraphClient, config: &Config, estate: &Estate) -> Result<Vec<String>, String> {
    let opts = SweepOptions { apply: true, confirmed: false, ..Default::default() };
    let r: SweepReport = sweep::run(client, config, &opts).await.map_err(|e| e.to_string())?;
    let own = audit::Own {
        app_id: estate.apps.first().map(|a| a.client_id.clone()).unwrap_or_default(),
        ..Default::default()
    };
    let mut lines = Vec::new();
    for t in r.tenants.iter().filter(|t| t.result.as_ref().is_some_and(|r| r.written > 0)) {
        for a in t.plan.enforced() {
            let id = match &a.op {
                Op::UpdatePolicy { id } | Op::UpdateLocation { id } => id.clone(),
                _ => String::new(),
            };
            let who = if id.is_empty() {
                "unknown (object was deleted)".to_string()
            } else {
                match audit::who_changed(client, &t.plan.tenant_id, &id, &own).await {
                    Ok(Some(c)) => format!("{} at {} ({})", c.who, c.when, c.activity),
                    Ok(None) => "unknown".into(),
                    Err(e) => format!("unknown ({e})"),
                }
            };
            lines.push(format!(
                "{}: {} \"{}\" drifted ({}) — changed by {who}; restored.",
                t.plan.tenant_name, a.control, a.target, a.reason
            ));
            lines.push(format!("      wrote: {}", a.body));
        }
    }
    if lines.is_empty() {
        lines.push("no drift".into());
    }
    Ok(lines)
}
