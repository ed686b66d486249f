//! Chaos and soak (issue 9): workers killed, hung or spewing garbage under
//! load. The tests take a lock so that only one of them loads the machine at
//! a time.

use std::time::Duration;

use pybridge::Bridge;
use pybridge::pool::WorkerState;
use serde_json::json;
use tokio::task::JoinSet;

use crate::support::*;

/// One chaos test at a time: they measure recovery times, and two would
/// share two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A worker that dies fails every call it held at once. That is one failure
/// of the methods it ran, not one per call: five calls on one dead worker must
/// not open a breaker (default: five failures in a row) that the healthy
/// worker and the replacement would have served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_death_counts_once_against_the_breaker() {
    let _serial = SERIAL.lock().await;
    let mut config = sdk_config();
    config.worker.command = demo_worker();
    config.pool.min_workers = 2;
    let bridge = bridge(config).await;
    let mut calls = JoinSet::new();
    for _ in 0..10 {
        let bridge = bridge.clone();
        calls.spawn(async move { bridge.call("test.sleep", json!({"ms": 1500})).await });
    }
    eventually(
        Duration::from_secs(5),
        "each worker holds five calls",
        || {
            let pool = bridge.health().pool;
            pool.workers.len() == 2 && pool.workers.iter().all(|w| w.in_flight == 5)
        },
    )
    .await;
    let victim = bridge.health().pool.workers[0].pid;
    assert!(sigkill(victim));
    while let Some(joined) = calls.join_next().await {
        let result = joined.unwrap();
        assert_eq!(
            result.unwrap_or_else(|e| panic!("{}", e.report())),
            json!({"slept": 1.5})
        );
    }
    assert!(
        bridge.health().open_breakers.is_empty(),
        "{:?}",
        bridge.health().open_breakers
    );
    assert_eq!(
        bridge.stats().retries,
        5,
        "the dead worker's calls were retried"
    );
    bridge.shutdown().await;
}

/// Each death is counted once, but every death counts: a method that kills
/// whichever worker runs it still opens its breaker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_that_keeps_killing_its_workers_still_opens_its_breaker() {
    let _serial = SERIAL.lock().await;
    let mut config = sdk_config();
    config.worker.command = vec![
        python(),
        fixtures()
            .join("faults/fault_worker.py")
            .display()
            .to_string(),
        "--mode".into(),
        "crash".into(),
    ];
    config.breaker.failure_threshold = 3;
    config.retry.enabled = false;
    let bridge = bridge(config).await;
    for i in 0..3 {
        let err = bridge.call("test.echo", json!([i])).await.unwrap_err();
        assert_eq!(err.code(), "worker_failed", "{}", err.report());
        settle(&bridge, 1).await;
    }
    let err = bridge.call("test.echo", json!([3])).await.unwrap_err();
    assert_eq!(err.code(), "circuit_open", "{}", err.report());
    bridge.shutdown().await;
}

/// Sends SIGKILL; false if the process was already gone.
fn sigkill(pid: u32) -> bool {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a worker's pid is positive");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).is_ok()
}

/// Waits until the pool has `workers` ready workers holding no call (a hung
/// worker holds its abandoned calls until the pool kills it).
async fn settle(bridge: &Bridge, workers: usize) {
    eventually(
        Duration::from_secs(10),
        "the pool settles at full size",
        || {
            let pool = bridge.health().pool;
            pool.ready_workers == workers
                && pool.workers.len() == workers
                && pool
                    .workers
                    .iter()
                    .all(|w| w.state == WorkerState::Ready && w.in_flight == 0)
        },
    )
    .await;
}

/// The demo worker, with threads so that sleeps do not block echoes.
fn demo_worker() -> Vec<String> {
    vec![
        python(),
        fixtures()
            .join("worker/pybridge_worker.py")
            .display()
            .to_string(),
        "--max-concurrency".into(),
        "16".into(),
    ]
}
