//! The network side: accept loop, per-connection loop, graceful shutdown.
//!
//! `bind` then `serve`: the binary binds first so it can announce the
//! address actually chosen for `--port 0` before serving. The state the
//! connections share lives in [`crate::instance`].

mod batch;
pub mod connection;
pub mod tls;

/// The instance state under the name the connection code imports it by.
pub use crate::instance as shared;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::config::{ServerConfig, Settings};
pub use crate::instance::Shared;
use crate::persist::aof::Aof;
use crate::store::expiry::Expirer;

/// Bind the listening socket described by the config, with redis-server's
/// accept backlog (`--tcp-backlog`, 511) rather than the runtime's 128, so a
/// burst of connections is not dropped and retried a second later.
pub async fn bind(config: &ServerConfig) -> std::io::Result<TcpListener> {
    bind_addr(&config.bind, config.port, config.tcp_backlog)
}

pub fn bind_addr(host: &str, port: u16, backlog: u32) -> std::io::Result<TcpListener> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        match socket.bind(&addr.into()).and_then(|_| socket.listen(backlog as i32)) {
            Ok(()) => return TcpListener::from_std(socket.into()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("cannot resolve {host}"))))
}

/// Stopping the server from outside its runtime (the binary's signal
/// thread), where a command in progress cannot hold it up: `request` stops
/// `serve` as SHUTDOWN does, and `save_aof` is for an exit that cannot wait.
#[derive(Default)]
pub struct Stop {
    requested: tokio::sync::Notify,
    /// The append-only file, once `serve` has opened it.
    aof: std::sync::OnceLock<Arc<Aof>>,
}

impl Stop {
    /// Ask `serve` to stop, from any thread, before or while it runs. It
    /// does so once its runtime runs again: after the command in progress.
    pub fn request(&self) {
        self.requested.notify_one();
    }

    /// Write and fsync what the append-only file has pending, waiting at
    /// most `limit` and taking no store lock; whether nothing is left unsaved.
    pub fn save_aof(&self, limit: Duration) -> bool {
        self.aof.get().is_none_or(|aof| aof.flush_for_exit(limit))
    }
}

/// Resolves on SIGINT or SIGTERM (tokio's handlers, run by the runtime).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                warn!("cannot listen for SIGTERM: {e}");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Serve clients on `listener` until `signal` is requested or a client
/// sends SHUTDOWN; then stop accepting, let connections finish the replies
/// they are writing, flush the append-only file, and return.
pub async fn serve(listener: TcpListener, mut config: ServerConfig, signal: &Stop) -> std::io::Result<()> {
    config.maxclients = crate::fdlimit::adjust_open_files_limit(config.maxclients).map_err(std::io::Error::other)?;
    crate::group::adjust_config(&mut config);
    let shared = Shared::new(config)?;
    if let Some(aof) = &shared.aof {
        let _ = signal.aof.set(aof.clone());
    }
    let addr = listener.local_addr()?;
    *shared.local_addr.lock() = Some(addr);
    if let Some(group) = crate::group::start(&shared).await? {
        let _ = shared.group.set(group);
    }
    info!(%addr, "redlockd {} ready to accept connections", crate::VERSION);
    // In a group, expiry follows the log (crate::group::clock).
    let _expirer = shared.group.get().is_none().then(|| {
        let coord = shared.coord.clone();
        let expirer = Expirer::start(shared.keyspace.clone(), Box::new(move |now| coord.due(now)));
        if let Some(thread) = expirer.thread() {
            shared.coord.set_expirer(thread);
        }
        expirer
    });
    if shared.config.metrics_port != 0 {
        let l = bind_addr(&shared.config.bind, shared.config.metrics_port, 128)?;
        crate::metrics::http::spawn(l, shared.clone())?;
    }
    let tls = tls::acceptor(&shared.config)?;
    let tls_listener = match &tls {
        Some(_) => {
            let l = bind_addr(&shared.config.bind, shared.config.tls_port, shared.config.tcp_backlog)?;
            info!(addr = %l.local_addr()?, "accepting TLS connections");
            Some(l)
        }
        None => None,
    };
    // Every connection task holds a clone; when all are gone, recv() yields None.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let mut stop = shared.shutdown.subscribe();
    let signal = signal.requested.notified();
    let mut accept_errors = AcceptErrors::default();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => admit(&shared, stream, peer, None, done_tx.clone()),
                Err(e) => accept_errors.failed("accept", e).await,
            },
            accepted = accept_tls(&tls_listener) => match accepted {
                Ok((stream, peer)) => admit(&shared, stream, peer, tls.clone(), done_tx.clone()),
                Err(e) => accept_errors.failed("TLS accept", e).await,
            },
            _ = &mut signal => {
                info!("received shutdown signal");
                break;
            }
            _ = stop.recv() => break,
        }
    }
    drop(listener);
    // A Lua script in progress would hold its connection (and the
    // shutdown) until it ends.
    shared.lua.abort();
    let _ = shared.shutdown.send(());
    drop(done_tx);
    if tokio::time::timeout(Duration::from_secs(5), done_rx.recv())
        .await
        .is_err()
    {
        warn!("some connections did not close within 5 s");
    }
    if let Some(aof) = &shared.aof {
        aof.shutdown();
        info!("append-only file flushed");
    }
    info!("redlockd is now ready to exit, bye bye...");
    Ok(())
}

/// Accept errors (EMFILE when out of descriptors, ENFILE, ...): each one
/// backs the loop off briefly instead of spinning, and they are logged at
/// most once a second, however fast they come.
#[derive(Default)]
struct AcceptErrors {
    last_logged: Option<std::time::Instant>,
    /// Errors not logged since the last warning.
    suppressed: u64,
}

impl AcceptErrors {
    async fn failed(&mut self, what: &str, e: std::io::Error) {
        if let Some(suppressed) = self.should_log(std::time::Instant::now()) {
            if suppressed > 0 {
                warn!("{what} failed: {e} ({suppressed} more since the last warning)");
            } else {
                warn!("{what} failed: {e}");
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// Whether an error at `now` is logged, and if so how many were not since.
    fn should_log(&mut self, now: std::time::Instant) -> Option<u64> {
        if self
            .last_logged
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return None;
        }
        self.last_logged = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Linux refuses a longer TCP_KEEPIDLE (MAX_TCP_KEEPIDLE).
const MAX_KEEPIDLE_SECS: u64 = 32_767;

/// TCP keepalive as redis-server's anetKeepAlive sets it: the first probe
/// after `idle_secs` of silence, then one every third of that, and the
/// connection is dropped after 3 unanswered probes, so a client that
/// vanished without a FIN (crash, pulled cable, NAT timeout) does not hold
/// a client slot forever.
fn set_keepalive(stream: &TcpStream, idle_secs: u64) -> std::io::Result<()> {
    let idle = idle_secs.min(MAX_KEEPIDLE_SECS);
    let params = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(idle))
        .with_interval(Duration::from_secs((idle / 3).max(1)))
        .with_retries(3);
    socket2::SockRef::from(stream).set_tcp_keepalive(&params)
}

/// Redis's reply to a remote client in protected mode.
const PROTECTED_MODE_DENIED: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Protected mode, as Redis does it: with no password, only clients on
/// 127.0.0.1 or ::1 are served.
pub fn protected_mode_refuses(settings: &Settings, ip: std::net::IpAddr) -> bool {
    let local = match ip {
        std::net::IpAddr::V4(v4) => v4 == std::net::Ipv4Addr::LOCALHOST,
        std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped() == Some(std::net::Ipv4Addr::LOCALHOST),
    };
    settings.protected_mode.load(Ordering::Relaxed) && !settings.password_required() && !local
}

/// Register a new client, or refuse it when `maxclients` are connected or
/// protected mode forbids it.
fn admit(
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    done: mpsc::Sender<()>,
) {
    shared.counters.connections_received.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let max = Settings::get(&shared.settings.maxclients) as usize;
    let refusal = if shared.clients.count() >= max {
        Some(&b"-ERR max number of clients reached\r\n"[..])
    } else if protected_mode_refuses(&shared.settings, peer.ip()) {
        Some(PROTECTED_MODE_DENIED)
    } else {
        None
    };
    if let Some(message) = refusal {
        shared.counters.rejected_connections.fetch_add(1, Ordering::Relaxed);
        debug!(%peer, "refused: {}", String::from_utf8_lossy(&message[..message.len().min(60)]).trim());
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut stream = stream;
            let _ = stream.write_all(message).await;
            let _ = stream.shutdown().await;
        });
        return;
    }
    let keepalive = Settings::get(&shared.settings.tcp_keepalive);
    if keepalive > 0
        && let Err(e) = set_keepalive(&stream, keepalive)
    {
        debug!(%peer, "cannot enable TCP keepalive: {e}");
    }
    let laddr = stream.local_addr().unwrap_or(peer);
    let handle = shared.clients.register(peer, laddr);
    handle
        .fd
        .store(std::os::fd::AsRawFd::as_raw_fd(&stream), Ordering::Relaxed);
    let shared = shared.clone();
    tokio::spawn(async move {
        debug!(%peer, id = handle.id, tls = tls.is_some(), "client connected");
        connection::serve_accepted(stream, tls, &shared, handle.clone()).await;
        shared.clients.unregister(handle.id);
        shared.coord.client_closed(handle.id);
        if let Some(group) = shared.group.get()
            && handle.group_bound.load(Ordering::Relaxed)
        {
            crate::group::forward::client_closed(group, handle.id);
        }
        debug!(%peer, id = handle.id, "client closed");
        drop(done);
    });
}

/// Accept on the TLS listener, or never when there is none.
async fn accept_tls(listener: &Option<TcpListener>) -> std::io::Result<(TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_are_logged_at_most_once_a_second() {
        let mut errors = AcceptErrors::default();
        let t0 = std::time::Instant::now();
        assert_eq!(errors.should_log(t0), Some(0));
        for ms in [1, 50, 999] {
            assert_eq!(errors.should_log(t0 + Duration::from_millis(ms)), None);
        }
        assert_eq!(errors.should_log(t0 + Duration::from_millis(1000)), Some(3));
        assert_eq!(errors.should_log(t0 + Duration::from_millis(1500)), None);
        assert_eq!(errors.should_log(t0 + Duration::from_millis(2500)), Some(1));
    }
}
