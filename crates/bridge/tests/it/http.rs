//! `pybridge::http::router` mounted in an application of one's own, over
//! real HTTP on 127.0.0.1.

use std::net::SocketAddr;
use std::time::Duration;

use pybridge::http::Limits;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{bridge, sdk_config};

/// A response: its status and its body (JSON, or `Null` when empty).
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
}

/// POSTs `body` to `/rpc` with extra header lines, over a fresh connection.
async fn post(addr: SocketAddr, headers: &str, body: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /rpc HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_string(&mut text))
        .await
        .expect("an answer")
        .unwrap();
    let status = text[9..12].parse().unwrap();
    let (_, payload) = text.split_once("\r\n\r\n").unwrap();
    let body = if payload.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(payload).unwrap_or_else(|e| panic!("{e}: {payload}"))
    };
    Answer { status, body }
}

const JSON: &str = "Content-Type: application/json\r\n";

/// Serves `router` plus a route of the application's own on a free port.
async fn serve(router: axum::Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let app = router.route("/own", axum::routing::get(|| async { "own" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, server)
}

fn check(answer: &Answer, status: u16, body: Value) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.body, body, "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_answers_requests_batches_and_notifications() {
    let bridge = bridge(sdk_config()).await;
    let (addr, server) = serve(pybridge::http::router(bridge.clone())).await;
    let one = r#"{"jsonrpc":"2.0","method":"test.echo","params":{"a":1},"id":1}"#;
    check(
        &post(addr, JSON, one).await,
        200,
        json!({"jsonrpc": "2.0", "result": {"a": 1}, "id": 1}),
    );
    let batch = r#"[{"jsonrpc":"2.0","method":"test.echo","params":[1],"id":"x"},
                    {"jsonrpc":"2.0","method":"test.echo","params":[2]}]"#;
    check(
        &post(addr, JSON, batch).await,
        200,
        json!([{"jsonrpc": "2.0", "result": [1], "id": "x"}]),
    );
    let notification = r#"{"jsonrpc":"2.0","method":"test.echo","params":[3]}"#;
    check(&post(addr, JSON, notification).await, 204, Value::Null);
    let discover = post(
        addr,
        JSON,
        r#"{"jsonrpc":"2.0","method":"rpc.discover","id":2}"#,
    )
    .await;
    assert_eq!(discover.body["result"]["openrpc"], "1.3.2", "{discover:?}");
    server.abort();
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_keeps_its_limits_and_shows_clients_safe_errors() {
    let bridge = bridge(sdk_config()).await;
    let mut limits = Limits::default();
    limits.max_batch = 2;
    limits.max_body = 1024;
    let (addr, server) = serve(pybridge::http::router_with(bridge.clone(), limits)).await;

    let echo = r#"{"jsonrpc":"2.0","method":"test.echo","params":[1],"id":1}"#;
    let answer = post(addr, "Content-Type: text/plain\r\n", echo).await;
    assert_eq!(answer.status, 415, "{answer:?}");
    let big = format!(
        r#"{{"jsonrpc":"2.0","method":"test.echo","params":["{}"],"id":1}}"#,
        "x".repeat(2000)
    );
    assert_eq!(post(addr, JSON, &big).await.status, 413);
    let three = format!("[{echo},{echo},{echo}]");
    let answer = post(addr, JSON, &three).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["error"]["code"], -32600, "{answer:?}");
    assert_eq!(
        answer.body["error"]["data"]["code"], "batch_too_large",
        "{answer:?}"
    );

    // A worker's exception: its message, no traceback; the request id when sent.
    let failing = r#"{"jsonrpc":"2.0","method":"test.error","params":{"message":"boom"},"id":9}"#;
    let answer = post(addr, &format!("{JSON}x-request-id: r-17\r\n"), failing).await;
    let error = &answer.body["error"];
    assert_eq!(error["message"], "RuntimeError: boom", "{answer:?}");
    assert_eq!(
        error["data"],
        json!({"code": "remote_error", "retryable": false, "request_id": "r-17"}),
        "{answer:?}"
    );
    let answer = post(addr, JSON, failing).await;
    assert_eq!(
        answer.body["error"]["data"],
        json!({"code": "remote_error", "retryable": false}),
        "{answer:?}"
    );
    server.abort();
    bridge.shutdown().await;
}
