//! Any bytes, split at an arbitrary point and decoded several requests
//! ahead as the connection does (stopping early in a batch now and then),
//! must decode exactly as when they arrive whole and are decoded one at a
//! time, and never panic or loop.
#![no_main]

#[path = "../../tests/common/decode_ahead.rs"]
mod decode_ahead;

use decode_ahead::decode_ahead;
use libfuzzer_sys::fuzz_target;
use redlockd::protocol::Limits;
use redlockd::protocol::decode::MAX_ARGS;

const LIMITS: Limits = Limits {
    max_bulk_len: 1 << 16,
    max_args: MAX_ARGS,
    authenticated: true,
};

fuzz_target!(|data: &[u8]| {
    let [cut, shape, input @ ..] = data else {
        return;
    };
    let cut = (*cut as usize).min(input.len());
    // 1 to 8 requests decoded ahead; of each batch, 1 to 4 run, or all.
    let ahead = (shape & 7) as usize + 1;
    let runs = [(shape >> 3 & 3) as usize + 1, usize::MAX];
    let whole = decode_ahead(&[input], 1, &[1], &LIMITS);
    let split = decode_ahead(&[&input[..cut], &input[cut..]], ahead, &runs, &LIMITS);
    assert_eq!(whole, split);
});
