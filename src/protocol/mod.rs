//! The Redis wire protocol: request framing ([`decode`]) and reply encoding ([`reply`]).

pub mod decode;
pub mod reply;

pub use decode::{Decoder, Limits, ProtocolError, Request};

/// Append a command as a RESP array of bulk strings (what clients send, and
/// what the append-only file stores).
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    let mut n = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(n.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(n.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}
pub use reply::ReplyBuf;
