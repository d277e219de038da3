//! The Redis wire protocol: request framing ([`decode`]) and reply encoding ([`reply`]).

pub mod decode;
pub mod reply;

pub use decode::{ArgSource, Decoder, Frame, Limits, ProtocolError};
pub use reply::ReplyBuf;
