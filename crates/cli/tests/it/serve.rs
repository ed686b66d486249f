//! `pybridge serve`: the JSON-RPC specification's examples over HTTP,
//! /metrics through promtool, /health, the token, limits and SIGTERM.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// Compares an answer with the specification's expected one: results and ids
/// exactly; errors by code and id (messages and data are the server's own).
fn same(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Array(a), Value::Array(e)) => {
            a.len() == e.len() && e.iter().all(|exp| a.iter().any(|act| same(act, exp)))
        }
        (Value::Object(a), Value::Object(e)) => {
            a.get("jsonrpc") == Some(&json!("2.0"))
                && a.get("id") == e.get("id")
                && match (a.get("error"), e.get("error")) {
                    (Some(ae), Some(ee)) => ae["code"] == ee["code"],
                    (None, None) => a.get("result") == e.get("result"),
                    _ => false,
                }
        }
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_of_the_json_rpc_specification_is_answered_as_it_says() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(&home, &["--workers", "1"], &spec_worker()).await;
    // (request, expected answer; None means no content)
    let examples: Vec<(&str, Option<Value>)> = vec![
        (
            r#"{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}"#,
            Some(json!({"jsonrpc": "2.0", "result": 19, "id": 1})),
        ),
        (
            r#"{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}"#,
            Some(json!({"jsonrpc": "2.0", "result": -19, "id": 2})),
        ),
        (
            r#"{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}"#,
            Some(json!({"jsonrpc": "2.0", "result": 19, "id": 3})),
        ),
        (
            r#"{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}"#,
            Some(json!({"jsonrpc": "2.0", "result": 19, "id": 4})),
        ),
        (
            r#"{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}"#,
            None,
        ),
        (r#"{"jsonrpc": "2.0", "method": "foobar"}"#, None),
        (
            r#"{"jsonrpc": "2.0", "method": "foobar", "id": "1"}"#,
            Some(
                json!({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}),
            ),
        ),
        (
            r#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#,
            Some(
                json!({"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}),
            ),
        ),
        (
            r#"{"jsonrpc": "2.0", "method": 1, "params": "bar"}"#,
            Some(
                json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}),
            ),
        ),
        (
            r#"[
  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
  {"jsonrpc": "2.0", "method"
]"#,
            Some(
                json!({"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}),
            ),
        ),
        (
            "[]",
            Some(
                json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}),
            ),
        ),
        (
            "[1]",
            Some(
                json!([{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}]),
            ),
        ),
        (
            "[1,2,3]",
            Some(json!([
                {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
                {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
                {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}
            ])),
        ),
        (
            r#"[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
    ]"#,
            Some(json!([
                {"jsonrpc": "2.0", "result": 7, "id": "1"},
                {"jsonrpc": "2.0", "result": 19, "id": "2"},
                {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
                {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
                {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}
            ])),
        ),
        (
            r#"[
        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
    ]"#,
            None,
        ),
    ];
    for (request, expected) in examples {
        let response = server.post("/rpc", request).await;
        match expected {
            None => assert_eq!(
                (response.status, response.body.as_str()),
                (204, ""),
                "{request}"
            ),
            Some(expected) => {
                assert_eq!(response.status, 200, "{request}: {response:?}");
                assert_eq!(response.header("content-type"), Some("application/json"));
                let actual = response.json();
                assert!(
                    same(&actual, &expected),
                    "{request}\n  got      {actual}\n  expected {expected}"
                );
            }
        }
    }
    let (status, _) = server.terminate().await;
    assert_eq!(status, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_count_the_calls() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(&home, &["--workers", "1"], &sdk_worker()).await;
    for i in 0..5 {
        let body = format!(r#"{{"jsonrpc":"2.0","method":"test.echo","params":[{i}],"id":{i}}}"#);
        assert_eq!(server.post("/rpc", &body).await.status, 200);
    }
    let _ = server
        .post(
            "/rpc",
            r#"{"jsonrpc":"2.0","method":"test.sleep","params":{"seconds":"x"},"id":9}"#,
        )
        .await;
    let metrics = server.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .unwrap_or("")
            .starts_with("text/plain")
    );
    let text = metrics.body;
    for name in [
        "pybridge_service_calls_total",
        "pybridge_service_call_duration_seconds_bucket",
        "pybridge_service_validation_failures_total",
        "pybridge_pool_requests_total",
        "pybridge_pool_workers_ready",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("pybridge_service_calls_total{")
                && l.contains("method=\"test.echo\"")
                && l.ends_with(" 5")),
        "five echo calls counted:\n{text}"
    );
    let file = home.path().join("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("promtool is installed (.ci/run installs Debian's prometheus package)");
    assert!(
        promtool.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&promtool.stdout),
        String::from_utf8_lossy(&promtool.stderr)
    );
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_every_worker_and_sees_a_killed_one_replaced() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(&home, &["--workers", "2"], &sdk_worker()).await;
    let health = server.get("/health").await.json();
    assert_eq!(health["status"], "healthy", "{health}");
    let workers = health["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    for field in [
        "pid",
        "state",
        "in_flight",
        "served",
        "restarts",
        "rss_bytes",
    ] {
        assert!(workers[0].get(field).is_some(), "{field} missing: {health}");
    }
    let victim = workers[0]["pid"].as_u64().unwrap() as u32;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(victim as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let health = server.get("/health").await.json();
        let pids: Vec<u64> = health["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["pid"].as_u64().unwrap())
            .collect();
        if health["restarts"] == 1
            && health["ready_workers"] == 2
            && !pids.contains(&u64::from(victim))
        {
            assert_eq!(health["status"], "healthy");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never recovered: {health}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = server
        .post(
            "/rpc",
            r#"{"jsonrpc":"2.0","method":"test.echo","params":[1],"id":1}"#,
        )
        .await;
    assert_eq!(response.json()["result"], json!([1]));
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_call_and_leaves_no_worker() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(&home, &["--workers", "2"], &sdk_worker()).await;
    let health = server.get("/health").await.json();
    let pids: Vec<u32> = health["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["pid"].as_u64().unwrap() as u32)
        .collect();
    let addr = server.addr;
    let mut calls = tokio::task::JoinSet::new();
    // Long enough that all 24 are in flight at once however slow the
    // machine, short of the 10 s the gateway drains for.
    for i in 0..24 {
        calls.spawn(async move {
            let body = format!(
                r#"{{"jsonrpc":"2.0","method":"test.sleep","params":{{"ms":2000}},"id":{i}}}"#
            );
            http(addr, "POST", "/rpc", &[], &body).await
        });
    }
    // Terminate once every call is in a worker's hands.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let health = server.get("/health").await.json();
        let in_flight: u64 = health["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["in_flight"].as_u64().unwrap())
            .sum();
        if in_flight == 24 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "calls never got in flight: {health}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, stderr) = server.terminate().await;
    assert_eq!(status, 0, "{stderr}");
    let mut answered = 0;
    while let Some(joined) = calls.join_next().await {
        let response = joined.unwrap();
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(
            response.json()["result"],
            json!({"slept": 2.0}),
            "{response:?}"
        );
        answered += 1;
    }
    assert_eq!(answered, 24);
    for pid in pids {
        assert!(!alive(pid), "worker {pid} outlived the gateway");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_rpc_and_metrics_and_bodies_are_limited() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("pybridge.toml");
    std::fs::write(&file, "[gateway]\nbody_limit = \"1KiB\"\n").unwrap();
    let server = Server::start(
        &home,
        &[
            "--workers",
            "1",
            "--token",
            "s3cret",
            "--config",
            file.to_str().unwrap(),
        ],
        &sdk_worker(),
    )
    .await;
    let body = r#"{"jsonrpc":"2.0","method":"test.echo","params":[1],"id":1}"#;
    assert_eq!(server.post("/rpc", body).await.status, 401);
    let wrong = http(
        server.addr,
        "POST",
        "/rpc",
        &[("Authorization", "Bearer nope")],
        body,
    )
    .await;
    assert_eq!(wrong.status, 401);
    let right = http(
        server.addr,
        "POST",
        "/rpc",
        &[("Authorization", "Bearer s3cret")],
        body,
    )
    .await;
    assert_eq!(right.status, 200);
    assert!(right.header("x-request-id").is_some(), "{right:?}");
    assert_eq!(server.get("/metrics").await.status, 401);
    assert_eq!(
        server.get("/health").await.status,
        200,
        "health stays open for probes"
    );
    let big = format!(
        r#"{{"jsonrpc":"2.0","method":"test.echo","params":["{}"],"id":1}}"#,
        "x".repeat(4096)
    );
    let too_big = http(
        server.addr,
        "POST",
        "/rpc",
        &[("Authorization", "Bearer s3cret")],
        &big,
    )
    .await;
    assert_eq!(too_big.status, 413);
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_longer_than_the_gateway_allows_gets_a_timeout_error() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("pybridge.toml");
    std::fs::write(&file, "[gateway]\nrequest_timeout = \"300ms\"\n").unwrap();
    let server = Server::start(
        &home,
        &["--workers", "1", "--config", file.to_str().unwrap()],
        &sdk_worker(),
    )
    .await;
    let started = std::time::Instant::now();
    let response = server
        .post(
            "/rpc",
            r#"{"jsonrpc":"2.0","method":"test.sleep","params":{"seconds":10},"id":1}"#,
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered at the gateway's deadline"
    );
    assert_eq!(response.status, 200);
    let answer = response.json();
    assert_eq!(answer["id"], 1);
    assert_eq!(answer["error"]["code"], -32001, "{answer}");
    // The worker was told to cancel and serves the next request.
    let next = server
        .post(
            "/rpc",
            r#"{"jsonrpc":"2.0","method":"test.echo","params":[1],"id":2}"#,
        )
        .await;
    assert_eq!(next.json()["result"], json!([1]));
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_only_a_remote_worker_calls_it_and_shows_its_endpoint_in_health() {
    use tokio::io::AsyncBufReadExt;
    let home = tempfile::tempdir().unwrap();
    let sock = home.path().join("w.sock");
    let url = format!("unix:{}", sock.display());
    let mut listener = tokio::process::Command::new(python())
        .args(["-m", "pybridge_worker", "--listen", &url])
        .env("PYTHONPATH", python_path())
        .env_remove("PYBRIDGE_WORKER_SECRET")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(listener.stderr.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("listening on ") {
                return;
            }
        }
        panic!("the listener ended before listening");
    })
    .await
    .expect("the listener starts");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let server = Server::start(&home, &["--workers", "0", "--connect", &url], &[]).await;
    let answer = server
        .post(
            "/rpc",
            r#"{"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"via":"socket"}}"#,
        )
        .await
        .json();
    assert_eq!(answer["result"]["via"], "socket", "{answer}");
    let health = server.get("/health").await.json();
    assert_eq!(health["status"], "healthy", "{health}");
    let endpoints = health["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1, "{health}");
    assert_eq!(endpoints[0]["address"], url.as_str());
    assert_eq!(endpoints[0]["state"], "ready");
    assert_eq!(health["workers"][0]["remote"], true, "{health}");
    let (status, _) = server.terminate().await;
    assert_eq!(status, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_see_no_traceback_or_worker_stderr_unless_details_are_exposed() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("pybridge.toml");
    std::fs::write(&file, "[retry]\nmax_retries = 0\n").unwrap();
    let config = file.to_str().unwrap();
    let error = r#"{"jsonrpc":"2.0","method":"test.error","params":{"type":"ValueError","message":"bad value"},"id":1}"#;
    let safe_data = |answer: &Value, response: &Response| {
        let data = &answer["error"]["data"];
        let keys: Vec<&str> = data
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["code", "request_id", "retryable"], "{answer}");
        assert_eq!(data["request_id"].as_str(), response.header("x-request-id"));
        assert!(data["retryable"].is_boolean());
    };

    let server = Server::start(
        &home,
        &["--workers", "1", "--config", config],
        &sdk_worker(),
    )
    .await;
    let response = server.post("/rpc", error).await;
    let answer = response.json();
    assert_eq!(
        answer["error"]["message"], "ValueError: bad value",
        "{answer}"
    );
    assert_eq!(answer["error"]["data"]["code"], "remote_error");
    safe_data(&answer, &response);
    assert!(
        !response.body.contains("Traceback") && !response.body.contains(".py"),
        "{}",
        response.body
    );
    let request_id = response.header("x-request-id").unwrap().to_string();
    let (_, log) = server.terminate().await;
    let line = log
        .lines()
        .find(|l| l.contains("call failed") && l.contains(&request_id))
        .unwrap_or_else(|| panic!("no log line for request {request_id}:\n{log}"));
    assert!(
        line.contains("Traceback") || line.contains("traceback"),
        "{line}"
    );

    // A worker that writes to stderr and dies on its first call.
    let crash = vec![
        python(),
        fixtures()
            .join("faults/fault_worker.py")
            .display()
            .to_string(),
        "--mode".into(),
        "crash".into(),
    ];
    let server = Server::start(&home, &["--workers", "1", "--config", config], &crash).await;
    let response = server
        .post(
            "/rpc",
            r#"{"jsonrpc":"2.0","method":"test.echo","params":[1],"id":2}"#,
        )
        .await;
    let answer = response.json();
    assert_eq!(answer["error"]["data"]["code"], "worker_failed", "{answer}");
    safe_data(&answer, &response);
    assert!(
        !response.body.contains("fault_worker"),
        "stderr reached the client: {}",
        response.body
    );
    server.terminate().await;

    let server = Server::start(
        &home,
        &[
            "--workers",
            "1",
            "--config",
            config,
            "--expose-error-details",
        ],
        &sdk_worker(),
    )
    .await;
    let response = server.post("/rpc", error).await;
    assert!(response.body.contains("Traceback"), "{}", response.body);
    assert_eq!(
        response.json()["error"]["data"]["request_id"].as_str(),
        response.header("x-request-id")
    );
    server.terminate().await;
}
