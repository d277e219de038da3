//! Any bytes, split at an arbitrary point and decoded several requests
//! ahead as the connection does (stopping early in a batch now and then),
//! must decode exactly as when they arrive whole and are decoded one at a
//! time, and never panic or loop.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redlockd::protocol::decode::MAX_ARGS;
use redlockd::protocol::{Decoder, Limits, ProtocolError};

const LIMITS: Limits = Limits {
    max_bulk_len: 1 << 16,
    max_args: MAX_ARGS,
    authenticated: true,
};

type Decoded = (Vec<Vec<Vec<u8>>>, Option<ProtocolError>);

/// The connection's loop: batches of up to `ahead` requests; of each, the
/// first `run` (the next of `runs`) run, and if that is not all of them the
/// decoder is reset and the rest decoded again.
fn decode_ahead(chunks: &[&[u8]], ahead: usize, runs: &[usize]) -> Decoded {
    let mut runs = runs.iter().cycle();
    let mut d = Decoder::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut requests = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let mut batch: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
            let (mut pos, mut failure) = (0, None);
            while batch.len() < ahead && pos < buf.len() {
                match d.decode(&buf[pos..], &LIMITS) {
                    Ok(Some(request)) => {
                        assert!(request.size() > 0, "a request must consume input");
                        pos += request.size();
                        assert!(pos <= buf.len(), "a request must lie in its input");
                        batch.push((request.size(), request.args().iter().map(|a| a.to_vec()).collect()));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            let run = batch.len().min(*runs.next().expect("runs is not empty"));
            let interrupted = run < batch.len();
            let mut consumed = 0;
            for (size, args) in batch.drain(..run) {
                consumed += size;
                if !args.is_empty() {
                    requests.push(args);
                }
            }
            buf.drain(..consumed);
            if interrupted {
                d.reset();
                continue;
            }
            if failure.is_some() {
                return (requests, failure);
            }
            if run < ahead {
                break;
            }
        }
    }
    (requests, None)
}

fuzz_target!(|data: &[u8]| {
    let [cut, shape, input @ ..] = data else {
        return;
    };
    let cut = (*cut as usize).min(input.len());
    // 1 to 8 requests decoded ahead; of each batch, 1 to 4 run, or all.
    let ahead = (shape & 7) as usize + 1;
    let runs = [(shape >> 3 & 3) as usize + 1, usize::MAX];
    let whole = decode_ahead(&[input], 1, &[1]);
    let split = decode_ahead(&[&input[..cut], &input[cut..]], ahead, &runs);
    assert_eq!(whole, split);
});
