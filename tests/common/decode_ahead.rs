//! The model of the connection's decoding loop, shared by the decoder's
//! property tests (`tests/decoder_props.rs`) and its fuzz target
//! (`fuzz/fuzz_targets/request_decoder.rs`), which include this file by
//! path: both check that decoding ahead in batches, from input split
//! anywhere, gives what decoding one request at a time from the whole
//! input gives.

use redlockd::protocol::{Decoder, Limits, ProtocolError};

/// The requests' arguments (empty requests left out) and the error, if any.
pub type Decoded = (Vec<Vec<Vec<u8>>>, Option<ProtocolError>);

/// Decode everything decodable from `chunks` fed one after another, as the
/// connection does: a batch of up to `ahead` requests decoded from the
/// start of what is buffered, then run and consumed; again while a batch
/// comes out full. `runs` (cycled) says how many of each batch's requests
/// run before the connection stops early (its replies are due, or AUTH
/// changed the limits): then it resets the decoder, and what follows is
/// decoded again.
pub fn decode_ahead(chunks: &[&[u8]], ahead: usize, runs: &[usize], limits: &Limits) -> Decoded {
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
                match d.decode(&buf[pos..], limits) {
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
