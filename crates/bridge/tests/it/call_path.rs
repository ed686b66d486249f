//! The call path end to end against real workers: validation before the
//! worker, the cache, retries, breakers, deadlines, errors and shutdown.

use std::time::Duration;

use pybridge::ErrorCode;
use pybridge::{BatchCall, Bridge, BridgeEvent, CallOptions, Error, HealthStatus};
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_round_trip_in_every_form() {
    let bridge = bridge(sdk_config()).await;
    assert_eq!(
        bridge
            .call("test.echo", json!({"a": [1, 2]}))
            .await
            .unwrap(),
        json!({"a": [1, 2]})
    );
    let raw_result = bridge
        .call_raw("test.echo", Some(&raw(r#"{"x":"€"}"#)))
        .await
        .unwrap();
    assert_eq!(
        raw_result.get(),
        r#"{"x":"\u20ac"}"#,
        "the worker's text comes back untouched"
    );
    #[derive(serde::Deserialize, PartialEq, Debug)]
    struct Slept {
        slept: f64,
    }
    let slept: Slept = bridge
        .call_as("test.sleep", &json!({"ms": 1}))
        .await
        .unwrap();
    assert_eq!(slept, Slept { slept: 0.001 });
    bridge.notify("test.echo", Some(&raw("[1]"))).await.unwrap();
    let replies = bridge
        .batch(vec![
            BatchCall::new("test.echo", Some(raw("[1]"))),
            BatchCall::new("test.error", Some(raw(r#"{"type":"KeyError"}"#))),
            BatchCall::new("test.echo", Some(raw("[3]"))),
        ])
        .await;
    assert_eq!(replies.len(), 3);
    assert_eq!(replies[0].as_ref().unwrap().result.get(), "[1]");
    assert_eq!(
        replies[1].as_ref().unwrap_err().kind(),
        pybridge::ErrorKind::RemoteError
    );
    assert_eq!(replies[2].as_ref().unwrap().result.get(), "[3]");
    let stats = bridge.stats();
    assert_eq!((stats.calls, stats.succeeded, stats.failed), (6, 5, 1));
    bridge.shutdown().await;
}

// Relies on the framework's catalog (its policies or methods).
#[cfg(feature = "framework")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_params_never_reach_a_worker_and_never_trip_a_breaker() {
    let mut config = sdk_config();
    // The framework's worker: its manifest declares the method, so the
    // registry lists it as available and checks its params.
    config.worker.command = framework_command();
    config.worker.command.push("--memory".into());
    config.breaker.mode = pybridge::config::BreakerMode::Consecutive;
    config.breaker.failure_threshold = 2;
    let bridge = bridge(config).await;
    for _ in 0..10 {
        let err = bridge
            .call(
                "pattern_learning.get_recommendations",
                json!({"max_results": "five", "domain": "mars"}),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), pybridge::ErrorKind::InvalidParams);
        let object = err.to_error_object();
        assert_eq!(object.code, ErrorCode::INVALID_PARAMS);
        let data: serde_json::Value = object.data_as().unwrap().unwrap();
        let paths: Vec<&str> = data["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["instance_path"].as_str().unwrap())
            .collect();
        assert!(
            paths.contains(&"/max_results") && paths.contains(&"/domain"),
            "{data}"
        );
        assert!(!err.is_retryable());
    }
    assert_eq!(served(&bridge), 0, "no worker saw a bad request");
    assert!(bridge.health().open_breakers.is_empty());
    assert_eq!(bridge.health().status, HealthStatus::Healthy);
    bridge.shutdown().await;
}

#[cfg(feature = "cache")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cacheable_results_come_from_memory_and_concurrent_misses_run_once() {
    let mut config = sdk_config();
    let mut settings = pybridge::config::MethodSettings::default();
    settings.cache = Some(true);
    config.methods.insert("test.sleep".into(), settings);
    let bridge = bridge(config).await;
    let params = raw(r#"{"ms":200}"#);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (bridge, params) = (bridge.clone(), params.clone());
        calls.spawn(async move {
            bridge
                .call_with("test.sleep", Some(&params), &CallOptions::new())
                .await
        });
    }
    while let Some(joined) = calls.join_next().await {
        assert_eq!(joined.unwrap().unwrap().result.get(), r#"{"slept":0.2}"#);
    }
    assert_eq!(
        served(&bridge),
        1,
        "twenty concurrent misses ran the worker once"
    );
    // Key order does not matter; the memory tier answers.
    let reply = bridge
        .call_with(
            "test.sleep",
            Some(&raw(r#"{ "ms" : 200 }"#)),
            &CallOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(reply.source, pybridge::ResultSource::CacheMemory);
    let bypass = bridge
        .call_with("test.sleep", Some(&params), &CallOptions::new().no_cache())
        .await
        .unwrap();
    assert_eq!(bypass.source, pybridge::ResultSource::Worker);
    assert_eq!(served(&bridge), 2);
    let stats = bridge.stats();
    assert!(
        stats.cache_l1_hits >= 1 && stats.cache_misses >= 1,
        "{stats:?}"
    );
    bridge.shutdown().await;
}

/// One `test.sleep` call of `ms` with a timeout of `timeout_ms`, and how long
/// it took.
#[cfg(feature = "cache")]
async fn timed_sleep(
    bridge: Bridge,
    ms: u64,
    timeout_ms: u64,
) -> (pybridge::Result<pybridge::Reply>, Duration) {
    let started = std::time::Instant::now();
    let options = CallOptions::new().timeout(Duration::from_millis(timeout_ms));
    let params = raw(&format!(r#"{{"ms":{ms}}}"#));
    let reply = bridge
        .call_with("test.sleep", Some(&params), &options)
        .await;
    (reply, started.elapsed())
}

#[cfg(any(feature = "cache", feature = "framework"))]
fn in_flight(bridge: &Bridge) -> usize {
    bridge
        .health()
        .pool
        .workers
        .iter()
        .map(|w| w.in_flight)
        .sum()
}

#[cfg(feature = "cache")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_joins_a_cached_load_ends_by_its_own_deadline() {
    let mut config = sdk_config();
    let mut settings = pybridge::config::MethodSettings::default();
    settings.cache = Some(true);
    config.methods.insert("test.sleep".into(), settings);
    let bridge = bridge(config).await;

    // A joiner with less time than the load takes gives up at its deadline;
    // the load goes on for the caller that started it.
    let leader = tokio::spawn(timed_sleep(bridge.clone(), 2_500, 10_000));
    eventually(Duration::from_secs(5), "the first load is running", || {
        in_flight(&bridge) == 1
    })
    .await;
    let (joined, took) = timed_sleep(bridge.clone(), 2_500, 300).await;
    let err = joined.expect_err("the joiner runs out of time");
    assert_eq!(err.kind(), pybridge::ErrorKind::Timeout, "{}", err.report());
    assert!(
        took < Duration::from_millis(1_500),
        "the joiner took {took:?}"
    );
    let (led, _) = leader.await.unwrap();
    assert_eq!(led.unwrap().result.get(), r#"{"slept":2.5}"#);

    // When the first caller's deadline passes, a joiner with time left runs
    // the load itself instead of receiving that caller's timeout.
    let leader = tokio::spawn(timed_sleep(bridge.clone(), 1_000, 300));
    eventually(Duration::from_secs(5), "the second load is running", || {
        in_flight(&bridge) == 1
    })
    .await;
    let (joined, _) = timed_sleep(bridge.clone(), 1_000, 10_000).await;
    let reply = joined.unwrap_or_else(|e| panic!("the joiner carried on: {}", e.report()));
    assert_eq!(reply.result.get(), r#"{"slept":1.0}"#);
    assert_eq!(reply.source, pybridge::ResultSource::Worker);
    let (led, _) = leader.await.unwrap();
    assert_eq!(
        led.expect_err("the first caller timed out").kind(),
        pybridge::ErrorKind::Timeout
    );
    bridge.shutdown().await;
}

#[cfg(feature = "cache")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_tier_answers_a_new_bridge() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut config = sdk_config();
        config.cache.disk = true;
        config.cache.dir = Some(dir.path().to_path_buf());
        let mut settings = pybridge::config::MethodSettings::default();
        settings.cache = Some(true);
        config.methods.insert("test.echo".into(), settings);
        config
    };
    let first = bridge(config()).await;
    let reply = first
        .call_with("test.echo", Some(&raw(r#"{"k":1}"#)), &CallOptions::new())
        .await
        .unwrap();
    assert_eq!(reply.source, pybridge::ResultSource::Worker);
    first.shutdown().await;
    let second = bridge(config()).await;
    let reply = second
        .call_with("test.echo", Some(&raw(r#"{"k":1}"#)), &CallOptions::new())
        .await
        .unwrap();
    assert_eq!(reply.source, pybridge::ResultSource::CacheDisk);
    assert_eq!(reply.result.get(), r#"{"k":1}"#);
    assert_eq!(served(&second), 0);
    second.shutdown().await;
}

/// Starts a call on a one-worker bridge, and SIGKILLs the worker once it holds it.
async fn kill_the_worker_holding(
    bridge: &Bridge,
    method: &'static str,
    params: serde_json::Value,
) -> tokio::task::JoinHandle<pybridge::Result<serde_json::Value>> {
    let pid = bridge.health().pool.workers[0].pid;
    let call = {
        let bridge = bridge.clone();
        tokio::spawn(async move { bridge.call(method, params).await })
    };
    eventually(Duration::from_secs(5), "the call is in flight", || {
        bridge
            .health()
            .pool
            .workers
            .first()
            .is_some_and(|w| w.in_flight == 1)
    })
    .await;
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    call
}

// Relies on the framework's catalog (its policies or methods).
#[cfg(feature = "framework")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_call_survives_its_worker_being_killed() {
    let bridge = bridge(sdk_config()).await;
    let call = kill_the_worker_holding(&bridge, "test.sleep", json!({"ms": 300})).await;
    let result = call
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!(result, json!({"slept": 0.3}));
    assert!(bridge.stats().retries >= 1);
    bridge.shutdown().await;
}

/// The worker is killed once it has begun the call (it logs each method
/// as it starts it): a request still on its way, never received, would be
/// resent, as it may be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_is_not_safe_to_repeat_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.log");
    // `calc.slow` declares no idempotence: a write, as far as anyone knows.
    let bridge = bridge(calc_config(&["--log", log.to_str().unwrap()])).await;
    let pid = bridge.health().pool.workers[0].pid;
    let call = {
        let bridge = bridge.clone();
        tokio::spawn(async move { bridge.call("calc.slow", json!({"seconds": 5})).await })
    };
    eventually(Duration::from_secs(10), "the worker began the call", || {
        std::fs::read_to_string(&log).is_ok_and(|text| text.contains("calc.slow"))
    })
    .await;
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(
        err.kind(),
        pybridge::ErrorKind::WorkerFailed,
        "{}",
        err.report()
    );
    assert_eq!(err.to_error_object().code, ErrorCode::WORKER_FAILED);
    assert_eq!(
        bridge.stats().retries,
        0,
        "a received, non-idempotent call must not run twice"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(log.matches("calc.slow").count(), 1, "{log}");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_method_opens_its_breaker_which_fails_fast_and_recovers() {
    let mut config = sdk_config();
    config.breaker.mode = pybridge::config::BreakerMode::Consecutive;
    config.breaker.failure_threshold = 3;
    config.breaker.break_duration = Duration::from_millis(300);
    let bridge = bridge(config).await;
    let mut events = bridge.events();
    for _ in 0..3 {
        let err = bridge
            .call("test.error", json!({"type": "RuntimeError"}))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), pybridge::ErrorKind::RemoteError);
    }
    let before = served(&bridge);
    let err = bridge
        .call("test.error", json!({"type": "RuntimeError"}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), pybridge::ErrorKind::CircuitOpen);
    let object = err.to_error_object();
    assert_eq!(object.code, ErrorCode::CIRCUIT_OPEN);
    assert_eq!(
        served(&bridge),
        before,
        "rejected without reaching a worker"
    );
    let health = bridge.health();
    assert_eq!(health.status, HealthStatus::Degraded);
    assert_eq!(health.open_breakers.len(), 1);
    assert_eq!(health.open_breakers[0].0, "test.error");
    // Other methods are not affected.
    bridge.call("test.echo", json!([1])).await.unwrap();
    // Forwarded to the bridge's stream by a task of its own: waited for.
    let state_change = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.recv().await {
                Ok(BridgeEvent::Resilience(pybridge::resilience::Event::StateChanged(_))) => {
                    return;
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(closed) => panic!("the event stream ended: {closed}"),
            }
        }
    })
    .await;
    assert!(
        state_change.is_ok(),
        "the breaker's state change reached the event stream"
    );
    // After the break, one probe is admitted (and fails again here).
    tokio::time::sleep(Duration::from_millis(350)).await;
    let err = bridge
        .call("test.error", json!({"type": "RuntimeError"}))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        pybridge::ErrorKind::RemoteError,
        "the probe reached the worker"
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_hold_whatever_the_worker_does() {
    let bridge = bridge(sdk_config()).await;
    let started = tokio::time::Instant::now();
    let options = CallOptions::new().timeout(Duration::from_millis(150));
    let err = bridge
        .call_with("test.sleep", Some(&raw(r#"{"seconds":5}"#)), &options)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(err.kind(), pybridge::ErrorKind::Timeout, "{}", err.report());
    assert_eq!(err.to_error_object().code, ErrorCode::TIMEOUT);
    // The worker was told to cancel; it serves the next call at once.
    bridge.call("test.echo", json!([2])).await.unwrap();
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_calls_and_refuses_new_ones() {
    let mut config = sdk_config();
    config.pool.min_workers = 2;
    let bridge = bridge(config).await;
    let pids: Vec<u32> = bridge.health().pool.workers.iter().map(|w| w.pid).collect();
    let call = {
        let bridge = bridge.clone();
        tokio::spawn(async move { bridge.call("test.sleep", json!({"ms": 300})).await })
    };
    eventually(Duration::from_secs(5), "in flight", || {
        bridge
            .health()
            .pool
            .workers
            .iter()
            .any(|w| w.in_flight == 1)
    })
    .await;
    let report = bridge.shutdown().await;
    assert!(report.drained);
    assert_eq!(call.await.unwrap().unwrap(), json!({"slept": 0.3}));
    let err = bridge.call("test.echo", json!([1])).await.unwrap_err();
    assert_eq!(err.kind(), pybridge::ErrorKind::ShuttingDown);
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}/status")).exists() || is_zombie(pid),
            "worker {pid} gone"
        );
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                == Some("Z")
        })
        .unwrap_or(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_without_a_worker_or_with_a_bad_config_says_why() {
    let err = Bridge::from_config(pybridge::Config::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoWorker), "{err:?}");
    let mut config = sdk_config();
    config.pool.max_in_flight = 0;
    let err = Bridge::from_config(config).await.unwrap_err();
    assert!(
        err.report().contains("pool.max_in_flight"),
        "{}",
        err.report()
    );
    let mut config = sdk_config();
    config.worker.command = vec!["/nonexistent/python".into()];
    let err = Bridge::from_config(config).await.unwrap_err();
    assert_eq!(
        err.kind(),
        pybridge::ErrorKind::StartFailed,
        "{}",
        err.report()
    );
}

#[test]
fn handles_are_cheap_to_share_across_threads() {
    fn shared<T: Clone + Send + Sync + 'static>() {}
    shared::<Bridge>();
    fn error<T: std::error::Error + Send + Sync + 'static>() {}
    error::<Error>();
}

// Relies on the framework's catalog (its policies or methods).
#[cfg(feature = "framework")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_worker_costs_one_attempt_not_the_call() {
    let mut config = sdk_config();
    config.worker.command = vec![
        python(),
        fixtures()
            .join("faults/fault_worker.py")
            .display()
            .to_string(),
        "--mode".into(),
        "hang".into(),
        "--after".into(),
        "2".into(),
    ];
    config.pool.min_workers = 2;
    config.pool.cancel_grace = Duration::from_millis(200);
    config.call.timeout = Duration::from_secs(20);
    config.call.attempt_timeout = Some(Duration::from_millis(300));
    config.retry.max_retries = 6;
    let bridge = bridge(config).await;
    // Each worker serves two calls, then hangs; every call still succeeds,
    // on another worker or on the replacement of a hung one.
    for i in 0..10 {
        let result = bridge.call("test.echo", json!([i])).await;
        assert_eq!(
            result.unwrap_or_else(|e| panic!("call {i}: {}", e.report())),
            json!([i])
        );
    }
    assert!(bridge.stats().retries >= 1);
    assert!(
        bridge.health().pool.restarts >= 1,
        "hung workers were replaced"
    );
    bridge.shutdown().await;
}

#[cfg(feature = "cache")]
// Relies on the framework's catalog (its policies or methods).
#[cfg(feature = "framework")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_drops_the_cached_reads_of_its_family() {
    let mut config = sdk_config();
    config.worker.command = framework_command();
    config.worker.command.push("--memory".into());
    let bridge = bridge(config).await;
    let question =
        json!({"domain": "text", "description": "zebra stripe tokenizer for quokka glyphs"});
    let names = |result: &serde_json::Value| -> Vec<String> {
        result["recommendations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["pattern_name"].as_str().unwrap().to_string())
            .collect()
    };
    let before = bridge
        .call("pattern_learning.get_recommendations", question.clone())
        .await
        .unwrap();
    assert!(!names(&before).contains(&"quokka_glyph_tokenizer".to_string()));
    let again = bridge
        .call_with(
            "pattern_learning.get_recommendations",
            Some(&raw(&question.to_string())),
            &CallOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        again.source,
        pybridge::ResultSource::CacheMemory,
        "the read is cached"
    );
    bridge
        .call(
            "pattern_learning.record_pattern",
            json!({
                "pattern_name": "quokka_glyph_tokenizer",
                "domain": "text",
                "success_rate": 0.99,
                "description": "Zebra stripe tokenizer for quokka glyphs",
            }),
        )
        .await
        .unwrap();
    let after = bridge
        .call("pattern_learning.get_recommendations", question)
        .await
        .unwrap();
    assert!(
        names(&after).contains(&"quokka_glyph_tokenizer".to_string()),
        "the recorded pattern shows at once: {after}"
    );
    bridge.shutdown().await;
}

#[cfg(feature = "framework")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_framework_api_runs_over_the_bridge() {
    use pybridge::framework::{Domain, GetRecommendationsRequest, RecordPatternRequest};
    let mut config = sdk_config();
    config.worker.command = framework_command();
    config.worker.command.push("--memory".into());
    let bridge = bridge(config).await;
    let framework = bridge.framework();
    let request = GetRecommendationsRequest {
        domain: Some(Domain::Finance),
        description: Some("portfolio value at risk".into()),
        max_results: Some(3),
        ..Default::default()
    };
    let result = framework
        .pattern_learning()
        .get_recommendations(&request)
        .await
        .unwrap();
    assert!(!result.recommendations.is_empty() && result.recommendations.len() <= 3);
    let best = &result.recommendations[0];
    assert_eq!(best.domain.as_deref(), Some("finance"));
    assert!(best.pattern_name.contains("var"), "{}", best.pattern_name);
    assert!((0.0..=1.0).contains(&best.confidence_score));
    assert!(result.total_patterns >= result.recommendations.len() as u64);
    // Invalid requests are refused by the schema, as for untyped calls.
    let bad = RecordPatternRequest::new("x", Domain::Finance, 1.5);
    let err = framework
        .pattern_learning()
        .record_pattern(&bad)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        pybridge::ErrorKind::InvalidParams,
        "{}",
        err.report()
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_bridge_leaves_no_worker_running() {
    let mut config = sdk_config();
    config.pool.min_workers = 2;
    let bridge = bridge(config).await;
    let pids: Vec<u32> = bridge.health().pool.workers.iter().map(|w| w.pid).collect();
    assert_eq!(pids.len(), 2);
    drop(bridge);
    eventually(Duration::from_secs(3), "every worker is gone", || {
        pids.iter().all(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
                matches!(
                    s.rsplit(')')
                        .next()
                        .and_then(|r| r.split_whitespace().next()),
                    Some("Z" | "X")
                )
            })
        })
    })
    .await;
}

/// A worker command whose first spawn hangs on every call and whose later
/// spawns serve normally. The first is the one that creates a marker file in
/// `dir`: an exclusive create, since the pool spawns its workers at once and
/// two reading a counter could both see themselves first.
fn first_worker_hangs(dir: &std::path::Path) -> Vec<String> {
    let script = dir.join("launch.py");
    let marker = dir.join("first");
    std::fs::write(
        &script,
        format!(
            r#"import os, sys
try:
    os.close(os.open({marker:?}, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    first = True
except FileExistsError:
    first = False
faults = {faults:?}
args = ["--mode", "hang", "--after", "0"] if first else ["--mode", "ok"]
os.execv(sys.executable, [sys.executable, faults] + args)
"#,
            marker = marker.display().to_string(),
            faults = fixtures()
                .join("faults/fault_worker.py")
                .display()
                .to_string(),
        ),
    )
    .unwrap();
    vec![python(), script.display().to_string()]
}

// Relies on the framework's catalog (its policies or methods).
#[cfg(feature = "framework")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hung_worker_counts_once_against_the_breaker() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sdk_config();
    config.worker.command = first_worker_hangs(dir.path());
    config.pool.min_workers = 2;
    config.pool.cancel_grace = Duration::from_millis(200);
    config.call.attempt_timeout = Some(Duration::from_millis(500));
    config.call.timeout = Duration::from_secs(20);
    let bridge = bridge(config).await;
    // A call that holds one worker while the others are sent makes sure the
    // hung worker gets a call whatever the timing: least-loaded routing sends
    // the next call to the other worker, while calls that each found both
    // workers idle would all go to the first one (on a loaded machine, each
    // finished before the next started, and none went to the hung worker).
    let holder = {
        let bridge = bridge.clone();
        tokio::spawn(async move { bridge.call("test.sleep", json!({"ms": 200})).await })
    };
    eventually(
        Duration::from_secs(10),
        "the first call is in flight",
        || in_flight(&bridge) == 1,
    )
    .await;
    // The calls on the hung worker time out; that is one incident, and their
    // retries on the healthy worker succeed.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..10 {
        let bridge = bridge.clone();
        calls.spawn(async move { (i, bridge.call("test.echo", json!([i])).await) });
    }
    while let Some(joined) = calls.join_next().await {
        let (i, result) = joined.unwrap();
        assert_eq!(
            result.unwrap_or_else(|e| panic!("call {i}: {}", e.report())),
            json!([i])
        );
    }
    let held = holder.await.unwrap();
    assert_eq!(
        held.unwrap_or_else(|e| panic!("the holding call: {}", e.report())),
        json!({"slept": 0.2})
    );
    assert!(
        bridge.health().open_breakers.is_empty(),
        "{:?}",
        bridge.health().open_breakers
    );
    assert!(bridge.stats().retries >= 1);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_that_keeps_timing_out_on_a_live_worker_still_opens_its_breaker() {
    let mut config = sdk_config();
    config.breaker.mode = pybridge::config::BreakerMode::Consecutive;
    config.breaker.failure_threshold = 2;
    config.retry.enabled = false;
    let bridge = bridge(config).await;
    let options = CallOptions::new().timeout(Duration::from_millis(300));
    let started = tokio::time::Instant::now();
    let mut codes = Vec::new();
    // The worker answers each cancellation, so it is never replaced; its
    // timeouts count once per window, and the second window opens the breaker.
    while !codes.contains(&"circuit_open") {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never opened: {codes:?}"
        );
        let err = bridge
            .call_with("test.sleep", Some(&raw(r#"{"seconds":5}"#)), &options)
            .await
            .unwrap_err();
        codes.push(err.kind().as_str());
    }
    assert!(
        codes.iter().filter(|c| **c == "timeout").count() >= 2,
        "{codes:?}"
    );
    assert_eq!(
        bridge.health().pool.restarts,
        0,
        "the slow worker was not treated as dead"
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_breaker_opens_on_its_failure_rate() {
    let mut config = sdk_config();
    config.breaker.min_calls = 6;
    config.retry.enabled = false;
    let bridge = bridge(config).await;
    // Successes and failures alternate: a rate of one half, never five failures in a row.
    let mut codes = Vec::new();
    for i in 0..12 {
        let outcome = if i % 2 == 0 {
            bridge
                .call("test.error", json!({"type": "RuntimeError"}))
                .await
                .err()
                .map(|e| e.kind().as_str())
        } else {
            bridge
                .call("test.echo", json!([i]))
                .await
                .err()
                .map(|e| e.kind().as_str())
        };
        codes.push(outcome.unwrap_or("ok"));
    }
    // test.error failed every time: its own rate is 1 once it has six calls.
    assert_eq!(
        codes.iter().filter(|c| **c == "remote_error").count(),
        6,
        "{codes:?}"
    );
    let err = bridge
        .call("test.error", json!({"type": "RuntimeError"}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), pybridge::ErrorKind::CircuitOpen, "{codes:?}");
    // test.echo's breaker is its own, and closed.
    bridge.call("test.echo", json!([1])).await.unwrap();
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retry_makes_one_attempt_even_when_a_retry_would_be_safe() {
    let bridge = bridge(sdk_config()).await;
    let pid = bridge.health().pool.workers[0].pid;
    let call = {
        let bridge = bridge.clone();
        tokio::spawn(async move {
            let options = CallOptions::new().no_retry();
            bridge
                .call_with("test.sleep", Some(&raw(r#"{"ms":2000}"#)), &options)
                .await
        })
    };
    eventually(Duration::from_secs(5), "the call is in flight", || {
        bridge
            .health()
            .pool
            .workers
            .first()
            .is_some_and(|w| w.in_flight == 1)
    })
    .await;
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(
        err.kind(),
        pybridge::ErrorKind::WorkerFailed,
        "{}",
        err.report()
    );
    assert_eq!(bridge.stats().retries, 0);
    bridge.shutdown().await;
}
