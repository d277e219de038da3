//! One connection to one lock instance (redlockd or Redis), with a timeout
//! on every call. Replies are decoded with the `redis-protocol` crate.
//!
//! A call that times out or fails drops the connection (a late reply would
//! otherwise be read as the answer to the next call); the next call
//! reconnects.

use std::time::Duration;

use bytes::BytesMut;
use redis_protocol::resp2::decode::decode_range;
use redis_protocol::resp2::types::RangeFrame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// A decoded reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Error(String),
    Array(Vec<Reply>),
}

impl Reply {
    /// Build a reply from a decoded frame's ranges into `buf`. Error and
    /// status texts are taken lossily: Redis echoes binary arguments in
    /// error messages, which are then not UTF-8.
    fn from_range(frame: &RangeFrame, buf: &[u8]) -> Reply {
        let bytes = |&(start, end): &(usize, usize)| &buf[start..end];
        let text = |r: &(usize, usize)| String::from_utf8_lossy(bytes(r)).into_owned();
        match frame {
            RangeFrame::SimpleString(r) => Reply::Status(text(r)),
            RangeFrame::Error(r) => Reply::Error(text(r)),
            RangeFrame::Integer(i) => Reply::Int(*i),
            RangeFrame::BulkString(r) => Reply::Bulk(Some(bytes(r).to_vec())),
            RangeFrame::Null => Reply::Bulk(None),
            RangeFrame::Array(items) => Reply::Array(items.iter().map(|f| Reply::from_range(f, buf)).collect()),
        }
    }
}

/// Why a call to an instance produced no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    TimedOut,
    Unreachable(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::TimedOut => write!(f, "timed out"),
            CallError::Unreachable(why) => write!(f, "unreachable ({why})"),
        }
    }
}

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

/// One instance, by address, with a lazily (re)opened connection.
pub struct Instance {
    pub addr: String,
    conn: Mutex<Option<Conn>>,
}

impl Instance {
    pub fn new(addr: impl Into<String>) -> Instance {
        Instance {
            addr: addr.into(),
            conn: Mutex::new(None),
        }
    }

    /// Send one command and read its reply, all within `timeout`.
    pub async fn call(&self, args: &[&[u8]], timeout: Duration) -> Result<Reply, CallError> {
        let mut guard = self.conn.lock().await;
        let result = tokio::time::timeout(timeout, async {
            if guard.is_none() {
                let stream = TcpStream::connect(&self.addr)
                    .await
                    .map_err(|e| CallError::Unreachable(e.to_string()))?;
                let _ = stream.set_nodelay(true);
                *guard = Some(Conn {
                    stream,
                    buf: BytesMut::with_capacity(512),
                });
            }
            let conn = guard.as_mut().expect("connected above");
            conn.stream
                .write_all(&{
                    let mut out = Vec::new();
                    crate::protocol::encode_command(&mut out, args);
                    out
                })
                .await
                .map_err(|e| CallError::Unreachable(e.to_string()))?;
            loop {
                match decode_range(&conn.buf) {
                    Ok(Some((frame, used))) => {
                        let reply = Reply::from_range(&frame, &conn.buf);
                        let _ = conn.buf.split_to(used);
                        return Ok(reply);
                    }
                    Ok(None) => {}
                    Err(e) => return Err(CallError::Unreachable(format!("bad reply: {e:?}"))),
                }
                let n = conn
                    .stream
                    .read_buf(&mut conn.buf)
                    .await
                    .map_err(|e| CallError::Unreachable(e.to_string()))?;
                if n == 0 {
                    return Err(CallError::Unreachable("connection closed".into()));
                }
            }
        })
        .await
        .unwrap_or(Err(CallError::TimedOut));
        if result.is_err() {
            *guard = None;
        }
        result
    }
}
