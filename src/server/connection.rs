//! One client connection: read → decode every complete request → execute →
//! write all replies at once → read again.
//!
//! Replies to a pipelined batch are written with one write. The read buffer
//! grows only as bytes arrive (a pending bulk's size is reserved once, up to
//! 1 MiB at a time), and the query buffer is bounded by
//! `client-query-buffer-limit`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use smallvec::SmallVec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, warn};

use super::shared::{ClientHandle, Shared};
use crate::commands::{self, ClientState};
use crate::config::Settings;
use crate::protocol::decode::MAX_ARGS;
use crate::protocol::{ArgSource, Decoder, Limits, ReplyBuf};

const READ_CHUNK: usize = 16 * 1024;
/// Write replies out once this much is pending, even mid-batch.
const OUTPUT_FLUSH: usize = 256 * 1024;

pub async fn serve(mut stream: TcpStream, shared: &Shared, handle: Arc<ClientHandle>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = ReplyBuf::new(READ_CHUNK);
    let mut decoder = Decoder::new();
    let mut client = ClientState::new(handle.clone());
    loop {
        let limits = Limits {
            max_bulk_len: Settings::get(&shared.settings.proto_max_bulk_len),
            max_args: MAX_ARGS,
        };
        let mut consumed = 0;
        let mut more = false;
        let mut failure = None;
        loop {
            let input = &rbuf[consumed..];
            match decoder.decode(input, &limits) {
                Ok(Some(frame)) => {
                    if !decoder.args().is_empty() {
                        let base: &[u8] = match frame.source {
                            ArgSource::Input => input,
                            ArgSource::Scratch => &decoder.scratch,
                        };
                        let args: SmallVec<[&[u8]; 8]> = decoder.args().iter().map(|r| &base[r.clone()]).collect();
                        commands::execute(shared, &mut client, &mut out, &args);
                    }
                    consumed += frame.len;
                    if client.close {
                        break;
                    }
                    if out.len() >= OUTPUT_FLUSH {
                        more = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        rbuf.advance(consumed);
        if let Some(e) = failure {
            warn!(id = handle.id, peer = %handle.addr, "protocol error: {}", e.0);
            out.error(&format!("ERR Protocol error: {}", e.0));
            let _ = stream.write_all(&out.buf).await;
            return;
        }
        if !out.is_empty() {
            if let Err(e) = stream.write_all(&out.buf).await {
                debug!(id = handle.id, "write failed: {e}");
                return;
            }
            out.buf.clear();
        }
        if client.close || handle.killed.load(Ordering::Relaxed) {
            return;
        }
        handle
            .last_active_ms
            .store(handle.created.elapsed().as_millis() as u64, Ordering::Relaxed);
        if more {
            continue;
        }
        if rbuf.len() as u64 > Settings::get(&shared.settings.client_query_buffer_limit) {
            warn!(id = handle.id, "closing client that exceeded the query buffer limit");
            return;
        }
        let want = decoder.pending_bulk(rbuf.len()).unwrap_or(0).clamp(READ_CHUNK, 1 << 20);
        if rbuf.capacity() - rbuf.len() < want / 2 {
            rbuf.reserve(want);
        }
        let timeout = Settings::get(&shared.settings.timeout);
        let read = async {
            if timeout == 0 {
                Some(stream.read_buf(&mut rbuf).await)
            } else {
                tokio::time::timeout(Duration::from_secs(timeout), stream.read_buf(&mut rbuf))
                    .await
                    .ok()
            }
        };
        tokio::select! {
            r = read => match r {
                Some(Ok(0)) => return,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    debug!(id = handle.id, "read failed: {e}");
                    return;
                }
                None => {
                    debug!(id = handle.id, "closing idle client");
                    return;
                }
            },
            _ = shutdown.recv() => return,
            _ = handle.kill.notified() => return,
        }
    }
}
