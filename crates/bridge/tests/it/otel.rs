//! Trace export (the `otel` feature) end to end: spans of the call path
//! exported over OTLP/HTTP to a receiver inside the test, their parents,
//! the trace context each request carries to its worker, and calls that do
//! not wait for a collector that is down or hanging.

use std::time::Duration;

use pybridge::config::TelemetryConfig;
use pybridge::otel::Telemetry;
use pybridge::{Bridge, CallOptions, Config};
use tracing::Instrument;
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::SubscriberExt;

use crate::otlp::{Receiver, Span, child, named};
use crate::support::{bridge, python, raw, sdk_config};

/// A worker that answers every request with the `_meta` it received; a
/// request whose params name a `fail_first` key fails once, recoverably,
/// for that key.
const META_WORKER: &str = r#"
import json, os, sys
failed = set()
print("READY", flush=True)
for line in sys.stdin:
    req = json.loads(line)
    if "id" not in req:
        if req.get("method") == "$/shutdown":
            break
        continue
    params = req.get("params")
    key = params.get("fail_first") if isinstance(params, dict) else None
    if req.get("method") == "$/ping":
        out = {"result": {"pid": os.getpid()}}
    elif key and key not in failed:
        failed.add(key)
        out = {"error": {"code": -32000, "message": "busy", "data": {"type": "Busy", "recoverable": True}}}
    else:
        out = {"result": {"meta": req.get("_meta")}}
    out.update({"jsonrpc": "2.0", "id": req["id"]})
    print(json.dumps(out), flush=True)
"#;

fn config() -> Config {
    let mut config = sdk_config();
    config.worker.command = vec![python(), "-c".into(), META_WORKER.into()];
    config
}

/// Export to `endpoint`, installed for this thread (the tests run on a
/// current-thread runtime, so every task of the bridge is seen).
fn traced(endpoint: &str, tune: impl FnOnce(&mut TelemetryConfig)) -> (Telemetry, DefaultGuard) {
    let mut settings = TelemetryConfig::default();
    settings.otlp_endpoint = Some(endpoint.to_string());
    tune(&mut settings);
    let telemetry = Telemetry::from_config(&settings).expect("an exporter");
    let layer = telemetry.layer().expect("export is on with an endpoint");
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    (telemetry, guard)
}

/// Sends what is buffered; the flush blocks, so off the runtime's thread.
async fn flush(telemetry: &Telemetry) -> bool {
    let telemetry = telemetry.clone();
    tokio::task::spawn_blocking(move || telemetry.force_flush())
        .await
        .unwrap()
}

/// Runs one call under a root span of its own; returns the root's name.
async fn call_in_root(bridge: &Bridge, root: &'static str, params: &str) -> serde_json::Value {
    let span = tracing::info_span!("test.root", otel.name = root);
    let reply = bridge
        .call_with("test.echo", Some(&raw(params)), &CallOptions::new())
        .instrument(span)
        .await
        .unwrap_or_else(|e| panic!("the call succeeds: {}", e.report()));
    serde_json::from_str(reply.result.get()).unwrap()
}

fn root<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let roots = named(spans, name);
    assert_eq!(roots.len(), 1, "one root {name}: {spans:#?}");
    roots[0]
}

#[tokio::test]
async fn a_call_exports_call_attempt_and_worker_spans_and_the_worker_gets_their_context() {
    let receiver = Receiver::start().await;
    let (telemetry, _guard) = traced(&receiver.endpoint(), |_| {});
    let bridge = bridge(config()).await;
    let result = call_in_root(&bridge, "first", r#"{"n":1}"#).await;
    assert!(flush(&telemetry).await, "the receiver took the spans");
    let spans = receiver.spans();

    let top = root(&spans, "first");
    let call = child(&spans, top, "pybridge.call");
    let attempt = child(&spans, call, "pybridge.attempt");
    let worker = child(&spans, attempt, "pybridge.worker");
    for span in [call, attempt, worker] {
        assert_eq!(span.trace_id, top.trace_id, "{} is in the trace", span.name);
        assert_eq!(span.service, "pybridge");
    }
    assert_eq!(call.attr("rpc.system.name"), Some("jsonrpc"));
    assert_eq!(call.attr("rpc.method"), Some("test.echo"));
    assert_eq!(call.attr("outcome"), Some("ok"));
    assert_eq!(call.attr("attempt"), Some("1"));
    let id = call.attr("jsonrpc.request.id").expect("the request id");
    assert_eq!(worker.attr("jsonrpc.request.id"), Some(id));
    assert_eq!(attempt.attr("jsonrpc.request.id"), Some(id));
    assert_eq!(worker.kind, 3, "the round trip is a client span");
    assert_eq!(worker.attr("rpc.system.name"), Some("jsonrpc"));
    assert!(worker.attr("worker").is_some(), "the pool names the worker");
    assert!(worker.attr("error.type").is_none());

    // The worker continues the trace from the round trip's span.
    let traceparent = result["meta"]["traceparent"]
        .as_str()
        .expect("_meta reached the worker");
    assert_eq!(
        traceparent,
        format!("00-{}-{}-01", top.trace_id, worker.span_id)
    );
    assert!(
        result["meta"].get("tracestate").is_none(),
        "an empty tracestate is left out: {result}"
    );
    bridge.shutdown().await;
}

#[tokio::test]
async fn a_retried_call_shows_two_attempts_the_first_failed() {
    let receiver = Receiver::start().await;
    let (telemetry, _guard) = traced(&receiver.endpoint(), |_| {});
    let bridge = bridge(config()).await;
    call_in_root(&bridge, "retried", r#"{"fail_first":"a"}"#).await;
    assert!(flush(&telemetry).await);
    let spans = receiver.spans();

    let call = child(&spans, root(&spans, "retried"), "pybridge.call");
    assert_eq!(call.attr("attempt"), Some("2"));
    assert_eq!(call.attr("outcome"), Some("ok"));
    let mut attempts: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "pybridge.attempt" && s.parent == call.span_id)
        .collect();
    attempts.sort_by_key(|s| s.attr("attempt").map(str::to_owned));
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    assert_eq!(attempts[0].attr("attempt"), Some("1"));
    assert_eq!(attempts[0].attr("error.type"), Some("remote_error"));
    assert_eq!(
        attempts[0].status, 2,
        "the failed attempt has an error status"
    );
    assert_eq!(attempts[1].attr("error.type"), None);
    assert_ne!(
        attempts[0].attr("jsonrpc.request.id"),
        attempts[1].attr("jsonrpc.request.id"),
        "a retry is a new request"
    );
    for attempt in attempts {
        child(&spans, attempt, "pybridge.worker");
    }
    bridge.shutdown().await;
}

#[cfg(feature = "cache")]
#[tokio::test]
async fn a_cache_hit_has_no_attempt_and_no_worker_span() {
    let receiver = Receiver::start().await;
    let (telemetry, _guard) = traced(&receiver.endpoint(), |_| {});
    let mut config = config();
    let mut settings = pybridge::config::MethodSettings::default();
    settings.cache = Some(true);
    config.methods.insert("test.echo".into(), settings);
    let bridge = bridge(config).await;
    call_in_root(&bridge, "miss", r#"{"k":1}"#).await;
    call_in_root(&bridge, "hit", r#"{"k":1}"#).await;
    assert!(flush(&telemetry).await);
    let spans = receiver.spans();

    let miss = child(&spans, root(&spans, "miss"), "pybridge.call");
    assert_eq!(miss.attr("cache_tier"), Some("miss"));
    child(
        &spans,
        child(&spans, miss, "pybridge.attempt"),
        "pybridge.worker",
    );
    let hit = child(&spans, root(&spans, "hit"), "pybridge.call");
    assert_eq!(hit.attr("cache_tier"), Some("l1"));
    assert!(
        !spans.iter().any(|s| s.parent == hit.span_id),
        "a hit reaches no worker: {spans:#?}"
    );
    assert_eq!(named(&spans, "pybridge.worker").len(), 1);
    bridge.shutdown().await;
}

#[tokio::test]
async fn with_no_collector_listening_calls_succeed_and_export_fails_alone() {
    // Bound and never listening, and held so that no other test takes it:
    // connections are refused.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .unwrap();
    let closed = format!("http://{}", socket.local_addr().unwrap());
    let (telemetry, _guard) = traced(&closed, |t| t.export_timeout = Duration::from_secs(2));
    let bridge = bridge(config()).await;
    for i in 0..20 {
        call_in_root(&bridge, "refused", &format!(r#"{{"n":{i}}}"#)).await;
    }
    assert!(!flush(&telemetry).await, "nothing could be exported");
    bridge.shutdown().await;
}

#[tokio::test]
async fn a_hanging_collector_holds_up_no_call() {
    let receiver = Receiver::silent().await;
    let (telemetry, _guard) = traced(&receiver.endpoint(), |t| {
        t.export_timeout = Duration::from_secs(10);
    });
    let bridge = bridge(config()).await;
    call_in_root(&bridge, "before", r#"{"n":0}"#).await;
    // The exporter's thread now waits on a collector that never answers.
    let exporting = telemetry.clone();
    let flush = tokio::task::spawn_blocking(move || exporting.force_flush());
    for i in 1..=20 {
        call_in_root(&bridge, "during", &format!(r#"{{"n":{i}}}"#)).await;
    }
    assert!(
        !flush.is_finished(),
        "every call finished while the export was still waiting for the collector"
    );
    bridge.shutdown().await;
    flush.abort();
}

#[tokio::test]
async fn a_call_left_out_by_sampling_exports_nothing_and_sends_no_trace_context() {
    let receiver = Receiver::start().await;
    let (telemetry, _guard) = traced(&receiver.endpoint(), |t| t.sample_ratio = Some(0.0));
    let bridge = bridge(config()).await;
    let reply = bridge
        .call_with("test.echo", Some(&raw(r#"{"n":1}"#)), &CallOptions::new())
        .await
        .unwrap();
    let result: serde_json::Value = serde_json::from_str(reply.result.get()).unwrap();
    assert!(
        result["meta"].is_null(),
        "no _meta for an untraced call: {result}"
    );
    // Inside a caller's sampled trace the call follows the caller, whatever
    // the ratio.
    let caller = tracing::info_span!("test.caller");
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    pybridge::otel::set_parent_from(&caller, |name| (name == "traceparent").then_some(parent));
    let reply = bridge
        .call_with("test.echo", Some(&raw(r#"{"n":2}"#)), &CallOptions::new())
        .instrument(caller)
        .await
        .unwrap();
    let followed: serde_json::Value = serde_json::from_str(reply.result.get()).unwrap();
    let traceparent = followed["meta"]["traceparent"]
        .as_str()
        .expect("a traceparent");
    assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    assert!(traceparent.ends_with("-01"), "sampled, as the caller");
    assert!(flush(&telemetry).await);
    let spans = receiver.spans();
    assert!(
        spans
            .iter()
            .all(|s| s.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"),
        "only the caller's trace was exported: {spans:#?}"
    );
    // The call that followed has its own spans in that trace.
    for name in ["pybridge.call", "pybridge.attempt", "pybridge.worker"] {
        assert_eq!(named(&spans, name).len(), 1, "one {name}: {spans:#?}");
    }
    bridge.shutdown().await;
}

/// Records, for each "retrying" event, the names of the spans it was in.
#[derive(Clone, Default)]
struct RetryEvents(std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>);

impl<S> tracing_subscriber::Layer<S> for RetryEvents
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, cx: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(bool);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" && format!("{value:?}") == "retrying" {
                    self.0 = true;
                }
            }
        }
        let mut message = Message(false);
        event.record(&mut message);
        if message.0 {
            let scope = cx
                .event_scope(event)
                .map(|scope| scope.map(|s| s.name().to_string()).collect())
                .unwrap_or_default();
            self.0.lock().unwrap().push(scope);
        }
    }
}

#[tokio::test]
async fn with_calls_logged_at_debug_events_inside_a_call_are_in_its_span() {
    use tracing_subscriber::Layer as _;
    let events = RetryEvents::default();
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("pybridge", tracing::Level::DEBUG)
        .with_target("pybridge_resilience", tracing::Level::DEBUG);
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(events.clone().with_filter(filter)),
    );
    let bridge = bridge(config()).await;
    bridge
        .call_with(
            "test.echo",
            Some(&raw(r#"{"fail_first":"a"}"#)),
            &CallOptions::new(),
        )
        .await
        .unwrap();
    bridge.shutdown().await;
    let seen = events.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![vec!["pybridge.call".to_string()]],
        "one retry, logged inside the call's span"
    );
}
