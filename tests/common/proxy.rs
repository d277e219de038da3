//! A TCP proxy for one network link, which a test can cut and heal: the
//! fault-injection tests put one between every ordered pair of group nodes
//! (node i reaches node j through proxy(i→j)), so that cutting all proxies
//! of a node partitions it without touching the kernel's network.
//!
//! Threads, not tokio: the tests drive it from synchronous code, and a link
//! carries a handful of connections. `cut` shuts down every live connection
//! both ways and then refuses new ones (accepted and closed at once), or
//! with [`Cut::Blackhole`] holds them open and drops what they send, so the
//! peer sees timeouts rather than resets. Dropping the proxy stops it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How a cut link behaves for new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Accept and close at once (the peer sees a reset or EOF).
    Refuse,
    /// Accept and read, but forward nothing either way (the peer times out).
    Blackhole,
}

const OPEN: u8 = 0;
const REFUSE: u8 = 1;
const BLACKHOLE: u8 = 2;

/// Bounds the threads a misbehaving peer could make a proxy start.
const MAX_CONNECTIONS: usize = 64;

struct Shared {
    target: SocketAddr,
    mode: AtomicU8,
    stop: AtomicBool,
    next_id: AtomicU64,
    /// Live connections: (id, client side, target side if any), kept to
    /// shut them down on cut or drop.
    conns: Mutex<Vec<(u64, TcpStream, Option<TcpStream>)>>,
}

impl Shared {
    fn register(&self, client: &TcpStream, upstream: Option<&TcpStream>) -> Option<u64> {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if conns.len() >= MAX_CONNECTIONS {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let client = client.try_clone().ok()?;
        let upstream = match upstream {
            Some(u) => Some(u.try_clone().ok()?),
            None => None,
        };
        conns.push((id, client, upstream));
        Some(id)
    }

    fn unregister(&self, id: u64) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = conns.iter().position(|(c, _, _)| *c == id) {
            let (_, a, b) = conns.swap_remove(i);
            let _ = a.shutdown(Shutdown::Both);
            if let Some(b) = b {
                let _ = b.shutdown(Shutdown::Both);
            }
        }
    }

    fn shutdown_all(&self) {
        let conns = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, a, b) in conns {
            let _ = a.shutdown(Shutdown::Both);
            if let Some(b) = b {
                let _ = b.shutdown(Shutdown::Both);
            }
        }
    }
}

/// One link: listens on a free loopback port and forwards to `target`.
pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let shared = Arc::new(Shared {
            target,
            mode: AtomicU8::new(OPEN),
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let acceptor = std::thread::spawn(move || accept_loop(listener, s));
        Proxy {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `127.0.0.1:port`, to put in a node's peer list.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Drop every live connection both ways and refuse new ones until `heal`.
    pub fn cut(&self) {
        self.cut_with(Cut::Refuse);
    }

    pub fn cut_with(&self, how: Cut) {
        let mode = match how {
            Cut::Refuse => REFUSE,
            Cut::Blackhole => BLACKHOLE,
        };
        self.shared.mode.store(mode, Ordering::SeqCst);
        self.shared.shutdown_all();
    }

    /// Forward again (connections held by a blackhole are closed, so the
    /// peer reconnects through a working link).
    pub fn heal(&self) {
        let was = self.shared.mode.swap(OPEN, Ordering::SeqCst);
        if was == BLACKHOLE {
            self.shared.shutdown_all();
        }
    }

    pub fn is_cut(&self) -> bool {
        self.shared.mode.load(Ordering::SeqCst) != OPEN
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], self.port)), Duration::from_secs(1));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        self.shared.shutdown_all();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = conn else { continue };
        let _ = client.set_nodelay(true);
        match shared.mode.load(Ordering::SeqCst) {
            REFUSE => drop(client),
            BLACKHOLE => {
                let Some(id) = shared.register(&client, None) else {
                    continue;
                };
                let s = shared.clone();
                std::thread::spawn(move || {
                    let mut sink = [0u8; 4096];
                    let mut c = client;
                    while matches!(c.read(&mut sink), Ok(n) if n > 0) {}
                    s.unregister(id);
                });
            }
            _ => {
                let Ok(upstream) = TcpStream::connect_timeout(&shared.target, Duration::from_secs(1)) else {
                    continue;
                };
                let _ = upstream.set_nodelay(true);
                let Some(id) = shared.register(&client, Some(&upstream)) else {
                    continue;
                };
                let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
                    shared.unregister(id);
                    continue;
                };
                let (s1, s2) = (shared.clone(), shared.clone());
                std::thread::spawn(move || pump(client, upstream, id, s1));
                std::thread::spawn(move || pump(u2, c2, id, s2));
            }
        }
    }
}

/// Copy `from` → `to` until either side closes or the link is cut; then
/// close both sides (the other direction's pump ends with them).
fn pump(mut from: TcpStream, mut to: TcpStream, id: u64, shared: Arc<Shared>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if shared.mode.load(Ordering::SeqCst) != OPEN || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    shared.unregister(id);
}
