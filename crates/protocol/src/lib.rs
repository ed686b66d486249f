//! JSON-RPC 2.0 for pybridge: messages, strict decoding, framing and request
//! correlation, with no I/O and no runtime.
//!
//! This is the lowest layer of pybridge (see `ARCHITECTURE.md`): the pool
//! speaks it to Python workers over their stdin and stdout, and the HTTP
//! gateway speaks it to clients. Everything here is sans-I/O, so it can be
//! tested byte by byte and reused with any transport.
//!
//! - [`Message`], [`Request`], [`Notification`], [`Response`], [`Id`] and
//!   [`ErrorObject`] model the specification. Params and results are
//!   [`RawValue`](serde_json::value::RawValue)s: checked as JSON once, copied
//!   once, never parsed into a tree by this crate.
//! - [`Message::from_slice`] decodes strictly: every rule of the specification
//!   that a message breaks is reported as a [`Rule`], and
//!   [`Error::to_error_object`] gives the error response the specification
//!   prescribes (`-32700` or `-32600`, with the id when it could be read).
//! - [`NdjsonCodec`] and [`ContentLengthCodec`] frame messages on a byte
//!   stream, reject oversized frames without buffering them, and keep going
//!   after a bad frame.
//! - [`PendingTable`] correlates responses with waiting calls by id.
//! - [`write_request`] and friends encode straight into a buffer;
//!   [`write_request_with_meta`] adds the `_meta` member ([`Meta`]: the W3C
//!   trace context) that docs/protocol.md reserves.
//!
//! The crate has no optional features.
//!
//! # Example
//!
//! Frame a request, decode it on the other side, and route the answer back to
//! the waiting call:
//!
//! ```
//! use bytes::BytesMut;
//! use pybridge_protocol::{Id, Message, NdjsonCodec, PendingTable, Response};
//! use tokio_util::codec::Decoder;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The client encodes and frames a request.
//! let params = serde_json::value::to_raw_value(&serde_json::json!({"text": "hi"}))?;
//! let mut payload = Vec::new();
//! pybridge_protocol::write_request(&mut payload, &Id::Number(7), "test.echo", Some(&params));
//! let codec = NdjsonCodec::new(1 << 20);
//! let mut wire = BytesMut::new();
//! codec.encode_frame(&payload, &mut wire)?;
//!
//! // The server decodes it strictly.
//! let mut server = codec.clone();
//! let frame = server.decode(&mut wire)?.expect("one whole frame")?;
//! let Message::Request(request) = Message::from_slice(&frame)? else {
//!     panic!("a request was sent");
//! };
//! assert_eq!(request.method, "test.echo");
//!
//! // The client's pending table routes the response to the waiting call.
//! let table: PendingTable<String> = PendingTable::new();
//! let call = table.register(Id::Number(7))?;
//! table.complete(Response::success(request.id, &"hi")?).expect("id is pending");
//! let response = futures_lite_block_on(call).expect("answered");
//! assert_eq!(response.result_as::<String>().ok().as_deref(), Some("hi"));
//! # Ok(())
//! # }
//! # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().expect("a runtime").block_on(f)
//! # }
//! ```

#![warn(missing_docs)]

mod codec;
mod decode;
mod encode;
mod error;
mod error_object;
mod id;
mod message;
mod pending;

#[cfg(test)]
mod tests;

pub use codec::{
    Codec, ContentLengthCodec, DEFAULT_MAX_FRAME, DEFAULT_MAX_HEADER, Framing, NdjsonCodec,
    REJECTED_HEAD,
};
pub use encode::{
    Meta, write_message, write_notification, write_request, write_request_with_meta, write_response,
};
pub use error::{Error, HeaderProblem, Result, Rule};
pub use error_object::{ErrorCode, ErrorObject};
pub use id::Id;
pub use message::{
    BRIDGE_RESERVED_PREFIX, Message, MethodKind, Notification, RPC_RESERVED_PREFIX, Request,
    Response, to_raw,
};
pub use pending::{Pending, PendingError, PendingResult, PendingTable};

/// The version of the pybridge worker protocol this crate speaks, as
/// "MAJOR.MINOR". A worker announces its own in the `$/ready` handshake
/// (`protocol_version`, "1.0" when absent); a host refuses a worker whose
/// major version differs from this one's.
pub const PROTOCOL_VERSION: &str = "1.0";
