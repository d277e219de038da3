//! A pipelined batch: the requests at the start of what a connection has
//! read, decoded one after another before any of them runs.
//!
//! Decoding ahead lets the connection start loading every request's key
//! into the CPU cache at once ([`Db::prefetch_table`], [`Db::prefetch_entry`]):
//! at `-P 16` over many keys, a lookup otherwise waits for two or three
//! cache misses in turn, the largest single cost of a request. The requests
//! then run from the decoded arguments, so nothing is parsed twice.
//!
//! The batch decodes with the connection's own [`Decoder`] and its one
//! [`Decoder::decode`], so a request is framed the same way whether it
//! heads the input or comes later in it.

use smallvec::SmallVec;

use crate::protocol::{Decoder, Limits, ProtocolError, Request};
use crate::store::Db;

/// Requests decoded ahead at most (a `-P 16` batch fits).
const BATCH_MAX: usize = 32;

/// What follows a batch's last request.
#[derive(Debug)]
pub enum End {
    /// More requests, perhaps: the batch is full.
    Full,
    /// The end of the input, or a request not whole yet.
    Incomplete,
    /// A protocol error, to report once the batch has run.
    Failed(ProtocolError),
}

/// The requests at the start of an input, in order.
pub struct Batch<'a> {
    requests: SmallVec<[Request<'a>; BATCH_MAX]>,
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

    /// Decode the requests at the start of `input`, up to [`BATCH_MAX`] of
    /// them, and say what follows the last. Fills the batch in place: it is
    /// a few kilobytes, not worth moving.
    ///
    /// A request left incomplete after the last stays in progress in the
    /// decoder, which resumes it once the requests before it are consumed;
    /// a caller that stops before running them all must reset the decoder.
    pub fn decode(&mut self, decoder: &mut Decoder, input: &'a [u8], limits: &Limits) -> End {
        // Clearing is a call even when there is nothing to clear, and most
        // batches are the first of their input.
        if !self.requests.is_empty() {
            self.requests.clear();
        }
        self.authenticated = limits.authenticated;
        let mut pos = 0;
        while self.requests.len() < BATCH_MAX {
            if pos == input.len() {
                return End::Incomplete;
            }
            match decoder.decode(&input[pos..], limits) {
                Ok(Some(request)) => {
                    pos += request.size();
                    self.requests.push(request);
                }
                Ok(None) => return End::Incomplete,
                Err(e) => return End::Failed(e),
            }
        }
        End::Full
    }

    pub fn requests(&self) -> &[Request<'a>] {
        &self.requests
    }

    /// Start loading the table slots, then the entries, of the requests'
    /// keys (the second argument of each, the key of nearly every command;
    /// a wrong guess costs a hash). The first request runs at once and
    /// would gain nothing, so a lone request costs nothing here.
    #[inline]
    pub fn prefetch(&self, db: &Db) {
        let Some(later) = self.requests.get(1..).filter(|later| !later.is_empty()) else {
            return;
        };
        let mut hashes = [0u64; BATCH_MAX];
        let mut n = 0;
        for key in later.iter().filter_map(Request::key) {
            hashes[n] = db.hash(key);
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
