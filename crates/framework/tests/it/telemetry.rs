//! Telemetry names, and what the service records through the facades.

use std::sync::{Arc, Mutex};

use pybridge_service::Mode;
use pybridge_service::telemetry::{self, CacheTier, CallGuard, MethodMetrics, Outcome, Rejection};

use pybridge_test_support::recorder::TestRecorder;

use crate::{raw, service, service_with};

#[test]
fn metric_names_follow_the_convention_and_buckets_increase() {
    for name in [
        telemetry::CALLS_TOTAL,
        telemetry::CALL_DURATION_SECONDS,
        telemetry::CALLS_IN_FLIGHT,
        telemetry::VALIDATION_FAILURES_TOTAL,
        telemetry::INVALID_RESULTS_TOTAL,
        telemetry::CACHE_LOOKUPS_TOTAL,
    ] {
        assert!(name.starts_with("pybridge_service_"), "{name}");
        assert!(
            name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{name}"
        );
    }
    let buckets = telemetry::LATENCY_BUCKETS_SECONDS;
    assert!(buckets.windows(2).all(|w| w[0] < w[1]));
    assert!(
        buckets[buckets.len() - 1] >= 120.0,
        "covers the generation timeout"
    );
    assert_eq!(
        [Outcome::Ok, Outcome::Timeout, Outcome::Cancelled].map(Outcome::as_str),
        ["ok", "timeout", "cancelled"]
    );
    assert_eq!(
        [
            CacheTier::L1,
            CacheTier::L2,
            CacheTier::Miss,
            CacheTier::Bypass
        ]
        .map(CacheTier::as_str),
        ["l1", "l2", "miss", "bypass"]
    );
    assert_eq!(
        [
            Rejection::Limit,
            Rejection::Schema,
            Rejection::UnknownMethod
        ]
        .map(Rejection::as_str),
        ["limit", "schema", "unknown_method"]
    );
}

#[test]
fn rejections_are_counted_by_method_and_reason() {
    let recorder = TestRecorder::default();
    metrics::with_local_recorder(&recorder, || {
        let service = service();
        let _ = service.prepare("pattern_learning.find_similar", Some(&raw("{}")));
        let _ = service.prepare(
            "pattern_learning.find_similar",
            Some(&raw(r#"{"__proto__":1}"#)),
        );
        let _ = service.prepare("some.unknown", Some(&raw(r#"{"constructor":1}"#)));
        let _ = service_with(|b| b.mode(Mode::Strict)).prepare("some.unknown", None);
        assert!(
            service
                .prepare(
                    "pattern_learning.find_similar",
                    Some(&raw(r#"{"description":"long enough text"}"#))
                )
                .is_ok()
        );
    });
    let name = telemetry::VALIDATION_FAILURES_TOTAL;
    assert_eq!(
        recorder.get(&format!(
            "{name}{{method=pattern_learning.find_similar,reason=schema}}"
        )),
        Some(1.0)
    );
    assert_eq!(
        recorder.get(&format!(
            "{name}{{method=pattern_learning.find_similar,reason=limit}}"
        )),
        Some(1.0)
    );
    // Arbitrary names never become label values.
    assert_eq!(
        recorder.get(&format!("{name}{{method=_pass_through,reason=limit}}")),
        Some(1.0)
    );
    assert_eq!(
        recorder.get(&format!("{name}{{method=_unknown,reason=unknown_method}}")),
        Some(1.0)
    );
    assert_eq!(recorder.len(), 4, "nothing else recorded");
}

#[test]
fn call_guard_records_outcome_latency_and_in_flight_even_when_dropped() {
    let recorder = TestRecorder::default();
    metrics::with_local_recorder(&recorder, || {
        let first = CallGuard::start("test.echo");
        let second = CallGuard::start("test.echo");
        assert_eq!(
            recorder.get("pybridge_service_calls_in_flight{method=test.echo}"),
            Some(2.0)
        );
        first.finish(Outcome::Ok);
        drop(second);
        telemetry::record_cache("test.echo", CacheTier::Bypass);
    });
    assert_eq!(
        recorder.get("pybridge_service_calls_in_flight{method=test.echo}"),
        Some(0.0)
    );
    assert_eq!(
        recorder.get("pybridge_service_calls_total{method=test.echo,outcome=ok}"),
        Some(1.0)
    );
    assert_eq!(
        recorder.get("pybridge_service_calls_total{method=test.echo,outcome=cancelled}"),
        Some(1.0)
    );
    assert_eq!(
        recorder.get("pybridge_service_call_duration_seconds{method=test.echo,outcome=ok}"),
        Some(1.0)
    );
    assert_eq!(
        recorder.get("pybridge_service_cache_lookups_total{method=test.echo,tier=bypass}"),
        Some(1.0)
    );
}

/// A subscriber that records the field names of every new span.
#[derive(Default)]
struct SpanFields {
    spans: Mutex<Vec<(String, Vec<String>)>>,
}

impl tracing::Subscriber for SpanFields {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let fields = span
            .metadata()
            .fields()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        let mut spans = self.spans.lock().expect("not poisoned");
        spans.push((span.metadata().name().to_owned(), fields));
        tracing::span::Id::from_u64(spans.len() as u64)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn call_span_has_every_field() {
    let subscriber = Arc::new(SpanFields::default());
    tracing::subscriber::with_default(Arc::clone(&subscriber), || {
        let span = telemetry::call_span(42, "test.echo", "test.echo");
        span.record(telemetry::fields::ATTEMPT, 1);
    });
    let spans = subscriber.spans.lock().expect("not poisoned");
    let (name, fields) = &spans[0];
    assert_eq!(name, telemetry::fields::CALL_SPAN);
    use telemetry::fields as f;
    assert_eq!(
        fields,
        &[
            f::CORRELATION_ID,
            f::METHOD,
            f::WIRE_METHOD,
            f::RPC_SYSTEM_NAME,
            f::RPC_METHOD,
            f::JSONRPC_REQUEST_ID,
            f::ATTEMPT,
            f::WORKER,
            f::CACHE_TIER,
            f::BREAKER,
            f::OUTCOME,
            f::ERROR_TYPE,
            f::OTEL_STATUS_CODE
        ]
        .map(str::to_owned)
    );
}

#[test]
fn a_methods_handles_are_registered_once_and_shared_by_its_calls() {
    let recorder = TestRecorder::default();
    let metrics = MethodMetrics::new("test.echo");
    metrics::with_local_recorder(&recorder, || {
        for _ in 0..3 {
            CallGuard::start_for(&metrics).finish(Outcome::Ok);
        }
        let pending = CallGuard::start_for(&metrics);
        assert_eq!(
            recorder.get("pybridge_service_calls_in_flight{method=test.echo}"),
            Some(1.0)
        );
        pending.finish(Outcome::Timeout);
        drop(CallGuard::start_for(&metrics));
    });
    let value = |key: &str| recorder.get(key);
    assert_eq!(
        value("pybridge_service_calls_total{method=test.echo,outcome=ok}"),
        Some(3.0)
    );
    assert_eq!(
        value("pybridge_service_call_duration_seconds{method=test.echo,outcome=ok}"),
        Some(3.0)
    );
    assert_eq!(
        value("pybridge_service_calls_total{method=test.echo,outcome=timeout}"),
        Some(1.0)
    );
    assert_eq!(
        value("pybridge_service_calls_total{method=test.echo,outcome=cancelled}"),
        Some(1.0)
    );
    assert_eq!(
        value("pybridge_service_calls_in_flight{method=test.echo}"),
        Some(0.0)
    );
    // The gauge, then a counter and a histogram per outcome seen: five
    // calls, three outcomes, seven handles, each registered once.
    assert_eq!(recorder.registered(), 7);
}

#[test]
fn pass_through_calls_share_one_set_of_handles() {
    let service = service();
    let recorder = TestRecorder::default();
    metrics::with_local_recorder(&recorder, || {
        for method in ["src.a.one", "src.b.two", "src.a.one"] {
            let prepared = service.prepare(method, None).expect("pass-through");
            CallGuard::start_for(prepared.spec().metrics()).finish(Outcome::Ok);
        }
    });
    assert_eq!(
        recorder.get("pybridge_service_calls_total{method=_pass_through,outcome=ok}"),
        Some(3.0)
    );
    // The gauge, the counter and the histogram: once for every call.
    assert_eq!(recorder.registered(), 3);
}
