//! What the hand-written encoder produces must decode, with the generated
//! OTLP types, to exactly what the reference conversion of the same spans
//! gives (`opentelemetry-proto`'s, which the official exporter uses).

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use proptest::prelude::*;
use prost::Message as _;

use super::*;

fn reference(resource: &Resource, spans: &[SpanData]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(
            spans.to_vec(),
            &ResourceAttributesWithSchema::from(resource),
        ),
    }
}

fn ours(resource: &Resource, spans: &[SpanData]) -> ExportTraceServiceRequest {
    let mut body = Vec::new();
    encode_request(&EncodedResource::new(resource), spans, &mut body);
    match ExportTraceServiceRequest::decode(body.as_slice()) {
        Ok(request) => request,
        Err(e) => panic!("the encoded request does not decode: {e}"),
    }
}

fn context(trace: u128, span: u64, flags: u8, remote: bool, state: &str) -> SpanContext {
    let state = TraceState::from_key_value(
        state
            .split(',')
            .filter(|kv| !kv.is_empty())
            .filter_map(|kv| kv.split_once('=')),
    )
    .unwrap_or_default();
    SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        TraceFlags::new(flags),
        remote,
        state,
    )
}

fn at(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

fn span(name: &'static str, scope: &InstrumentationScope) -> SpanData {
    SpanData {
        span_context: context(7, 9, 1, false, ""),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: Cow::Borrowed(name),
        start_time: at(1_000),
        end_time: at(2_000),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: scope.clone(),
    }
}

#[test]
fn a_batch_of_every_kind_of_field_decodes_to_the_reference_conversion() {
    let pybridge = InstrumentationScope::builder("pybridge").build();
    let other = InstrumentationScope::builder("other")
        .with_version("1.2.3")
        .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
        .with_attributes([KeyValue::new("scope.attr", true)])
        .build();
    let mut full = span("jsonrpc.call", &pybridge);
    full.span_context = context(u128::MAX - 3, 0x0102_0304_0506_0708, 1, true, "a=1,b=two");
    full.parent_span_id = SpanId::from(42);
    full.parent_span_is_remote = true;
    full.span_kind = SpanKind::Server;
    full.start_time = at(1_700_000_000_123_456_789);
    full.end_time = at(1_700_000_000_223_456_789);
    full.attributes = vec![
        KeyValue::new("rpc.method", "m".repeat(300)),
        KeyValue::new("jsonrpc.request.id", -5_i64),
        KeyValue::new("ratio", 0.25),
        KeyValue::new("hit", false),
        KeyValue::new("empty", ""),
        KeyValue::new("", "no key"),
        KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
        KeyValue::new("ints", Value::Array(Array::I64(vec![i64::MIN, 0, 1]))),
        KeyValue::new("floats", Value::Array(Array::F64(vec![-0.5, 1e300]))),
        KeyValue::new(
            "strings",
            Value::Array(Array::String(vec![StringValue::from("x"), "".into()])),
        ),
        KeyValue::new("no ints", Value::Array(Array::I64(Vec::new()))),
    ];
    full.dropped_attributes_count = 3;
    let mut events = SpanEvents::default();
    events.events = vec![
        Event::new("warn", at(1_500), vec![KeyValue::new("level", "WARN")], 1),
        Event::new("", UNIX_EPOCH, Vec::new(), 0),
    ];
    events.dropped_count = 2;
    full.events = events;
    let mut links = SpanLinks::default();
    links.links = vec![Link::new(
        context(5, 6, 0, true, "k=v"),
        vec![KeyValue::new("link", 1_i64)],
        4,
    )];
    links.dropped_count = 1;
    full.links = links;
    full.status = Status::error("the worker failed");
    let mut ok = span("worker.call", &other);
    ok.status = Status::Ok;
    ok.span_kind = SpanKind::Client;
    let mut before_epoch = span("attempt", &pybridge);
    before_epoch.start_time = UNIX_EPOCH - Duration::from_secs(1);
    before_epoch.span_kind = SpanKind::Consumer;
    let mut producer = span("p", &other);
    producer.span_kind = SpanKind::Producer;
    let batch = vec![full, ok, before_epoch, producer];

    let resource = Resource::builder()
        .with_service_name("checkout")
        .with_attribute(KeyValue::new("deployment.environment", "test"))
        .with_schema_url(
            Vec::<KeyValue>::new(),
            "https://opentelemetry.io/schemas/1.30.0",
        )
        .build();
    let decoded = ours(&resource, &batch);
    assert_eq!(decoded, reference(&resource, &batch));
    let scopes = &decoded.resource_spans[0].scope_spans;
    assert_eq!(scopes.len(), 2, "one ScopeSpans per scope");
    assert_eq!(scopes[0].spans.len(), 2, "pybridge's spans are grouped");

    let empty = Resource::builder_empty().build();
    assert_eq!(ours(&empty, &[]), reference(&empty, &[]));
}

#[test]
fn a_body_of_any_length_gets_its_length_in_as_many_bytes_as_it_needs() {
    // Lengths around each varint boundary, in a nested message.
    for len in [0, 1, 126, 127, 128, 129, 16_383, 16_384, 70_000] {
        let mut out = vec![0xAA];
        message(&mut out, 3, |out| {
            message(out, 1, |out| out.extend(std::iter::repeat_n(7, len)));
        });
        let mut expected = vec![0xAA, 3 << 3 | 2];
        let mut inner = vec![1 << 3 | 2];
        varint(&mut inner, len as u64);
        inner.extend(std::iter::repeat_n(7, len));
        varint(&mut expected, inner.len() as u64);
        expected.extend(inner);
        assert_eq!(out, expected, "a body of {len} bytes");
    }
}

#[test]
fn a_partial_success_gives_the_rejected_count_and_message() {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };
    let answer = |rejected_spans, error_message: &str| {
        ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans,
                error_message: error_message.to_string(),
            }),
        }
        .encode_to_vec()
    };
    assert_eq!(
        rejected_spans(&answer(3, "too old")),
        Some((3, "too old".to_string()))
    );
    assert_eq!(
        rejected_spans(&answer(0, "slow down")),
        Some((0, "slow down".into()))
    );
    assert_eq!(
        rejected_spans(&answer(0, "")),
        None,
        "an empty partial success"
    );
    assert_eq!(
        rejected_spans(&[]),
        None,
        "an empty answer is a full success"
    );
    assert_eq!(
        rejected_spans(b"{\"partialSuccess\":{}}"),
        None,
        "not protobuf"
    );
    assert_eq!(rejected_spans(&[0x0A, 0x05, 0x08]), None, "cut short");
    let mut long = answer(1_000_000, "x");
    long.extend([0x10, 0x01]);
    assert_eq!(rejected_spans(&long).map(|r| r.0), Some(1_000_000));
}

fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::I64),
        (-1e12..1e12_f64).prop_map(Value::F64),
        ".{0,140}".prop_map(|s| Value::String(s.into())),
        proptest::collection::vec(any::<i64>(), 0..4).prop_map(|v| Value::Array(Array::I64(v))),
        proptest::collection::vec(".{0,8}", 0..4).prop_map(|v| Value::Array(Array::String(
            v.into_iter().map(StringValue::from).collect()
        ))),
    ]
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    proptest::collection::vec(("[a-z._]{0,12}", any_value()), 0..6)
        .prop_map(|kvs| kvs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect())
}

fn span_data() -> impl Strategy<Value = SpanData> {
    (
        (
            any::<u128>(),
            1..u64::MAX,
            any::<u8>(),
            any::<bool>(),
            "([a-z]{1,4}=[a-z0-9]{1,4},){0,3}",
        ),
        (
            any::<u64>(),
            any::<bool>(),
            0..5_u8,
            "[a-z.]{0,20}",
            any::<u64>(),
            any::<u32>(),
        ),
        (attributes(), any::<u32>()),
        proptest::collection::vec(
            ("[a-z]{0,6}", any::<u64>(), attributes(), any::<u32>()),
            0..3,
        ),
        proptest::collection::vec(
            (
                (any::<u128>(), 1..u64::MAX, any::<u8>(), any::<bool>()),
                attributes(),
            ),
            0..2,
        ),
        (0..3_u8, ".{0,20}", 0..2_u8),
    )
        .prop_map(
            |(
                cx,
                (parent, remote, kind, name, start, length),
                (attrs, dropped),
                events,
                links,
                (status, why, scope),
            )| {
                let scope = if scope == 0 {
                    InstrumentationScope::builder("pybridge").build()
                } else {
                    InstrumentationScope::builder("app")
                        .with_version("2")
                        .build()
                };
                let mut data = span("", &scope);
                data.span_context = context(cx.0, cx.1, cx.2, cx.3, &cx.4);
                data.parent_span_id = SpanId::from(parent);
                data.parent_span_is_remote = remote;
                data.span_kind = [
                    SpanKind::Internal,
                    SpanKind::Server,
                    SpanKind::Client,
                    SpanKind::Producer,
                    SpanKind::Consumer,
                ][usize::from(kind)]
                .clone();
                data.name = Cow::Owned(name);
                data.start_time = at(start / 2);
                data.end_time = at(start / 2 + u64::from(length));
                data.attributes = attrs;
                data.dropped_attributes_count = dropped;
                data.events.events = events
                    .into_iter()
                    .map(|(name, t, attrs, dropped)| Event::new(name, at(t / 2), attrs, dropped))
                    .collect();
                data.links.links = links
                    .into_iter()
                    .map(|((t, s, f, r), attrs)| Link::new(context(t, s, f, r, ""), attrs, 0))
                    .collect();
                data.status = match status {
                    0 => Status::Unset,
                    1 => Status::Ok,
                    _ => Status::error(why),
                };
                data
            },
        )
}

proptest! {
    #[test]
    fn any_batch_decodes_to_the_reference_conversion(
        batch in proptest::collection::vec(span_data(), 0..6),
    ) {
        let resource = Resource::builder().with_service_name("svc").build();
        prop_assert_eq!(ours(&resource, &batch), reference(&resource, &batch));
    }
}
