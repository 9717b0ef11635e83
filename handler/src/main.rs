#[tokio::main]
async fn main() {
    let in_functions = std::env::var_os("FUNCTIONS_CUSTOMHANDLER_PORT").is_some();
    // CAGUARD_LOG wins; RUST_LOG, the tracing convention, works as well.
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAGUARD_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| if in_functions { "info".into() } else { "warn".into() });
    // ANSI colour only on a terminal, and never with NO_COLOR.
    let ansi = caguard::cli::use_colour(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    if in_functions {
        // JSON lines for Application Insights, each where the host reads its severity right.
        logs.json().with_writer(caguard::logging::HostWriter).init();
    } else {
        logs.with_writer(std::io::stderr).init();
    }
    // Under the Functions host, serving is the default.
    let mut args: Vec<String> = std::env::args().collect();
    if in_functions && args.len() == 1 {
        args.push("serve".into());
    }
    let code = match caguard::cli::parse_args(args) {
        Ok(cli) => caguard::cli::run(cli).await,
        Err(code) => code,
    };
    std::process::exit(code);
}
