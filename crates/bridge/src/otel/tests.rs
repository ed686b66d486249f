//! Unit tests of the trace context formats and the export queue's gate.

use tracing_subscriber::layer::SubscriberExt;

use super::*;

#[test]
fn a_base_address_gets_the_traces_path_and_a_full_url_is_kept() {
    for (given, expected) in [
        ("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"),
        ("http://127.0.0.1:4318/", "http://127.0.0.1:4318/v1/traces"),
        ("http://c:4318/v1/traces", "http://c:4318/v1/traces"),
        ("https://c/otlp", "https://c/otlp/v1/traces"),
    ] {
        assert_eq!(traces_url(given), expected, "{given}");
    }
}

#[test]
fn the_gate_holds_its_bound_and_releases_what_was_exported() {
    let gate = Gate {
        pending: AtomicUsize::new(0),
        capacity: 2,
    };
    assert!(gate.try_take() && gate.try_take());
    assert!(!gate.try_take(), "the third span finds the queue full");
    drop(exporter::Release { gate: &gate, n: 2 });
    assert!(gate.try_take(), "an export frees its spans' places");
    gate.release(10);
    assert_eq!(gate.pending.load(Ordering::Relaxed), 0, "never below zero");
}

#[test]
fn without_an_opentelemetry_layer_a_span_has_no_wire_context() {
    assert!(WireContext::of(&tracing::Span::none()).is_none());
    let subscriber = tracing_subscriber::registry();
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("plain");
        assert!(WireContext::of(&span).is_none());
        assert!(ids(&span).is_none());
    });
}

#[test]
fn a_traced_span_gives_its_own_traceparent_and_keeps_the_callers_trace() {
    let spans = layer::tests::Collect::default();
    let subscriber = tracing_subscriber::registry().with(spans.layer(1.0));
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("call");
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        set_parent_from(&span, |name| match name {
            "traceparent" => Some(parent),
            "tracestate" => Some("vendor=value"),
            _ => None,
        });
        let wire = WireContext::of(&span).expect("a traced span has a context");
        let meta = wire.meta();
        let traceparent = meta.traceparent.expect("a traceparent");
        assert_eq!(traceparent.len(), 55);
        assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(traceparent.ends_with("-01"));
        assert_ne!(
            &traceparent[36..52],
            "00f067aa0ba902b7",
            "the span's own id"
        );
        assert_eq!(meta.tracestate, Some("vendor=value"));
        let (trace_id, span_id) = ids(&span).expect("ids");
        assert_eq!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span_id, &traceparent[36..52]);

        let root = tracing::info_span!("root");
        set_parent_from(&root, |_| Some("not a traceparent"));
        let meta = WireContext::of(&root).expect("a root has a context");
        assert_eq!(meta.meta().tracestate, None, "no empty tracestate");
        assert!(!meta.meta().traceparent.expect("set").contains("4bf92f35"));
    });
}

/// Allocations made by `f` on this thread, after one warm-up run.
fn allocations(mut f: impl FnMut()) -> u64 {
    f();
    allocation_counter::measure(f).count_total
}

#[test]
fn an_untraced_call_pays_no_allocation_for_its_trace_context() {
    let none = tracing::Span::none();
    assert_eq!(allocations(|| assert!(WireContext::of(&none).is_none())), 0);
    // A span that a log layer sees but no OpenTelemetry layer does.
    tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        let span = tracing::info_span!("logged only");
        assert_eq!(allocations(|| assert!(WireContext::of(&span).is_none())), 0);
    });
    // And the frame without `_meta`.
    let mut out = Vec::with_capacity(256);
    let id = pybridge_protocol::Id::Number(1);
    assert_eq!(
        allocations(|| {
            out.clear();
            pybridge_protocol::write_request_with_meta(&mut out, &id, "m", None, None);
        }),
        0
    );
}

#[test]
fn the_head_sampling_draw_keeps_about_its_ratio() {
    let kept = |ratio: f64| (0..100_000).filter(|_| draw(threshold(ratio))).count();
    assert_eq!(threshold(1.0), u64::MAX, "a ratio of 1 never draws");
    assert_eq!(kept(0.0), 0);
    let one_percent = kept(0.01);
    assert!(
        (700..1300).contains(&one_percent),
        "1 % of 100,000 draws kept {one_percent}"
    );
}

/// Runs `f` under a subscriber whose only layer is trace export (to a port
/// nothing listens on: nothing here waits for the export).
fn with_trace_export(f: impl FnOnce()) {
    with_trace_export_at(None, f);
}

/// [`with_trace_export`] with `telemetry.sample_ratio` set to `ratio`.
fn with_trace_export_at(ratio: Option<f64>, f: impl FnOnce()) {
    let config = TelemetryConfig {
        otlp_endpoint: Some("http://127.0.0.1:9".into()),
        sample_ratio: ratio,
        ..TelemetryConfig::default()
    };
    let telemetry = Telemetry::from_config(&config).expect("an exporter");
    let layer = telemetry.layer().expect("export is on");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
}

#[test]
fn spans_of_a_call_left_out_and_of_connections_never_reach_the_exporter() {
    with_trace_export(|| {
        let call = pybridge_service::telemetry::untraced_call_span(1, "m", "m");
        assert!(
            WireContext::of(&call).is_none(),
            "a call left out is not traced"
        );
        let connection = tracing::debug_span!(target: "pybridge::serve::connections", "connection");
        assert!(
            WireContext::of(&connection).is_none(),
            "no trace per connection"
        );
    });
}

#[test]
fn a_kept_calls_attempt_and_round_trip_join_its_trace_without_being_entered() {
    with_trace_export(|| {
        use pybridge_service::telemetry::{attempt_span, call_span, worker_span};
        let call = call_span(2, "m", "m");
        assert!(is_traced(&call), "a call kept is traced");
        let attempt = attempt_span(&call, 1, 2);
        let worker = worker_span(&attempt, 2, "m");
        let (trace, call_id) = ids(&call).expect("the call's ids");
        let (attempt_trace, attempt_id) = ids(&attempt).expect("the attempt's ids");
        let (worker_trace, worker_id) = ids(&worker).expect("the round trip's ids");
        assert_eq!((&attempt_trace, &worker_trace), (&trace, &trace));
        assert!(call_id != attempt_id && attempt_id != worker_id);
        let wire = WireContext::of(&worker).expect("the round trip's context");
        assert_eq!(
            wire.meta().traceparent,
            Some(format!("00-{trace}-{worker_id}-01").as_str()),
            "a worker continues the round trip's span"
        );
        assert_eq!(ENTERED.with(Cell::get), 0, "nothing was entered");
    });
}

#[test]
fn the_current_span_is_traced_only_inside_a_span_that_export_sees() {
    with_trace_export(|| {
        assert!(!in_traced_span(), "no span entered");
        let call = pybridge_service::telemetry::call_span(1, "m", "m");
        call.in_scope(|| {
            assert!(in_traced_span(), "inside a kept call");
            let left_out = pybridge_service::telemetry::untraced_call_span(2, "m", "m");
            left_out.in_scope(|| assert!(!in_traced_span(), "a span export ignores"));
            assert!(in_traced_span(), "back in the kept call");
            assert!(keep_call(), "a call inside a trace follows it");
        });
        assert!(!in_traced_span(), "the call's span exited");
        assert_eq!(ENTERED.with(Cell::get), 0, "every enter was matched");
    });
}

#[test]
fn at_a_ratio_of_zero_only_a_call_inside_a_trace_is_kept() {
    with_trace_export_at(Some(0.0), || {
        assert!(!(0..1000).any(|_| keep_call()), "no call starts a trace");
        // An application's span (a target of its own), continuing a caller's trace.
        let caller = tracing::info_span!(target: "app", "caller");
        set_parent_from(&caller, |name| {
            (name == "traceparent")
                .then_some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        });
        caller.in_scope(|| assert!(keep_call(), "a call inside a trace follows it"));
    });
}

#[test]
fn without_trace_export_in_the_subscriber_every_call_is_kept() {
    tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        assert!((0..1000).all(|_| keep_call()));
        let span = tracing::info_span!("logged only");
        span.in_scope(|| assert!(!in_traced_span()));
    });
}

#[test]
fn after_shutdown_spans_get_no_context_and_take_no_place_in_the_queue() {
    let config = TelemetryConfig {
        otlp_endpoint: Some("http://127.0.0.1:9".into()),
        ..TelemetryConfig::default()
    };
    let telemetry = Telemetry::from_config(&config).expect("an exporter");
    let layer = telemetry.layer().expect("export is on");
    let gate = Arc::clone(&telemetry.inner.as_deref().expect("on").processor.gate);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let open = pybridge_service::telemetry::call_span(1, "m", "m");
        assert!(WireContext::of(&open).is_some(), "traced before shutdown");
        assert!(telemetry.shutdown(), "nothing was queued");
        assert!(
            !telemetry.shutdown(),
            "a second shutdown neither waits nor succeeds"
        );
        // A span decided before shutdown closes after it: not queued.
        drop(open);
        for n in 0..10 {
            let call = pybridge_service::telemetry::call_span(n, "m", "m");
            assert!(WireContext::of(&call).is_none(), "no trace for a worker");
            assert!(ids(&call).is_none());
        }
        assert_eq!(gate.pending.load(Ordering::Relaxed), 0, "no place taken");
    });
}
