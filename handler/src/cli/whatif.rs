//! `caguard whatif`: asks Graph's What If about one sign-in and prints its answer
//! next to caguard's own evaluator's, policy by policy. A disagreement means
//! caguard's model of the tenant is wrong: it is flagged, alerted, and exits 2.

use crate::graph::GraphClient;
use crate::model::Collection;
use crate::observe::{LOCATIONS, POLICIES};
use crate::whatif::{self, eval, graph};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct WhatifArgs {
    /// The tenant (id); defaults to the MSP tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// The user signing in (object id or UPN).
    #[arg(long)]
    pub user: String,
    /// The IP address the sign-in comes from.
    #[arg(long)]
    pub ip: IpAddr,
    /// The app signed in to (app id); defaults to SharePoint Online.
    #[arg(long, default_value = whatif::preflight::SAMPLE_APP)]
    pub app: String,
    #[arg(long, short, default_value = "caguard.toml")]
    pub config: PathBuf,
    #[arg(long, default_value = ".caguard/store.json")]
    pub store: PathBuf,
    /// Ask the embedded simulated estate instead.
    #[arg(long)]
    pub sim: bool,
}

/// Exit code: 0 when Graph and caguard agree, 2 when they disagree, 1 on errors.
pub async fn run(args: &WhatifArgs) -> Result<i32, String> {
    if args.sim {
        let estate = caguard_sim::sample_estate();
        let sim = caguard_sim::start(estate.clone(), Default::default()).await.map_err(|e| e.to_string())?;
        let cfg = crate::demo::sample_config(&estate);
        return compare(&crate::demo::sample_client(&sim, &estate), &cfg, args).await;
    }
    let (cfg, _) = crate::config::load(&args.config)?;
    compare(&super::graph_client()?, &cfg, args).await
}

async fn compare(client: &GraphClient, cfg: &crate::config::Config, args: &WhatifArgs) -> Result<i32, String> {
    let tenant = args.tenant.clone().unwrap_or_else(|| cfg.msp_tenant_id.clone());
    let e = |e: crate::graph::GraphError| e.to_string();
    let user_path =
        format!("/users/{}?$select=id", url::form_urlencoded::byte_serialize(args.user.as_bytes()).collect::<String>());
    let user: Value = client.get(&tenant, &user_path).await.map_err(e)?;
    let user_id = user["id"].as_str().ok_or("the user has no id")?.to_string();
    let policies: Collection<Value> = client.get(&tenant, POLICIES).await.map_err(e)?;
    let locations: Vec<Value> = client.list(&tenant, LOCATIONS).await.map_err(e)?;
    let (groups, roles) = graph::memberships(client, &tenant, &user_id).await.map_err(e)?;
    let request = json!({
        "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": user_id},
        "signInContext": {"@odata.type": "#microsoft.graph.applicationContext", "includeApplications": [args.app]},
        "signInConditions": {"devicePlatform": "windows", "clientAppType": "browser", "ipAddress": args.ip.to_string()},
        "appliedPoliciesOnly": false
    });
    let answer = graph::evaluate(client, &tenant, &request).await.map_err(e)?;
    let member_of = move |_: &str| (groups.clone(), roles.clone());
    let sign_in = eval::parse_request(&request, &member_of)?;
    let mine = eval::evaluate(&policies.value, &locations, &sign_in);
    println!("{} signing in to {} from {} in tenant {tenant}:", args.user, args.app, args.ip);
    println!("  {:<50} {:<28} {:<28}", "policy", "Graph", "caguard");
    for m in &mine {
        let g = answer.iter().find(|g| g["id"].as_str().is_some_and(|id| id.eq_ignore_ascii_case(&m.policy_id)));
        let theirs = g.map_or("(not in Graph's answer)".to_string(), |g| {
            said(g["policyApplies"] == true, g["analysisReasons"].as_str().unwrap_or("?"))
        });
        let flag = if g.is_some_and(|g| graph::differs(g, m)) { "  <- DISAGREE" } else { "" };
        println!("  {:<50} {:<28} {:<28}{flag}", m.name, theirs, said(m.applies, m.reason.as_str()));
    }
    let Some(d) = graph::disagreement(&answer, &mine) else {
        println!("Graph and caguard agree.");
        return Ok(0);
    };
    println!("DISAGREEMENT: {d}");
    let alert = crate::alert::Alert {
        tenant_id: tenant.clone(),
        tenant_name: tenant.clone(),
        kind: crate::alert::kind::WHATIF_DISAGREEMENT.into(),
        message: format!(
            "What If for {} from {} disagrees with caguard's evaluator, so caguard's model of this tenant is wrong: {d}",
            args.user, args.ip
        ),
        ..Default::default()
    };
    let alerter = crate::alert::Alerter::from_env(Arc::new(crate::store::FileStore::new(&args.store)), cfg, client);
    alerter.send(&alert).await;
    Ok(2)
}

fn said(applies: bool, reason: &str) -> String {
    if applies { "applies".into() } else { format!("does not apply ({reason})") }
}
