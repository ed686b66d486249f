//! `pybridge serve`: the HTTP gateway.
//!
//! - `POST /rpc`: a JSON-RPC 2.0 request, notification or batch; 200 with the
//!   answer, 204 when there is none (notifications only).
//! - `GET /health`: the overall status and every worker; 503 when unhealthy.
//!   With a token set, callers without it see the overall status only.
//! - `GET /metrics`: Prometheus text.
//! - `/mcp`: the methods as MCP tools over streamable HTTP (`mcp.rs`).
//!
//! `/rpc` is the library's router (`pybridge::http`, which owns the batch
//! limits, the body's size and stall limits and the safe errors). Every
//! request passes the `Host` allow-list, the `Origin` check and the token
//! (when set) before its body is read (`guard.rs`). Connections are capped and timed out (`connections.rs`).
//! Bodies are limited in size and in how long they may stall, requests in
//! time, batches in length, share of the pool and answer size; every
//! response carries an `x-request-id`, which failed calls' log lines name.
//! Clients see failures without tracebacks or worker stderr unless
//! `gateway.expose_error_details` is on. It binds loopback unless told
//! otherwise. SIGINT or SIGTERM stop it gracefully: accepted requests
//! finish, connections without one close, workers exit, the process exits 0.

mod connections;
mod guard;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Args;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::options::{self, GlobalArgs};

/// `pybridge serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on (default from the configuration: 127.0.0.1:7878).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// A bearer token clients must send (`Authorization: Bearer …`).
    #[arg(
        long,
        env = "PYBRIDGE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// Send clients tracebacks and worker stderr in errors (development only).
    #[arg(long)]
    expose_error_details: bool,
    /// A `Host` header value to accept besides the listening address's names
    /// (`name` or `name:port`, `*` for any); repeat for more.
    #[arg(long = "allowed-host", value_name = "HOST")]
    allowed_hosts: Vec<String>,
    /// An `Origin` to accept (`https://app.example.com`); repeat for more.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// The worker program and its arguments (default: the embedded framework).
    #[arg(last = true, value_name = "WORKER")]
    worker: Vec<String>,
}

/// Shared state of the gateway's handlers.
#[derive(Debug, Clone)]
struct Gateway {
    bridge: pybridge::Bridge,
    metrics: PrometheusHandle,
}

pub(crate) async fn run(global: &GlobalArgs, args: ServeArgs) -> Result<ExitCode> {
    let mut extra = Vec::new();
    if let Some(listen) = &args.listen {
        extra.push((
            "gateway.listen",
            toml::Value::String(listen.clone()),
            "--listen",
        ));
    }
    if let Some(token) = &args.token {
        extra.push((
            "gateway.token",
            toml::Value::String(token.clone()),
            "--token",
        ));
    }
    if args.expose_error_details {
        extra.push((
            "gateway.expose_error_details",
            toml::Value::Boolean(true),
            "--expose-error-details",
        ));
    }
    let list = |items: &[String]| {
        toml::Value::Array(items.iter().cloned().map(toml::Value::String).collect())
    };
    if !args.allowed_hosts.is_empty() {
        extra.push((
            "gateway.allowed_hosts",
            list(&args.allowed_hosts),
            "--allowed-host",
        ));
    }
    if !args.allowed_origins.is_empty() {
        extra.push((
            "gateway.allowed_origins",
            list(&args.allowed_origins),
            "--allowed-origin",
        ));
    }
    let config = options::load(global, &extra, &args.worker)?;
    let telemetry = crate::telemetry::start(&config.telemetry)?;
    // The MCP tool calls at /mcp route worker `$/log` lines through it.
    crate::logging::init_with(
        &config.log,
        &telemetry,
        Some(Box::new(crate::mcp::log_layer())),
    );
    // The recorder comes first: layers register their metrics as they are built.
    let metrics = install_metrics()?;
    let g = config.gateway.clone();
    let addr: SocketAddr = g.listen.parse().context("gateway.listen")?;
    let bridge = options::start(config.clone()).await?;
    // Finite CPU work, done long before the process stops; held to the end.
    let _schemas = options::compile_schemas_ahead(&bridge);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    // Tests and scripts read the bound address from this line (port 0 picks one).
    eprintln!("pybridge: listening on http://{local}");
    tracing::info!(%local, "gateway listening");

    let guard = Arc::new(guard::Guard::new(
        local,
        &g.allowed_hosts,
        &g.allowed_origins,
        g.token.as_deref(),
    ));
    let gateway = Gateway {
        bridge: bridge.clone(),
        metrics: metrics.clone(),
    };
    let rpc = pybridge::http::router_with(bridge.clone(), pybridge::http::Limits::from(&g));
    let body_limit = usize::try_from(g.body_limit.as_u64()).unwrap_or(usize::MAX);
    // Cancelled when the gateway stops, so MCP sessions and streams end.
    let mcp_closing = tokio_util::sync::CancellationToken::new();
    let mcp = crate::mcp::http_service(
        bridge.clone(),
        &config,
        crate::mcp::HttpOptions {
            body_limit,
            closing: mcp_closing.clone(),
        },
    );
    let app = Router::new()
        .nest_service("/mcp", mcp)
        .route("/health", get(health_endpoint))
        .route("/metrics", get(metrics_endpoint))
        .with_state(gateway)
        .merge(rpc)
        .layer(RequestBodyLimitLayer::new(body_limit))
        // Before any body is read: host, origin, token, content type.
        .layer(axum::middleware::from_fn_with_state(guard, guard::check))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            // Calls end at their own deadline; this bounds everything else.
            g.request_timeout + Duration::from_secs(1),
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(http_span)
                .on_response(record_status),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(Counter::default()));

    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            metrics.run_upkeep();
        }
    });
    let limits = connections::Limits {
        header_read_timeout: g.header_read_timeout,
        idle_timeout: g.idle_timeout,
        max_connections: g.max_connections,
        drain_timeout: g.request_timeout + Duration::from_secs(5),
    };
    let stop = async move {
        crate::signals::shutdown_signal().await;
        mcp_closing.cancel();
    };
    connections::serve(listener, app, limits, stop).await;
    upkeep.abort();
    tracing::info!("gateway stopped; shutting the workers down");
    let report = bridge.shutdown().await;
    tracing::info!(drained = report.drained, "shut down");
    crate::telemetry::shutdown(telemetry).await;
    Ok(ExitCode::SUCCESS)
}

fn install_metrics() -> Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&pybridge::service::telemetry::LATENCY_BUCKETS_SECONDS)
        .context("histogram buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    crate::telemetry::describe_metrics();
    Ok(handle)
}

/// The server span of one HTTP request (OpenTelemetry's HTTP conventions),
/// continuing the client's trace from its W3C `traceparent` and
/// `tracestate` headers.
fn http_span(request: &Request<Body>) -> tracing::Span {
    let method = request.method().as_str();
    let route = match request.uri().path() {
        path @ ("/rpc" | "/health" | "/metrics") => path,
        _ => "",
    };
    // A static name per route keeps span names few.
    let name = match (method, route) {
        ("POST", "/rpc") => "POST /rpc",
        ("GET", "/health") => "GET /health",
        ("GET", "/metrics") => "GET /metrics",
        ("GET", _) => "GET",
        ("POST", _) => "POST",
        _ => "HTTP",
    };
    let span = tracing::debug_span!(
        target: "pybridge::serve",
        "http.request",
        otel.name = name,
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        url.path = request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    crate::telemetry::set_parent_from(&span, |name| {
        request.headers().get(name).and_then(|v| v.to_str().ok())
    });
    span
}

fn record_status(response: &Response, latency: Duration, span: &tracing::Span) {
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    tracing::debug!(status = status.as_u16(), ?latency, "response sent");
}

/// Request ids: a counter, unique per process.
#[derive(Debug, Clone, Default)]
struct Counter(Arc<AtomicU64>);

impl MakeRequestId for Counter {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        HeaderValue::from_str(&n.to_string())
            .ok()
            .map(RequestId::new)
    }
}

async fn health_endpoint(
    State(gateway): State<Gateway>,
    authorized: Option<Extension<guard::Authorized>>,
) -> Response {
    let health = gateway.bridge.health();
    let status = if health.status == pybridge::HealthStatus::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    // Without the token a prober learns whether the gateway is up, nothing more.
    if !authorized.is_some_and(|Extension(a)| a.0) {
        return (
            status,
            axum::Json(json!({"status": health.status.as_str()})),
        )
            .into_response();
    }
    (status, axum::Json(health)).into_response()
}

async fn metrics_endpoint(State(gateway): State<Gateway>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        gateway.metrics.render(),
    )
        .into_response()
}
