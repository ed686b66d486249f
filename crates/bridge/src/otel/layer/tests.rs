//! The layer against a processor that keeps what it is given.

use std::sync::Mutex;

use opentelemetry::trace::SpanId;

use opentelemetry_sdk::error::OTelSdkResult;
use tracing_subscriber::Registry;

use super::*;

/// A span processor that keeps every span it is handed.
#[derive(Debug, Default, Clone)]
pub(crate) struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl Collect {
    /// A layer for a plain registry that sends its spans here.
    pub(crate) fn layer(&self, ratio: f64) -> TraceLayer {
        TraceLayer::new::<Registry>(
            Arc::new(self.clone()),
            Arc::new(AtomicBool::new(false)),
            "test",
            ratio,
        )
    }

    pub(crate) fn spans(&self) -> Vec<SpanData> {
        self.0.lock().map(|spans| spans.clone()).unwrap_or_default()
    }
}

impl SpanProcessor for Collect {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if let Ok(mut spans) = self.0.lock() {
            spans.push(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: std::time::Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Runs `f` under a registry with a [`Collect`] layer at `ratio`, and
/// returns the spans it exported.
fn exported(ratio: f64, f: impl FnOnce()) -> Vec<SpanData> {
    use tracing_subscriber::layer::SubscriberExt;
    let spans = Collect::default();
    let subscriber = tracing_subscriber::registry().with(spans.layer(ratio));
    tracing::subscriber::with_default(subscriber, f);
    spans.spans()
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name} in {:?}", names(spans)))
}

fn names(spans: &[SpanData]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_ref()).collect()
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn from_caller(span: &tracing::Span, traceparent: &'static str) {
    super::super::set_parent_from(span, |name| match name {
        "traceparent" => Some(traceparent),
        "tracestate" => Some("vendor=value"),
        _ => None,
    });
}

#[test]
fn a_span_tree_keeps_its_parents_names_kinds_and_typed_attributes() {
    let spans = exported(1.0, || {
        let request = tracing::info_span!(
            "request",
            otel.kind = "server",
            otel.name = "GET /orders",
            code = tracing::field::Empty,
            retried = false,
            share = 0.25,
            route = ?("orders", 1),
            huge = u64::MAX,
        );
        request.record("code", 200_u16);
        request.record("code", 201_u16);
        let explicit = tracing::info_span!(parent: &request, "explicit");
        let contextual = request.in_scope(|| tracing::info_span!("contextual", who = "me"));
        drop((explicit, contextual));
        let root = tracing::info_span!(parent: None, "detached");
        drop(root);
    });
    assert_eq!(spans.len(), 4, "{:?}", names(&spans));
    let request = named(&spans, "GET /orders");
    assert_eq!(request.span_kind, SpanKind::Server);
    assert_eq!(request.parent_span_id, SpanId::INVALID);
    assert_eq!(request.instrumentation_scope.name(), "test");
    // Integers as integers, recorded again replaced, `Debug` as text.
    assert_eq!(attribute(request, "code"), Some(&Value::I64(201)));
    assert_eq!(
        request
            .attributes
            .iter()
            .filter(|kv| kv.key.as_str() == "code")
            .count(),
        1
    );
    assert_eq!(attribute(request, "retried"), Some(&Value::Bool(false)));
    assert_eq!(attribute(request, "share"), Some(&Value::F64(0.25)));
    assert_eq!(
        attribute(request, "route"),
        Some(&Value::from("(\"orders\", 1)".to_owned()))
    );
    assert_eq!(
        attribute(request, "huge"),
        Some(&Value::from(u64::MAX.to_string()))
    );
    assert!(
        attribute(request, "otel.kind").is_none(),
        "a convention, not an attribute"
    );
    let request_id = request.span_context.span_id();
    let trace = request.span_context.trace_id();
    for child in ["explicit", "contextual"] {
        let span = named(&spans, child);
        assert_eq!(span.parent_span_id, request_id, "{child}");
        assert_eq!(span.span_context.trace_id(), trace, "{child}");
        assert!(!span.parent_span_is_remote);
    }
    assert_eq!(
        attribute(named(&spans, "contextual"), "who"),
        Some(&Value::from("me".to_owned()))
    );
    let detached = named(&spans, "detached");
    assert_ne!(detached.span_context.trace_id(), trace, "a root of its own");
}

#[test]
fn a_callers_context_decides_a_root_until_its_context_is_first_used() {
    let spans = exported(1.0, || {
        let request = tracing::info_span!("request");
        from_caller(&request, CALLER);
        let child = tracing::info_span!(parent: &request, "child");
        // Too late: the request's context was decided when its child opened.
        from_caller(
            &request,
            "00-11111111111111111111111111111111-2222222222222222-01",
        );
        drop(child);
    });
    let request = named(&spans, "request");
    assert_eq!(
        request.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(request.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert!(request.parent_span_is_remote);
    assert_eq!(request.span_context.trace_state().header(), "vendor=value");
    let child = named(&spans, "child");
    assert_eq!(
        child.span_context.trace_id(),
        request.span_context.trace_id()
    );
    assert_eq!(child.span_context.trace_state().header(), "vendor=value");
}

#[test]
fn a_caller_that_did_not_sample_is_followed_and_nothing_is_exported() {
    let spans = exported(1.0, || {
        let request = tracing::info_span!("request", big = "x");
        from_caller(
            &request,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        );
        let call = pybridge_service::telemetry::call_span(1, "m", "m");
        // A call inside the caller's request follows the caller, not the
        // rule that a call starting a trace is kept.
        let inside = request.in_scope(|| pybridge_service::telemetry::call_span(2, "m", "m"));
        assert!(super::super::span_context(&inside).is_some_and(|cx| !cx.is_sampled()));
        drop(inside);
        let worker = tracing::info_span!(parent: &request, "worker");
        let wire = super::super::WireContext::of(&worker).expect("a context to pass on");
        let traceparent = wire.meta().traceparent.expect("a traceparent");
        assert!(
            traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
                && traceparent.ends_with("-00"),
            "the worker follows the caller's decision: {traceparent}"
        );
        drop(call);
    });
    assert_eq!(
        names(&spans),
        ["pybridge.call"],
        "only the call, a root of its own"
    );
    assert_eq!(spans[0].parent_span_id, SpanId::INVALID);
}

#[test]
fn roots_other_than_calls_are_drawn_by_trace_id_and_calls_are_always_kept() {
    let spans = exported(0.0, || {
        for _ in 0..50 {
            let root = tracing::info_span!("root");
            let child = tracing::info_span!(parent: &root, "child");
            drop((child, root));
            drop(pybridge_service::telemetry::call_span(1, "m", "m"));
        }
    });
    assert_eq!(spans.len(), 50, "{:?}", names(&spans));
    assert!(spans.iter().all(|s| s.name == "pybridge.call"));
    let spans = exported(1.0, || drop(tracing::info_span!("root")));
    assert_eq!(names(&spans), ["root"]);
}

#[test]
fn events_become_span_events_and_an_error_marks_the_status() {
    let spans = exported(1.0, || {
        let warned = tracing::info_span!("warned");
        warned.in_scope(|| {
            tracing::warn!(attempt = 2_u32, "worker slow");
            for n in 0..200 {
                tracing::warn!(n, "again");
            }
        });
        let failed = tracing::info_span!("failed");
        failed.in_scope(|| tracing::error!("it broke"));
        let described = tracing::info_span!(
            "described",
            otel.status_code = "ERROR",
            otel.status_description = "no worker"
        );
        let late = tracing::info_span!("late", otel.status_code = tracing::field::Empty);
        let child = tracing::info_span!(parent: &late, "child");
        late.record("otel.status_code", "ERROR");
        let alone = tracing::info_span!("alone", otel.status_description = "refused");
        let kept = tracing::info_span!("kept", otel.kind = "client", other = 1);
        kept.record("otel.kind", "sideways");
        let raised = tracing::info_span!("raised");
        // What `#[instrument(err)]` records: no message, an `error` field.
        raised.in_scope(|| tracing::error!(error = %"disk full"));
        drop((warned, failed, described, late, child, alone, kept, raised));
        tracing::warn!("outside any span");
    });
    let warned = named(&spans, "warned");
    assert_eq!(warned.status, Status::Unset, "a warning is no error");
    let first = &warned.events.events[0];
    assert_eq!(first.name, "worker slow");
    let get = |key: &str| {
        first
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.clone())
    };
    assert_eq!(get("level"), Some(Value::from("WARN")));
    assert_eq!(get("attempt"), Some(Value::I64(2)));
    assert!(get("target").is_some());
    assert_eq!(warned.events.events.len(), MAX_EVENTS);
    assert_eq!(warned.events.dropped_count, 201 - MAX_EVENTS as u32);
    assert_eq!(named(&spans, "failed").status, Status::error(""));
    assert_eq!(
        named(&spans, "described").status,
        Status::error("no worker")
    );
    assert_eq!(
        named(&spans, "late").status,
        Status::error(""),
        "recorded after its context was decided"
    );
    assert_eq!(named(&spans, "alone").status, Status::error("refused"));
    assert_eq!(
        named(&spans, "kept").span_kind,
        SpanKind::Client,
        "not a kind"
    );
    let raised = named(&spans, "raised");
    assert_eq!(raised.status, Status::error("disk full"));
    let exception = &raised.events.events[0];
    assert_eq!(exception.name, "exception");
    assert!(
        exception
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "exception.message"
                && kv.value == Value::from("disk full".to_owned()))
    );
}

#[test]
fn outside_any_span_the_current_opentelemetry_context_is_the_parent() {
    use opentelemetry::trace::{TraceContextExt as _, TraceId};
    let caller = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
        SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
        TraceFlags::SAMPLED,
        false,
        TraceState::NONE,
    );
    let spans = exported(1.0, || {
        let _attached = opentelemetry::Context::new()
            .with_remote_span_context(caller.clone())
            .attach();
        drop(pybridge_service::telemetry::call_span(1, "m", "m"));
        drop(tracing::info_span!(parent: None, "detached"));
    });
    let call = named(&spans, "pybridge.call");
    assert_eq!(call.span_context.trace_id(), caller.trace_id());
    assert_eq!(call.parent_span_id, caller.span_id());
    assert_ne!(
        named(&spans, "detached").span_context.trace_id(),
        caller.trace_id(),
        "an explicit root stays one"
    );
}

#[test]
fn a_span_that_follows_another_links_to_it() {
    let spans = exported(1.0, || {
        let cause = tracing::info_span!("cause");
        let effect = tracing::info_span!(parent: None, "effect");
        effect.follows_from(&cause);
        drop((effect, cause));
    });
    let cause = named(&spans, "cause");
    let effect = named(&spans, "effect");
    assert_eq!(effect.links.links.len(), 1);
    assert_eq!(effect.links.links[0].span_context, cause.span_context);
}

/// A field whose `Debug` logs: the layer must hold no lock of the span
/// while it formats one.
struct Noisy;

impl fmt::Debug for Noisy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        tracing::warn!("formatting a field");
        f.write_str("noisy")
    }
}

/// Set in the child process of
/// [`a_field_whose_debug_logs_under_a_global_subscriber_deadlocks_nothing`].
const GLOBAL_CHILD: &str = "PYBRIDGE_TEST_GLOBAL_SUBSCRIBER_CHILD";

/// Under a global subscriber tracing has no reentrancy guard: an event
/// logged while a field is formatted in `new_span` or `on_event` reaches
/// the layer too. So this runs again in a child process of this test
/// binary, where that subscriber is the process's only one.
#[test]
fn a_field_whose_debug_logs_under_a_global_subscriber_deadlocks_nothing() {
    if std::env::var_os(GLOBAL_CHILD).is_some() {
        global_child();
        return;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = std::process::Command::new(exe)
        .args([
            "--exact",
            "otel::layer::tests::a_field_whose_debug_logs_under_a_global_subscriber_deadlocks_nothing",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(GLOBAL_CHILD, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the child starts");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child deadlocked: a lock was held while a field was formatted");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("piped"), &mut out)
        .expect("the child's output");
    assert!(status.success(), "{status}: {out}");
    assert!(out.contains("events seen: 3"), "{out}");
}

fn global_child() {
    use tracing_subscriber::layer::SubscriberExt;
    let spans = Collect::default();
    let subscriber = tracing_subscriber::registry().with(spans.layer(1.0));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    let outer = tracing::info_span!("outer");
    outer.in_scope(|| {
        // Formatted in `new_span`, `outer` current: its event is `outer`'s.
        let span = tracing::info_span!("span", early = ?Noisy, late = tracing::field::Empty);
        span.in_scope(|| {
            // Formatted in `on_record` and `on_event`, inside `span`.
            span.record("late", tracing::field::debug(Noisy));
            tracing::warn!(field = ?Noisy, "an event with one");
        });
    });
    drop(outer);
    let spans = spans.spans();
    let formatting = |name: &str| {
        named(&spans, name)
            .events
            .events
            .iter()
            .filter(|e| e.name == "formatting a field")
            .count()
    };
    println!("events seen: {}", formatting("outer") + formatting("span"));
}

#[test]
fn a_field_whose_debug_logs_does_not_deadlock_the_layer() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let spans = exported(1.0, || {
            // Reach the event's callsite outside any dispatch first: reached
            // first inside one (where tracing's reentrancy guard hides the
            // subscriber), its interest would be cached as never.
            let _ = format!("{Noisy:?}");
            let span = tracing::info_span!("span", early = ?Noisy, late = tracing::field::Empty);
            span.in_scope(|| {
                span.record("late", tracing::field::debug(Noisy));
                tracing::warn!(field = ?Noisy, "an event with one");
            });
        });
        let _ = done.send(spans);
    });
    let spans = finished
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the layer finished: no lock was held while a field was formatted");
    let span = named(&spans, "span");
    assert_eq!(
        attribute(span, "late"),
        Some(&Value::from("noisy".to_owned()))
    );
    assert!(
        span.events
            .events
            .iter()
            .any(|e| e.name == "formatting a field")
    );
}
