//! `caguard pause`, `resume` and `status`: the on-call's controls ([`crate::pause`]).

use super::{EXIT_ERROR, EXIT_OK};
use crate::pause::{self, Pause, Scope};
use crate::store::{FileStore, Store};
use std::path::Path;
use std::time::Duration;

/// What a pause or resume applies to: both absent means everything.
#[derive(clap::Args, Debug)]
pub struct ScopeArgs {
    /// One tenant (its id).
    #[arg(long)]
    pub tenant: Option<String>,
    /// One control (A1, A2, A4, B1, B2, C1, C2, D1, D2).
    #[arg(long)]
    pub control: Option<String>,
}

impl ScopeArgs {
    fn scope(&self) -> Result<Scope, String> {
        Scope::parse(self.tenant.as_deref(), self.control.as_deref())
    }
}

/// Who is pausing, for the record: the signed-in user where the shell says.
fn who() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "unknown".into());
    format!("{user} (CLI)")
}

pub async fn pause(args: &ScopeArgs, reason: &str, length: Duration, store: &Path) -> Result<i32, String> {
    let hours = i64::try_from(length.as_secs().div_ceil(3600)).unwrap_or(i64::MAX);
    let p = Pause::new(args.scope()?, reason, &who(), hours, chrono::Utc::now())?;
    let store = FileStore::new(store);
    pause::pause(&store, &p).await?;
    println!("{}", p.describe());
    Ok(EXIT_OK)
}

pub async fn resume(args: &ScopeArgs, store: &Path) -> Result<i32, String> {
    let scope = args.scope()?;
    if pause::resume(&FileStore::new(store), &scope).await? {
        println!("resumed {scope}: the next run enforces it again");
        Ok(EXIT_OK)
    } else {
        eprintln!("error: nothing is paused for {scope} (`caguard status` lists the pauses)");
        Ok(EXIT_ERROR)
    }
}

pub async fn status(json: bool, path: &Path) -> Result<i32, String> {
    let store = FileStore::new(path);
    let (pauses, _) = pause::load(Some(&store), chrono::Utc::now()).await;
    let results = store.statuses().await.map_err(|e| e.to_string())?;
    let undelivered = crate::alert::undelivered(&store).await;
    let rollouts = crate::rollout::all(&store).await;
    if json {
        let list: Vec<_> = undelivered.iter().map(crate::alert::Undelivered::summary).collect();
        let v = serde_json::json!({"pauses": pauses.0, "undeliveredAlerts": list, "tenants": results, "rollouts": rollouts});
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(EXIT_OK);
    }
    match pauses.0.len() {
        0 => println!("no pauses: caguard enforces every control it is configured to"),
        n => println!("{n} pause(s) in force:"),
    }
    for p in &pauses.0 {
        println!("  {}", p.describe());
    }
    match undelivered.len() {
        0 => println!("no undelivered alerts"),
        n => println!("{n} undelivered alert(s), sent again on every timer tick:"),
    }
    for u in &undelivered {
        println!(
            "  {}: {} — {} ({} tries since {})",
            u.channel,
            u.alert.title(),
            crate::logging::bounded(&u.error),
            u.attempts,
            u.first_failed_at
        );
    }
    for e in &rollouts {
        let counted: usize = e.days.values().sum();
        match (&e.promoted_at, &e.why) {
            (Some(at), Some(why)) => println!("\"{}\": switched On at {at}: {why}", e.lockdown),
            _ => println!(
                "\"{}\": report-only, {counted} technician sign-in(s) seen, {} would be blocked",
                e.lockdown,
                e.would_block.len()
            ),
        }
        for w in &e.would_block {
            println!("  would block: {} from {} to {} ({}×, last {})", w.user, w.ip, w.app, w.count, w.last_seen);
        }
    }
    for r in &results {
        let why = r.reason.as_deref().map(|w| format!(": {w}")).unwrap_or_default();
        println!("{} ({})  {}{why}  [{}]", r.tenant_name, r.tenant_id, r.outcome, r.at);
    }
    Ok(EXIT_OK)
}
