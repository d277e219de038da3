//! One client connection: read → decode every complete request → execute →
//! write all replies at once → read again.
//!
//! Replies to a pipelined batch are written with one write. An idle
//! connection costs little: it holds no buffer ([`pool`] lends them while
//! bytes are in hand; one waiting for the rest of a request keeps a buffer
//! sized for it), and its task's future is kept small (the batch of decoded
//! requests lives in [`execute_buffered`]'s frame, the TLS path in a box).
//! A pending bulk's size is reserved once, up to 1 MiB at a time, and the
//! query buffer is bounded by `client-query-buffer-limit`.
//!
//! A subscribed client also has an outbox ([`crate::pubsub::Outbox`]):
//! the connection wakes when a message lands in it and writes it out with
//! its replies; a write that cannot finish is abandoned when the client is
//! killed (as the outbox does when it overflows).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use super::batch::{Batch, End};
use super::shared::{ClientHandle, Shared};
use crate::commands::{self, ClientState};
use crate::config::{OutputLimit, Settings};
use crate::protocol::decode::MAX_ARGS;
use crate::protocol::{Decoder, Limits, ProtocolError, ReplyBuf};
use crate::pubsub::Outbox;

/// What a read asks for at least; doubles (up to [`READ_CHUNK_MAX`]) while
/// reads fill the buffer.
const READ_CHUNK: usize = 1024;
const READ_CHUNK_MAX: usize = 64 * 1024;
/// How often an idle connection checks `--timeout` (which CONFIG SET may change).
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// Write replies out once this much is pending, even mid-batch.
const OUTPUT_FLUSH: usize = 256 * 1024;

/// A client transport: plain TCP, or TLS over TCP.
pub trait ClientIo: AsyncWrite + Unpin + Send {
    /// Whether [`ClientIo::wait_input`] reads into the buffer it is given,
    /// which must then have room while the connection waits.
    const READS_WHILE_WAITING: bool;
    /// Read what is available without waiting; None if nothing is.
    fn try_read_now(&mut self, buf: &mut BytesMut) -> std::io::Result<Option<usize>>;
    /// Wait for input; Some(n) if the wait itself read n bytes (TLS), None
    /// if the caller should now `try_read_now` (plain TCP). Cancel-safe.
    fn wait_input(
        &mut self,
        buf: &mut BytesMut,
    ) -> impl std::future::Future<Output = std::io::Result<Option<usize>>> + Send;
}

impl ClientIo for TcpStream {
    const READS_WHILE_WAITING: bool = false;

    /// One `recv` per readiness event, like redis-server's level-triggered
    /// loop: a read that did not fill the buffer drained the socket, so the
    /// readiness is cleared there and then. Without this, every request
    /// costs a second `recv` that only returns EAGAIN. (Tokio clears only
    /// the readiness it observed before the read: data arriving meanwhile
    /// sets it again, so no input is missed.)
    #[inline]
    fn try_read_now(&mut self, buf: &mut BytesMut) -> std::io::Result<Option<usize>> {
        if buf.capacity() == buf.len() {
            buf.reserve(READ_CHUNK); // a zero-length recv would look like end of stream
        }
        let mut got = None;
        let socket = socket2::SockRef::from(&*self);
        let read = self.try_io(tokio::io::Interest::READABLE, || {
            let spare = buf.spare_capacity_mut();
            let room = spare.len();
            let n = socket.recv(spare)?;
            // SAFETY: recv initialised the first n bytes of the spare capacity.
            unsafe { buf.set_len(buf.len() + n) };
            got = Some(n);
            if n > 0 && n < room {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            Ok(())
        });
        match read {
            Ok(()) => Ok(got),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(got),
            Err(e) => Err(e),
        }
    }

    async fn wait_input(&mut self, _buf: &mut BytesMut) -> std::io::Result<Option<usize>> {
        self.readable().await.map(|()| None)
    }
}

/// rustls decrypts into its own buffers and hands plaintext over only
/// through a read, so a TLS connection waits with a buffer to read into
/// (of [`READ_CHUNK`] at first, its own, not the pool's).
impl ClientIo for tokio_rustls::server::TlsStream<TcpStream> {
    const READS_WHILE_WAITING: bool = true;

    fn try_read_now(&mut self, _buf: &mut BytesMut) -> std::io::Result<Option<usize>> {
        Ok(None)
    }

    async fn wait_input(&mut self, buf: &mut BytesMut) -> std::io::Result<Option<usize>> {
        use tokio::io::AsyncReadExt;
        self.read_buf(buf).await.map(Some)
    }
}

/// Write the pending replies, enforcing the client-output-buffer limit:
/// more than `hard` bytes pending, or more than `soft` bytes not written
/// within `soft_seconds`, disconnects the client. (Replies are flushed every
/// 256 KiB and the connection reads nothing while a write is pending, so a
/// client that stops reading holds at most that much plus one reply.)
async fn flush<S: ClientIo>(stream: &mut S, out: &ReplyBuf, limit: &OutputLimit) -> Result<(), String> {
    let pending = out.len() as u64;
    if limit.hard > 0 && pending > limit.hard {
        return Err(format!(
            "{pending} bytes of replies exceed the output buffer hard limit"
        ));
    }
    let write = async {
        stream.write_all(&out.buf).await?;
        stream.flush().await
    };
    if limit.soft > 0 && limit.soft_seconds > 0 && pending > limit.soft {
        // Boxed: the timer would otherwise take room in every connection's future.
        match Box::pin(tokio::time::timeout(Duration::from_secs(limit.soft_seconds), write)).await {
            Ok(r) => r.map_err(|e| format!("write failed: {e}")),
            Err(_) => Err(format!(
                "{pending} bytes of replies over the soft limit for {} s",
                limit.soft_seconds
            )),
        }
    } else {
        write.await.map_err(|e| format!("write failed: {e}"))
    }
}

/// Serve one accepted client: over plain TCP, or over TLS once the
/// handshake is done. A connection's task holds this future for its whole
/// life, so the TLS path is boxed: its stream alone is over a kilobyte, and
/// inline it would weigh on every plain connection too.
pub async fn serve_accepted(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: &Shared,
    handle: Arc<ClientHandle>,
) {
    match tls {
        None => serve(stream, shared, handle).await,
        Some(acceptor) => Box::pin(serve_tls(stream, acceptor, shared, handle)).await,
    }
}

async fn serve_tls(stream: TcpStream, acceptor: tokio_rustls::TlsAcceptor, shared: &Shared, handle: Arc<ClientHandle>) {
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls_stream)) => serve(tls_stream, shared, handle).await,
        Ok(Err(e)) => connection_error(&handle, "TLS handshake failed", &e),
        Err(_) => connection_error(&handle, "TLS handshake timed out", &""),
    }
}

/// The one log line of a connection that ends in an error: the client's
/// id and address, what went wrong, and the detail, as a warning. (A read
/// that fails is logged the same way at `info`, in `got_input`: resets by
/// the peer are routine, load balancers' probes do them all day.)
fn connection_error(handle: &ClientHandle, what: &str, detail: &dyn std::fmt::Display) {
    warn!(
        target: "redlockd::connection",
        client_id = handle.id,
        addr = %handle.addr,
        error = %detail,
        "connection error: {what}"
    );
}

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn serve<S: ClientIo>(mut stream: S, shared: &Shared, handle: Arc<ClientHandle>) {
    // Long-lived futures, registered once per connection rather than on
    // every wait, and pinned in this future rather than allocated apart:
    // shutdown, CLIENT KILL, and a housekeeping timer that fires about once
    // a second to apply --timeout.
    let mut shutdown_rx = shared.shutdown.subscribe();
    let shutdown = async {
        let _ = shutdown_rx.recv().await;
    };
    let kill = handle.kill.notified();
    let housekeeping = tokio::time::sleep(HOUSEKEEPING);
    tokio::pin!(shutdown, kill, housekeeping);
    let mut waits = Waits {
        shutdown,
        kill,
        housekeeping,
        handle: &handle,
        read_hint: READ_CHUNK,
    };
    // No buffer yet: they are lent by the pool when bytes arrive.
    let mut rbuf = BytesMut::new();
    let mut out = ReplyBuf::new(0);
    let mut decoder = Decoder::new();
    let mut client = ClientState::new(handle.clone(), !shared.settings.password_required());
    loop {
        let max_bulk_len = Settings::get(&shared.settings.proto_max_bulk_len);
        if out.buf.capacity() == 0 {
            pool::lend(&pool::REPLIES, &mut out.buf);
        }
        let Drained {
            consumed,
            more,
            failure,
            group_call,
        } = execute_buffered(shared, &mut client, &mut out, &mut decoder, &rbuf, max_bulk_len);
        rbuf.advance(consumed);
        if let Some(call) = group_call
            && let Some(group) = shared.group.get()
        {
            // Boxed: the group's path must not grow every idle connection's future.
            Box::pin(crate::group::forward::run(group, &mut client, &mut out, call)).await;
        }
        // No reply leaves before its writes are in the log: written (so a
        // process crash loses nothing acknowledged) and, with appendfsync
        // always, fsynced (so an OS crash loses nothing either).
        if client.aof_mark > 0 {
            if let Some(aof) = &shared.aof {
                aof.wait_durable(client.aof_mark).await;
            }
            client.aof_mark = 0;
        }
        if let Some(e) = failure {
            connection_error(&handle, "protocol error", &e.0);
            out.error(&format!("ERR Protocol error: {}", e.0));
            let _ = stream.write_all(&out.buf).await;
            let _ = stream.flush().await;
            return;
        }
        client.deliver_pending(&mut out);
        if !out.is_empty() {
            let written = tokio::select! {
                biased;
                r = flush(&mut stream, &out, &shared.config.client_output_buffer_limit) => r,
                _ = waits.kill.as_mut() => Err("killed while writing".into()),
            };
            if let Some(subs) = &client.pubsub {
                subs.outbox.written();
            }
            if let Err(why) = written {
                connection_error(&handle, "closing client", &why);
                return;
            }
        }
        pool::give_back(&pool::REPLIES, &mut out.buf);
        if client.close || handle.killed.load(Ordering::Relaxed) {
            return;
        }
        if client.blocked.is_some() {
            // Boxed: only a blocked connection pays for the wait's future.
            let waited = Box::pin(wait_blocked(
                &mut stream,
                &mut rbuf,
                shared,
                &mut waits,
                &mut client,
                &mut out,
            ))
            .await;
            if let Err(why) = waited {
                debug!(id = handle.id, "closing while blocked: {why}");
                return;
            }
            continue;
        }
        if more {
            continue;
        }
        if rbuf.len() as u64 > Settings::get(&shared.settings.client_query_buffer_limit) {
            connection_error(&handle, "closing client", &"query buffer limit exceeded");
            return;
        }
        let outbox = client.pubsub.as_ref().map(|s| s.outbox.clone());
        if let Err(why) = read_more(&mut stream, &mut rbuf, &decoder, shared, &mut waits, outbox.as_deref()).await {
            debug!(id = handle.id, "closing: {why}");
            return;
        }
    }
}

/// What [`execute_buffered`] got through.
struct Drained {
    /// Bytes of input the executed requests occupied.
    consumed: usize,
    /// Replies reached [`OUTPUT_FLUSH`] with whole requests left: write, then go on.
    more: bool,
    /// A protocol violation: reply with it and close.
    failure: Option<ProtocolError>,
    /// In a replicated group: the last command consumed, to be served by
    /// the group (`crate::group::forward`) before anything after it.
    group_call: Option<crate::group::forward::Call>,
}

/// Execute every whole request at the start of `input`, replies into `out`:
/// a batch at a time, decoded, its keys prefetched, then run.
///
/// A plain function, not part of the connection's future: a batch of
/// decoded requests is a few kilobytes, and in the future it would be kept
/// for every idle connection.
fn execute_buffered(
    shared: &Shared,
    client: &mut ClientState,
    out: &mut ReplyBuf,
    decoder: &mut Decoder,
    input: &[u8],
    max_bulk_len: u64,
) -> Drained {
    let mut drained = Drained {
        consumed: 0,
        more: false,
        failure: None,
        group_call: None,
    };
    let mut batch = Batch::new();
    'batches: loop {
        let limits = Limits {
            max_bulk_len,
            max_args: MAX_ARGS,
            authenticated: client.authenticated,
        };
        let end = batch.decode(decoder, &input[drained.consumed..], &limits);
        batch.prefetch(&shared.keyspace.dbs[client.db]);
        for request in batch.requests() {
            let args = request.args();
            if shared.group.get().is_some() && !args.is_empty() {
                let route = crate::group::forward::route(client, &args);
                if route != crate::group::forward::Route::Local {
                    drained.consumed += request.size();
                    drained.group_call = Some(crate::group::forward::Call {
                        route,
                        args: args.iter().map(|a| a.to_vec()).collect(),
                    });
                    drained.more = true;
                    decoder.reset();
                    return drained;
                }
            }
            if !args.is_empty() {
                commands::execute(shared, client, out, &args);
                client.deliver_pending(out);
            }
            drained.consumed += request.size();
            // A blocked client's later requests wait for its reply.
            if client.close || client.blocked.is_some() {
                if client.blocked.is_some() {
                    decoder.reset();
                }
                return drained;
            }
            // Stopping before the end of the batch, its later requests will
            // be decoded again: the decoder must not resume one it left
            // incomplete as if it were the next.
            if out.len() >= OUTPUT_FLUSH {
                decoder.reset();
                drained.more = true;
                return drained;
            }
            // AUTH or RESET changed the limits the rest must be decoded
            // with: decode them again.
            if client.authenticated != batch.authenticated {
                decoder.reset();
                continue 'batches;
            }
        }
        match end {
            End::Full => continue,
            End::Incomplete => return drained,
            End::Failed(e) => {
                drained.failure = Some(e);
                return drained;
            }
        }
    }
}

/// Interpret a read: true when bytes arrived, false when there were none
/// yet, an error at end of stream or on failure.
fn got_input(read: std::io::Result<Option<usize>>, waits: &mut Waits<'_, '_>) -> Result<bool, &'static str> {
    match read {
        Ok(Some(0)) => Err("end of stream"),
        Ok(Some(_)) => {
            waits.handle.touch();
            Ok(true)
        }
        Ok(None) => Ok(false),
        Err(e) => {
            info!(
                target: "redlockd::connection",
                client_id = waits.handle.id,
                addr = %waits.handle.addr,
                error = %e,
                "connection error: read failed"
            );
            Err("read failed")
        }
    }
}

/// What a connection waits on besides its socket.
struct Waits<'p, 'c> {
    shutdown: Pin<&'p mut (dyn Future<Output = ()> + Send + 'c)>,
    kill: Pin<&'p mut tokio::sync::futures::Notified<'c>>,
    housekeeping: Pin<&'p mut tokio::time::Sleep>,
    /// Its last-input time is the one CLIENT LIST reports and --timeout uses.
    handle: &'c ClientHandle,
    /// How much to reserve for the next read.
    read_hint: usize,
}

/// Read more request bytes. Tries at once (a pipelining client usually has
/// sent more already), then waits for input: without a buffer, or with one
/// sized for the request partly read, unless the transport reads while it
/// waits. Returns early, with no input, when a subscriber's `outbox` has
/// messages to write.
async fn read_more<S: ClientIo>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    decoder: &Decoder,
    shared: &Shared,
    waits: &mut Waits<'_, '_>,
    outbox: Option<&Outbox>,
) -> Result<(), &'static str> {
    let want = decoder
        .pending_bulk(rbuf.len())
        .unwrap_or(0)
        .clamp(waits.read_hint, 1 << 20);
    loop {
        if rbuf.capacity() == 0 && !S::READS_WHILE_WAITING {
            pool::lend(&pool::READS, rbuf);
        }
        if rbuf.capacity() - rbuf.len() < want / 2 {
            rbuf.reserve(want);
        }
        let spare = rbuf.capacity() - rbuf.len();
        let read = stream.try_read_now(rbuf);
        if let Ok(Some(n)) = read {
            // A read that filled the buffer: the client sends a lot, read more at once.
            if n == spare {
                waits.read_hint = (waits.read_hint * 2).min(READ_CHUNK_MAX);
            }
        }
        if got_input(read, waits)? {
            return Ok(());
        }
        if !S::READS_WHILE_WAITING {
            if rbuf.is_empty() {
                pool::give_back(&pool::READS, rbuf);
            } else if rbuf.capacity() > rbuf.len() + want {
                // Waiting for the rest of a request: keep room for what
                // it needs, not the pool's buffer.
                let mut own = BytesMut::with_capacity(rbuf.len() + want);
                own.extend_from_slice(rbuf);
                std::mem::swap(rbuf, &mut own);
                pool::give_back(&pool::READS, &mut own);
            }
        }
        tokio::select! {
            biased;
            r = stream.wait_input(rbuf) => if got_input(r, waits)? {
                return Ok(());
            },
            _ = waits.housekeeping.as_mut() => {
                let idle = waits.handle.idle();
                let timeout = Settings::get(&shared.settings.timeout);
                if timeout > 0 && idle >= Duration::from_secs(timeout) {
                    return Err("idle timeout");
                }
                let now = tokio::time::Instant::now();
                let mut next = now + HOUSEKEEPING;
                if timeout > 0 {
                    next = next.min(now + Duration::from_secs(timeout).saturating_sub(idle));
                }
                waits.housekeeping.as_mut().reset(next);
            }
            _ = waits.shutdown.as_mut() => return Err("shutting down"),
            _ = waits.kill.as_mut() => return Err("killed"),
            _ = async {
                match outbox {
                    Some(o) => o.ready.notified().await,
                    None => std::future::pending().await,
                }
            } => return Ok(()),
        }
    }
}

/// How a blocking acquire's wait ended.
enum WaitEnd {
    Granted(crate::coord::Granted),
    /// Its WAIT ran out, or CLIENT UNBLOCK ... TIMEOUT.
    TimedOut,
    /// CLIENT UNBLOCK ... ERROR.
    Unblocked,
    /// The connection is closing (end of stream, shutdown, CLIENT KILL).
    Closed(&'static str),
}

/// Wait for a blocking acquire's grant (the fence), the end of its WAIT
/// (nil), CLIENT UNBLOCK (nil, or -UNBLOCKED), or the connection closing
/// (it then leaves its queue; a grant that raced with the close is given
/// back, so no lock stays with a closed connection). Meanwhile nothing the
/// client sends is executed: it is read (to notice the end of the stream)
/// and kept for after the reply. The reply goes into `out`.
async fn wait_blocked<S: ClientIo>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    shared: &Shared,
    waits: &mut Waits<'_, '_>,
    client: &mut ClientState,
    out: &mut ReplyBuf,
) -> Result<(), &'static str> {
    use crate::instance::{BLOCK_ERROR, BLOCK_NONE, BLOCK_TIMEOUT};
    let Some(blocked) = client.blocked.take() else {
        return Ok(());
    };
    let commands::Blocked {
        ticket,
        mut rx,
        timeout,
        stop,
    } = *blocked;
    let handle = waits.handle;
    let started = std::time::Instant::now();
    let unblocked = handle.unblock.notified();
    let expiry = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(86_400 * 365)));
    tokio::pin!(unblocked, expiry);
    // Registered before the state is read: an UNBLOCK after the read wakes it.
    unblocked.as_mut().enable();
    let query_limit = Settings::get(&shared.settings.client_query_buffer_limit);
    let end = loop {
        match handle.block.load(Ordering::SeqCst) {
            BLOCK_TIMEOUT => break WaitEnd::TimedOut,
            BLOCK_ERROR => break WaitEnd::Unblocked,
            _ => {}
        }
        if rbuf.len() as u64 > query_limit {
            break WaitEnd::Closed("query buffer limit exceeded while blocked");
        }
        tokio::select! {
            biased;
            granted = &mut rx => break match granted {
                Ok(g) => WaitEnd::Granted(g),
                Err(_) => WaitEnd::TimedOut,
            },
            _ = unblocked.as_mut() => {
                unblocked.set(handle.unblock.notified());
                unblocked.as_mut().enable();
            }
            _ = expiry.as_mut(), if timeout.is_some() => break WaitEnd::TimedOut,
            r = stream.wait_input(rbuf) => {
                let r = match r {
                    Ok(None) => stream.try_read_now(rbuf),
                    other => other,
                };
                if let Err(why) = got_input(r, waits) {
                    break WaitEnd::Closed(why);
                }
            }
            _ = waits.shutdown.as_mut() => break WaitEnd::Closed("shutting down"),
            _ = waits.kill.as_mut() => break WaitEnd::Closed("killed"),
        }
    };
    handle.block.store(BLOCK_NONE, Ordering::SeqCst);
    let coord = &shared.coord;
    // A wait that ended otherwise than by its grant leaves the queue, unless
    // the grant won the race: then it stands (or is given back on close).
    let end = match end {
        WaitEnd::Granted(g) => WaitEnd::Granted(g),
        other if matches!(ticket.kind, crate::coord::TicketKind::Group { .. }) => {
            settle_group_wait(shared, &ticket, rx, stop, other).await
        }
        other if coord.cancel(&ticket) => other,
        other => match rx.try_recv() {
            Ok(g) => match other {
                WaitEnd::Closed(why) => {
                    coord.give_back(&ticket, g);
                    WaitEnd::Closed(why)
                }
                _ => WaitEnd::Granted(g),
            },
            Err(_) => other,
        },
    };
    let list = matches!(
        ticket.kind,
        crate::coord::TicketKind::List | crate::coord::TicketKind::Group { list: true, .. }
    );
    if !list {
        let waited_us = started.elapsed().as_micros() as u64;
        shared.locks.waited(waited_us, matches!(end, WaitEnd::Granted(_)));
    }
    match end {
        WaitEnd::Granted(g) => {
            client.aof_mark = client.aof_mark.max(g.aof_mark);
            match g.served.map(|s| *s) {
                None => out.int(g.fence as i64),
                Some(crate::coord::lists::Served::Popped { key, item }) => {
                    out.array(2);
                    out.bulk(&key);
                    out.bulk(&item);
                }
                Some(crate::coord::lists::Served::Moved(item)) => out.bulk(&item),
                Some(crate::coord::lists::Served::Failed(e)) => out.error(&e.text("")),
                Some(crate::coord::lists::Served::Encoded(reply)) => out.buf.extend_from_slice(&reply),
            }
        }
        // Redis answers a list wait's end with a nil array, BLMOVE's too.
        WaitEnd::TimedOut if list => out.null_array(),
        WaitEnd::TimedOut => out.null(),
        WaitEnd::Unblocked => out.error("UNBLOCKED client unblocked via CLIENT UNBLOCK"),
        WaitEnd::Closed(why) => return Err(why),
    }
    Ok(())
}

/// A group's wait ended otherwise than by its answer (`end`): its task
/// (`crate::group::waiters::serve_waiter`), told by `stop`, takes it out
/// of the leader's queue, and if its try was already in the log, that try
/// still answers: a grant then stands, as a single server's grant that
/// races with the timeout does. A closing connection does not wait for
/// it: `rx` is closed at once, a grant sent before is released here, and
/// one sent after is released by the task.
async fn settle_group_wait(
    shared: &Shared,
    ticket: &crate::coord::Ticket,
    mut rx: tokio::sync::oneshot::Receiver<crate::coord::Granted>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    end: WaitEnd,
) -> WaitEnd {
    drop(stop);
    let closing = matches!(end, WaitEnd::Closed(_));
    if !closing {
        let limit = crate::group::waiters::SETTLE + Duration::from_secs(1);
        return match tokio::time::timeout(limit, &mut rx).await {
            Ok(Ok(g)) => WaitEnd::Granted(g),
            _ => end,
        };
    }
    rx.close();
    if rx.try_recv().is_ok()
        && let Some(group) = shared.group.get()
    {
        crate::group::waiters::give_back_ticket(group, ticket);
    }
    end
}

/// Buffers lent to connections while they have bytes in hand: one spare
/// read buffer and one spare reply buffer per worker thread. A connection
/// borrows them when input arrives and gives them back once its replies
/// are written and no partial request is left, so an idle connection holds
/// none, and the same memory serves one connection after another (rather
/// than buffers freed among long-lived allocations, holes the process
/// keeps). Buffers are swapped in and out in place: lending and giving
/// back build and drop nothing.
mod pool {
    use std::cell::RefCell;
    use std::thread::LocalKey;

    use bytes::BytesMut;

    /// A new buffer's size (Redis's PROTO_IOBUF_LEN).
    const NEW: usize = 16 * 1024;
    /// Larger buffers (after a big request or reply) are freed, not kept.
    const KEEP_MAX: usize = 128 * 1024;

    /// A thread's spare buffer; none while its capacity is 0.
    pub type Spare = LocalKey<RefCell<BytesMut>>;

    thread_local! {
        pub static READS: RefCell<BytesMut> = RefCell::new(BytesMut::new());
        pub static REPLIES: RefCell<BytesMut> = RefCell::new(BytesMut::new());
    }

    /// Give `buf`, which holds no memory, this thread's spare or a new buffer.
    #[inline]
    pub fn lend(spare: &'static Spare, buf: &mut BytesMut) {
        let lent = spare.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            let has = spare.capacity() > 0;
            if has {
                std::mem::swap(&mut *spare, buf);
            }
            has
        });
        if lent != Ok(true) {
            *buf = BytesMut::with_capacity(NEW);
        }
    }

    /// Take `buf`'s memory back, its contents dropped: it becomes this
    /// thread's spare, or is freed if there is one already or it is large.
    #[inline]
    pub fn give_back(spare: &'static Spare, buf: &mut BytesMut) {
        if buf.capacity() == 0 {
            return;
        }
        buf.clear();
        let kept = buf.capacity() <= KEEP_MAX
            && spare.try_with(|spare| {
                let mut spare = spare.borrow_mut();
                let empty = spare.capacity() == 0;
                if empty {
                    std::mem::swap(&mut *spare, buf);
                }
                empty
            }) == Ok(true);
        if !kept {
            *buf = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection's future is most of what an idle client costs besides
    /// its socket: it must not grow by what only lives during a batch (the
    /// batch of decoded requests alone is several kilobytes), nor by the
    /// TLS path (its stream alone is over a kilobyte).
    #[tokio::test]
    async fn an_idle_connection_keeps_a_small_future() {
        let shared = Shared::new(crate::config::ServerConfig::default()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let handle = Arc::new(ClientHandle::new(1, peer, addr));
        let future = serve_accepted(stream, None, &shared, handle);
        let size = std::mem::size_of_val(&future);
        assert!(size <= 1536, "the connection future takes {size} bytes");
    }

    /// Buffers go back to the thread's pool and come out again without
    /// allocating; a large one is freed rather than kept.
    #[test]
    fn the_pool_lends_the_same_buffer_again() {
        let mut buf = BytesMut::new();
        pool::lend(&pool::READS, &mut buf);
        assert!(buf.capacity() > 0);
        buf.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        let memory = buf.as_ptr();
        pool::give_back(&pool::READS, &mut buf);
        assert_eq!(buf.capacity(), 0, "a connection keeps nothing it gave back");
        let mut again = BytesMut::new();
        pool::lend(&pool::READS, &mut again);
        assert_eq!((again.as_ptr(), again.len()), (memory, 0));
        let mut large = BytesMut::with_capacity(1 << 20);
        pool::give_back(&pool::READS, &mut large);
        assert_eq!(large.capacity(), 0);
        let mut next = BytesMut::new();
        pool::lend(&pool::READS, &mut next);
        assert!(next.capacity() < 1 << 20, "a large buffer is not kept");
    }
}
