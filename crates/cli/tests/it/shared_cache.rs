//! Gateways sharing one Redis (`cache.redis_url`): a value computed through
//! one is a hit through another, invalidations reach every gateway, and a
//! dead or frozen Redis fails no call and delays none past its deadline.
//! Each test starts its own `redis-server` on a free loopback port.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::redis_server::RedisServer;
use crate::support::{Server, fixtures, python};

/// The Redis read timeout of these tests' gateways: the longest allowed. A
/// read that times out on a loaded test machine leaves its load without the
/// epochs to write under, so the write a test waits for is dropped (250 ms
/// was once not enough for the bridge's own copy of these tests).
const READ_TIMEOUT: &str = "1s";

/// A config file for a gateway in front of the counting worker tagged `tag`,
/// reading from Redis within `read_timeout`.
fn config(home: &tempfile::TempDir, tag: &str, read_timeout: &str) -> String {
    let worker = fixtures().join("worker");
    let text = format!(
        r#"
[worker]
command = [{python:?}, {script:?}, {tag:?}]
[service]
catalog_files = [{catalog:?}]
[cache]
namespace = "it"
redis_read_timeout = "{read_timeout}"
"#,
        python = python(),
        script = worker.join("counting_worker.py").display().to_string(),
        catalog = worker.join("counting_catalog.json").display().to_string(),
    );
    let file = home.path().join("pybridge.toml");
    std::fs::write(&file, text).unwrap();
    file.display().to_string()
}

async fn gateway(home: &tempfile::TempDir, tag: &str, redis: &RedisServer) -> Server {
    gateway_reading_within(home, tag, redis, READ_TIMEOUT).await
}

async fn gateway_reading_within(
    home: &tempfile::TempDir,
    tag: &str,
    redis: &RedisServer,
    read_timeout: &str,
) -> Server {
    let file = config(home, tag, read_timeout);
    let url = redis.url();
    let server = Server::start(
        home,
        &["--config", &file, "--workers", "1", "--redis-url", &url],
        &[],
    )
    .await;
    wait_state(&server, "active").await;
    server
}

async fn rpc(server: &Server, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
    let response = server.post("/rpc", &body.to_string()).await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()
}

async fn get(server: &Server, x: i64) -> Value {
    let answer = rpc(server, "count.get", json!({"x": x})).await;
    answer["result"].clone()
}

async fn calls(server: &Server) -> u64 {
    rpc(server, "count.calls", json!([])).await["result"]
        .as_u64()
        .unwrap()
}

async fn shared(server: &Server) -> Value {
    server.get("/health").await.json()["cache_shared"].clone()
}

async fn wait_state(server: &Server, state: &str) {
    let started = Instant::now();
    loop {
        let now = shared(server).await;
        if now["state"] == state {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the shared tier stayed {now} instead of {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_writes(server: &Server, n: u64) {
    let started = Instant::now();
    while shared(server).await["writes"].as_u64().unwrap() < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no write landed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{prefix} missing from:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_share_a_workers_values_and_different_workers_never_mix() {
    let redis = RedisServer::start();
    let homes: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, b, c) = tokio::join!(
        gateway(&homes[0], "A", &redis),
        gateway(&homes[1], "A", &redis),
        gateway(&homes[2], "C", &redis),
    );

    assert_eq!(get(&a, 1).await, json!({"x": 1, "tag": "A"}));
    wait_writes(&a, 1).await;
    assert_eq!(get(&b, 1).await, json!({"x": 1, "tag": "A"}));
    assert_eq!(get(&b, 1).await, json!({"x": 1, "tag": "A"}));
    assert_eq!(
        (calls(&a).await, calls(&b).await),
        (1, 0),
        "b's worker never ran"
    );
    assert_eq!(
        shared(&b).await["hits"],
        1,
        "the second call of b is a memory hit"
    );
    // Another worker (another producer identity) on the same deployment.
    assert_eq!(get(&c, 1).await, json!({"x": 1, "tag": "C"}));
    assert_eq!(calls(&c).await, 1);

    let text = b.get("/metrics").await.body;
    assert_eq!(
        metric(&text, "pybridge_cache_hits_total{tier=\"shared\"}"),
        1.0
    );
    assert_eq!(metric(&text, "pybridge_cache_shared_state"), 1.0);
    for name in [
        "pybridge_cache_shared_misses_total",
        "pybridge_cache_shared_errors_total",
    ] {
        metric(&text, name);
    }
    let file = homes[1].path().join("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("promtool is installed");
    assert!(
        promtool.status.success(),
        "{}",
        String::from_utf8_lossy(&promtool.stderr)
    );
    for server in [a, b, c] {
        server.terminate().await;
    }
}

/// A gateway in front of the embedded framework worker, on `redis`.
async fn framework_gateway(home: &tempfile::TempDir, redis: &RedisServer) -> Server {
    let file = home.path().join("pybridge.toml");
    std::fs::write(
        &file,
        format!("[cache]\nnamespace = \"it\"\nredis_read_timeout = \"{READ_TIMEOUT}\"\n"),
    )
    .unwrap();
    let (file, url) = (file.display().to_string(), redis.url());
    let server = Server::start(
        home,
        &["--config", &file, "--workers", "1", "--redis-url", &url],
        &[],
    )
    .await;
    wait_state(&server, "active").await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_gateway_drops_the_familys_reads_in_another_within_100ms() {
    let redis = RedisServer::start();
    let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = tokio::join!(
        framework_gateway(&home_a, &redis),
        framework_gateway(&home_b, &redis)
    );
    let stats = || {
        rpc(
            &b,
            "pattern_learning.get_statistics",
            json!({"domain": "finance"}),
        )
    };
    let misses = || async { metric(&b.get("/metrics").await.body, "pybridge_cache_misses_total") };

    stats().await;
    stats().await;
    // b writes its value to Redis in the background: wait until it is there,
    // or a write landing after a's invalidation would be served (a value
    // written after an invalidation lives until its TTL, as documented).
    let cached = Instant::now();
    while shared(&b).await["writes"].as_u64().unwrap() == 0 {
        assert!(
            cached.elapsed() < Duration::from_secs(5),
            "b never wrote its value to Redis"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = misses().await;
    let recorded = rpc(
        &a,
        "pattern_learning.record_pattern",
        json!({"pattern_name": "var-historical", "domain": "finance", "success_rate": 0.9}),
    )
    .await;
    assert!(recorded.get("result").is_some(), "{recorded}");
    let written = Instant::now();
    while shared(&b).await["invalidations_received"].as_u64().unwrap() == 0 {
        assert!(
            written.elapsed() < Duration::from_secs(5),
            "b never heard of the write"
        );
    }
    let took = written.elapsed();
    assert!(
        took < Duration::from_millis(100),
        "b heard of the write after {took:?}"
    );
    // Every tier dropped it: b's worker answers again.
    stats().await;
    assert_eq!(misses().await, before + 1.0);
    a.terminate().await;
    b.terminate().await;
}

/// Calls `count.get` with fresh keys from `tasks` tasks until `stop`; returns
/// (calls, failures, slowest).
fn load(
    server: &Server,
    tasks: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<(u64, u64, Duration)> {
    let addr = server.addr;
    let next = Arc::new(AtomicU64::new(1000));
    tokio::spawn(async move {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..tasks {
            let (stop, next) = (Arc::clone(&stop), Arc::clone(&next));
            set.spawn(async move {
                let (mut n, mut failed, mut slowest) = (0, 0, Duration::ZERO);
                while !stop.load(Ordering::Relaxed) {
                    let x = next.fetch_add(1, Ordering::Relaxed);
                    let body = json!({"jsonrpc": "2.0", "method": "count.get", "params": {"x": x}, "id": x});
                    let started = Instant::now();
                    let response = crate::support::http(addr, "POST", "/rpc", &[], &body.to_string()).await;
                    slowest = slowest.max(started.elapsed());
                    n += 1;
                    if response.status != 200 || response.json()["result"]["x"] != x {
                        failed += 1;
                    }
                }
                (n, failed, slowest)
            });
        }
        let mut total = (0, 0, Duration::ZERO);
        while let Some(done) = set.join_next().await {
            let (n, failed, slowest) = done.unwrap();
            total = (total.0 + n, total.1 + failed, total.2.max(slowest));
        }
        total
    })
}

async fn under_load<F: std::future::Future<Output = ()>>(
    server: &Server,
    during: F,
) -> (u64, u64, Duration) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let running = load(server, 4, Arc::clone(&stop));
    during.await;
    stop.store(true, Ordering::Relaxed);
    running.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_frozen_redis_fails_no_call_and_delays_none_past_its_deadline() {
    let mut redis = RedisServer::start();
    let port = redis.port();
    let home = tempfile::tempdir().unwrap();
    // Short reads, so that a frozen Redis costs a call far less than its
    // deadline, and the slowest call below says so.
    let server = gateway_reading_within(&home, "A", &redis, "250ms").await;

    let (n, failed, _) = under_load(&server, async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        redis.kill();
        wait_state(&server, "off").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    })
    .await;
    assert!(n > 20, "only {n} calls under load");
    assert_eq!(failed, 0, "{failed} of {n} calls failed while Redis died");
    let health = server.get("/health").await.json();
    assert_eq!(health["status"], "degraded");
    assert!(health["cache_shared"]["errors"].as_u64().unwrap() >= 1);

    let redis = RedisServer::start_on(port);
    wait_state(&server, "active").await;

    // Frozen: the tier answers nothing; each read costs at most its timeout
    // (250 ms) until the tier turns itself off.
    let (n, failed, slowest) = under_load(&server, async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        redis.freeze();
        wait_state(&server, "off").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    })
    .await;
    redis.thaw();
    assert_eq!(
        failed, 0,
        "{failed} of {n} calls failed while Redis was frozen"
    );
    // `count.get` has a 2 s deadline in its catalog: a call past it would
    // have failed above; this also shows how far below it the slowest was.
    assert!(
        slowest < Duration::from_secs(2),
        "slowest call took {slowest:?}"
    );
    wait_state(&server, "active").await;
    server.terminate().await;
}
