//! The OTLP trace request (`ExportTraceServiceRequest`, protobuf), written
//! straight from the SDK's span data.
//!
//! The usual route converts every span into owned protobuf structs (a
//! `String` per name, key and value, a `Vec` per id) and then encodes them,
//! measuring each nested message once per level: about 13,000 instructions
//! per span, which at 1 % sampling was the largest share of trace export's
//! cost. Writing the fields from the span data itself, and each nested
//! message's length after its body, takes a fraction of that. The unit
//! tests decode what is written here with the generated protobuf types and
//! compare it with that conversion, field by field.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceState};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

/// Protobuf wire types.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// `SpanFlags`: the flags field says whether the parent was remote.
const CONTEXT_HAS_IS_REMOTE: u32 = 0x100;
const CONTEXT_IS_REMOTE: u32 = 0x200;

/// The resource every span of an export belongs to, encoded once.
#[derive(Debug, Default, Clone)]
pub(super) struct EncodedResource {
    /// The `Resource` message's body.
    resource: Vec<u8>,
    schema_url: String,
}

impl EncodedResource {
    pub(super) fn new(resource: &Resource) -> EncodedResource {
        let mut body = Vec::new();
        for (key, value) in resource.iter() {
            message(&mut body, 1, |out| {
                string(out, 1, key.as_str());
                message(out, 2, |out| any_value(out, value));
            });
        }
        EncodedResource {
            resource: body,
            schema_url: resource.schema_url().unwrap_or_default().to_owned(),
        }
    }
}

/// Writes the `ExportTraceServiceRequest` of `spans` to `out`: one
/// `ResourceSpans`, and in it one `ScopeSpans` per instrumentation scope in
/// the order the scopes first appear.
pub(super) fn encode_request(resource: &EncodedResource, spans: &[SpanData], out: &mut Vec<u8>) {
    // Each span's scope, as an index into the distinct scopes; nearly
    // always one scope, so the search is a single comparison.
    let mut scopes: Vec<&InstrumentationScope> = Vec::new();
    let mut scope_of = Vec::with_capacity(spans.len());
    for span in spans {
        let scope = &span.instrumentation_scope;
        let index = match scopes.iter().position(|s| *s == scope) {
            Some(index) => index,
            None => {
                scopes.push(scope);
                scopes.len() - 1
            }
        };
        scope_of.push(index);
    }
    message(out, 1, |out| {
        message(out, 1, |out| out.extend_from_slice(&resource.resource));
        for (index, scope) in scopes.iter().enumerate() {
            message(out, 2, |out| {
                message(out, 1, |out| instrumentation_scope(out, scope));
                for (span, _) in spans.iter().zip(&scope_of).filter(|(_, s)| **s == index) {
                    message(out, 2, |out| span_data(out, span));
                }
                string(out, 3, scope.schema_url().unwrap_or_default());
            });
        }
        string(out, 3, &resource.schema_url);
    });
}

fn instrumentation_scope(out: &mut Vec<u8>, scope: &InstrumentationScope) {
    string(out, 1, scope.name());
    string(out, 2, scope.version().unwrap_or_default());
    for kv in scope.attributes() {
        message(out, 3, |out| key_value(out, kv));
    }
}

fn span_data(out: &mut Vec<u8>, span: &SpanData) {
    let cx = &span.span_context;
    bytes(out, 1, &cx.trace_id().to_bytes());
    bytes(out, 2, &cx.span_id().to_bytes());
    trace_state(out, 3, cx.trace_state());
    if span.parent_span_id != SpanId::INVALID {
        bytes(out, 4, &span.parent_span_id.to_bytes());
    }
    string(out, 5, &span.name);
    uint(out, 6, span_kind(&span.span_kind));
    fixed64(out, 7, nanos(span.start_time));
    fixed64(out, 8, nanos(span.end_time));
    for kv in &span.attributes {
        message(out, 9, |out| key_value(out, kv));
    }
    uint(out, 10, u64::from(span.dropped_attributes_count));
    for event in span.events.iter() {
        message(out, 11, |out| {
            fixed64(out, 1, nanos(event.timestamp));
            string(out, 2, &event.name);
            for kv in &event.attributes {
                message(out, 3, |out| key_value(out, kv));
            }
            uint(out, 4, u64::from(event.dropped_attributes_count));
        });
    }
    uint(out, 12, u64::from(span.events.dropped_count));
    for link in span.links.iter() {
        let lcx = &link.span_context;
        message(out, 13, |out| {
            bytes(out, 1, &lcx.trace_id().to_bytes());
            bytes(out, 2, &lcx.span_id().to_bytes());
            trace_state(out, 3, lcx.trace_state());
            for kv in &link.attributes {
                message(out, 4, |out| key_value(out, kv));
            }
            uint(out, 5, u64::from(link.dropped_attributes_count));
            fixed32(out, 6, flags(lcx.is_remote(), lcx.trace_flags().to_u8()));
        });
    }
    uint(out, 14, u64::from(span.links.dropped_count));
    message(out, 15, |out| match &span.status {
        Status::Unset => {}
        Status::Ok => uint(out, 3, 1),
        Status::Error { description } => {
            string(out, 2, description);
            uint(out, 3, 2);
        }
    });
    fixed32(
        out,
        16,
        flags(span.parent_span_is_remote, cx.trace_flags().to_u8()),
    );
}

fn flags(remote: bool, trace_flags: u8) -> u32 {
    let mut flags = u32::from(trace_flags) | CONTEXT_HAS_IS_REMOTE;
    if remote {
        flags |= CONTEXT_IS_REMOTE;
    }
    flags
}

fn span_kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// Nanoseconds since the epoch; a time before it counts as 0, as OTLP has
/// no earlier instant.
fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Only a non-empty state allocates its header.
fn trace_state(out: &mut Vec<u8>, field: u32, state: &TraceState) {
    if *state != TraceState::NONE {
        string(out, field, &state.header());
    }
}

fn key_value(out: &mut Vec<u8>, kv: &KeyValue) {
    string(out, 1, kv.key.as_str());
    message(out, 2, |out| any_value(out, &kv.value));
}

/// An `AnyValue`'s body. A oneof member is written even when it holds its
/// type's default: that is how the reader knows which one is set.
fn any_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(b) => oneof_varint(out, 2, u64::from(*b)),
        // int64 is the two's complement as a 64-bit varint.
        Value::I64(i) => oneof_varint(out, 3, *i as u64),
        Value::F64(f) => {
            tag(out, 4, FIXED64);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::String(s) => oneof_string(out, 1, s.as_str()),
        Value::Array(array) => message(out, 5, |out| match array {
            Array::Bool(values) => array_values(out, values, |b| Value::Bool(*b)),
            Array::I64(values) => array_values(out, values, |i| Value::I64(*i)),
            Array::F64(values) => array_values(out, values, |f| Value::F64(*f)),
            Array::String(values) => {
                for s in values {
                    message(out, 1, |out| oneof_string(out, 1, s.as_str()));
                }
            }
            // A kind of array added to the API later: its text.
            other => message(out, 1, |out| oneof_string(out, 1, &other.to_string())),
        }),
        // A kind of value added to the API later: its text.
        other => oneof_string(out, 1, &other.to_string()),
    }
}

fn array_values<T>(out: &mut Vec<u8>, values: &[T], value: impl Fn(&T) -> Value) {
    for v in values {
        message(out, 1, |out| any_value(out, &value(v)));
    }
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from(field << 3 | wire));
}

fn varint(out: &mut Vec<u8>, v: u64) {
    let (bytes, n) = varint_bytes(v);
    out.extend_from_slice(&bytes[..n]);
}

/// `v` as a varint: its bytes and how many of them there are (at most 10).
fn varint_bytes(mut v: u64) -> ([u8; 10], usize) {
    let mut bytes = [0; 10];
    let mut n = 0;
    while v >= 0x80 {
        bytes[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    bytes[n] = v as u8;
    (bytes, n + 1)
}

/// A length-delimited field whose body `body` writes: the length is known
/// only afterwards, so one byte is set aside for it and the body moved up
/// in the rare case it needs more (a body of 128 bytes or more).
fn message(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    tag(out, field, LEN);
    out.push(0);
    let start = out.len();
    body(out);
    let len = out.len() - start;
    if len < 0x80 {
        out[start - 1] = len as u8;
    } else {
        let (prefix, n) = varint_bytes(len as u64);
        out.splice(start - 1..start, prefix[..n].iter().copied());
    }
}

/// proto3 leaves fields at their default out.
fn string(out: &mut Vec<u8>, field: u32, s: &str) {
    bytes(out, field, s.as_bytes());
}

fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    if !b.is_empty() {
        tag(out, field, LEN);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
}

fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        oneof_varint(out, field, v);
    }
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        tag(out, field, FIXED64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn fixed32(out: &mut Vec<u8>, field: u32, v: u32) {
    if v != 0 {
        tag(out, field, FIXED32);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn oneof_varint(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, VARINT);
    varint(out, v);
}

fn oneof_string(out: &mut Vec<u8>, field: u32, s: &str) {
    tag(out, field, LEN);
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// The number of spans an `ExportTraceServiceResponse` says the collector
/// rejected (`partial_success.rejected_spans`), and its message; `None`
/// for an empty or unreadable answer (which is a full success).
pub(super) fn rejected_spans(response: &[u8]) -> Option<(u64, String)> {
    let partial =
        fields(response)
            .find(|(field, _)| *field == 1)
            .and_then(|(_, value)| match value {
                Field::Len(body) => Some(body),
                Field::Varint(_) | Field::Fixed => None,
            })?;
    let mut rejected = 0;
    let mut message = String::new();
    for (field, value) in fields(partial) {
        match (field, value) {
            (1, Field::Varint(n)) => rejected = n,
            (2, Field::Len(text)) => message = String::from_utf8_lossy(text).into_owned(),
            _ => {}
        }
    }
    (rejected > 0 || !message.is_empty()).then_some((rejected, message))
}

enum Field<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Fixed,
}

/// The top-level fields of a protobuf message; stops at the first byte it
/// cannot read.
fn fields(mut input: &[u8]) -> impl Iterator<Item = (u64, Field<'_>)> {
    std::iter::from_fn(move || {
        let key = read_varint(&mut input)?;
        let value = match key & 7 {
            0 => Field::Varint(read_varint(&mut input)?),
            1 => {
                input = input.get(8..)?;
                Field::Fixed
            }
            2 => {
                let len = usize::try_from(read_varint(&mut input)?).ok()?;
                let body = input.get(..len)?;
                input = input.get(len..)?;
                Field::Len(body)
            }
            5 => {
                input = input.get(4..)?;
                Field::Fixed
            }
            _ => return None,
        };
        Some((key >> 3, value))
    })
}

fn read_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, byte) in input.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *input = &input[i + 1..];
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests;
