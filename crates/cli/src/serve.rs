//! `pybridge serve`: the HTTP gateway.
//!
//! - `POST /rpc`: a JSON-RPC 2.0 request, notification or batch; 200 with the
//!   answer, 204 when there is none (notifications only).
//! - `GET /health`: the overall status and every worker; 503 when unhealthy.
//!   With a token set, callers without it see the overall status only.
//! - `GET /metrics`: Prometheus text.
//! - `/mcp`: the methods as MCP tools over streamable HTTP (`mcp.rs`).
//!
//! Every request passes the `Host` allow-list, the `Origin` check, the token
//! (when set) and, for `/rpc`, the content type before its body is read
//! (`guard.rs`). Connections are capped and timed out (`connections.rs`).
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
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Args;
use http_body_util::BodyExt;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tokio::time::Instant;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::options::{self, GlobalArgs};
use crate::rpc;

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
    request_timeout: Duration,
    idle_timeout: Duration,
    limits: rpc::Limits,
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
        request_timeout: g.request_timeout,
        idle_timeout: g.idle_timeout,
        limits: rpc::Limits {
            max_batch: g.max_batch,
            batch_concurrency: g.batch_concurrency,
            max_response: usize::try_from(g.max_response.as_u64()).unwrap_or(usize::MAX),
            expose_error_details: g.expose_error_details,
        },
    };
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
        .route("/rpc", post(rpc_endpoint))
        .nest_service("/mcp", mcp)
        .route("/health", get(health_endpoint))
        .route("/metrics", get(metrics_endpoint))
        .with_state(gateway)
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
        shutdown_signal().await;
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

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGTERM; only SIGINT stops the gateway");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
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

async fn rpc_endpoint(State(gateway): State<Gateway>, headers: HeaderMap, body: Body) -> Response {
    let body = match read_body(body, gateway.idle_timeout).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let request_id: Arc<str> = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .into();
    let cx = rpc::Context {
        bridge: gateway.bridge,
        limits: gateway.limits,
        deadline: Instant::now() + gateway.request_timeout,
        request_id,
    };
    match rpc::handle(&cx, &body).await {
        Some(answer) => ([(header::CONTENT_TYPE, "application/json")], answer).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// Reads the body; a body that stalls for `idle` ends the request (408).
async fn read_body(mut body: Body, idle: Duration) -> Result<Vec<u8>, Response> {
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => {
                let mut response =
                    guard::refuse(StatusCode::REQUEST_TIMEOUT, "the request body stalled");
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return Err(response);
            }
            Ok(None) => return Ok(out),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Ok(Some(Err(err))) => {
                let too_large =
                    std::iter::successors(Some(&err as &(dyn std::error::Error + 'static)), |e| {
                        e.source()
                    })
                    .any(|e| e.is::<http_body_util::LengthLimitError>());
                return Err(if too_large {
                    guard::refuse(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "the request body is over gateway.body_limit",
                    )
                } else {
                    guard::refuse(StatusCode::BAD_REQUEST, "cannot read the request body")
                });
            }
        }
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
    let workers: Vec<_> = health
        .pool
        .workers
        .iter()
        .map(|w| {
            json!({
                "id": w.id.to_string(),
                "pid": w.pid,
                "state": w.state.as_str(),
                "in_flight": w.in_flight,
                "served": w.served,
                "restarts": w.restarts,
                "rss_bytes": w.rss_bytes,
                "age_ms": w.age.as_millis() as u64,
                "remote": w.remote,
            })
        })
        .collect();
    let endpoints: Vec<_> = health
        .pool
        .endpoints
        .iter()
        .map(|e| {
            json!({
                "address": &*e.address,
                "state": e.state.as_str(),
                "worker": e.worker.map(|w| w.to_string()),
                "rtt_us": e.rtt.map(|d| d.as_micros() as u64),
                "last_error": e.last_error.as_deref(),
                "connects": e.connects,
                "failures": e.failures,
            })
        })
        .collect();
    let breakers: Vec<_> = health
        .open_breakers
        .iter()
        .map(|(method, state)| json!({"method": method, "state": format!("{state:?}").to_lowercase()}))
        .collect();
    let body = json!({
        "status": health.status.as_str(),
        "workers": workers,
        "endpoints": endpoints,
        "ready_workers": health.pool.ready_workers,
        "target_workers": health.pool.target_workers,
        "queued": health.pool.queued,
        "restarts": health.pool.restarts,
        "crash_loop": health.pool.crash_loop,
        "open_breakers": breakers,
        "cache_disk_ok": health.cache_disk_ok,
        "cache_shared": shared_tier_json(&gateway.bridge, health.cache_shared_tier),
    });
    (status, axum::Json(body)).into_response()
}

/// The shared cache tier's state and counters, for `/health`.
fn shared_tier_json(
    bridge: &pybridge::Bridge,
    state: pybridge::cache::SharedTierStatus,
) -> serde_json::Value {
    let stats = bridge
        .cache()
        .map(pybridge::cache::Cache::shared_tier_stats)
        .unwrap_or_default();
    json!({
        "state": state.as_str(),
        "hits": stats.hits,
        "misses": stats.misses,
        "errors": stats.errors,
        "writes": stats.writes,
        "writes_dropped": stats.writes_dropped,
        "invalidations_published": stats.published,
        "invalidations_received": stats.received,
    })
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
