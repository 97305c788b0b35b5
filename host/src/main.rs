//! The `dss` binary: parses the command line, sets up logging, runs.

use clap::Parser;
use std::io::IsTerminal;

fn main() {
    // Before any thread: the allocator's arenas are bounded.
    dss_host::memory::configure();
    // Before any thread: the service manager's variables leave the
    // environment children inherit.
    dss_host::service::init_from_env();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dss: cannot start the async runtime: {e}");
            std::process::exit(1)
        }
    };
    let code = runtime.block_on(run());
    // Exit now: dropping the runtime would wait for blocking threads (a
    // provider call in progress) without bound.
    std::process::exit(code)
}

async fn run() -> i32 {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and journals get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = dss_host::cli::Cli::parse();
    match dss_host::cli::run(cli).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("dss: {e:#}");
            1
        }
    }
}
