//! The network side: accept loop, per-connection loop, graceful shutdown.
//!
//! `bind` then `serve` (or `run` for both): the binary binds first so it can
//! announce the address actually chosen for `--port 0` before serving.

mod batch;
pub mod connection;
pub mod shared;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::config::{ServerConfig, Settings};
use crate::persist::aof::Aof;
use crate::store::expiry::Expirer;
pub use shared::Shared;

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

/// Bind and serve until SIGINT/SIGTERM or SHUTDOWN. The signals are seen
/// only when the runtime gets to run; the binary catches them on a thread of
/// its own instead (src/main.rs).
pub async fn run(config: ServerConfig) -> std::io::Result<()> {
    let listener = bind(&config).await?;
    let stop = Arc::new(Stop::default());
    let on_signal = tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            stop.request();
        }
    });
    let served = serve(listener, config, &stop).await;
    on_signal.abort();
    served
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
pub async fn serve(listener: TcpListener, config: ServerConfig, signal: &Stop) -> std::io::Result<()> {
    raise_fd_limit(config.maxclients);
    let shared = Shared::new(config)?;
    if let Some(aof) = &shared.aof {
        let _ = signal.aof.set(aof.clone());
    }
    let addr = listener.local_addr()?;
    *shared.local_addr.lock() = Some(addr);
    info!(%addr, "redlockd {} ready to accept connections", crate::VERSION);
    let _expirer = Expirer::start(shared.keyspace.clone());
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
    tokio::pin!(signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => admit(&shared, stream, peer, None, done_tx.clone()),
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            accepted = accept_tls(&tls_listener) => match accepted {
                Ok((stream, peer)) => admit(&shared, stream, peer, tls.clone(), done_tx.clone()),
                Err(e) => {
                    warn!("TLS accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = &mut signal => {
                info!("received shutdown signal");
                break;
            }
            _ = stop.recv() => break,
        }
    }
    drop(listener);
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

/// Raise the open-files soft limit towards what `maxclients` needs (as
/// redis-server does), up to the hard limit.
fn raise_fd_limit(maxclients: u64) {
    let wanted = maxclients.saturating_add(64);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= wanted as libc::rlim_t {
            return;
        }
        let target = (wanted as libc::rlim_t).min(lim.rlim_max);
        if target > lim.rlim_cur {
            lim.rlim_cur = target;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                warn!("could not raise the open files limit to {target}");
            }
        }
        if lim.rlim_cur < wanted {
            warn!("open files limit {} is below maxclients + 64 = {wanted}", lim.rlim_cur);
        }
    }
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
    let laddr = stream.local_addr().unwrap_or(peer);
    let handle = shared.clients.register(peer, laddr);
    let shared = shared.clone();
    tokio::spawn(async move {
        debug!(%peer, id = handle.id, tls = tls.is_some(), "client connected");
        match tls {
            None => connection::serve(stream, &shared, handle.clone()).await,
            Some(acceptor) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls_stream)) => connection::serve(tls_stream, &shared, handle.clone()).await,
                Ok(Err(e)) => warn!(%peer, "TLS handshake failed: {e}"),
                Err(_) => warn!(%peer, "TLS handshake timed out"),
            },
        }
        shared.clients.unregister(handle.id);
        debug!(%peer, id = handle.id, "client closed");
        drop(done);
    });
}

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accept on the TLS listener, or never when there is none.
async fn accept_tls(listener: &Option<TcpListener>) -> std::io::Result<(TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}
