//! JSON-RPC 2.0 over HTTP (feature `http`): [`router`] is an axum
//! [`Router`] serving `POST /rpc` for a [`Bridge`], to mount in your own
//! application (`pybridge serve` mounts it too).
//!
//! One POST body holds a request, a notification or a batch, answered as
//! the specification says: 200 with the answer, 204 when there is none
//! (notifications only). The router enforces [`Limits`]: the content type
//! (`application/json`, else 415), the body's size (413) and how long it
//! may stall (408), the time every call of a body may take, a batch's
//! length, how many of its calls run at once, and the answer's size.
//! Failed calls are answered with [`Error::to_safe_error_object`]: the
//! error kind and whether a retry may help, nothing a worker wrote to
//! stderr, unless [`Limits::expose_error_details`] is set; the details go
//! to the log (`tracing`, target `pybridge::http`). When the request has an
//! `x-request-id` header (tower-http's `SetRequestIdLayer` adds one), error
//! data and log lines carry it. `rpc.discover` answers the registry's
//! OpenRPC document.
//!
//! The router does not authenticate or check `Host` and `Origin`: add the
//! layer your application uses (`pybridge serve` puts an allow-list and a
//! bearer token in front of it).
//!
//! ```
//! use pybridge::{Bridge, Config};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let sdk = concat!(env!("CARGO_MANIFEST_DIR"), "/../../python/pybridge-worker/src");
//! # let mut config = Config::default();
//! # config.worker.command = vec!["python3".into(), "-m".into(), "pybridge_worker".into()];
//! # config.worker.env.insert("PYTHONPATH".into(), sdk.into());
//! # config.pool.min_workers = 1;
//! # config.cache.enabled = false;
//! let bridge = Bridge::from_config(config).await?;
//! let app = axum::Router::new()
//!     .route("/hello", axum::routing::get(|| async { "hello" }))
//!     .merge(pybridge::http::router(bridge.clone()));
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let server = tokio::spawn(async move { axum::serve(listener, app).await });
//!
//! // A bare HTTP/1.1 client, to keep the example free of one.
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! let body = r#"{"jsonrpc":"2.0","method":"test.echo","params":{"n":1},"id":7}"#;
//! let mut stream = tokio::net::TcpStream::connect(addr).await?;
//! let head = format!(
//!     "POST /rpc HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
//!      Content-Length: {}\r\nConnection: close\r\n\r\n",
//!     body.len()
//! );
//! stream.write_all(head.as_bytes()).await?;
//! stream.write_all(body.as_bytes()).await?;
//! let mut answer = String::new();
//! stream.read_to_string(&mut answer).await?;
//! assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
//! assert!(answer.ends_with(r#"{"jsonrpc":"2.0","result":{"n":1},"id":7}"#), "{answer}");
//!
//! server.abort();
//! bridge.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::BodyExt;
use pybridge_protocol::{ErrorCode, ErrorObject, Id, Message, MethodKind, Request, write_response};
use pybridge_service::telemetry;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::GatewayConfig;
use crate::{Bridge, CallOptions, Error};

/// What one POST body may do, and how its errors are shown. The defaults
/// are [`GatewayConfig`]'s; `Limits::from(&config.gateway)` takes a
/// configuration's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The largest request body, in bytes (default 2 MiB); larger is 413.
    pub max_body: usize,
    /// The longest a request body may stall between two reads (default 5 s); longer is 408.
    pub body_stall_timeout: Duration,
    /// The time every call of one body may take (default 60 s).
    pub request_timeout: Duration,
    /// The most entries in a batch (default 2000).
    pub max_batch: usize,
    /// Calls of one batch in flight at once (default 32; 0 counts as 1).
    pub batch_concurrency: usize,
    /// The largest answer, in bytes (default 16 MiB).
    pub max_response: usize,
    /// Send the full error objects, with tracebacks and worker stderr
    /// (development), instead of the safe ones (default false).
    pub expose_error_details: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::from(&GatewayConfig::default())
    }
}

impl From<&GatewayConfig> for Limits {
    fn from(g: &GatewayConfig) -> Limits {
        let bytes = |size: crate::ByteSize| usize::try_from(size.as_u64()).unwrap_or(usize::MAX);
        Limits {
            max_body: bytes(g.body_limit),
            body_stall_timeout: g.idle_timeout,
            request_timeout: g.request_timeout,
            max_batch: g.max_batch,
            batch_concurrency: g.batch_concurrency.max(1),
            max_response: bytes(g.max_response),
            expose_error_details: g.expose_error_details,
        }
    }
}

/// `POST /rpc` for `bridge`, within the limits of the bridge's own
/// configuration (`[gateway]`).
pub fn router(bridge: Bridge) -> Router {
    let limits = Limits::from(&bridge.config().gateway);
    router_with(bridge, limits)
}

/// `POST /rpc` for `bridge`, within `limits`.
pub fn router_with(bridge: Bridge, limits: Limits) -> Router {
    Router::new()
        .route("/rpc", post(endpoint))
        .with_state(Arc::new(Endpoint { bridge, limits }))
}

/// The state of `/rpc`.
#[derive(Debug)]
struct Endpoint {
    bridge: Bridge,
    limits: Limits,
}

/// The answer to a POST body: a JSON body, or nothing (only notifications).
type Answer = Option<Vec<u8>>;

/// One POST body's context.
#[derive(Debug, Clone)]
struct Context {
    bridge: Bridge,
    limits: Limits,
    /// Bounds every call in the body.
    deadline: Instant,
    /// The `x-request-id` the answer carries; logs of its failures name it.
    request_id: Option<Arc<str>>,
}

async fn endpoint(State(state): State<Arc<Endpoint>>, headers: HeaderMap, body: Body) -> Response {
    if !is_json(&headers) {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content type must be application/json",
        );
    }
    let limits = state.limits;
    let body = match read_body(body, &headers, &limits).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(Arc::from);
    let cx = Context {
        bridge: state.bridge.clone(),
        limits,
        deadline: Instant::now() + limits.request_timeout,
        request_id,
    };
    match handle(&cx, &body).await {
        Some(answer) => ([(header::CONTENT_TYPE, "application/json")], answer).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// Reads the body up to `max_body`; a body that stalls for
/// `body_stall_timeout` ends the request (408, and the connection closes).
async fn read_body(
    mut body: Body,
    headers: &HeaderMap,
    limits: &Limits,
) -> std::result::Result<Vec<u8>, Response> {
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is over the limit (gateway.body_limit)",
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return Err(too_large());
    }
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(limits.body_stall_timeout, body.frame()).await {
            Err(_) => {
                let mut response = refuse(StatusCode::REQUEST_TIMEOUT, "the request body stalled");
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
                if out.len() > limits.max_body {
                    return Err(too_large());
                }
            }
            Ok(Some(Err(err))) => {
                // An outer layer's body limit (tower-http's) ends the stream
                // with its own error.
                let over_limit =
                    std::iter::successors(Some(&err as &(dyn std::error::Error + 'static)), |e| {
                        e.source()
                    })
                    .any(|e| e.is::<http_body_util::LengthLimitError>());
                return Err(if over_limit {
                    too_large()
                } else {
                    refuse(StatusCode::BAD_REQUEST, "cannot read the request body")
                });
            }
        }
    }
}

/// A refusal before any call, with a JSON-RPC error body, as a client of
/// `/rpc` expects.
pub fn refuse(status: StatusCode, message: &str) -> Response {
    let body = json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": message}, "id": null});
    (status, axum::Json(body)).into_response()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Handles one body.
async fn handle(cx: &Context, body: &[u8]) -> Answer {
    // Counted before anything is built: a 2 MB body of a million tiny
    // entries would otherwise become a million parsed messages first.
    if let Some(count) = batch_len(body).filter(|&n| n > cx.limits.max_batch) {
        return Some(batch_too_long(cx, count));
    }
    match Message::from_slice(body) {
        Err(err) => Some(error_response(err.id(), &err.to_error_object())),
        Ok(Message::Batch(entries)) => batch(cx, entries).await,
        Ok(message) => single(cx, message).await,
    }
}

async fn batch(
    cx: &Context,
    entries: Vec<std::result::Result<Message, pybridge_protocol::Error>>,
) -> Answer {
    let count = entries.len();
    if count > cx.limits.max_batch {
        return Some(batch_too_long(cx, count));
    }
    let mut answers: Vec<Answer> = vec![None; count];
    let mut size = 0usize;
    // Owned here: a client that goes away drops this future and aborts them.
    let mut calls = JoinSet::new();
    let mut entries = entries.into_iter().enumerate();
    loop {
        // Start calls up to the batch's share of the pool (at least one),
        // then take an answer.
        while calls.len() < cx.limits.batch_concurrency.max(1) {
            let Some((index, entry)) = entries.next() else {
                break;
            };
            match entry {
                Err(err) => {
                    let answer = error_response(err.id(), &err.to_error_object());
                    size += answer.len() + 1;
                    answers[index] = Some(answer);
                }
                Ok(message) => {
                    let cx = cx.clone();
                    calls.spawn(
                        async move { (index, single(&cx, message).await) }.in_current_span(),
                    );
                }
            }
            if size > cx.limits.max_response {
                return Some(too_large(cx, &Id::Null));
            }
        }
        let Some(joined) = calls.join_next().await else {
            break;
        };
        if let Ok((index, answer)) = joined {
            size += answer.as_ref().map_or(0, |a| a.len() + 1);
            answers[index] = answer;
        }
        if size > cx.limits.max_response {
            return Some(too_large(cx, &Id::Null));
        }
    }
    let parts: Vec<Vec<u8>> = answers.into_iter().flatten().collect();
    if parts.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(size + 2);
    out.push(b'[');
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(part);
    }
    out.push(b']');
    Some(out)
}

async fn single(cx: &Context, message: Message) -> Answer {
    match message {
        Message::Request(request) => Some(request_answer(cx, request).await),
        Message::Notification(notification) => {
            // A notification is answered by nobody, whatever happens to it.
            if notification.method_kind() == MethodKind::Application {
                let _ = cx
                    .bridge
                    .notify(&notification.method, notification.params.as_deref())
                    .await;
            }
            None
        }
        // A client sending a response is not making a request.
        Message::Response(response) => {
            let error = ErrorObject::standard(ErrorCode::INVALID_REQUEST);
            Some(error_response(&response.id, &error))
        }
        Message::Batch(_) => {
            let error = ErrorObject::standard(ErrorCode::INVALID_REQUEST);
            Some(error_response(&Id::Null, &error))
        }
    }
}

async fn request_answer(cx: &Context, request: Request) -> Vec<u8> {
    if request.method == "rpc.discover" {
        let document = crate::openrpc::document(cx.bridge.catalog());
        let result =
            serde_json::value::to_raw_value(&document).expect("a JSON value always serializes");
        let mut out = Vec::with_capacity(result.get().len() + 48);
        write_response(&mut out, &request.id, Ok(&result));
        return out;
    }
    if request.method_kind() != MethodKind::Application {
        let error = ErrorObject::new(
            ErrorCode::METHOD_NOT_FOUND,
            format!("method `{}` is reserved", request.method),
        );
        return error_response(&request.id, &error);
    }
    let options = CallOptions::new().deadline(cx.deadline);
    let span = call_span(&request);
    let outcome = cx
        .bridge
        .call_with(&request.method, request.params.as_deref(), &options)
        .instrument(span.clone())
        .await;
    if let Err(err) = &outcome {
        telemetry::record_error(&span, err.kind().as_str());
    }
    match outcome {
        Ok(reply) if reply.result.get().len() > cx.limits.max_response => {
            too_large(cx, &request.id)
        }
        Ok(reply) => {
            let mut out = Vec::with_capacity(reply.result.get().len() + 48);
            write_response(&mut out, &request.id, Ok(&reply.result));
            out
        }
        Err(err) => {
            let full = err.to_error_object();
            log_failure(cx, &request.method, &err, &full);
            let request_id = cx.request_id.as_deref();
            let shown = if cx.limits.expose_error_details {
                exposed(full, &err, request_id)
            } else {
                safe(&err, request_id)
            };
            error_response(&request.id, &shown)
        }
    }
}

/// The server span of one JSON-RPC call of a request (OpenTelemetry's RPC
/// conventions), inside the HTTP request's span.
fn call_span(request: &Request) -> tracing::Span {
    use telemetry::{RPC_SYSTEM, fields};
    tracing::debug_span!(
        target: "pybridge::rpc",
        "jsonrpc.server",
        otel.kind = "server",
        { fields::RPC_SYSTEM_NAME } = RPC_SYSTEM,
        { fields::RPC_METHOD } = request.method.as_str(),
        { fields::JSONRPC_REQUEST_ID } = %request.id,
        { fields::ERROR_TYPE } = tracing::field::Empty,
        { fields::OTEL_STATUS_CODE } = tracing::field::Empty,
    )
}

/// The details a client no longer sees go to the log, under the request id.
fn log_failure(cx: &Context, method: &str, err: &Error, full: &ErrorObject) {
    let data = full.data.as_deref().map(|d| d.get());
    if err.kind().is_server_side() {
        tracing::warn!(
            request_id = cx.request_id.as_deref().unwrap_or("-"),
            method,
            code = err.kind().as_str(),
            error = %err.report(),
            data,
            "call failed"
        );
    } else {
        tracing::debug!(
            request_id = cx.request_id.as_deref().unwrap_or("-"),
            method,
            code = err.kind().as_str(),
            error = %err.report(),
            data,
            "call failed"
        );
    }
}

/// The error a client sees by default ([`Error::to_safe_error_object`]),
/// with the request id added when there is one.
fn safe(err: &Error, request_id: Option<&str>) -> ErrorObject {
    let object = err.to_safe_error_object();
    match request_id {
        Some(id) => add_data(object, "request_id", json!(id)),
        None => object,
    }
}

/// The full error object, with the kind, the retry hint and the request id added.
fn exposed(mut full: ErrorObject, err: &Error, request_id: Option<&str>) -> ErrorObject {
    let data = full
        .data
        .as_deref()
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d.get()).ok());
    let mut map = match data {
        Some(serde_json::Value::Object(map)) => map,
        // A worker's own data that is not an object stays as it is.
        Some(_) => return full,
        None => serde_json::Map::new(),
    };
    map.entry("code")
        .or_insert_with(|| json!(err.kind().as_str()));
    map.insert("retryable".into(), json!(err.is_retryable()));
    if let Some(id) = request_id {
        map.insert("request_id".into(), json!(id));
    }
    full = with_data(full, serde_json::Value::Object(map));
    full
}

/// `object` with one more member in its (object) data.
fn add_data(object: ErrorObject, key: &str, value: serde_json::Value) -> ErrorObject {
    let data = object.data_as::<serde_json::Value>().and_then(|d| d.ok());
    let mut map = match data {
        Some(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    map.insert(key.into(), value);
    with_data(object, serde_json::Value::Object(map))
}

fn batch_too_long(cx: &Context, count: usize) -> Vec<u8> {
    tracing::debug!(
        request_id = cx.request_id.as_deref().unwrap_or("-"),
        count,
        "batch refused: too long"
    );
    let error = ErrorObject::new(
        ErrorCode::INVALID_REQUEST,
        format!(
            "a batch of {count} entries is over the limit of {} (`max_batch`)",
            cx.limits.max_batch
        ),
    );
    let error = limit_data(cx, error, "batch_too_large");
    error_response(&Id::Null, &error)
}

/// The number of entries when `body` is a JSON array, counted without
/// building any of them; `None` for anything else, including broken JSON
/// (the parser names that problem).
fn batch_len(body: &[u8]) -> Option<usize> {
    use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};

    struct Count;
    impl<'de> Visitor<'de> for Count {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while seq.next_element::<IgnoredAny>()?.is_some() {
                n += 1;
            }
            Ok(n)
        }
    }

    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
        return None;
    }
    serde_json::Deserializer::from_slice(body)
        .deserialize_seq(Count)
        .ok()
}

/// The data of a limit's error: its kind, not retryable, the request id.
fn limit_data(cx: &Context, error: ErrorObject, kind: &str) -> ErrorObject {
    let mut data = json!({"code": kind, "retryable": false});
    if let (Some(id), Some(map)) = (cx.request_id.as_deref(), data.as_object_mut()) {
        map.insert("request_id".into(), json!(id));
    }
    with_data(error, data)
}

fn with_data(object: ErrorObject, data: serde_json::Value) -> ErrorObject {
    // A `Value` always serializes.
    object.clone().with_data(&data).unwrap_or(object)
}

fn too_large(cx: &Context, id: &Id) -> Vec<u8> {
    tracing::debug!(
        request_id = cx.request_id.as_deref().unwrap_or("-"),
        "answer over max_response"
    );
    let error = ErrorObject::new(
        ErrorCode::SERVER_ERROR,
        format!(
            "the answer is over the limit of {} bytes (`max_response`)",
            cx.limits.max_response
        ),
    );
    let error = limit_data(cx, error, "response_too_large");
    error_response(id, &error)
}

fn error_response(id: &Id, error: &ErrorObject) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_response(&mut out, id, Err(error));
    out
}

#[cfg(test)]
mod tests;
