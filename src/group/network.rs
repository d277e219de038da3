//! The group link: one TCP protocol on `--raft-port` for openraft's RPCs
//! (append entries, vote, install snapshot), for commands a follower
//! forwards to the leader, and for the hello that tells members each
//! other's client address.
//!
//! Frames are `[u32 LE length][u64 LE request id][bincode body]`, the
//! length counting the id and the body. Each node keeps one persistent
//! connection per peer and multiplexes every call on it by request id; the
//! serving side handles each request in its own task and writes replies as
//! they finish, coalescing what is ready into one write. A call that times
//! out drops the connection (a peer that stopped answering may be behind a
//! partition), and the next call dials again.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, warn};

use super::forward::{Forward, Forwarded};
use super::waiters::{Cancelled, QueueKey, WaitReply, WaitRequest, WaiterId};
use super::{Group, TypeConfig};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const MAX_FRAME: usize = 1 << 30;
/// How much ready output one write may coalesce.
const COALESCE: usize = 1 << 20;

#[derive(Serialize, Deserialize)]
pub enum Rpc {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    Forward(Forward),
    Hello(Hello),
    /// A blocking acquire, to queue at the leader ([`super::waiters`]).
    Wait(WaitRequest),
    /// End waiter id's wait in the leader's queue.
    CancelWait(WaiterId, QueueKey),
    /// Waiter id still waits (its lease at the leader is renewed).
    WaitAlive(WaiterId, QueueKey),
}

#[derive(Serialize, Deserialize)]
pub enum RpcReply {
    Append(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    Snapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    Forward(Forwarded),
    Hello(Hello),
    Wait(WaitReply),
    CancelWait(Cancelled),
    WaitAlive(bool),
}

/// A member's id and client address.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Hello {
    pub id: u64,
    pub client_addr: String,
}

/// Why a call failed: before the request could have reached the peer, or
/// after (then the peer may have acted on it).
#[derive(Debug)]
pub enum CallError {
    NotSent(io::Error),
    Lost(io::Error),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NotSent(e) => write!(f, "not sent: {e}"),
            CallError::Lost(e) => write!(f, "no reply: {e}"),
        }
    }
}

impl CallError {
    fn io(self) -> io::Error {
        match self {
            CallError::NotSent(e) | CallError::Lost(e) => e,
        }
    }
}

fn frame(id: u64, body: &impl Serialize) -> Vec<u8> {
    let mut v = vec![0u8; 12];
    if let Err(e) = bincode::serialize_into(&mut v, body) {
        // Our own types always serialise; keep the link consistent anyway.
        warn!("group link: cannot encode a frame: {e}");
        v.truncate(12);
    }
    let len = (v.len() - 4) as u32;
    v[0..4].copy_from_slice(&len.to_le_bytes());
    v[4..12].copy_from_slice(&id.to_le_bytes());
    v
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<(u64, Vec<u8>)> {
    let len = r.read_u32_le().await? as usize;
    if !(8..=MAX_FRAME).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad frame length {len}"),
        ));
    }
    let id = r.read_u64_le().await?;
    let mut body = vec![0; len - 8];
    r.read_exact(&mut body).await?;
    Ok((id, body))
}

/// Write frames from `rx` as they come, coalescing what is ready.
async fn write_frames(mut w: tokio::net::tcp::OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut buf = Vec::new();
    while let Some(first) = rx.recv().await {
        buf.extend_from_slice(&first);
        while buf.len() < COALESCE {
            match rx.try_recv() {
                Ok(more) => buf.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if w.write_all(&buf).await.is_err() {
            return;
        }
        buf.clear();
    }
}

/// One live outgoing connection.
struct Conn {
    out: mpsc::UnboundedSender<Vec<u8>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>,
    next: AtomicU64,
    /// Set to true to close it.
    closed: watch::Sender<bool>,
}

impl Conn {
    fn close(&self) {
        let _ = self.closed.send(true);
        self.pending.lock().clear();
    }

    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
}

/// The persistent connection to one peer, dialled on demand.
pub struct Link {
    addr: String,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
}

impl Link {
    async fn conn(&self) -> io::Result<Arc<Conn>> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connect to {} timed out", self.addr)))??;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let (closed, mut closed_rx) = watch::channel(false);
        let conn = Arc::new(Conn {
            out: tx,
            pending: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            closed,
        });
        let mut closed_rx2 = closed_rx.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = write_frames(w, rx) => {}
                _ = closed_rx2.wait_for(|c| *c) => {}
            }
        });
        let reader = conn.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(r);
            loop {
                tokio::select! {
                    got = read_frame(&mut r) => match got {
                        Ok((id, body)) => {
                            if let Some(tx) = reader.pending.lock().remove(&id) {
                                let _ = tx.send(body);
                            }
                        }
                        Err(_) => break,
                    },
                    _ = closed_rx.wait_for(|c| *c) => break,
                }
            }
            reader.close();
        });
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Send one request and wait up to `ttl` for its reply.
    pub async fn call(&self, rpc: &Rpc, ttl: Duration) -> Result<RpcReply, CallError> {
        let conn = match tokio::time::timeout(ttl, self.conn()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(CallError::NotSent(e)),
            Err(_) => {
                return Err(CallError::NotSent(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connect timed out",
                )));
            }
        };
        let id = conn.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().insert(id, tx);
        if conn.out.send(frame(id, rpc)).is_err() {
            conn.close();
            return Err(CallError::NotSent(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "link closed",
            )));
        }
        match tokio::time::timeout(ttl, rx).await {
            Ok(Ok(body)) => {
                bincode::deserialize(&body).map_err(|e| CallError::Lost(io::Error::new(io::ErrorKind::InvalidData, e)))
            }
            Ok(Err(_)) => Err(CallError::Lost(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "link closed",
            ))),
            Err(_) => {
                conn.close();
                Err(CallError::Lost(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no reply in time",
                )))
            }
        }
    }
}

/// The links to every peer this node has talked to.
pub struct Links {
    hosts: BTreeMap<u64, String>,
    links: Mutex<HashMap<(u64, String), Arc<Link>>>,
}

impl Links {
    pub fn new(hosts: BTreeMap<u64, String>) -> Links {
        Links {
            hosts,
            links: Mutex::new(HashMap::new()),
        }
    }

    /// The link to member `id`: at its address in this node's
    /// `--raft-peers`, else at `fallback` (its membership address).
    pub fn get(&self, id: u64, fallback: &str) -> Arc<Link> {
        let addr = self.hosts.get(&id).cloned().unwrap_or_else(|| fallback.to_string());
        self.links
            .lock()
            .entry((id, addr.clone()))
            .or_insert_with(|| {
                Arc::new(Link {
                    addr,
                    conn: tokio::sync::Mutex::new(None),
                })
            })
            .clone()
    }
}

/// openraft's side of the link.
pub struct Network {
    pub links: Arc<Links>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer {
        Peer {
            target,
            link: self.links.get(target, &node.addr),
        }
    }
}

pub struct Peer {
    target: u64,
    link: Arc<Link>,
}

type RpcResult<T, E = openraft::error::Infallible> = Result<T, RPCError<u64, BasicNode, RaftError<u64, E>>>;

impl Peer {
    async fn call(&self, rpc: Rpc, option: &RPCOption) -> Result<RpcReply, Unreachable> {
        self.link
            .call(&rpc, option.hard_ttl())
            .await
            .map_err(|e| Unreachable::new(&e.io()))
    }

    fn remote<T, E: std::error::Error>(&self, r: Result<T, RaftError<u64, E>>) -> RpcResult<T, E> {
        r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

fn unexpected<E: std::error::Error>() -> RPCError<u64, BasicNode, RaftError<u64, E>> {
    RPCError::Network(NetworkError::new(&io::Error::new(
        io::ErrorKind::InvalidData,
        "unexpected reply kind",
    )))
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>> {
        match self.call(Rpc::Append(rpc), &option).await? {
            RpcReply::Append(r) => self.remote(r),
            _ => Err(unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        match self.call(Rpc::Snapshot(rpc), &option).await? {
            RpcReply::Snapshot(r) => self.remote(r),
            _ => Err(unexpected()),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<u64>, option: RPCOption) -> RpcResult<VoteResponse<u64>> {
        match self.call(Rpc::Vote(rpc), &option).await? {
            RpcReply::Vote(r) => self.remote(r),
            _ => Err(unexpected()),
        }
    }
}

/// Serve the group link until the process ends.
pub async fn serve(listener: TcpListener, group: Arc<Group>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                debug!(%peer, "group link accepted");
                tokio::spawn(serve_conn(stream, group.clone()));
            }
            Err(e) => {
                warn!("group link accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_conn(stream: TcpStream, group: Arc<Group>) {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(write_frames(w, rx));
    let mut r = BufReader::new(r);
    // A wait served here lasts until its waiter is answered or this
    // connection (its caller's link) closes: then it leaves the queue.
    let (closed_tx, closed) = watch::channel(false);
    while let Ok((id, body)) = read_frame(&mut r).await {
        let rpc: Rpc = match bincode::deserialize(&body) {
            Ok(rpc) => rpc,
            Err(e) => {
                warn!("group link: bad request: {e}");
                break;
            }
        };
        let group = group.clone();
        let tx = tx.clone();
        let mut closed = closed.clone();
        tokio::spawn(async move {
            let reply = handle(&group, rpc, &mut closed).await;
            let _ = tx.send(frame(id, &reply));
        });
    }
    let _ = closed_tx.send(true);
}

/// The leader's side of a follower's wait: queued until answered, or until
/// the link it came on closes (its waiter's node then asks again or is
/// gone): it then leaves the queue, and a grant that races with that finds
/// its channel closed and is released again.
async fn serve_wait(group: &Arc<Group>, req: WaitRequest, closed: &mut watch::Receiver<bool>) -> WaitReply {
    let queue = req.queue();
    let id = req.id;
    let answer = group.waiters.enqueue(req, true);
    tokio::select! {
        got = answer => got.unwrap_or(WaitReply::NotLeader),
        _ = closed.wait_for(|c| *c) => {
            group.waiters.cancel(id, &queue);
            WaitReply::NotLeader
        }
    }
}

/// Serve one request that came on a link whose closing `closed` tells.
async fn handle(group: &Arc<Group>, rpc: Rpc, closed: &mut watch::Receiver<bool>) -> RpcReply {
    match rpc {
        Rpc::Append(r) => RpcReply::Append(group.raft.append_entries(r).await),
        Rpc::Vote(r) => RpcReply::Vote(group.raft.vote(r).await),
        Rpc::Snapshot(r) => RpcReply::Snapshot(group.raft.install_snapshot(r).await),
        Rpc::Forward(f) => RpcReply::Forward(super::forward::serve_forwarded(group, f).await),
        Rpc::Wait(req) => RpcReply::Wait(serve_wait(group, req, closed).await),
        Rpc::CancelWait(id, key) => RpcReply::CancelWait(group.waiters.cancel(id, &key)),
        Rpc::WaitAlive(id, key) => RpcReply::WaitAlive(group.waiters.alive(id, &key)),
        Rpc::Hello(h) => {
            group.learn_client_addr(h.id, h.client_addr);
            RpcReply::Hello(Hello {
                id: group.id,
                client_addr: group.my_client_addr(),
            })
        }
    }
}

/// Ask member `id` for its client address (and tell it ours).
pub async fn hello(group: &Group, id: u64) -> Option<String> {
    let addr = group.raft_addr(id)?;
    let link = group.links.get(id, &addr);
    let me = Rpc::Hello(Hello {
        id: group.id,
        client_addr: group.my_client_addr(),
    });
    match link.call(&me, Duration::from_millis(500)).await {
        Ok(RpcReply::Hello(h)) => {
            group.learn_client_addr(h.id, h.client_addr.clone());
            Some(h.client_addr)
        }
        _ => None,
    }
}

/// Learn the client address of every member not known yet, once a second.
pub async fn exchange_hellos(group: Arc<Group>) {
    loop {
        let ids: Vec<u64> = group
            .metrics()
            .membership_config
            .nodes()
            .map(|(id, _)| *id)
            .filter(|&id| id != group.id && group.client_addr(id).is_none())
            .collect();
        for id in ids {
            hello(&group, id).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
