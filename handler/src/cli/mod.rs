//! The `caguard` command line.

mod args;
mod pause;
mod whatif;

pub use args::{Cli, Command, PartnerCenterAction, RunArgs, WatchArgs, parse_args, parse_duration};

use crate::config;
use crate::graph::{Credentials, GraphClient, GraphConfig, StaticCredentials};
use crate::report;
use crate::sweep::{self, SweepOptions, SweepReport};
use std::sync::Arc;

/// Exit codes: 0 compliant or done; 2 changes found (`plan`, `watch`); 1 a tenant
/// could not be read or written, or another error; 64 a usage error.
pub const EXIT_OK: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_DRIFT: i32 = 2;
pub const EXIT_USAGE: i32 = 64;

/// Credentials from the environment: `CAGUARD_CLIENT_ID` with `CAGUARD_CLIENT_SECRET`
/// (app-only) or `CAGUARD_REFRESH_TOKEN` (delegated, CIPP's model).
fn env_credentials() -> Result<Credentials, String> {
    let id = std::env::var("CAGUARD_CLIENT_ID")
        .map_err(|_| "set CAGUARD_CLIENT_ID (and CAGUARD_CLIENT_SECRET or CAGUARD_REFRESH_TOKEN)".to_string())?;
    let secret = std::env::var("CAGUARD_CLIENT_SECRET").ok();
    match std::env::var("CAGUARD_REFRESH_TOKEN") {
        Ok(rt) => Ok(Credentials::RefreshToken { client_id: id, client_secret: secret, refresh_token: rt }),
        Err(_) => Ok(Credentials::ClientSecret {
            client_id: id,
            client_secret: secret.ok_or("set CAGUARD_CLIENT_SECRET or CAGUARD_REFRESH_TOKEN")?,
        }),
    }
}

/// The sweep and, when configured, Part C (report in `plan`, enforce per control mode
/// in `apply`), from one read of the config. `--sim` runs the sweep on the embedded estate.
async fn sweep_for(
    args: &RunArgs,
    apply: bool,
    yes: bool,
) -> Result<(SweepReport, Option<crate::cipp::CippReport>), String> {
    let mut opts = SweepOptions {
        apply,
        confirmed: yes,
        concurrency: args.concurrency,
        progress: !args.json,
        only: args.tenants.clone(),
        ledger: crate::sweep::Ledger(
            (!args.sim).then(|| Arc::new(crate::store::FileStore::new(&args.store)) as Arc<dyn crate::store::Store>),
        ),
        cipp: None,
    };
    if args.sim {
        let estate = caguard_sim::sample_estate();
        let sim = caguard_sim::start(estate.clone(), Default::default()).await.map_err(|e| e.to_string())?;
        let cfg = crate::demo::sample_config(&estate);
        let client = crate::demo::sample_client(&sim, &estate);
        let report = sweep::run(&client, &cfg, &opts).await.map_err(|e| e.to_string())?;
        if apply {
            alert_apply(&client, &cfg, &report, None, &args.store).await;
        }
        return Ok((report, None));
    }
    let (cfg, warnings) = config::load(&args.config)?;
    for w in warnings {
        eprintln!("warning: {}:{w}", args.config.display());
    }
    let client = graph_client()?;
    // CIPP's Tenants table, when its storage is configured, says which tenants are direct.
    opts.cipp = cipp_from_env(&cfg)?;
    let report = sweep::run(&client, &cfg, &opts).await.map_err(|e| e.to_string())?;
    let cs = crate::cipp::connection_string_from_env();
    let cipp = match crate::cipp::table_client(&cfg, cs.as_deref()) {
        None => None,
        Some(client) => {
            let (pauses, _) =
                crate::pause::load(Some(&crate::store::FileStore::new(&args.store)), chrono::Utc::now()).await;
            match pauses.tenant("cipp") {
                Some(p) => {
                    eprintln!("CIPP-API: {}", p.describe());
                    None
                }
                None => {
                    let cfg = pauses.effective(&cfg, "cipp");
                    Some(crate::cipp::run_configured(&client?, &cfg, apply).await)
                }
            }
        }
    };
    if apply {
        alert_apply(&client, &cfg, &report, cipp.as_ref(), &args.store).await;
    }
    Ok((report, cipp))
}

/// Sends what an apply calls for to the alert channels in the environment, as the
/// Functions app does: holds, failures, tenants enforcement cannot reach, and Part C
/// rows. Deduped through the store, like every alert.
async fn alert_apply(
    client: &GraphClient,
    cfg: &config::Config,
    report: &SweepReport,
    cipp: Option<&crate::cipp::CippReport>,
    store: &std::path::Path,
) {
    let alerter = crate::alert::Alerter::from_env(Arc::new(crate::store::FileStore::new(store)), cfg, client);
    let cipp_alerts = cipp.map(crate::cipp::alerts).unwrap_or_default();
    for alert in apply_alerts(cfg, report).into_iter().chain(cipp_alerts) {
        alerter.send(&alert).await;
    }
}

/// The alerts an apply raises for its tenants: holds, failures, tenants
/// enforcement cannot reach, withheld policies, lockout risks, and one for a
/// failed discovery (the customers it hid are `unknown`, not alerted one by one).
pub fn apply_alerts(cfg: &config::Config, report: &SweepReport) -> Vec<crate::alert::Alert> {
    let outcomes = report.tenants.iter().filter_map(|t| {
        let result = t.result.as_ref()?;
        crate::alert::for_outcome(&result.tenant_id, &t.plan.tenant_name, &result.outcome)
    });
    let per_policy = report.tenants.iter().flat_map(|t| {
        let plan = &t.plan;
        crate::alert::for_withheld(plan)
            .into_iter()
            .chain(crate::alert::for_lockout_risk(plan))
            .chain(crate::alert::for_notes(plan))
    });
    let discovery = report
        .discovery_error
        .as_ref()
        .map(|e| crate::alert::for_discovery_failure(&cfg.msp_tenant_id, e, report.count("unknown")));
    let expired = report.expired_pauses.iter().map(crate::pause::expired_alert);
    outcomes.chain(per_policy).chain(discovery).chain(expired).collect()
}

/// `apply`'s exit code: 1 when a tenant failed or was held, discovery failed, or Part C failed.
pub fn apply_exit_code(report: &SweepReport, cipp_failed: bool) -> i32 {
    if report.needs_attention() || cipp_failed { EXIT_ERROR } else { EXIT_OK }
}

fn graph_client() -> Result<GraphClient, String> {
    let mut graph = GraphConfig::default();
    if let Ok(u) = std::env::var("CAGUARD_GRAPH_URL") {
        graph.graph_base = u;
    }
    if let Ok(u) = std::env::var("CAGUARD_LOGIN_URL") {
        graph.login_base = u;
    }
    let source: Arc<dyn crate::graph::CredentialSource> = match std::env::var("CAGUARD_KEYVAULT_URL") {
        // CIPP's vault: its secrets, direct tenants' refresh tokens included.
        Ok(url) if !url.is_empty() => crate::secrets::from_env()?,
        _ => Arc::new(crate::secrets::WithEnvTenantTokens(StaticCredentials(env_credentials()?))),
    };
    GraphClient::new(graph, source).map_err(|e| e.to_string())
}

async fn register_partner_center(url: &str, replace: bool, path: &std::path::Path) -> Result<i32, String> {
    let parsed = url::Url::parse(url).map_err(|_| format!("--url: '{url}' is not a URL"))?;
    if parsed.scheme() != "https" {
        return Err(format!("--url: '{url}' must use https (Partner Center calls only https endpoints)"));
    }
    let (cfg, _) = config::load(path)?;
    let base = std::env::var("CAGUARD_PARTNER_CENTER_URL")
        .unwrap_or_else(|_| "https://api.partnercenter.microsoft.com".into());
    let login = std::env::var("CAGUARD_LOGIN_URL").unwrap_or_else(|_| "https://login.microsoftonline.com".into());
    let client = crate::partner::client(&base, &login, Arc::new(StaticCredentials(env_credentials()?)))?;
    use crate::partner::Registered;
    if replace {
        eprintln!(
            "warning: --replace: if Partner Center's registration points elsewhere (CIPP's), it is replaced and \
             CIPP's onboarding of new GDAP customers stops"
        );
    }
    let registration = match crate::partner::register(&client, &cfg.msp_tenant_id, url, replace).await? {
        Registered::Created(r) | Registered::Updated(r) => r,
        Registered::Replaced { previous, registration } => {
            eprintln!("warning: replaced the registration that pointed at {previous}");
            registration
        }
    };
    println!("{}", serde_json::to_string_pretty(&registration).expect("json"));
    Ok(EXIT_OK)
}

/// CIPP's storage from `CAGUARD_CIPP_CONNECTION_STRING` or `[cipp]`, when configured.
fn cipp_from_env(cfg: &config::Config) -> Result<Option<crate::cipp::Cipp>, String> {
    let cs = crate::cipp::connection_string_from_env();
    crate::cipp::Cipp::from_config(cfg, cs.as_deref()).transpose()
}

/// `caguard doctor`: one line per gap, exit 1 when there is any.
async fn doctor(path: &std::path::Path, json: bool, test_email: bool) -> Result<i32, String> {
    let (cfg, _) = config::load(path)?;
    let client = graph_client()?;
    let cipp = cipp_from_env(&cfg)?;
    let report = crate::doctor::run(&client, &cfg, cipp.as_ref(), test_email).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    } else {
        for g in &report.gaps {
            println!("{g}");
        }
        if cfg.alerts.email_from.is_some() && !test_email {
            println!("note: email alerts: Mail.Send is only checked by sending; run with --test-email");
        }
        match report.gaps.len() {
            0 => println!("no gaps: {} checks passed", report.checks),
            n => println!("{n} gap(s) in {} checks", report.checks),
        }
    }
    Ok(if report.gaps.is_empty() { EXIT_OK } else { EXIT_ERROR })
}

/// `caguard uninstall`: the plan, and with `--yes` the steps.
async fn uninstall(yes: bool, path: &std::path::Path, store: &std::path::Path) -> Result<i32, String> {
    let (cfg, _) = config::load(path)?;
    let client = graph_client()?;
    let store = crate::store::FileStore::new(store);
    let plan = crate::uninstall::plan(&client, &cfg, &store).await?;
    for s in &plan.steps {
        let body = if s.body.is_null() { String::new() } else { format!("\n    send: {}", s.body) };
        println!("{}…  {} \"{}\": {}{body}", &s.tenant[..8.min(s.tenant.len())], s.action, s.target, s.reason);
    }
    for l in &plan.left_alone {
        println!("left alone: {l}");
    }
    if plan.steps.is_empty() {
        println!("nothing caguard added is left");
        return Ok(EXIT_OK);
    }
    if !yes {
        println!("\n{} step(s); run `caguard uninstall --yes` to carry them out", plan.steps.len());
        return Ok(EXIT_DRIFT);
    }
    let errors = crate::uninstall::apply(&client, &store, &plan).await;
    for e in &errors {
        eprintln!("error: {e}");
    }
    Ok(if errors.is_empty() { EXIT_OK } else { EXIT_ERROR })
}

/// `caguard watch`: one tick; exit 2 when some tenant changed.
async fn watch_once(args: &WatchArgs, rediscover: bool) -> Result<i32, String> {
    let (cfg, _) = config::load(&args.config)?;
    let client = graph_client()?;
    let store: Arc<dyn crate::store::Store> = Arc::new(crate::store::FileStore::new(&args.store));
    let started = std::time::Instant::now();
    let report = crate::watch::tick(&client, &cfg, cipp_from_env(&cfg)?.as_ref(), &store, args.concurrency, rediscover)
        .await
        .map_err(|e| e.to_string())?;
    let stats = client.stats();
    if args.json {
        println!("{}", serde_json::json!({"tick": report, "stats": stats, "elapsedMs": started.elapsed().as_millis()}));
    } else {
        for c in &report.new_tenants {
            println!("{}: {} ({})", c.arrival(), c.name, c.tenant_id);
        }
        for c in &report.changed {
            println!("changed: {} ({})", c.name, c.tenant_id);
        }
        for (t, e) in &report.errors {
            println!("error: {t}: {e}");
        }
        println!(
            "{} changed, {} unchanged, {} new, {} errors{}; {} Graph requests in {:.1}s",
            report.changed.len(),
            report.unchanged,
            report.baseline,
            report.errors.len(),
            if report.rediscovered { ", tenant list rediscovered" } else { "" },
            stats.requests,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(if !report.errors.is_empty() {
        EXIT_ERROR
    } else if report.changed.is_empty() && report.new_tenants.is_empty() {
        EXIT_OK
    } else {
        EXIT_DRIFT
    })
}

/// Whether output may carry colour: a terminal, and `NO_COLOR` not set (no-color.org).
pub fn use_colour(stream_is_terminal: bool) -> bool {
    stream_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Diff lines in colour (green added, red removed, yellow changed) on a terminal only.
fn colour(text: &str) -> String {
    use std::io::IsTerminal;
    if !use_colour(std::io::stdout().is_terminal()) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        let code = match line.trim_start().get(..2) {
            Some("+ ") => Some("32"),
            Some("- ") => Some("31"),
            Some("~ ") => Some("33"),
            _ => None,
        };
        match code {
            Some(c) => out.push_str(&format!("\x1b[{c}m{line}\x1b[0m\n")),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// One document for `--json` (the sweep, with Part C under `cipp`), or the tables.
fn print(report: &SweepReport, cipp: Option<&crate::cipp::CippReport>, json: bool, applied: bool) {
    if json {
        let mut doc = serde_json::to_value(report).expect("report serializes");
        if let Some(c) = cipp {
            doc["cipp"] = serde_json::to_value(c).expect("report serializes");
        }
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    } else {
        print!("{}", colour(&report::sweep_text(report, applied, None)));
        if let Some(c) = cipp {
            print!("{}", crate::cipp::text(c));
        }
    }
}

/// Runs a command and returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Plan(args) => match sweep_for(&args, false, false).await {
            Ok((r, c)) => {
                print(&r, c.as_ref(), args.json, false);
                let cipp_drift = c.as_ref().is_some_and(|c| c.drifted() > 0);
                Ok(if r.discovery_error.is_some() || r.unreadable() > 0 {
                    EXIT_ERROR
                } else if r.drifted() > 0 || cipp_drift {
                    EXIT_DRIFT
                } else {
                    EXIT_OK
                })
            }
            Err(e) => Err(e),
        },
        Command::Apply { run, yes } => match sweep_for(&run, true, yes).await {
            Ok((r, c)) => {
                print(&r, c.as_ref(), run.json, true);
                let cipp_failed = c.as_ref().is_some_and(|c| {
                    !c.errors.is_empty()
                        || c.rows.iter().any(|r| matches!(r.outcome, crate::cipp::RowOutcome::Failed(_)))
                });
                Ok(apply_exit_code(&r, cipp_failed))
            }
            Err(e) => Err(e),
        },
        Command::Watch { run, rediscover } => watch_once(&run, rediscover).await,
        Command::PartnerCenter { action: PartnerCenterAction::Register { url, replace, config: path } } => {
            register_partner_center(&url, replace, &path).await
        }
        Command::Serve { port } => {
            crate::functions::serve(port).await.map(|()| EXIT_OK).map_err(|e| format!("serve: {e}"))
        }
        Command::Uninstall { yes, config, store } => uninstall(yes, &config, &store).await,
        Command::Doctor { config, json, test_email } => doctor(&config, json, test_email).await,
        Command::Pause { scope, reason, length, store } => pause::pause(&scope, &reason, length, &store).await,
        Command::Resume { scope, store } => pause::resume(&scope, &store).await,
        Command::Status { json, store } => pause::status(json, &store).await,
        Command::Whatif(args) => whatif::run(&args).await,
        Command::Demo { length, latency_ms } => crate::demo::run(length, latency_ms).await.map(|()| EXIT_OK),
    };
    result.unwrap_or_else(|e| {
        eprintln!("caguard: {e}");
        EXIT_ERROR
    })
}
