//! A pipelined batch: the whole short requests at the start of what a
//! connection has read, decoded in one pass before any of them runs.
//!
//! Decoding ahead lets the connection start loading every request's key
//! into the CPU cache at once ([`Db::prefetch_table`], [`Db::prefetch_entry`]):
//! at `-P 16` over many keys, a lookup otherwise waits for two or three
//! cache misses in turn, the largest single cost of a request. The requests
//! then run from the decoded arguments, so nothing is parsed twice.

use smallvec::SmallVec;

use crate::protocol::decode::SHORT_ARGS;
use crate::protocol::{Decoder, Limits};
use crate::store::Db;

/// Requests decoded ahead at most (a `-P 16` batch fits).
const BATCH_MAX: usize = 32;

/// One whole request of at most [`SHORT_ARGS`] arguments.
#[derive(Clone, Copy)]
pub struct ShortRequest<'a> {
    /// Bytes of input it occupies.
    pub len: usize,
    argc: usize,
    args: [&'a [u8]; SHORT_ARGS],
}

impl<'a> ShortRequest<'a> {
    pub fn args(&self) -> &[&'a [u8]] {
        &self.args[..self.argc]
    }
}

/// The whole short requests at the start of an input, in order.
pub struct Batch<'a> {
    requests: SmallVec<[ShortRequest<'a>; BATCH_MAX]>,
    /// Whether they were decoded with an authenticated client's limits.
    pub authenticated: bool,
}

impl<'a> Batch<'a> {
    pub fn new() -> Self {
        Batch {
            requests: SmallVec::new(),
            authenticated: false,
        }
    }

    /// Decode the requests that [`Decoder::decode_short`] takes, from the
    /// start of `input`, stopping at the first it does not take (or at
    /// [`BATCH_MAX`]); that one and the rest take the general path. Fills
    /// the batch in place: it is a few kilobytes, not worth moving.
    pub fn decode(&mut self, decoder: &Decoder, input: &'a [u8], limits: &Limits) {
        self.requests.clear();
        self.authenticated = limits.authenticated;
        let mut pos = 0;
        while self.requests.len() < BATCH_MAX {
            let mut args: [&[u8]; SHORT_ARGS] = [&[]; SHORT_ARGS];
            let Some((len, argc)) = decoder.decode_short(&input[pos..], limits, &mut args) else {
                break;
            };
            pos += len;
            self.requests.push(ShortRequest { len, argc, args });
        }
    }

    pub fn requests(&self) -> &[ShortRequest<'a>] {
        &self.requests
    }

    /// Start loading the table slots, then the entries, of the requests'
    /// keys (the second argument of each, the key of nearly every command;
    /// a wrong guess costs a hash). The first request runs at once and
    /// would gain nothing, so a lone request costs nothing here.
    pub fn prefetch(&self, db: &Db) {
        let Some(later) = self.requests.get(1..) else {
            return;
        };
        let mut hashes = [0u64; BATCH_MAX];
        let mut n = 0;
        for request in later.iter().filter(|r| r.argc >= 2) {
            hashes[n] = db.hash(request.args[1]);
            n += 1;
        }
        for &hash in &hashes[..n] {
            db.prefetch_table(hash);
        }
        for &hash in &hashes[..n] {
            db.prefetch_entry(hash);
        }
    }
}
