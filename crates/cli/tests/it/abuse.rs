//! `pybridge serve` under abuse: slow and idle connections, running out of
//! descriptors, SIGTERM with a silent client, huge batches, browsers (foreign
//! `Host` and `Origin`, wrong content type) and the token. Loopback only;
//! every wait is bounded and every attack is a few dozen connections.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::support::*;

fn config(home: &tempfile::TempDir, text: &str) -> PathBuf {
    let file = home.path().join("pybridge.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// Whether the server closes `stream` within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// GET /health, which must answer 200 within a generous bound.
async fn health_answers(server: &Server) -> Value {
    let response = tokio::time::timeout(Duration::from_secs(10), server.get("/health"))
        .await
        .expect("/health answers while the gateway is under attack");
    assert_eq!(response.status, 200, "{response:?}");
    response.json()
}

const ECHO: &str = r#"{"jsonrpc":"2.0","method":"test.echo","params":[1],"id":1}"#;

/// A POST /rpc with these extra header lines (each ending in \r\n).
fn post(host: &str, extra: &str, body: &str) -> String {
    format!(
        "POST /rpc HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_cut_off_while_health_stays_reachable() {
    let home = tempfile::tempdir().unwrap();
    let file = config(&home, "[gateway]\nheader_read_timeout = \"1s\"\n");
    let server = Server::start(
        &home,
        &["--workers", "1", "--config", file.to_str().unwrap()],
        &sdk_worker(),
    )
    .await;
    let addr = server.addr;
    let mut slow = JoinSet::new();
    for _ in 0..20 {
        slow.spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Slow: {}\r\n\r\n",
                "y".repeat(200)
            );
            let started = Instant::now();
            for byte in head.bytes() {
                // The write after the server's close fails (reset).
                if stream.write_all(&[byte]).await.is_err() {
                    return Some(started.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                if started.elapsed() > Duration::from_secs(10) {
                    return None;
                }
            }
            None
        });
    }
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let health = health_answers(&server).await;
        assert_eq!(health["status"], "healthy", "{health}");
    }
    while let Some(joined) = slow.join_next().await {
        let cut = joined.unwrap();
        assert!(
            cut.is_some_and(|t| t < Duration::from_secs(6)),
            "a client sending a byte every 200 ms kept its connection: {cut:?}"
        );
    }
    let (status, stderr) = server.terminate().await;
    assert_eq!(status, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_and_stalled_bodies_are_closed() {
    let home = tempfile::tempdir().unwrap();
    let file = config(&home, "[gateway]\nidle_timeout = \"1s\"\n");
    let server = Server::start(
        &home,
        &["--workers", "1", "--config", file.to_str().unwrap()],
        &sdk_worker(),
    )
    .await;
    let addr = server.addr;
    // A connection that never sends anything.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // A kept-alive connection after one answer.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /rpc HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{ECHO}",
        ECHO.len()
    );
    kept.write_all(request.as_bytes()).await.unwrap();
    let mut first = [0u8; 512];
    let n = kept.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    // A body that stops after ten of its hundred bytes.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /rpc HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"jsonrpc\""
    );
    stalled.write_all(head.as_bytes()).await.unwrap();

    assert!(
        closed_within(&mut silent, Duration::from_secs(5)).await,
        "silent connection kept open"
    );
    assert!(
        closed_within(&mut kept, Duration::from_secs(5)).await,
        "idle kept-alive connection kept open"
    );
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut answer))
        .await
        .expect("the stalled body is given up")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    health_answers(&server).await;
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_the_cap_do_not_lock_out_health_or_calls() {
    let home = tempfile::tempdir().unwrap();
    let file = config(
        &home,
        "[gateway]\nmax_connections = 8\nidle_timeout = \"60s\"\nheader_read_timeout = \"60s\"\n",
    );
    let server = Server::start(
        &home,
        &["--workers", "1", "--config", file.to_str().unwrap()],
        &sdk_worker(),
    )
    .await;
    let mut idle = Vec::new();
    for _ in 0..30 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    health_answers(&server).await;
    let call = tokio::time::timeout(Duration::from_secs(10), server.post("/rpc", ECHO))
        .await
        .expect("a call gets through");
    assert_eq!(call.json()["result"], json!([1]));
    let mut closed = 0;
    for stream in &mut idle {
        if closed_within(stream, Duration::from_millis(50)).await {
            closed += 1;
        }
    }
    assert!(
        closed >= 30 - 8,
        "only {closed} of 30 idle connections were closed to make room"
    );
    let (status, stderr) = server.terminate().await;
    assert_eq!(status, 0, "{stderr}");
    assert!(stderr.contains("connection cap reached"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_is_logged_and_survived() {
    let home = tempfile::tempdir().unwrap();
    let file = config(
        &home,
        "[gateway]\nidle_timeout = \"60s\"\nheader_read_timeout = \"60s\"\n",
    );
    let server = Server::start_limited(
        &home,
        &["--workers", "1", "--config", file.to_str().unwrap()],
        &sdk_worker(),
        Some(64),
    )
    .await;
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    health_answers(&server).await;
    let call = tokio::time::timeout(Duration::from_secs(10), server.post("/rpc", ECHO))
        .await
        .expect("a call gets through");
    assert_eq!(call.json()["result"], json!([1]));
    drop(idle);
    let (status, stderr) = server.terminate().await;
    assert_eq!(status, 0, "{stderr}");
    assert!(stderr.contains("out of file descriptors"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_accepted_calls_without_waiting_for_a_silent_client() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(&home, &["--workers", "1"], &sdk_worker()).await;
    let addr = server.addr;
    // Half a request head, then nothing.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    silent
        .write_all(format!("POST /rpc HTTP/1.1\r\nHost: {addr}\r\nX-Never: ").as_bytes())
        .await
        .unwrap();
    let call = tokio::spawn(async move {
        http(
            addr,
            "POST",
            "/rpc",
            &[],
            r#"{"jsonrpc":"2.0","method":"test.sleep","params":{"ms":1000},"id":7}"#,
        )
        .await
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let health = server.get("/health").await.json();
        if health["workers"][0]["in_flight"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the call never got in flight: {health}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let (status, stderr) = server.terminate().await;
    let took = started.elapsed();
    assert_eq!(status, 0, "{stderr}");
    assert!(
        took < Duration::from_secs(5),
        "shutdown waited {took:?} for a silent client"
    );
    let answer = call.await.unwrap();
    assert_eq!(answer.json()["result"], json!({"slept": 1.0}), "{answer:?}");
    assert!(closed_within(&mut silent, Duration::from_secs(1)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_batches_and_huge_answers_get_one_error() {
    let home = tempfile::tempdir().unwrap();
    let file = config(
        &home,
        "[gateway]\nmax_response = \"16KiB\"\nbody_limit = \"64KiB\"\n",
    );
    let server = Server::start(
        &home,
        &["--workers", "1", "--config", file.to_str().unwrap()],
        &sdk_worker(),
    )
    .await;
    // Over the default gateway.max_batch (2000).
    let entries = vec!["1"; 5000].join(",");
    let response = server.post("/rpc", &format!("[{entries}]")).await;
    assert_eq!(response.status, 200);
    let answer = response.json();
    assert!(
        answer.is_object(),
        "one error, not 5000: {}",
        response.body.len()
    );
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
    assert_eq!(
        answer["error"]["data"]["code"], "batch_too_large",
        "{answer}"
    );
    // 200 answers of ~150 bytes each are over 16 KiB.
    let calls: Vec<String> = (0..200)
        .map(|i| {
            format!(
                r#"{{"jsonrpc":"2.0","method":"test.echo","params":["{}"],"id":{i}}}"#,
                "x".repeat(100)
            )
        })
        .collect();
    let response = server.post("/rpc", &format!("[{}]", calls.join(","))).await;
    assert!(response.body.len() < 1024, "{}", response.body.len());
    let answer = response.json();
    assert_eq!(
        answer["error"]["data"]["code"], "response_too_large",
        "{answer}"
    );
    // A body without a length is cut at the limit too.
    let chunk = "x".repeat(32 * 1024);
    let request = format!(
        "POST /rpc HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        server.addr,
        chunk.len(),
        chunk.len(),
        chunk.len()
    );
    assert_eq!(raw(server.addr, &request).await.status, 413);
    // Within the limits, a batch is answered in full.
    let response = server
        .post("/rpc", &format!("[{}]", calls[..20].join(",")))
        .await;
    assert_eq!(response.json().as_array().map(Vec::len), Some(20));
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_big_batch_does_not_make_another_client_wait_for_it() {
    let home = tempfile::tempdir().unwrap();
    let mut worker = sdk_worker();
    worker.extend(["--max-concurrency".to_string(), "64".to_string()]);
    let server = Server::start(&home, &["--workers", "1"], &worker).await;
    let addr = server.addr;
    let calls: Vec<String> = (0..1000)
        .map(|i| {
            format!(r#"{{"jsonrpc":"2.0","method":"test.sleep","params":{{"ms":50}},"id":{i}}}"#)
        })
        .collect();
    let body = format!("[{}]", calls.join(","));
    let started = Instant::now();
    let batch = tokio::spawn(async move {
        let response = http(addr, "POST", "/rpc", &[], &body).await;
        (response, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = Instant::now();
    let other = server.post("/rpc", ECHO).await;
    let other_took = asked.elapsed();
    assert_eq!(other.json()["result"], json!([1]));
    let (response, batch_took) = batch.await.unwrap();
    let answers = response.json();
    assert_eq!(answers.as_array().map(Vec::len), Some(1000));
    assert!(
        answers
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["result"] == json!({"slept": 0.05})),
        "every call of the batch answered"
    );
    // The other client waits for a slot, not for the batch: a small share of its time.
    assert!(
        other_took * 4 < batch_took,
        "another client waited {other_took:?} while a batch took {batch_took:?}"
    );
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_cannot_drive_the_gateway_from_a_foreign_page() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(&home, &["--workers", "1"], &sdk_worker()).await;
    let addr = server.addr;
    let port = addr.port();
    let own = addr.to_string();
    let json = "Content-Type: application/json\r\n";
    let cases: Vec<(String, u16)> = vec![
        (post(&own, json, ECHO), 200),
        (post(&format!("localhost:{port}"), json, ECHO), 200),
        (
            post(
                &own,
                "Content-Type: application/json; charset=utf-8\r\n",
                ECHO,
            ),
            200,
        ),
        // A form or a fetch without preflight.
        (post(&own, "Content-Type: text/plain\r\n", ECHO), 415),
        (
            post(
                &own,
                "Content-Type: application/x-www-form-urlencoded\r\n",
                ECHO,
            ),
            415,
        ),
        (post(&own, "", ECHO), 415),
        // DNS rebinding: the attacker's name, the gateway's address.
        (
            post(&format!("rebind.attacker.example:{port}"), json, ECHO),
            403,
        ),
        // A cross-site request from a page.
        (
            post(
                &own,
                &format!("{json}Origin: https://evil.example\r\n"),
                ECHO,
            ),
            403,
        ),
        (post(&own, &format!("{json}Origin: null\r\n"), ECHO), 403),
        (
            post(
                &own,
                &format!("{json}Origin: http://localhost:{port}\r\n"),
                ECHO,
            ),
            200,
        ),
        (
            format!(
                "GET /metrics HTTP/1.1\r\nHost: evil.example:{port}\r\nConnection: close\r\n\r\n"
            ),
            403,
        ),
    ];
    for (request, expected) in cases {
        let response = raw(addr, &request).await;
        assert_eq!(response.status, expected, "{request}\n{response:?}");
    }
    server.terminate().await;

    let server = Server::start(
        &home,
        &[
            "--workers",
            "1",
            "--allowed-host",
            "api.test",
            "--allowed-origin",
            "https://app.test",
        ],
        &sdk_worker(),
    )
    .await;
    let own = server.addr.to_string();
    for (host, origin, expected) in [
        ("api.test", "", 200),
        ("api.test:8443", "", 200),
        (own.as_str(), "", 200),
        ("other.test", "", 403),
        ("api.test", "Origin: https://app.test\r\n", 200),
        ("api.test", "Origin: https://other.test\r\n", 403),
    ] {
        let response = raw(server.addr, &post(host, &format!("{json}{origin}"), ECHO)).await;
        assert_eq!(response.status, expected, "{host} {origin}: {response:?}");
    }
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_checked_first_in_any_case_and_health_hides_details_without_it() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(
        &home,
        &["--workers", "1", "--token", "s3cret"],
        &sdk_worker(),
    )
    .await;
    let addr = server.addr;
    let json = "Content-Type: application/json\r\n";
    for (authorization, expected) in [
        ("Bearer s3cret", 200),
        ("bearer s3cret", 200),
        ("BEARER s3cret", 200),
        ("Bearer s3cre", 401),
        ("Bearer s3cret-and-more", 401),
        ("Basic s3cret", 401),
    ] {
        let request = post(
            &addr.to_string(),
            &format!("{json}Authorization: {authorization}\r\n"),
            ECHO,
        );
        let response = raw(addr, &request).await;
        assert_eq!(response.status, expected, "{authorization}: {response:?}");
    }
    // A wrong token is refused before the (never sent) body is waited for.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /rpc HTTP/1.1\r\nHost: {addr}\r\n{json}Authorization: Bearer wrong\r\nContent-Length: 1000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("refused without reading the body")
        .unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 401"));

    let anonymous = server.get("/health").await;
    assert_eq!(anonymous.status, 200);
    let body = anonymous.json();
    assert_eq!(
        body,
        json!({"status": "healthy"}),
        "no pids or memory without the token"
    );
    let full = http(
        addr,
        "GET",
        "/health",
        &[("Authorization", "Bearer s3cret")],
        "",
    )
    .await
    .json();
    assert!(full["workers"][0]["pid"].is_u64(), "{full}");
    server.terminate().await;
}
