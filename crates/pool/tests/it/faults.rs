//! The pool against misbehaving workers from fixtures/faults.

use std::time::Duration;

use pybridge_pool::{
    Error, ExitReason, FailureReason, HealthPolicy, PoolEvent, RecyclePolicy, RecycleReason,
    WorkerSpec,
};
use tokio::time::Instant;

use crate::support::*;

async fn echo_ok(pool: &pybridge_pool::Pool, i: u32) {
    let params = raw(&format!(r#"{{"i":{i}}}"#));
    let result = pool
        .call("test.echo", Some(&params))
        .await
        .unwrap_or_else(|e| panic!("call {i}: {e}"));
    assert_eq!(value(&result)["i"], i);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_crashes_mid_request_reports_its_status_and_stderr() {
    let pool = start(
        fault_worker("crash", &["--after", "3", "--exit-code", "7"]),
        |b| b.workers(1),
    )
    .await;
    for i in 0..3 {
        echo_ok(&pool, i).await;
    }
    let started = Instant::now();
    let err = pool.call("test.echo", None).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "failed at once, not at the deadline"
    );
    let failure = err
        .worker_failure()
        .unwrap_or_else(|| panic!("got {err:?}"));
    assert_eq!(failure.reason, FailureReason::Exited);
    assert_eq!(failure.status.as_deref(), Some("exit status: 7"));
    assert!(
        failure.stderr_tail.iter().any(|l| l.contains("crash mode")),
        "stderr tail: {:?}",
        failure.stderr_tail
    );
    assert!(
        err.to_string().contains("crash mode"),
        "the message names the cause: {err}"
    );
    // The replacement serves (and crashes again after three calls).
    eventually(Duration::from_secs(5), "replaced", || {
        pool.stats().ready_workers == 1
    })
    .await;
    echo_ok(&pool, 10).await;
    pool.shutdown().await;
}

/// A worker that answers and exits at once puts both before the pool
/// together: the answer in the pipe is read before the worker's calls are
/// failed, so the call gets it. Repeated, since either may be seen first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_written_just_before_the_worker_exits_is_delivered() {
    let pool = start(fault_worker("answer-then-exit", &[]), |b| b.workers(1)).await;
    let mut events = pool.subscribe();
    for round in 0..20 {
        eventually(Duration::from_secs(10), "a ready worker", || {
            pool.stats().ready_workers == 1
        })
        .await;
        let result = pool
            .call("test.echo", None)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(value(&result)["last_words"], 1, "round {round}");
        loop {
            let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
                .await
                .unwrap_or_else(|_| panic!("round {round}: no exit event"))
                .unwrap();
            if let PoolEvent::WorkerExited { failed_calls, .. } = event {
                assert_eq!(failed_calls, 0, "round {round}");
                break;
            }
        }
    }
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_worker_is_killed_after_the_cancel_grace_and_replaced() {
    let health = HealthPolicy::default().cancel_grace(Duration::from_millis(300));
    let pool = start(fault_worker("hang", &["--after", "1"]), |b| {
        b.workers(1).health(health)
    })
    .await;
    let mut events = pool.subscribe();
    echo_ok(&pool, 0).await;
    let victim = pool.stats().workers[0].clone();
    let deadline = Instant::now() + Duration::from_millis(200);
    let err = pool
        .call_with_deadline("test.echo", None, deadline)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "got {err:?}");
    let reason = next_event(&mut events, Duration::from_secs(5), |e| match e {
        PoolEvent::WorkerExited { worker, reason, .. } if *worker == victim.id => {
            Some(reason.clone())
        }
        _ => None,
    })
    .await;
    assert_eq!(reason, ExitReason::Crashed(FailureReason::Hung));
    assert!(!alive(victim.pid));
    eventually(Duration::from_secs(5), "replaced", || {
        pool.stats().ready_workers == 1
    })
    .await;
    echo_ok(&pool, 1).await;
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_stdout_is_skipped_and_every_call_is_answered() {
    let pool = start(fault_worker("garbage", &["--after", "2"]), |b| b.workers(1)).await;
    let pid = pool.stats().workers[0].pid;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200u32 {
        let pool = pool.clone();
        calls.spawn(async move { echo_ok(&pool, i).await });
    }
    while let Some(joined) = calls.join_next().await {
        joined.unwrap();
    }
    assert_eq!(pool.stats().workers[0].pid, pid, "the worker kept serving");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_responses_are_counted_and_do_not_disturb_calls() {
    let pool = start(fault_worker("unknown-ids", &[]), |b| b.workers(1)).await;
    let mut events = pool.subscribe();
    for i in 0..20 {
        echo_ok(&pool, i).await;
    }
    let mut unroutable = 0;
    while let Ok(event) = events.try_recv() {
        unroutable += usize::from(matches!(event, PoolEvent::UnroutableResponse { .. }));
    }
    assert!(
        unroutable >= 20 * 2,
        "unknown and null ids were reported: {unroutable}"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_answer_fails_its_call_and_the_worker_keeps_serving() {
    let spec =
        fault_worker("oversized", &["--after", "1", "--frame-bytes", "300000"]).max_frame(200_000);
    let pool = start(spec, |b| b.workers(1)).await;
    echo_ok(&pool, 0).await;
    let pid = pool.stats().workers[0].pid;
    let started = Instant::now();
    let err = pool.call("test.echo", None).await.unwrap_err();
    assert!(
        matches!(err, Error::ResponseTooLarge { limit: 200_000, .. }),
        "got {err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "failed at once, not at the deadline"
    );
    for i in 1..10 {
        echo_ok(&pool, i).await;
    }
    assert_eq!(
        pool.stats().workers[0].pid,
        pid,
        "the worker was not replaced"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_stderr_neither_blocks_the_worker_nor_grows_memory() {
    let pool = start(fault_worker("flood-stderr", &["--flood-mb", "64"]), |b| {
        b.workers(1)
    })
    .await;
    for i in 0..300 {
        echo_ok(&pool, i).await;
    }
    let tail = pool.stats();
    assert_eq!(tail.ready_workers, 1);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaking_worker_is_recycled_by_memory_without_a_failed_call() {
    let recycle = RecyclePolicy::default().max_rss_bytes(Some(80 * 1024 * 1024));
    let pool = start(fault_worker("leak", &["--leak-kb", "4096"]), |b| {
        b.workers(1).recycle(recycle)
    })
    .await;
    let mut events = pool.subscribe();
    let first = pool.stats().workers[0].pid;
    let until = Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    loop {
        echo_ok(&pool, i).await;
        i += 1;
        if let Ok(PoolEvent::WorkerRecycling { reason, .. }) = events.try_recv() {
            assert_eq!(reason, RecycleReason::Memory);
            break;
        }
        assert!(Instant::now() < until, "no memory recycle after {i} calls");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The replacement takes over; calls keep succeeding throughout.
    eventually(
        Duration::from_secs(10),
        "the leaky worker is replaced",
        || {
            let stats = pool.stats();
            stats.ready_workers == 1 && stats.workers.iter().all(|w| w.pid != first)
        },
    )
    .await;
    echo_ok(&pool, i).await;
    pool.shutdown().await;
}

async fn start_error(spec: WorkerSpec) -> (Error, Duration) {
    let config = pybridge_pool::PoolConfig::builder(spec)
        .workers(1)
        .build()
        .unwrap();
    let started = Instant::now();
    let err = pybridge_pool::Pool::start(config).await.unwrap_err();
    (err, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_never_becomes_ready_fails_the_start_and_is_killed() {
    let marker = format!("never-ready-{}", std::process::id());
    let spec = fault_worker("never-ready", &["--max-life", "120"])
        .arg("--max-frame")
        .arg("1048576")
        .env("PYBRIDGE_TEST_MARKER", &marker)
        .startup_timeout(Duration::from_millis(500));
    let (err, took) = start_error(spec).await;
    let Error::StartFailed { reason } = &err else {
        panic!("got {err:?}")
    };
    assert!(reason.contains("not ready within"), "{reason}");
    assert!(took < Duration::from_secs(3));
    assert!(
        !process_with_env_alive(&marker),
        "the unready worker was killed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_exits_before_ready_fails_the_start_with_its_stderr() {
    let (err, took) = start_error(fault_worker("exit-before-ready", &["--exit-code", "4"])).await;
    let Error::StartFailed { reason } = &err else {
        panic!("got {err:?}")
    };
    assert!(reason.contains("exit status: 4"), "{reason}");
    assert!(
        reason.contains("exit-before-ready"),
        "stderr is in the reason: {reason}"
    );
    assert!(
        took < Duration::from_secs(3),
        "did not wait for the startup timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_starting_worker_is_waited_for_within_the_startup_timeout() {
    let pool = start(fault_worker("slow-start", &["--delay", "0.5"]), |b| {
        b.workers(1)
    })
    .await;
    assert_eq!(pool.stats().ready_workers, 1);
    echo_ok(&pool, 0).await;
    pool.shutdown().await;
}

/// Whether a process carrying `PYBRIDGE_TEST_MARKER=<marker>` is still running.
fn process_with_env_alive(marker: &str) -> bool {
    let needle = format!("PYBRIDGE_TEST_MARKER={marker}");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                return false;
            };
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            environ.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()) && alive(pid)
        })
}
