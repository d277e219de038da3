//! `redlockd`: parse flags, set up logging, and run the server — or one of
//! the Redlock subcommands (`run`, `counter`). The server's SIGINT/SIGTERM
//! are taken here, on a thread of their own, so that they stop it within a
//! bounded time whatever its runtime is doing.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser, Subcommand};
use redlockd::cli::{counter::CounterArgs, run::RunArgs};
use redlockd::config::ServerConfig;
use redlockd::server::Stop;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: redlockd::memory::Counting = redlockd::memory::Counting;

/// After SIGINT/SIGTERM, how long the server may take to stop by itself. As
/// in Redis, the command in progress finishes first; then connections get up
/// to 5 s to send their replies and the append-only file is flushed. A
/// process still there after this is stuck behind a far longer command: the
/// signal thread saves the append-only file and exits (status 1).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long that forced exit waits for the append-only file to be saved.
const FORCED_SAVE_LIMIT: Duration = Duration::from_secs(5);

#[derive(Parser, Debug)]
#[command(
    name = "redlockd",
    version,
    about = "A lock server that speaks the Redis protocol",
    args_conflicts_with_subcommands = true,
    // The command line's flags override the config file's (the last wins).
    args_override_self = true
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
    // `redlockd FILE [flags]`: FILE's directives become flags before the others.
    let mut command = Cli::command();
    command.build();
    let subcommands: Vec<&str> = command.get_subcommands().map(|s| s.get_name()).collect();
    let line = match redlockd::conffile::expand(std::env::args_os().collect(), &subcommands) {
        Ok(line) => line,
        Err(text) => {
            let _ = std::io::stderr().write_all(text.as_bytes());
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut cli = Cli::parse_from(line.args);
    cli.server.config_file = line.config_file;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(log_filter(&cli.server.log_level))
        .with_writer(std::io::stderr);
    if cli.server.log_format == "json" {
        // One JSON object a line, the event's fields at the top level.
        logs.json().flatten_event(true).with_current_span(false).init();
    } else {
        logs.init();
    }
    // Server flags cannot be combined with a subcommand, so the Redlock
    // subcommands always get the default: one worker per core.
    let threads = match cli.server.threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let Some(command) = cli.command else {
        // Before the runtime starts any thread, so that all inherit the mask.
        let signals = match ShutdownSignals::block() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot block SIGINT/SIGTERM: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        return match runtime(threads) {
            Some(runtime) => serve(runtime, cli.server, signals),
            None => std::process::ExitCode::FAILURE,
        };
    };
    let Some(runtime) = runtime(threads) else {
        return std::process::ExitCode::FAILURE;
    };
    std::process::ExitCode::from(match command {
        Command::Run(args) => runtime.block_on(redlockd::cli::run::main(args)),
        Command::Counter(args) => runtime.block_on(redlockd::cli::counter::main(args)),
    })
}

/// A current-thread runtime for one thread, else a multi-thread one.
fn runtime(threads: usize) -> Option<tokio::runtime::Runtime> {
    let mut builder = match threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| tracing::error!("cannot start the runtime: {e}"))
        .ok()
}

fn serve(runtime: tokio::runtime::Runtime, config: ServerConfig, signals: ShutdownSignals) -> std::process::ExitCode {
    let stop = Arc::new(Stop::default());
    if let Err(e) = signals.spawn_thread(stop.clone()) {
        tracing::error!("cannot start the signal thread: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let result = runtime.block_on(async move {
        let listener = redlockd::server::bind(&config).await?;
        // A machine-readable line for scripts and tests (`--port 0`).
        let addr = listener.local_addr()?;
        let _ = writeln!(std::io::stdout(), "redlockd listening on {addr}");
        let _ = std::io::stdout().flush();
        redlockd::server::serve(listener, config, &stop).await
    });
    // The log is closed: a worker still in a long command has nothing left
    // to save, so do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("redlockd: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// SIGINT and SIGTERM, blocked in every thread and taken by one thread with
/// `sigtimedwait`. A handler run by the runtime would wait behind the
/// command in progress (with `--threads 1`, the whole runtime does).
struct ShutdownSignals(libc::sigset_t);

impl ShutdownSignals {
    /// Block both in this thread, and so in every thread it starts later.
    fn block() -> std::io::Result<ShutdownSignals> {
        // SAFETY: the set is ours and initialised by sigemptyset before use;
        // pthread_sigmask only changes this thread's mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            match libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) {
                0 => Ok(ShutdownSignals(set)),
                e => Err(std::io::Error::from_raw_os_error(e)),
            }
        }
    }

    /// The next signal, or None once `deadline` has passed (or if waiting
    /// fails, which a valid set and timeout rule out).
    fn next(&self, deadline: Option<Instant>) -> Option<libc::c_int> {
        loop {
            let timeout = deadline.map(|d| {
                let left = d.saturating_duration_since(Instant::now());
                libc::timespec {
                    tv_sec: left.as_secs() as libc::time_t,
                    tv_nsec: left.subsec_nanos() as libc::c_long,
                }
            });
            let timeout_ptr = timeout
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: the set and the timeout outlive the call; no siginfo is asked for.
            let sig = unsafe { libc::sigtimedwait(&self.0, std::ptr::null_mut(), timeout_ptr) };
            if sig > 0 {
                return Some(sig);
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return None,
                _ => {
                    tracing::error!("waiting for SIGINT/SIGTERM failed: {err}");
                    return None;
                }
            }
        }
    }

    /// The thread that stops the server on the first signal, and exits the
    /// process itself if the server has not within [`SHUTDOWN_GRACE`] (or
    /// at once on a second SIGINT, as Redis does).
    fn spawn_thread(self, stop: Arc<Stop>) -> std::io::Result<()> {
        let name = |sig| if sig == libc::SIGINT { "SIGINT" } else { "SIGTERM" };
        std::thread::Builder::new()
            .name("redlockd-signals".into())
            .spawn(move || {
                let Some(first) = self.next(None) else { return };
                tracing::warn!("Received {} scheduling shutdown...", name(first));
                stop.request();
                let deadline = Instant::now() + SHUTDOWN_GRACE;
                loop {
                    match self.next(Some(deadline)) {
                        Some(libc::SIGINT) => {
                            tracing::warn!("You insist... exiting now.");
                            break;
                        }
                        Some(sig) => tracing::warn!("Received {} while shutting down", name(sig)),
                        None => {
                            tracing::error!(
                                "shutdown did not finish within {SHUTDOWN_GRACE:?} (a command still running?); exiting now"
                            );
                            break;
                        }
                    }
                }
                if !stop.save_aof(FORCED_SAVE_LIMIT) {
                    tracing::error!(
                        "the append-only file was not saved within {FORCED_SAVE_LIMIT:?}; its last writes may be lost"
                    );
                }
                std::process::exit(1);
            })?;
        Ok(())
    }
}
