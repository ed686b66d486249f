//! `pybridge serve`: the HTTP gateway.
//!
//! - `POST /rpc`: a JSON-RPC 2.0 request, notification or batch; 200 with the
//!   answer, 204 when there is none (notifications only).
//! - `GET /health`: the overall status and every worker; 503 when unhealthy.
//! - `GET /metrics`: Prometheus text.
//!
//! Bodies are limited in size, requests in time, every response carries an
//! `x-request-id`, and a bearer token guards `/rpc` and `/metrics` when set.
//! It binds loopback unless told otherwise. SIGINT or SIGTERM stop it
//! gracefully: accepted requests finish, workers exit, the process exits 0.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Args;
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
use crate::rpc::{self, Gateway};

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
    /// The worker program and its arguments (default: the embedded framework).
    #[arg(last = true, value_name = "WORKER")]
    worker: Vec<String>,
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
    let config = options::load(global, &extra, &args.worker)?;
    crate::logging::init(&config.log);
    // The recorder comes first: layers register their metrics as they are built.
    let metrics = install_metrics()?;
    let gateway_config = config.gateway.clone();
    let addr: SocketAddr = gateway_config.listen.parse().context("gateway.listen")?;
    let bridge = options::start(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    // Tests and scripts read the bound address from this line (port 0 picks one).
    eprintln!("pybridge: listening on http://{local}");
    tracing::info!(%local, "gateway listening");

    let gateway = Gateway {
        bridge: bridge.clone(),
        token: gateway_config.token.as_deref().map(Arc::from),
        metrics: Some(metrics.clone()),
        request_timeout: gateway_config.request_timeout,
    };
    let body_limit = usize::try_from(gateway_config.body_limit.as_u64()).unwrap_or(usize::MAX);
    let app = Router::new()
        .route("/rpc", post(rpc_endpoint))
        .route("/health", get(health_endpoint))
        .route("/metrics", get(metrics_endpoint))
        .with_state(gateway)
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            // Calls end at their own deadline; this bounds everything else.
            gateway_config.request_timeout + Duration::from_secs(1),
        ))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(Counter::default()));

    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            metrics.run_upkeep();
        }
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    upkeep.abort();
    tracing::info!("gateway stopped accepting; shutting the workers down");
    let report = bridge.shutdown().await;
    tracing::info!(drained = report.drained, "shut down");
    served.context("serving HTTP")?;
    Ok(ExitCode::SUCCESS)
}

fn install_metrics() -> Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&pybridge::service::telemetry::LATENCY_BUCKETS_SECONDS)
        .context("histogram buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    Ok(handle)
}

async fn shutdown_signal() {
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

fn authorized(gateway: &Gateway, headers: &HeaderMap) -> bool {
    let Some(token) = &gateway.token else {
        return true;
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compared without an early exit, so the time taken says nothing about the token.
    presented.is_some_and(|p| {
        p.len() == token.len()
            && p.bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    })
}

fn unauthorized() -> Response {
    let body = json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": "missing or wrong bearer token"}, "id": null});
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(body),
    )
        .into_response()
}

async fn rpc_endpoint(State(gateway): State<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&gateway, &headers) {
        return unauthorized();
    }
    let deadline = Instant::now() + gateway.request_timeout;
    match rpc::handle(&gateway.bridge, &body, deadline).await {
        Some(answer) => ([(header::CONTENT_TYPE, "application/json")], answer).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn health_endpoint(State(gateway): State<Gateway>) -> Response {
    let health = gateway.bridge.health();
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
        "ready_workers": health.pool.ready_workers,
        "target_workers": health.pool.target_workers,
        "queued": health.pool.queued,
        "restarts": health.pool.restarts,
        "crash_loop": health.pool.crash_loop,
        "open_breakers": breakers,
        "cache_disk_ok": health.cache_disk_ok,
        "cache_shared": shared_tier_json(&gateway.bridge, health.cache_shared_tier),
    });
    let status = if health.status == pybridge::HealthStatus::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
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

async fn metrics_endpoint(State(gateway): State<Gateway>, headers: HeaderMap) -> Response {
    if !authorized(&gateway, &headers) {
        return unauthorized();
    }
    let Some(handle) = &gateway.metrics else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}
