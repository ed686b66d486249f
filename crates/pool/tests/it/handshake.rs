//! What a worker announces in its `$/ready` handshake, and the pool keeping
//! to it: its concurrency, its protocol version, its manifest; and what a
//! worker writes on stdout before it.

use std::num::NonZeroUsize;
use std::time::Duration;

use pybridge_pool::{Error, HealthPolicy, Pool, PoolConfig, PoolEvent, TimeoutStage, WorkerSpec};
use tokio::time::Instant;

use crate::support::*;

/// The standalone handshake worker from fixtures/faults.
fn handshake_worker(flags: &[&str]) -> WorkerSpec {
    WorkerSpec::new(python())
        .arg(fixtures().join("faults/handshake_worker.py"))
        .args(flags.iter().copied())
}

async fn worker_stats(pool: &Pool) -> serde_json::Value {
    value(&pool.call("stats", None).await.expect("stats call"))
}

async fn slow(pool: &Pool, ms: u64, tag: &str) -> Result<String, Error> {
    let params = raw(&format!(r#"{{"ms":{ms},"tag":"{tag}"}}"#));
    let result = pool.call("slow", Some(&params)).await?;
    Ok(value(&result).as_str().expect("a tag").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_never_holds_more_calls_than_it_advertises() {
    let pool = start(handshake_worker(&["--max-concurrency", "1"]), |b| {
        b.workers(1)
    })
    .await;
    let stats = pool.stats();
    assert_eq!(stats.workers[0].max_in_flight, 1, "the advertised cap");
    assert_eq!(stats.workers[0].protocol_version.as_deref(), Some("1.0"));
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..10 {
        let pool = pool.clone();
        calls.spawn(async move { slow(&pool, 20, &format!("c{i}")).await });
    }
    while let Some(joined) = calls.join_next().await {
        joined.expect("task").expect("every call answered");
    }
    let seen = worker_stats(&pool).await;
    assert_eq!(seen["violations"], 0, "{seen}");
    assert_eq!(seen["max_outstanding"], 1, "{seen}");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_call_is_not_queued_behind_slow_ones_on_a_full_worker() {
    let pool = start(handshake_worker(&["--max-concurrency", "2"]), |b| {
        b.workers(2)
    })
    .await;
    let mut slow_calls = Vec::new();
    for i in 0..3 {
        let pool = pool.clone();
        slow_calls.push(tokio::spawn(async move {
            slow(&pool, 1500, &format!("slow{i}")).await
        }));
    }
    eventually(Duration::from_secs(5), "three slow calls in flight", || {
        pool.stats()
            .workers
            .iter()
            .map(|w| w.in_flight)
            .sum::<usize>()
            == 3
    })
    .await;
    // One worker is at its cap of 2; the fast call goes to the other one.
    let fast = slow(&pool, 0, "fast").await.expect("fast call");
    assert_eq!(fast, "fast");
    assert!(
        slow_calls.iter().all(|c| !c.is_finished()),
        "the fast call was answered before any slow one"
    );
    for call in slow_calls {
        call.await.expect("task").expect("slow call answered");
    }
    for _ in 0..2 {
        // Each worker reports its own count; two calls reach both (least-loaded).
        let seen = worker_stats(&pool).await;
        assert_eq!(seen["violations"], 0, "{seen}");
    }
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_of_another_protocol_major_fails_to_start_naming_both_versions() {
    let config = PoolConfig::builder(handshake_worker(&["--protocol-version", "2.0"]))
        .workers(1)
        .build()
        .expect("valid config");
    let err = Pool::start(config).await.unwrap_err();
    let Error::StartFailed { reason } = &err else {
        panic!("got {err:?}");
    };
    assert!(
        reason.contains("2.0") && reason.contains(pybridge_protocol::PROTOCOL_VERSION),
        "{reason}"
    );
    // A newer minor of the same major is fine.
    let pool = start(handshake_worker(&["--protocol-version", "1.9"]), |b| {
        b.workers(1)
    })
    .await;
    assert_eq!(
        pool.stats().workers[0].protocol_version.as_deref(),
        Some("1.9")
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_manifest_differs_from_the_pools_is_not_used() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir_arg = dir.path().to_str().expect("utf-8 path");
    // The first process announces the name "first"; every later one the default.
    let pool = start(handshake_worker(&["--name-once", dir_arg, "first"]), |b| {
        b.workers(1)
    })
    .await;
    let manifest = pool.manifest().expect("the pool keeps the manifest");
    assert_eq!(manifest["name"], "first");
    assert!(manifest.get("pid").is_none(), "the pid is no part of it");
    let mut events = pool.subscribe();
    let pid = worker_pids(&pool)[0];
    assert!(pool.kill_worker(pool.stats().workers[0].id));
    let mut mismatch = false;
    let reason = next_event(&mut events, Duration::from_secs(10), |e| match e {
        PoolEvent::StartFailed { reason } => Some(reason.clone()),
        PoolEvent::ManifestMismatch { .. } => {
            mismatch = true;
            None
        }
        _ => None,
    })
    .await;
    assert!(reason.contains("manifest differs"), "{reason}");
    assert!(reason.contains("name"), "names what differs: {reason}");
    assert!(mismatch, "a ManifestMismatch event came first");
    assert!(
        pool.stats().workers.iter().all(|w| w.pid != pid),
        "the killed worker is gone"
    );
    assert_eq!(pool.stats().ready_workers, 0, "the replacement is not used");
    assert_eq!(pool.manifest().as_deref(), Some(&*manifest));
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_on_stdout_before_the_handshake_is_quoted_in_the_start_failure() {
    let long = format!("import-time print {}", "x".repeat(200));
    let config = PoolConfig::builder(
        handshake_worker(&["--junk", &long, "--no-ready"])
            .startup_timeout(Duration::from_millis(800)),
    )
    .workers(1)
    .build()
    .expect("valid config");
    let err = Pool::start(config).await.unwrap_err();
    let Error::StartFailed { reason } = &err else {
        panic!("got {err:?}");
    };
    let quoted = &long[..80];
    assert!(
        reason.contains(&format!("stdout before the handshake: {quoted}...")),
        "the first 80 bytes are quoted: {reason}"
    );
    assert!(!reason.contains(&long[..81]), "no more: {reason}");
    // Junk followed by a handshake is skipped, and the worker serves.
    let pool = start(handshake_worker(&["--junk", "hello \u{1}"]), |b| {
        b.workers(1)
    })
    .await;
    let echoed = pool.call("echo", Some(&raw(r#"{"a":1}"#))).await.unwrap();
    assert_eq!(value(&echoed)["a"], 1);
    pool.shutdown().await;
}

/// A call that waited in the queue past its deadline fails there and is never
/// written, even when a slot comes free at the moment its deadline passes:
/// here the late answer to an expired call frees the slot while a blocked
/// current-thread runtime lets the queued call's deadline pass unseen.
#[tokio::test(flavor = "current_thread")]
async fn a_call_queued_past_its_deadline_is_never_sent() {
    let pool = start(handshake_worker(&[]), |b| {
        b.workers(1)
            .max_in_flight(NonZeroUsize::new(1).expect("non-zero"))
            .health(HealthPolicy::default().ping_interval(None))
    })
    .await;
    for i in 0..12 {
        // Expires in flight at 10 ms, seen before the stall below; the
        // worker ignores the cancel and answers at 300 ms, which frees the
        // parked slot. (Far apart, so that a slow wake-up on a loaded
        // machine keeps the order.)
        let first = {
            let pool = pool.clone();
            let deadline = Instant::now() + Duration::from_millis(10);
            tokio::spawn(async move {
                let params = raw(&format!(r#"{{"ms":300,"tag":"a{i}"}}"#));
                pool.call_with_deadline("slow", Some(&params), deadline)
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(3)).await;
        let queued = {
            let pool = pool.clone();
            let deadline = Instant::now() + Duration::from_millis(100);
            tokio::spawn(async move {
                let params = raw(&format!(r#"{{"ms":0,"tag":"b{i}"}}"#));
                pool.call_with_deadline("slow", Some(&params), deadline)
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(pool.stats().queued, 1, "the second call waits for the slot");
        // The runtime stalls: the late answer arrives and the queued call's
        // deadline passes before either is seen.
        std::thread::sleep(Duration::from_millis(400));
        let err = first.await.expect("task").unwrap_err();
        assert!(
            matches!(
                err,
                Error::Timeout {
                    stage: TimeoutStage::InFlight,
                    ..
                }
            ),
            "round {i}: {err:?}"
        );
        let err = queued.await.expect("task").unwrap_err();
        assert!(
            matches!(
                err,
                Error::Timeout {
                    stage: TimeoutStage::Queued,
                    worker: None,
                    ..
                }
            ),
            "round {i}: {err:?}"
        );
        eventually(Duration::from_secs(5), "the slot is free", || {
            pool.stats().workers[0].in_flight == 0
        })
        .await;
    }
    let seen = worker_stats(&pool).await;
    let received: Vec<&str> = seen["received"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert_eq!(received.len(), 12, "{received:?}");
    assert!(
        received.iter().all(|t| t.starts_with('a')),
        "no queued call that ran out of time was sent: {received:?}"
    );
    pool.shutdown().await;
}

/// Issue 14's case: with the SDK's defaults, eight half-second calls are in
/// flight on one worker and a fast call is answered before any of them, not
/// after them (it waited 1.95 s when the SDK ran one call at a time and the
/// pool sent it 64).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_default_worker_answers_a_fast_call_while_eight_slow_ones_run() {
    let pool = start(sdk_worker(), |b| b.workers(1)).await;
    let advertised = pool.stats().workers[0].max_in_flight;
    assert!(
        advertised > 8,
        "the SDK advertises room for more than eight calls: {advertised}"
    );
    let mut slow_calls = Vec::new();
    for _ in 0..8 {
        let pool = pool.clone();
        slow_calls.push(tokio::spawn(async move {
            pool.call("test.sleep", Some(&raw(r#"{"ms": 500}"#))).await
        }));
    }
    eventually(Duration::from_secs(5), "eight slow calls in flight", || {
        pool.stats().workers[0].in_flight == 8
    })
    .await;
    let echoed = pool
        .call("test.echo", Some(&raw(r#"{"fast": true}"#)))
        .await
        .expect("fast call");
    assert_eq!(value(&echoed)["fast"], true);
    assert!(
        slow_calls.iter().all(|c| !c.is_finished()),
        "the fast call was answered while every slow one was still running"
    );
    for call in slow_calls {
        call.await.expect("task").expect("slow call answered");
    }
    pool.shutdown().await;
}
