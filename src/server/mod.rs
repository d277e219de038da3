//! The network side: accept loop, per-connection loop, graceful shutdown.
//!
//! `bind` then `serve` (or `run` for both): the binary binds first so it can
//! announce the address actually chosen for `--port 0` before serving.

pub mod connection;
pub mod shared;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::config::{ServerConfig, Settings};
use crate::store::expiry::Expirer;
pub use shared::Shared;

/// Bind the listening socket described by the config.
pub async fn bind(config: &ServerConfig) -> std::io::Result<TcpListener> {
    TcpListener::bind((config.bind.as_str(), config.port)).await
}

/// Bind and serve until SIGINT/SIGTERM or SHUTDOWN.
pub async fn run(config: ServerConfig) -> std::io::Result<()> {
    let listener = bind(&config).await?;
    serve(listener, config, shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM.
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

/// Serve clients on `listener` until `signal` resolves or a client sends
/// SHUTDOWN; then stop accepting, let connections finish the replies they
/// are writing, and return.
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let shared = Shared::new(config);
    let addr = listener.local_addr()?;
    *shared.local_addr.lock() = Some(addr);
    info!(%addr, "redlockd {} ready to accept connections", crate::VERSION);
    let _expirer = Expirer::start(shared.keyspace.clone());
    // Every connection task holds a clone; when all are gone, recv() yields None.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let mut stop = shared.shutdown.subscribe();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => admit(&shared, stream, peer, done_tx.clone()).await,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!("accept failed: {e}");
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
    info!("redlockd is now ready to exit, bye bye...");
    Ok(())
}

/// Register a new client, or refuse it when `maxclients` are connected.
async fn admit(shared: &Arc<Shared>, stream: TcpStream, peer: std::net::SocketAddr, done: mpsc::Sender<()>) {
    shared.counters.connections_received.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let max = Settings::get(&shared.settings.maxclients) as usize;
    if shared.clients.count() >= max {
        shared.counters.rejected_connections.fetch_add(1, Ordering::Relaxed);
        debug!(%peer, "refused: max number of clients reached");
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut stream = stream;
            let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
            let _ = stream.shutdown().await;
        });
        return;
    }
    let laddr = stream.local_addr().unwrap_or(peer);
    let handle = shared.clients.register(peer, laddr);
    let shared = shared.clone();
    tokio::spawn(async move {
        debug!(%peer, id = handle.id, "client connected");
        connection::serve(stream, &shared, handle.clone()).await;
        shared.clients.unregister(handle.id);
        debug!(%peer, id = handle.id, "client closed");
        drop(done);
    });
}
