//! Encoding messages into compact JSON without building a tree.
//!
//! The writers append straight into a buffer: the envelope is written by hand
//! and raw params and results are copied as they are, so a call's params are
//! serialized once, by the caller, and never again.

use bytes::BufMut;
use serde_json::value::RawValue;

use crate::{ErrorObject, Id, Message, Notification, Request, Response};

/// The `_meta` member of a request (docs/protocol.md, section 9): the W3C
/// trace context of the call, so that a worker can continue the caller's
/// trace. Borrowed, so that a caller can keep it on its stack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meta<'a> {
    /// The W3C `traceparent` header value.
    pub traceparent: Option<&'a str>,
    /// The W3C `tracestate` header value.
    pub tracestate: Option<&'a str>,
}

impl<'a> Meta<'a> {
    /// A trace context; an empty `tracestate` is left out on the wire.
    pub fn trace(traceparent: &'a str, tracestate: &'a str) -> Meta<'a> {
        Meta {
            traceparent: Some(traceparent),
            tracestate: Some(tracestate),
        }
    }

    /// Whether it would write nothing: no member is set to a non-empty value.
    pub fn is_empty(&self) -> bool {
        let empty = |v: Option<&str>| v.is_none_or(str::is_empty);
        empty(self.traceparent) && empty(self.tracestate)
    }
}

/// Appends a request as compact JSON.
pub fn write_request<B: BufMut>(out: &mut B, id: &Id, method: &str, params: Option<&RawValue>) {
    write_request_with_meta(out, id, method, params, None);
}

/// Appends a request as compact JSON, with a top-level `_meta` member when
/// `meta` has a non-empty member (empty values are left out: a propagator
/// writes an empty `tracestate`, and workers should not see one).
pub fn write_request_with_meta<B: BufMut>(
    out: &mut B,
    id: &Id,
    method: &str,
    params: Option<&RawValue>,
    meta: Option<&Meta<'_>>,
) {
    out.put_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    write_id(out, id);
    out.put_slice(b",\"method\":");
    write_str(out, method);
    if let Some(params) = params {
        out.put_slice(b",\"params\":");
        out.put_slice(params.get().as_bytes());
    }
    if let Some(meta) = meta.filter(|m| !m.is_empty()) {
        write_meta(out, meta);
    }
    out.put_u8(b'}');
}

fn write_meta<B: BufMut>(out: &mut B, meta: &Meta<'_>) {
    out.put_slice(b",\"_meta\":{");
    let members = [
        ("traceparent", meta.traceparent),
        ("tracestate", meta.tracestate),
    ];
    let mut first = true;
    for (name, value) in members {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        if !first {
            out.put_u8(b',');
        }
        first = false;
        write_str(out, name);
        out.put_u8(b':');
        write_str(out, value);
    }
    out.put_u8(b'}');
}

/// Appends a notification as compact JSON.
pub fn write_notification<B: BufMut>(out: &mut B, method: &str, params: Option<&RawValue>) {
    out.put_slice(b"{\"jsonrpc\":\"2.0\",\"method\":");
    write_str(out, method);
    if let Some(params) = params {
        out.put_slice(b",\"params\":");
        out.put_slice(params.get().as_bytes());
    }
    out.put_u8(b'}');
}

/// Appends a response as compact JSON.
pub fn write_response<B: BufMut>(out: &mut B, id: &Id, result: Result<&RawValue, &ErrorObject>) {
    out.put_slice(b"{\"jsonrpc\":\"2.0\",");
    match result {
        Ok(result) => {
            out.put_slice(b"\"result\":");
            out.put_slice(result.get().as_bytes());
        }
        Err(error) => {
            out.put_slice(b"\"error\":");
            write_error(out, error);
        }
    }
    out.put_slice(b",\"id\":");
    write_id(out, id);
    out.put_u8(b'}');
}

/// Appends any message as compact JSON. Invalid entries of a batch have no
/// JSON form and are left out.
pub fn write_message<B: BufMut>(out: &mut B, message: &Message) {
    match message {
        Message::Request(Request { id, method, params }) => {
            write_request(out, id, method, params.as_deref());
        }
        Message::Notification(Notification { method, params }) => {
            write_notification(out, method, params.as_deref());
        }
        Message::Response(Response { id, result }) => {
            write_response(out, id, result.as_deref());
        }
        Message::Batch(entries) => {
            out.put_u8(b'[');
            for (i, entry) in entries.iter().flatten().enumerate() {
                if i > 0 {
                    out.put_u8(b',');
                }
                write_message(out, entry);
            }
            out.put_u8(b']');
        }
    }
}

fn write_id<B: BufMut>(out: &mut B, id: &Id) {
    match id {
        Id::Number(n) => out.put_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Id::String(s) => write_str(out, s),
        Id::Null => out.put_slice(b"null"),
    }
}

fn write_error<B: BufMut>(out: &mut B, error: &ErrorObject) {
    out.put_slice(b"{\"code\":");
    out.put_slice(itoa::Buffer::new().format(error.code.0).as_bytes());
    out.put_slice(b",\"message\":");
    write_str(out, &error.message);
    if let Some(data) = &error.data {
        out.put_slice(b",\"data\":");
        out.put_slice(data.get().as_bytes());
    }
    out.put_u8(b'}');
}

/// Writes a JSON string. Method names and messages almost never need escaping,
/// so the common case is a plain copy.
pub(crate) fn write_str<B: BufMut>(out: &mut B, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.put_u8(b'"');
        out.put_slice(s.as_bytes());
        out.put_u8(b'"');
    } else {
        // Serializing a `str` into memory cannot fail.
        let escaped = serde_json::to_string(s).unwrap_or_default();
        out.put_slice(escaped.as_bytes());
    }
}
