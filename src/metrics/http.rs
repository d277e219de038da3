//! The HTTP/1.1 server of `--metrics-port`: hyper's connection driver on
//! the server's runtime, a fixed route table, at most [`MAX_CONNECTIONS`]
//! connections, and the keyspace scans of `/metrics` and `/locks` on the
//! blocking pool so that they never hold up a worker serving RESP clients.
//!
//! hyper + hyper-util rather than axum: five routes need no router,
//! extractor or tower middleware, and hyper alone adds the fewest crates.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::instance::Shared;

/// Simultaneous HTTP connections; more wait in the accept queue.
pub const MAX_CONNECTIONS: usize = 64;
/// The status page: one self-contained file, no build step.
const PAGE: &str = include_str!("page.html");
/// Only what the page needs: its own inline script and style, and fetches
/// to this origin. A key that somehow became markup could load nothing.
const PAGE_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'";

/// Serve on `listener` (bound by the server on `--bind`'s address and
/// `--metrics-port`), as a task of the current runtime, until the server
/// shuts down.
pub fn spawn(listener: TcpListener, shared: Arc<Shared>) -> std::io::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    info!(%addr, "serving metrics and the status page");
    tokio::spawn(serve(listener, shared));
    Ok(())
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut stop = shared.shutdown.subscribe();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.recv() => return,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(error = %e, "metrics port: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.recv() => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(respond(shared, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            // A scraper keeps its connection; an idle one is closed after a minute.
            if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(60), conn).await {
                debug!(error = %e, "metrics connection ended");
            }
            drop(permit);
        });
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    r
}

const TEXT: &str = "text/plain; charset=utf-8";

/// Run a keyspace-scanning renderer on the blocking pool.
async fn scan(shared: Arc<Shared>, render: fn(&Arc<Shared>) -> String) -> String {
    tokio::task::spawn_blocking(move || render(&shared))
        .await
        .unwrap_or_default()
}

async fn respond(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "method not allowed\n");
        r.headers_mut().insert("allow", HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/" => {
            let mut r = reply(StatusCode::OK, "text/html; charset=utf-8", PAGE);
            r.headers_mut()
                .insert("content-security-policy", HeaderValue::from_static(PAGE_CSP));
            r
        }
        "/metrics" => reply(
            StatusCode::OK,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            scan(shared, super::render).await,
        ),
        "/locks" => reply(
            StatusCode::OK,
            "application/json",
            scan(shared, |s| super::locks::render(s)).await,
        ),
        "/healthz" => reply(StatusCode::OK, TEXT, "ok\n"),
        "/readyz" => match super::readiness(&shared) {
            Ok(()) => reply(StatusCode::OK, TEXT, "ready\n"),
            Err(why) => reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("not ready: {why}\n")),
        },
        _ => reply(StatusCode::NOT_FOUND, TEXT, "not found\n"),
    }
}
