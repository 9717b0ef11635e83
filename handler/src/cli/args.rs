//! What the command line accepts (clap), and how a usage error exits.

use super::{EXIT_OK, EXIT_USAGE, pause, whatif};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

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
