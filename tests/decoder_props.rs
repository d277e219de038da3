//! Property tests of the request decoder: any byte string, split anywhere,
//! gives the same requests (or the same error) as when it arrives whole,
//! whether they are decoded one at a time or several ahead as the
//! connection's batch does; and decoding never panics or loops.

#[path = "common/decode_ahead.rs"]
mod decode_ahead;

use decode_ahead::{Decoded, decode_ahead};
use proptest::prelude::*;
use redlockd::protocol::Limits;
use redlockd::protocol::decode::MAX_ARGS;

const LIMITS: Limits = Limits {
    max_bulk_len: 1 << 20,
    max_args: MAX_ARGS,
    authenticated: true,
};

fn decode_all(chunks: &[&[u8]]) -> Decoded {
    decode_ahead(chunks, 1, &[1], &LIMITS)
}

fn resp_command() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..12).prop_map(|args| {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend(format!("${}\r\n", a.len()).into_bytes());
            out.extend(a);
            out.extend(b"\r\n");
        }
        out
    })
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        prop::collection::vec(resp_command(), 1..5).prop_map(|v| v.concat()),
        // Whole commands, then garbage or an inline line after them.
        (prop::collection::vec(resp_command(), 1..4), "[ -~\r\n*$0-9]{0,30}").prop_map(|(v, tail)| [
            v.concat(),
            tail.into_bytes()
        ]
        .concat()),
        "[ -~\t\r\n\"'\\\\]{0,80}".prop_map(|s| s.into_bytes()),
    ]
}

/// `data` cut at the given points.
fn split<'a>(data: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut last = 0;
    for p in points {
        chunks.push(&data[last..p]);
        last = p;
    }
    chunks.push(&data[last..]);
    chunks
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_split_decodes_like_the_whole(data in input(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        prop_assert_eq!(decode_all(&split(&data, &cuts)), decode_all(&[&data]));
    }

    /// Decoding ahead, stopping early in a batch and decoding the rest
    /// again, gives what decoding one request at a time gives: the same
    /// requests, the same error, whatever the limits.
    #[test]
    fn decoding_ahead_agrees_with_one_at_a_time(
        data in input(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ahead in 2usize..6,
        runs in prop::collection::vec(1usize..6, 1..4),
        authenticated: bool,
        max_bulk_len in prop_oneof![Just(1u64 << 20), 0u64..20],
    ) {
        let limits = Limits { max_bulk_len, max_args: MAX_ARGS, authenticated };
        let chunks = split(&data, &cuts);
        prop_assert_eq!(decode_ahead(&chunks, ahead, &runs, &limits), decode_ahead(&[&data], 1, &[1], &limits));
    }

    #[test]
    fn well_formed_commands_round_trip(cmds in prop::collection::vec(prop::collection::vec(prop::collection::vec(any::<u8>(), 0..30), 1..12), 1..5)) {
        let mut data = Vec::new();
        for args in &cmds {
            data.extend(format!("*{}\r\n", args.len()).into_bytes());
            for a in args {
                data.extend(format!("${}\r\n", a.len()).into_bytes());
                data.extend(a);
                data.extend(b"\r\n");
            }
        }
        let (requests, err) = decode_all(&[&data]);
        prop_assert!(err.is_none());
        prop_assert_eq!(requests, cmds);
    }
}
