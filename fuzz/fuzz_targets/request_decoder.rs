//! Any bytes, split at an arbitrary point, must decode exactly as when
//! they arrive whole, and never panic or loop.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redlockd::protocol::decode::{MAX_ARGS, SHORT_ARGS};
use redlockd::protocol::{ArgSource, Decoder, Limits, ProtocolError};

const LIMITS: Limits = Limits {
    max_bulk_len: 1 << 16,
    max_args: MAX_ARGS,
    authenticated: true,
};

fn decode_all(chunks: &[&[u8]]) -> (Vec<Vec<Vec<u8>>>, Option<ProtocolError>) {
    let mut d = Decoder::new();
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            // The server's order: the one-pass short path, then the general one.
            let mut args: [&[u8]; SHORT_ARGS] = [&[]; SHORT_ARGS];
            if let Some((len, argc)) = d.decode_short(&buf, &LIMITS, &mut args) {
                assert!(argc > 0 && len > 0 && len <= buf.len(), "a frame must consume input");
                frames.push(args[..argc].iter().map(|a| a.to_vec()).collect());
                buf.drain(..len);
                continue;
            }
            match d.decode(&buf, &LIMITS) {
                Ok(Some(f)) => {
                    let base: &[u8] = if f.source == ArgSource::Input { &buf } else { &d.scratch };
                    frames.push(d.args().iter().map(|r| base[r.clone()].to_vec()).collect());
                    assert!(f.len > 0 && f.len <= buf.len(), "a frame must consume input");
                    buf.drain(..f.len);
                }
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let cut = data[0] as usize % data.len();
    let input = &data[1..];
    let cut = cut.min(input.len());
    let whole = decode_all(&[input]);
    let split = decode_all(&[&input[..cut], &input[cut..]]);
    assert_eq!(whole, split);
});
