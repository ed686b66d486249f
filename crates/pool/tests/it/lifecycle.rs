//! Crashes, restarts, the crash-loop guard, health pings, recycling, scaling,
//! shutdown and orphans.

use std::time::Duration;

use pybridge_pool::{
    Error, ExitReason, FailureReason, HealthPolicy, HealthStatus, Pool, PoolEvent, RecyclePolicy,
    RecycleReason, RestartPolicy, ScalePolicy, ShutdownPolicy, WorkerSpec,
};
use tokio::time::Instant;

use crate::support::*;

fn sigkill(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
}

/// Runs `n` echo calls with up to 64 in flight; returns how many failed.
async fn load(pool: &Pool, n: usize) -> usize {
    let mut calls = tokio::task::JoinSet::new();
    let mut failed = 0;
    for i in 0..n {
        if calls.len() >= 64 {
            failed += usize::from(!matches!(calls.join_next().await, Some(Ok(Ok(_)))));
        }
        let pool = pool.clone();
        calls.spawn(async move { pool.call("test.echo", Some(&raw(&format!("[{i}]")))).await });
    }
    while let Some(joined) = calls.join_next().await {
        failed += usize::from(!matches!(joined, Ok(Ok(_))));
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_fails_its_64_calls_at_once_and_is_replaced() {
    // The SDK advertises 16 calls at once by default; this worker runs 64.
    let worker = sdk_worker().args(["--max-concurrency", "64"]);
    let pool = start(worker, |b| b.workers(2)).await;
    let mut events = pool.subscribe();
    let victim = pool.stats().workers[0].clone();
    // Fill the victim with 64 long calls (and the other worker with 64).
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..128 {
        let pool = pool.clone();
        calls.spawn(async move {
            pool.call("test.sleep", Some(&raw(r#"{"seconds":20}"#)))
                .await
        });
    }
    eventually(
        Duration::from_secs(10),
        "both workers hold 64 calls",
        || pool.stats().workers.iter().all(|w| w.in_flight == 64),
    )
    .await;
    let killed_at = Instant::now();
    sigkill(victim.pid);
    let mut crashed = 0;
    while crashed < 64 {
        let outcome = calls.join_next().await.unwrap().unwrap();
        let err = outcome.unwrap_err();
        let Error::WorkerFailed { failure, written } = &err else {
            panic!("got {err:?}")
        };
        assert_eq!(failure.worker, victim.id);
        assert_eq!(failure.pid, Some(victim.pid));
        assert_eq!(failure.reason, FailureReason::Exited);
        assert!(
            failure.status.as_deref().unwrap_or("").contains("9"),
            "{failure}"
        );
        assert!(written, "the requests had been written");
        assert!(err.is_retryable() && !err.not_processed());
        crashed += 1;
    }
    assert!(
        killed_at.elapsed() < Duration::from_secs(2),
        "calls failed fast, not at their deadline"
    );
    let exited = next_event(&mut events, Duration::from_secs(5), |e| match e {
        PoolEvent::WorkerExited {
            worker,
            reason,
            failed_calls,
            ..
        } if *worker == victim.id => Some((reason.clone(), *failed_calls)),
        _ => None,
    })
    .await;
    assert_eq!(exited, (ExitReason::Crashed(FailureReason::Exited), 64));
    eventually(
        Duration::from_secs(5),
        "the pool is back to two ready workers",
        || {
            let stats = pool.stats();
            stats.ready_workers == 2 && stats.workers.iter().all(|w| w.pid != victim.pid)
        },
    )
    .await;
    assert!(killed_at.elapsed() < Duration::from_secs(3));
    let stats = pool.stats();
    assert_eq!(stats.restarts, 1);
    let replacement = stats
        .workers
        .iter()
        .find(|w| w.slot == victim.slot)
        .unwrap();
    assert_eq!(replacement.restarts, 1);
    calls.abort_all();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_healthy_workers_often_never_trips_the_crash_loop_guard() {
    let restart = RestartPolicy::default()
        .crash_loop_starts(2)
        .window(Duration::from_secs(60));
    let pool = start(sdk_worker(), |b| b.workers(1).restart(restart)).await;
    let mut events = pool.subscribe();
    for round in 0..6 {
        let pid = pool.stats().workers[0].pid;
        sigkill(pid);
        eventually(Duration::from_secs(5), "a replacement is ready", || {
            let stats = pool.stats();
            stats.ready_workers == 1 && stats.workers[0].pid != pid
        })
        .await;
        pool.call("test.echo", None)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
    assert!(!pool.stats().crash_loop);
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, PoolEvent::CrashLoop { .. }),
            "guard tripped: {event:?}"
        );
    }
    assert_eq!(pool.stats().restarts, 6);
    pool.shutdown().await;
}

/// A worker script that serves only while a flag file exists: the test breaks
/// and mends the "deployment" by removing and creating the file.
fn flaky_worker(flag: &std::path::Path) -> WorkerSpec {
    let script = format!(
        r#"
import os, runpy, sys
if not os.path.exists({flag:?}):
    print("deployment is broken", file=sys.stderr)
    sys.exit(7)
sys.argv = ["pybridge_worker"]
runpy.run_module("pybridge_worker", run_name="__main__", alter_sys=True)
"#,
        flag = flag.to_str().unwrap(),
    );
    python_env(WorkerSpec::new(python()).args(["-c", &script]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_cools_down_fails_fast_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("deployed");
    std::fs::write(&flag, "").unwrap();
    let restart = RestartPolicy::default()
        .initial_backoff(Duration::from_millis(10))
        .max_backoff(Duration::from_millis(40))
        .crash_loop_starts(3)
        .window(Duration::from_secs(30))
        // Long enough that a call made some time after the guard tripped
        // still tells failing fast from waiting the cool-down out.
        .cooldown(Duration::from_secs(2))
        .max_cooldown(Duration::from_secs(8));
    let pool = start(flaky_worker(&flag), |b| b.workers(1).restart(restart)).await;
    let mut events = pool.subscribe();

    std::fs::remove_file(&flag).unwrap();
    sigkill(pool.stats().workers[0].pid);
    let (cooldown, reason) = next_event(&mut events, Duration::from_secs(10), |e| match e {
        PoolEvent::CrashLoop { cooldown, reason } => Some((*cooldown, reason.clone())),
        _ => None,
    })
    .await;
    assert_eq!(cooldown, Duration::from_secs(2));
    assert!(
        reason.contains("deployment is broken"),
        "the reason carries stderr: {reason}"
    );
    let stats = pool.stats();
    assert!(stats.crash_loop);
    assert_eq!(stats.status, HealthStatus::Unhealthy);
    let started = Instant::now();
    let err = pool.call("test.echo", None).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "got {err:?}");
    // Fast: a call that waited for the 2 s cool-down would take longer.
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "fails fast while cooling down"
    );

    // Still broken after the cool-down: the probe fails and the guard trips again, longer.
    let again = next_event(&mut events, Duration::from_secs(10), |e| match e {
        PoolEvent::CrashLoop { cooldown, .. } => Some(*cooldown),
        _ => None,
    })
    .await;
    assert_eq!(again, Duration::from_secs(4), "the cool-down grows");

    std::fs::write(&flag, "").unwrap();
    next_event(&mut events, Duration::from_secs(10), |e| {
        matches!(e, PoolEvent::Recovered).then_some(())
    })
    .await;
    eventually(Duration::from_secs(5), "ready again", || {
        pool.stats().ready_workers == 1
    })
    .await;
    pool.call("test.echo", None).await.unwrap();
    assert_eq!(pool.stats().status, HealthStatus::Healthy);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recycling_by_request_count_loses_no_call() {
    let recycle = RecyclePolicy::default().max_requests(Some(300)).jitter(0.1);
    let pool = start(sdk_worker(), |b| b.workers(2).recycle(recycle)).await;
    let mut events = pool.subscribe();
    let (mut calls, mut recycled) = (0, 0);
    // Load runs until several recycles happened; a replacement takes a
    // Python start-up to become ready, so the count of calls this needs varies.
    while recycled < 4 && calls < 40_000 {
        assert_eq!(
            load(&pool, 1_000).await,
            0,
            "no call fails while workers recycle"
        );
        calls += 1_000;
        while let Ok(event) = events.try_recv() {
            if let PoolEvent::WorkerRecycling { reason, .. } = event {
                assert_eq!(reason, RecycleReason::Requests);
                recycled += 1;
            }
        }
    }
    assert!(
        recycled >= 4,
        "workers recycle every ~300 calls: {recycled} in {calls} calls"
    );
    assert_eq!(pool.stats().served, calls as u64);
    eventually(Duration::from_secs(10), "two ready workers", || {
        pool.stats().ready_workers == 2
    })
    .await;
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recycling_by_age_keeps_capacity_and_loses_no_call() {
    let recycle = RecyclePolicy::default().max_age(Some(Duration::from_millis(400)));
    let pool = start(sdk_worker(), |b| b.workers(2).recycle(recycle)).await;
    let mut events = pool.subscribe();
    // Under load until two workers were recycled by age: one retires at a
    // time, after its replacement (a Python start) is ready, so on a loaded
    // machine the second may take a while; only the cap is a failure.
    let cap = Instant::now() + Duration::from_secs(30);
    let (mut failed, mut aged) = (0, 0);
    while aged < 2 {
        assert!(
            Instant::now() < cap,
            "workers were recycled by age: {aged} in 30 s"
        );
        failed += load(&pool, 200).await;
        assert!(pool.stats().ready_workers >= 1);
        while let Ok(event) = events.try_recv() {
            aged += usize::from(matches!(
                event,
                PoolEvent::WorkerRecycling {
                    reason: RecycleReason::Age,
                    ..
                }
            ));
        }
    }
    assert_eq!(failed, 0);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_that_stops_answering_pings_is_replaced() {
    // The SDK answers pings from its I/O loop; a worker stopped with SIGSTOP
    // answers nothing, as a deadlocked interpreter would.
    let health = HealthPolicy::default()
        .ping_interval(Some(Duration::from_millis(100)))
        .ping_timeout(Duration::from_millis(200))
        .max_missed_pings(2);
    let pool = start(sdk_worker(), |b| b.workers(1).health(health)).await;
    let mut events = pool.subscribe();
    let victim = pool.stats().workers[0].clone();
    let pid = rustix::process::Pid::from_raw(victim.pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    let reason = next_event(&mut events, Duration::from_secs(5), |e| match e {
        PoolEvent::WorkerExited { worker, reason, .. } if *worker == victim.id => {
            Some(reason.clone())
        }
        _ => None,
    })
    .await;
    assert_eq!(reason, ExitReason::Crashed(FailureReason::Unresponsive));
    eventually(Duration::from_secs(5), "replaced", || {
        pool.stats().ready_workers == 1
    })
    .await;
    pool.call("test.echo", None).await.unwrap();
    assert!(!alive(victim.pid));
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_grows_under_queueing_and_shrinks_when_idle() {
    let scale = ScalePolicy::default()
        .grow_after(Duration::from_millis(100))
        .idle_timeout(Duration::from_millis(400));
    let one = std::num::NonZeroUsize::new(1).unwrap();
    let pool = start(sdk_worker(), |b| {
        b.min_workers(1)
            .max_workers(3)
            .max_in_flight(one)
            .scale(scale)
    })
    .await;
    let mut events = pool.subscribe();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let pool = pool.clone();
        calls.spawn(async move { pool.call("test.sleep", Some(&raw(r#"{"ms":200}"#))).await });
    }
    let grown = next_event(&mut events, Duration::from_secs(5), |e| match e {
        PoolEvent::Resized { workers } if *workers == 3 => Some(*workers),
        _ => None,
    })
    .await;
    assert_eq!(grown, 3);
    while let Some(joined) = calls.join_next().await {
        joined.unwrap().unwrap();
    }
    let shrunk = next_event(&mut events, Duration::from_secs(5), |e| match e {
        PoolEvent::Resized { workers } if *workers == 1 => Some(*workers),
        _ => None,
    })
    .await;
    assert_eq!(shrunk, 1);
    eventually(Duration::from_secs(5), "one worker left", || {
        pool.stats().workers.len() == 1
    })
    .await;
    pool.call("test.echo", None).await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_calls_finish_then_stops_every_worker() {
    let pool = start(sdk_worker(), |b| b.workers(2)).await;
    let pids = worker_pids(&pool);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let pool = pool.clone();
        calls.spawn(async move { pool.call("test.sleep", Some(&raw(r#"{"ms":300}"#))).await });
    }
    eventually(Duration::from_secs(5), "all calls in flight", || {
        pool.stats()
            .workers
            .iter()
            .map(|w| w.in_flight)
            .sum::<usize>()
            == 10
    })
    .await;
    let report = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.shutdown().await })
    };
    let give_up = Instant::now() + Duration::from_secs(2);
    loop {
        let probe = Instant::now() + Duration::from_millis(5);
        if let Err(Error::ShuttingDown) = pool.call_with_deadline("test.echo", None, probe).await {
            break;
        }
        assert!(Instant::now() < give_up, "shutdown started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    while let Some(joined) = calls.join_next().await {
        joined
            .unwrap()
            .expect("in-flight calls complete during shutdown");
    }
    let report = report.await.unwrap();
    assert!(report.drained);
    assert_eq!(report.abandoned_calls, 0);
    for pid in pids {
        assert!(!group_alive(pid), "worker {pid} is gone");
    }
    assert!(matches!(
        pool.call("test.echo", None).await,
        Err(Error::ShuttingDown)
    ));
    assert_eq!(
        pool.shutdown().await,
        report,
        "a second shutdown reports the first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_kills_a_worker_that_ignores_stdin_eof_and_sigterm() {
    let spec = fault_worker("ignore-sigterm", &[]);
    let policy = ShutdownPolicy::default()
        .drain_timeout(Duration::from_millis(200))
        .exit_grace(Duration::from_millis(300));
    let pool = start(spec, |b| b.workers(1).shutdown(policy)).await;
    pool.call("test.echo", None).await.unwrap();
    let pid = pool.stats().workers[0].pid;
    let started = Instant::now();
    pool.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "escalated to SIGKILL in time"
    );
    assert!(!group_alive(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_pool_leaves_no_process_behind() {
    let pool = start(sdk_worker(), |b| b.workers(2)).await;
    let pids = worker_pids(&pool);
    assert!(pids.iter().all(|p| alive(*p)));
    drop(pool);
    eventually(Duration::from_secs(2), "every worker group is gone", || {
        pids.iter().all(|p| !group_alive(*p))
    })
    .await;
}

/// Runs as the host process in `no_orphans_after_the_host_is_sigkilled`.
async fn host_role() {
    let pool = start(sdk_worker(), |b| b.workers(2)).await;
    let pids: Vec<String> = worker_pids(&pool).iter().map(u32::to_string).collect();
    println!("PIDS {}", pids.join(" "));
    // Keep calls in flight so the workers are busy when the host dies.
    loop {
        let _ = load(&pool, 64).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_orphans_after_the_host_is_sigkilled() {
    if std::env::var_os("PYBRIDGE_TEST_HOST_ROLE").is_some() {
        host_role().await;
        return;
    }
    use tokio::io::AsyncBufReadExt;
    let mut host = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lifecycle::no_orphans_after_the_host_is_sigkilled",
            "--nocapture",
        ])
        .env("PYBRIDGE_TEST_HOST_ROLE", "1")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(host.stdout.take().unwrap()).lines();
    let pids: Vec<u32> = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the host reports its workers")
            .unwrap()
            .expect("the host is running");
        if let Some(rest) = line.strip_prefix("PIDS ") {
            break rest
                .split_whitespace()
                .map(|p| p.parse().unwrap())
                .collect();
        }
    };
    assert_eq!(pids.len(), 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    sigkill(host.id().unwrap());
    host.wait().await.unwrap();
    eventually(Duration::from_secs(2), "workers exit on stdin EOF", || {
        pids.iter().all(|p| !group_alive(*p))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_a_replacement_is_starting_stops_it_too() {
    for round in 0..5 {
        let pool = start(sdk_worker(), |b| b.workers(1)).await;
        let mut events = pool.subscribe();
        let pid = pool.stats().workers[0].pid;
        sigkill(pid);
        // Shut down the moment the replacement is on its way.
        next_event(&mut events, Duration::from_secs(5), |e| {
            matches!(e, PoolEvent::WorkerRestarting { .. }).then_some(())
        })
        .await;
        let started = Instant::now();
        let shutdown = tokio::time::timeout(Duration::from_secs(20), pool.shutdown()).await;
        assert!(shutdown.is_ok(), "round {round}: shutdown hung");
        assert!(started.elapsed() < Duration::from_secs(10));
        let spawned: Vec<u32> = {
            let mut pids = Vec::new();
            while let Ok(event) = events.try_recv() {
                if let PoolEvent::WorkerSpawned { pid, .. } = event {
                    pids.push(pid);
                }
            }
            pids
        };
        for pid in spawned {
            assert!(
                !group_alive(pid),
                "round {round}: replacement {pid} outlived shutdown"
            );
        }
    }
}
