//! JSON-RPC 2.0 over HTTP: one request, notification or batch per POST body,
//! answered as the specification says, within the gateway's limits (batch
//! length, response size, calls of one batch at once), with errors cut down
//! to what a client may see.

use pybridge::protocol::{
    ErrorCode, ErrorObject, Id, Message, MethodKind, Request, write_response,
};
use pybridge::{Bridge, CallOptions, Error};
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

/// The answer to a POST body: a JSON body, or nothing (only notifications).
pub(crate) type Answer = Option<Vec<u8>>;

/// What one POST body may do, and how its errors are shown.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The most entries in a batch.
    pub(crate) max_batch: usize,
    /// Calls of one batch in flight at once.
    pub(crate) batch_concurrency: usize,
    /// The largest answer, in bytes.
    pub(crate) max_response: usize,
    /// Send the full error objects (development) instead of the safe ones.
    pub(crate) expose_error_details: bool,
}

/// One POST body's context.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub(crate) bridge: Bridge,
    pub(crate) limits: Limits,
    /// Bounds every call in the body.
    pub(crate) deadline: Instant,
    /// The `x-request-id` the answer carries; logs of its failures name it.
    pub(crate) request_id: std::sync::Arc<str>,
}

/// Handles one body.
pub(crate) async fn handle(cx: &Context, body: &[u8]) -> Answer {
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

async fn batch(cx: &Context, entries: Vec<Result<Message, pybridge::protocol::Error>>) -> Answer {
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
        // Start calls up to the batch's share of the pool, then take an answer.
        while calls.len() < cx.limits.batch_concurrency {
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
        let document = crate::openrpc::document(cx.bridge.service().catalog());
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
        pybridge::service::telemetry::record_error(&span, err.code());
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
            let shown = if cx.limits.expose_error_details {
                exposed(full, &err, &cx.request_id)
            } else {
                safe_error_object(&err, &cx.request_id)
            };
            error_response(&request.id, &shown)
        }
    }
}

/// The server span of one JSON-RPC call of a request (OpenTelemetry's RPC
/// conventions), inside the HTTP request's span.
fn call_span(request: &Request) -> tracing::Span {
    use pybridge::service::telemetry::{RPC_SYSTEM, fields};
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
    if server_side(err) {
        tracing::warn!(
            request_id = %cx.request_id,
            method,
            code = err.code(),
            error = %err.report(),
            data,
            "call failed"
        );
    } else {
        tracing::debug!(
            request_id = %cx.request_id,
            method,
            code = err.code(),
            error = %err.report(),
            data,
            "call failed"
        );
    }
}

/// Failures on the server's side, worth a warning; the others are the
/// caller's (bad params, deadlines, overload) and would flood the log.
fn server_side(err: &Error) -> bool {
    matches!(
        err.code(),
        "remote_error"
            | "worker_failed"
            | "invalid_result"
            | "decode_error"
            | "response_too_large"
            | "unavailable"
            | "internal"
    )
}

/// The error a client sees by default: the JSON-RPC code, a message that
/// quotes nothing from the worker's stderr, and `data` holding only the
/// error kind, whether a retry may help, and the request id.
pub(crate) fn safe_error_object(err: &Error, request_id: &str) -> ErrorObject {
    let full = err.to_error_object();
    let object = ErrorObject::new(full.code, safe_message(err));
    with_data(
        object,
        json!({"code": err.code(), "retryable": err.is_retryable(), "request_id": request_id}),
    )
}

/// The full error object, with the retry hint and the request id added.
fn exposed(mut full: ErrorObject, err: &Error, request_id: &str) -> ErrorObject {
    let data = full
        .data
        .as_deref()
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d.get()).ok());
    match data {
        Some(serde_json::Value::Object(mut map)) => {
            map.entry("code").or_insert_with(|| json!(err.code()));
            map.insert("retryable".into(), json!(err.is_retryable()));
            map.insert("request_id".into(), json!(request_id));
            full = with_data(full, serde_json::Value::Object(map));
        }
        Some(_) => {}
        None => {
            full = with_data(
                full,
                json!({"code": err.code(), "retryable": err.is_retryable(), "request_id": request_id}),
            );
        }
    }
    full
}

/// The message of `err` without anything a worker wrote to stderr: a
/// worker's own error keeps its message; a failed worker is named by what
/// happened, not by its last words.
fn safe_message(err: &Error) -> String {
    use pybridge::pool::Error as PoolError;
    match err {
        Error::Shared(inner) => safe_message(inner),
        Error::Pool {
            source: PoolError::Remote { error, .. },
            ..
        } => error.message.clone(),
        Error::Pool {
            source: PoolError::WorkerFailed { .. },
            ..
        } => format!("{err}: the worker handling it failed"),
        Error::Pool {
            source: PoolError::Unavailable { .. } | PoolError::StartFailed { .. },
            ..
        } => format!("{err}: no worker is available"),
        Error::DeadlineExceeded { last, .. } => format!("{err}: {}", safe_message(last)),
        // Their causes describe the caller's request or the gateway's own state.
        Error::Rejected { .. } | Error::CircuitOpen { .. } => err.report(),
        Error::Pool {
            source:
                PoolError::Timeout { .. }
                | PoolError::QueueFull { .. }
                | PoolError::ShuttingDown
                | PoolError::ResponseTooLarge { .. },
            ..
        } => err.report(),
        _ => err.to_string(),
    }
}

fn batch_too_long(cx: &Context, count: usize) -> Vec<u8> {
    tracing::debug!(request_id = %cx.request_id, count, "batch refused: too long");
    let error = ErrorObject::new(
        ErrorCode::INVALID_REQUEST,
        format!(
            "a batch of {count} entries is over the limit of {} (gateway.max_batch)",
            cx.limits.max_batch
        ),
    );
    let error = with_data(
        error,
        json!({"code": "batch_too_large", "retryable": false, "request_id": &*cx.request_id}),
    );
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

fn with_data(object: ErrorObject, data: serde_json::Value) -> ErrorObject {
    // A `Value` always serializes.
    object.clone().with_data(&data).unwrap_or(object)
}

fn too_large(cx: &Context, id: &Id) -> Vec<u8> {
    tracing::debug!(request_id = %cx.request_id, "answer over gateway.max_response");
    let error = ErrorObject::new(
        ErrorCode::SERVER_ERROR,
        format!(
            "the answer is over the limit of {} bytes (gateway.max_response)",
            cx.limits.max_response
        ),
    );
    let error = with_data(
        error,
        json!({"code": "response_too_large", "retryable": false, "request_id": &*cx.request_id}),
    );
    error_response(id, &error)
}

fn error_response(id: &Id, error: &ErrorObject) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_response(&mut out, id, Err(error));
    out
}

#[cfg(test)]
mod tests;
