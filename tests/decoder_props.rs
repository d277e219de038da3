//! Property tests of the request decoder: any byte string, split anywhere,
//! gives the same frames (or the same error) as when it arrives whole, and
//! never panics or loops.

use proptest::prelude::*;
use redlockd::protocol::decode::{MAX_ARGS, SHORT_ARGS};
use redlockd::protocol::{ArgSource, Decoder, Limits, ProtocolError};

const LIMITS: Limits = Limits {
    max_bulk_len: 1 << 20,
    max_args: MAX_ARGS,
    authenticated: true,
};

/// Decode everything decodable from `chunks` fed one after another, as the
/// server does (the one-pass short path first when `short`, then the general
/// path); the frames' arguments and the error, if any.
fn decode_all_with(chunks: &[&[u8]], short: bool) -> (Vec<Vec<Vec<u8>>>, Option<ProtocolError>) {
    let mut d = Decoder::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let mut args: [&[u8]; SHORT_ARGS] = [&[]; SHORT_ARGS];
            if let Some((len, argc)) = short.then(|| d.decode_short(&buf, &LIMITS, &mut args)).flatten() {
                assert!(argc > 0 && len > 0 && len <= buf.len());
                frames.push(args[..argc].iter().map(|a| a.to_vec()).collect());
                buf.drain(..len);
                continue;
            }
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

fn decode_all(chunks: &[&[u8]]) -> (Vec<Vec<Vec<u8>>>, Option<ProtocolError>) {
    decode_all_with(chunks, true)
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

    /// The short path only ever shortcuts the general one: with it or
    /// without it, the same frames and the same error.
    #[test]
    fn short_path_agrees_with_the_general_path(data in input()) {
        prop_assert_eq!(decode_all_with(&[&data], true), decode_all_with(&[&data], false));
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
