//! `redlockd`: parse flags, set up logging, and run the server — or one of
//! the Redlock subcommands (`run`, `counter`).

use std::io::Write;

use clap::{Parser, Subcommand};
use redlockd::cli::{counter::CounterArgs, run::RunArgs};
use redlockd::config::ServerConfig;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: redlockd::memory::Counting = redlockd::memory::Counting;

#[derive(Parser, Debug)]
#[command(
    name = "redlockd",
    version,
    about = "A lock server that speaks the Redis protocol",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    server: ServerConfig,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a command while holding a Redlock across instances (flock for a fleet).
    Run(RunArgs),
    /// Increment a shared counter from many workers under a Redlock; report lost updates.
    Counter(CounterArgs),
}

/// Map redis-server's log levels onto tracing filters; anything else is
/// taken as a tracing filter directive.
fn log_filter(level: &str) -> EnvFilter {
    if let Ok(env) = std::env::var("RUST_LOG")
        && !env.is_empty()
    {
        return EnvFilter::new(env);
    }
    let directive = match level {
        "debug" => "debug",
        "verbose" | "notice" => "info",
        "warning" => "warn",
        "nothing" => "off",
        other => other,
    };
    EnvFilter::new(directive)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(log_filter(&cli.server.log_level))
        .with_writer(std::io::stderr)
        .init();
    // Server flags cannot be combined with a subcommand, so the Redlock
    // subcommands always get the default: one worker per core.
    let threads = match cli.server.threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let mut builder = match threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::Run(args)) => std::process::ExitCode::from(runtime.block_on(redlockd::cli::run::main(args))),
        Some(Command::Counter(args)) => {
            std::process::ExitCode::from(runtime.block_on(redlockd::cli::counter::main(args)))
        }
        None => serve(&runtime, cli.server),
    }
}

fn serve(runtime: &tokio::runtime::Runtime, config: ServerConfig) -> std::process::ExitCode {
    let result = runtime.block_on(async move {
        let listener = redlockd::server::bind(&config).await?;
        // A machine-readable line for scripts and tests (`--port 0`).
        let addr = listener.local_addr()?;
        let _ = writeln!(std::io::stdout(), "redlockd listening on {addr}");
        let _ = std::io::stdout().flush();
        redlockd::server::serve(listener, config, redlockd::server::shutdown_signal()).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("redlockd: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
