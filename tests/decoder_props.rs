//! Property tests of the request decoder: any byte string, split anywhere,
//! gives the same frames (or the same error) as when it arrives whole, and
//! never panics or loops.

use proptest::prelude::*;
use redlockd::protocol::decode::MAX_ARGS;
use redlockd::protocol::{ArgSource, Decoder, Limits, ProtocolError};

const LIMITS: Limits = Limits {
    max_bulk_len: 1 << 20,
    max_args: MAX_ARGS,
    authenticated: true,
};

/// Decode everything decodable from `chunks` fed one after another; the
/// frames' arguments and the error, if any.
fn decode_all(chunks: &[&[u8]]) -> (Vec<Vec<Vec<u8>>>, Option<ProtocolError>) {
    let mut d = Decoder::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match d.decode(&buf, &LIMITS) {
                Ok(Some(f)) => {
                    let base: &[u8] = if f.source == ArgSource::Input { &buf } else { &d.scratch };
                    let args: Vec<Vec<u8>> = d.args().iter().map(|r| base[r.clone()].to_vec()).collect();
                    if !args.is_empty() {
                        frames.push(args);
                    }
                    buf.drain(..f.len);
                }
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

fn resp_command() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..6).prop_map(|args| {
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
        "[ -~\t\r\n\"'\\\\]{0,80}".prop_map(|s| s.into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_split_decodes_like_the_whole(data in input(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let whole = decode_all(&[&data]);
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(&data[last..p]);
            last = p;
        }
        chunks.push(&data[last..]);
        prop_assert_eq!(decode_all(&chunks), whole);
    }

    #[test]
    fn well_formed_commands_round_trip(cmds in prop::collection::vec(prop::collection::vec(prop::collection::vec(any::<u8>(), 0..30), 1..5), 1..5)) {
        let mut data = Vec::new();
        for args in &cmds {
            data.extend(format!("*{}\r\n", args.len()).into_bytes());
            for a in args {
                data.extend(format!("${}\r\n", a.len()).into_bytes());
                data.extend(a);
                data.extend(b"\r\n");
            }
        }
        let (frames, err) = decode_all(&[&data]);
        prop_assert!(err.is_none());
        prop_assert_eq!(frames, cmds);
    }
}
