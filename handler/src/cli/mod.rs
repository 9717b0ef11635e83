//! The `caguard` command line.

mod pause;
mod whatif;

use crate::config;
use crate::graph::{Credentials, GraphClient, GraphConfig, StaticCredentials};
use crate::report;
use crate::sweep::{self, SweepOptions, SweepReport};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Exit codes: 0 compliant or done; 2 changes found (`plan`, `watch`); 1 a tenant
/// could not be read or written, or another error; 64 a usage error.
pub const EXIT_OK: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_DRIFT: i32 = 2;
pub const EXIT_USAGE: i32 = 64;

/// Parses the command line: help and version exit 0, any usage error 64 (never
/// 2, which means "changes found").
pub fn parse_args(args: Vec<String>) -> Result<Cli, i32> {
    use clap::error::ErrorKind;
    Cli::try_parse_from(args).map_err(|e| {
        let _ = e.print();
        match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => EXIT_OK,
            _ => EXIT_USAGE,
        }
    })
}

#[derive(Parser, Debug)]
#[command(
    name = "caguard",
    version,
    about = "Keeps an MSP's Conditional Access lockdown in place across its own and every GDAP customer tenant."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show, tenant by tenant, exactly what `apply` would write and why. Exit 2 when there is drift.
    Plan(RunArgs),
    /// Plan, then write. Large plans are held until confirmed with --yes.
    Apply {
        #[command(flatten)]
        run: RunArgs,
        /// Confirm a plan past the safety limits (more than 25 policies in a tenant, or 20% of tenants).
        #[arg(long)]
        yes: bool,
    },
    /// Run as the Azure Functions custom handler on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT
    /// (the default when that variable is set).
    Serve {
        /// Port; defaults to FUNCTIONS_CUSTOMHANDLER_PORT.
        #[arg(long, env = "FUNCTIONS_CUSTOMHANDLER_PORT")]
        port: u16,
    },
    /// One watch tick: which tenants' CA objects changed since the last tick (fingerprints in --store).
    Watch {
        #[command(flatten)]
        run: WatchArgs,
        /// List GDAP relationships now, even if the remembered tenant list is fresh.
        #[arg(long)]
        rediscover: bool,
    },
    /// Register (or update) the Partner Center webhook that brings GDAP events to caguard.
    PartnerCenter {
        #[command(subcommand)]
        action: PartnerCenterAction,
    },
    /// Check, against the live tenants, every permission, consent and GDAP access
    /// assignment caguard's features need; one line per gap with its fix. Writes
    /// nothing. Exit 0 when nothing is missing, 1 otherwise.
    Doctor {
        #[arg(long, short, default_value = "caguard.toml")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
        /// Also send one test email through [alerts] email_from (Mail.Send can only be checked by sending).
        #[arg(long)]
        test_email: bool,
    },
    /// Remove exactly what caguard added (the exclusions it wrote, the objects it
    /// created, by the ids in --store). Shows the plan; --yes carries it out.
    /// Exit 2 when steps are pending, 0 when done or nothing is left, 1 on errors.
    Uninstall {
        #[arg(long)]
        yes: bool,
        #[arg(long, short, default_value = "caguard.toml")]
        config: PathBuf,
        #[arg(long, default_value = ".caguard/store.json")]
        store: PathBuf,
    },
    /// Stop caguard writing: everything, one tenant, one control, or one tenant's control.
    /// Drift is still planned and shown. Expires (24 h by default, at most a week).
    Pause {
        #[command(flatten)]
        scope: pause::ScopeArgs,
        /// Why (shown in status, plans and the alert).
        #[arg(long)]
        reason: String,
        /// How long, e.g. 2h (1h to 168h).
        #[arg(long = "for", value_parser = parse_duration, default_value = "24h")]
        length: Duration,
        #[arg(long, default_value = ".caguard/store.json")]
        store: PathBuf,
    },
    /// Lift the pause of exactly this scope.
    Resume {
        #[command(flatten)]
        scope: pause::ScopeArgs,
        #[arg(long, default_value = ".caguard/store.json")]
        store: PathBuf,
    },
    /// Pauses in force, and each tenant's last result.
    Status {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = ".caguard/store.json")]
        store: PathBuf,
    },
    /// Ask Graph's What If about one sign-in, next to caguard's own evaluator's answer.
    /// Exit 0 when they agree, 2 when they disagree (also alerted), 1 on errors.
    Whatif(whatif::WhatifArgs),
    /// The whole cycle on the embedded simulated estate: plan, apply, an out-of-band change, detect, restore.
    Demo {
        /// How long to run (e.g. 30s, 2m).
        #[arg(long = "for", value_parser = parse_duration, default_value = "30s")]
        length: Duration,
        /// Simulated Graph latency per request.
        #[arg(long, default_value_t = 20)]
        latency_ms: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum PartnerCenterAction {
    /// Registers caguard's endpoint for GDAP events, only where no other registration
    /// exists (Partner Center keeps one per partner, and CIPP's onboarding uses it).
    Register {
        /// caguard's endpoint, e.g. https://<app>.azurewebsites.net/api/PartnerCenterEvents
        #[arg(long)]
        url: String,
        /// Replace a registration that points elsewhere (CIPP's onboarding of new customers stops).
        #[arg(long)]
        replace: bool,
        #[arg(long, short, default_value = "caguard.toml")]
        config: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// caguard.toml (see caguard.example.toml).
    #[arg(long, short, default_value = "caguard.toml")]
    pub config: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Run against the embedded simulated estate (and its config) instead of Microsoft Graph.
    #[arg(long)]
    pub sim: bool,
    /// Tenants worked on at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Only this tenant (repeatable): its id, a unique prefix of it, or its display
    /// name; all tenants when absent. A filter that matches nothing is an error.
    #[arg(long = "tenant")]
    pub tenants: Vec<String>,
    /// Where the watch's fingerprints and tenant list, and alert dedupe counts, are kept.
    #[arg(long, default_value = ".caguard/store.json")]
    pub store: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    /// caguard.toml (see caguard.example.toml).
    #[arg(long, short, default_value = "caguard.toml")]
    pub config: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Tenants listed at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Where the fingerprints and the tenant list are kept.
    #[arg(long, default_value = ".caguard/store.json")]
    pub store: PathBuf,
}

/// `30s`, `2m`, `1h` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: u64 = num.parse().map_err(|_| format!("'{s}' is not a duration like 30s, 2m or 1h"))?;
    match unit {
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        "ms" => Ok(Duration::from_millis(n)),
        _ => Err(format!("'{s}': unknown unit '{unit}' (use s, m or h)")),
    }
}

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
