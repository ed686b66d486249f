//! JSON-RPC 2.0 over HTTP: one request, notification or batch per POST body,
//! answered as the specification says.

use std::sync::Arc;

use pybridge::protocol::{
    ErrorCode, ErrorObject, Id, Message, MethodKind, Request, write_response,
};
use pybridge::{Bridge, CallOptions};
use tokio::time::Instant;

/// The answer to a POST body: a JSON body, or nothing (only notifications).
pub(crate) type Answer = Option<Vec<u8>>;

/// Handles one body; `deadline` bounds every call in it.
pub(crate) async fn handle(bridge: &Bridge, body: &[u8], deadline: Instant) -> Answer {
    match Message::from_slice(body) {
        Err(err) => Some(error_response(err.id(), &err.to_error_object())),
        Ok(Message::Batch(entries)) => batch(bridge, entries, deadline).await,
        Ok(message) => single(bridge, message, deadline).await,
    }
}

async fn batch(
    bridge: &Bridge,
    entries: Vec<Result<Message, pybridge::protocol::Error>>,
    deadline: Instant,
) -> Answer {
    let mut tasks = tokio::task::JoinSet::new();
    let count = entries.len();
    let mut answers: Vec<Answer> = vec![None; count];
    for (index, entry) in entries.into_iter().enumerate() {
        match entry {
            Err(err) => answers[index] = Some(error_response(err.id(), &err.to_error_object())),
            Ok(message) => {
                let bridge = bridge.clone();
                tasks.spawn(async move { (index, single(&bridge, message, deadline).await) });
            }
        }
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, answer)) = joined {
            answers[index] = answer;
        }
    }
    let parts: Vec<Vec<u8>> = answers.into_iter().flatten().collect();
    if parts.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum::<usize>() + parts.len() + 1);
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

async fn single(bridge: &Bridge, message: Message, deadline: Instant) -> Answer {
    match message {
        Message::Request(request) => Some(request_answer(bridge, request, deadline).await),
        Message::Notification(notification) => {
            // A notification is answered by nobody, whatever happens to it.
            if notification.method_kind() == MethodKind::Application {
                let _ = bridge
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

async fn request_answer(bridge: &Bridge, request: Request, deadline: Instant) -> Vec<u8> {
    if request.method == "rpc.discover" {
        let document = crate::openrpc::document(bridge.service().catalog());
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
    let options = CallOptions::new().deadline(deadline);
    match bridge
        .call_with(&request.method, request.params.as_deref(), &options)
        .await
    {
        Ok(reply) => {
            let mut out = Vec::with_capacity(reply.result.get().len() + 48);
            write_response(&mut out, &request.id, Ok(&reply.result));
            out
        }
        Err(err) => error_response(&request.id, &err.to_error_object()),
    }
}

fn error_response(id: &Id, error: &ErrorObject) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_response(&mut out, id, Err(error));
    out
}

/// Shared state of the gateway's handlers.
#[derive(Debug, Clone)]
pub(crate) struct Gateway {
    pub(crate) bridge: Bridge,
    pub(crate) token: Option<Arc<str>>,
    pub(crate) metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub(crate) request_timeout: std::time::Duration,
}
