//! Trace export from the binary: `pybridge serve` continues a client's W3C
//! trace through the gateway, the call, its attempt and the worker round
//! trip, flushes at exit, and puts trace ids in JSON logs; a Python worker
//! with the OpenTelemetry SDK continues the trace in its method's span; a
//! collector that hangs does not hold up `pybridge call`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
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
        .env("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=blue%20team,x-key=k")
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
    let heads = receiver.heads();
    assert!(!heads.is_empty());
    for head in heads {
        assert!(head.contains("\r\nx-tenant: blue team\r\n"), "{head}");
        assert!(head.contains("\r\nx-key: k\r\n"), "{head}");
        assert!(
            head.contains("\r\ncontent-type: application/x-protobuf\r\n"),
            "{head}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_variable_asking_for_what_export_cannot_do_is_an_error_naming_it() {
    let home = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    for (variable, value, says) in [
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "grpc",
            "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            "gzip",
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION=gzip",
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-key",
            "OTEL_EXPORTER_OTLP_HEADERS: entry 1 is not a key=value pair",
        ),
    ] {
        let mut cmd = pybridge(&home);
        cmd.args(["call", "test.echo", "{}", "--"])
            .args(sdk_worker())
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
            .env(variable, value);
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .expect("the command finishes")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{variable}={value}");
        assert!(stderr.contains(says), "{variable}={value}: {stderr}");
    }
    assert!(receiver.spans().is_empty());
}

/// A virtual environment under `target/` with the OpenTelemetry SDK and its
/// OTLP/HTTP exporter from the package index, made the first time only;
/// returns its interpreter. Built under a name of its own, then renamed into
/// place, so a half-made one is never used.
fn otel_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let venv = tmp.join("otel-venv");
        let interpreter = |venv: &Path| venv.join("bin").join("python");
        let ready = |python: &Path| {
            Command::new(python)
                .args([
                    "-c",
                    "import opentelemetry.sdk.trace, opentelemetry.exporter.otlp.proto.http",
                ])
                .output()
                .is_ok_and(|out| out.status.success())
        };
        if ready(&interpreter(&venv)) {
            return interpreter(&venv);
        }
        let staging = tmp.join(format!("otel-venv.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        let made = Command::new(python())
            .args(["-m", "venv"])
            .arg(&staging)
            .status()
            .expect("python runs");
        assert!(made.success(), "python -m venv {}", staging.display());
        let installed = Command::new(interpreter(&staging))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args([
                "opentelemetry-sdk==1.45.*",
                "opentelemetry-exporter-otlp-proto-http==1.45.*",
            ])
            .status()
            .expect("pip runs");
        assert!(
            installed.success(),
            "installing the OpenTelemetry SDK with pip"
        );
        let _ = std::fs::remove_dir_all(&venv);
        if std::fs::rename(&staging, &venv).is_err() {
            // Another test process put its own in place first.
            let _ = std::fs::remove_dir_all(&staging);
        }
        assert!(
            ready(&interpreter(&venv)),
            "{} imports OpenTelemetry",
            venv.display()
        );
        interpreter(&venv)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_worker_with_opentelemetry_continues_the_trace_in_its_method_span() {
    let python = tokio::task::spawn_blocking(|| otel_python().to_path_buf())
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let endpoint = receiver.endpoint();
    // The worker exports to the same receiver, with its own tracer provider.
    let config = home.path().join("traced.toml");
    std::fs::write(
        &config,
        format!("[worker.env]\nOTEL_EXPORTER_OTLP_TRACES_ENDPOINT = \"{endpoint}/v1/traces\"\n"),
    )
    .unwrap();
    let worker = [
        python.display().to_string(),
        fixtures()
            .join("otel/traced_worker.py")
            .display()
            .to_string(),
    ];
    let config = config.display().to_string();
    let server = Server::start(
        &home,
        &[
            "--workers",
            "1",
            "--config",
            &config,
            "--otlp-endpoint",
            &endpoint,
        ],
        &worker,
    )
    .await;
    let response = traced_call(&server).await;
    assert_eq!(response.json()["result"], json!({"a": 1}), "{response:?}");
    let (status, stderr) = server.terminate().await;
    assert_eq!(status, 0, "{stderr}");
    let spans = receiver.spans();

    let round_trip = the(&spans, "pybridge.worker");
    let method: Vec<_> = spans
        .iter()
        .filter(|s| s.service == "python-worker")
        .collect();
    assert_eq!(method.len(), 1, "one span from the worker: {spans:#?}");
    let method = method[0];
    assert_eq!(method.name, "test.echo");
    assert_eq!(
        method.trace_id, TRACE,
        "the worker's span is in the caller's trace"
    );
    assert_eq!(
        method.parent, round_trip.span_id,
        "the worker's span is a child of the bridge's round trip"
    );
    assert_eq!(method.kind, 2, "a server span");
    assert_eq!(method.attr("rpc.system.name"), Some("jsonrpc"));
    assert_eq!(
        method.attr("jsonrpc.request.id"),
        round_trip.attr("jsonrpc.request.id")
    );
}
