//! Trace export from the binary: `pybridge serve` continues a client's W3C
//! trace through the gateway, the call, its attempt and the worker round
//! trip, flushes at exit, and puts trace ids in JSON logs; a collector that
//! hangs does not hold up `pybridge call`.

use std::time::Duration;

use serde_json::json;

use crate::otlp::{Receiver, Span, child, named};
use crate::support::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// Posts one test.echo call carrying the W3C trace context headers.
async fn traced_call(server: &Server) -> Response {
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let body = r#"{"jsonrpc":"2.0","id":"req-1","method":"test.echo","params":{"a":1}}"#;
    let headers = [
        ("traceparent", traceparent.as_str()),
        ("tracestate", "vendor=value"),
    ];
    http(server.addr, "POST", "/rpc", &headers, body).await
}

fn the<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "one {name}: {spans:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_continues_the_callers_trace_into_the_worker_round_trip() {
    let home = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let endpoint = receiver.endpoint();
    let server = Server::start(
        &home,
        &[
            "--workers",
            "1",
            "--otlp-endpoint",
            &endpoint,
            "--log-format",
            "json",
            "--log-level",
            "pybridge=debug",
        ],
        &sdk_worker(),
    )
    .await;
    let response = traced_call(&server).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.json()["result"], json!({"a": 1}));
    // The spans are flushed as the server stops.
    let (status, stderr) = server.terminate().await;
    assert_eq!(status, 0, "{stderr}");
    let spans = receiver.spans();

    let http = the(&spans, "POST /rpc");
    assert_eq!(
        (http.trace_id.as_str(), http.parent.as_str()),
        (TRACE, PARENT),
        "the HTTP span continues the client's trace"
    );
    assert_eq!(http.kind, 2, "a server span");
    assert_eq!(http.attr("http.response.status_code"), Some("200"));
    assert_ne!(http.status, 2, "a success is no error");
    let rpc = child(&spans, http, "jsonrpc.server");
    assert_eq!(rpc.kind, 2);
    assert_eq!(rpc.attr("rpc.method"), Some("test.echo"));
    assert_eq!(rpc.attr("jsonrpc.request.id"), Some("\"req-1\""));
    let call = child(&spans, rpc, "pybridge.call");
    let attempt = child(&spans, call, "pybridge.attempt");
    let worker = child(&spans, attempt, "pybridge.worker");
    for span in [rpc, call, attempt, worker] {
        assert_eq!(
            span.trace_id, TRACE,
            "{} is in the caller's trace",
            span.name
        );
        assert_eq!(span.service, "pybridge");
    }
    assert!(
        !spans.iter().any(|s| s.name == "connection"),
        "the connection is not part of the trace"
    );
    // JSON log lines written inside the request's spans carry its ids.
    assert!(
        stderr.contains(&format!("\"trace_id\":\"{TRACE}\"")),
        "a log line names the trace: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_collector_does_not_hold_up_a_call_or_its_exit() {
    let home = tempfile::tempdir().unwrap();
    let receiver = Receiver::silent().await;
    let mut cmd = pybridge(&home);
    cmd.args(["--otlp-endpoint", &receiver.endpoint()])
        .args(["call", "test.echo", r#"{"b":2}"#, "--"])
        .args(sdk_worker())
        .env("PYBRIDGE_TELEMETRY__SHUTDOWN_TIMEOUT", "1s");
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the command finishes although the collector never answers")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#"{"b":2}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_variables_turn_export_on_and_name_the_service() {
    let home = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let mut cmd = pybridge(&home);
    cmd.args(["call", "test.echo", r#"{"c":3}"#, "--"])
        .args(sdk_worker())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("OTEL_SERVICE_NAME", "checkout");
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the command finishes")
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Flushed before the exit.
    let spans = receiver.spans();
    let call = the(&spans, "pybridge.call");
    assert!(call.parent.is_empty(), "a call of its own starts a trace");
    assert_eq!(call.service, "checkout");
    let worker = child(
        &spans,
        child(&spans, call, "pybridge.attempt"),
        "pybridge.worker",
    );
    assert_eq!(worker.trace_id, call.trace_id);
}
