//! Calls, pipelining, routing, queueing and errors against the SDK worker.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use pybridge_pool::{Error, Handshake, Pool, PoolConfig, PoolEvent, TimeoutStage, WorkerSpec};
use pybridge_protocol::{ErrorCode, Framing};
use tokio::time::Instant;

use crate::support::*;

fn check_echo(result: &serde_json::value::RawValue, expected: serde_json::Value) {
    assert_eq!(value(result), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_round_trip_keeps_params_exactly() {
    let pool = start(sdk_worker(), |b| b.workers(1)).await;
    let params = raw(r#"{"text":"héllo €","n":[1,2.5,null],"nested":{"b":1,"a":2}}"#);
    let result = pool.call("test.echo", Some(&params)).await.unwrap();
    check_echo(&result, value(&params));
    let none = pool.call("test.echo", None).await.unwrap();
    assert_eq!(none.get(), "null");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pretty_printed_params_are_framed_on_one_line() {
    let pool = start(sdk_worker(), |b| b.workers(1)).await;
    let params = raw("{\n  \"a\": [1,\n 2]\r\n}");
    let result = pool.call("test.echo", Some(&params)).await.unwrap();
    check_echo(&result, serde_json::json!({"a": [1, 2]}));
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_errors_arrive_typed_with_their_data() {
    let pool = start(sdk_worker(), |b| b.workers(1)).await;
    let err = pool
        .call(
            "test.error",
            Some(&raw(r#"{"type":"ValueError","message":"bad value"}"#)),
        )
        .await
        .unwrap_err();
    let Error::Remote { error, .. } = &err else {
        panic!("expected a remote error, got {err:?}")
    };
    assert_eq!(error.code, ErrorCode::INTERNAL_ERROR);
    let data: serde_json::Value = error.data_as().unwrap().unwrap();
    assert_eq!(data["type"], "ValueError");
    assert!(data["traceback"].as_str().unwrap().contains("ValueError"));
    assert!(!err.is_retryable() && !err.not_processed());

    let err = pool.call("no.such.method", None).await.unwrap_err();
    let Error::Remote { error, .. } = err else {
        panic!("expected a remote error")
    };
    assert_eq!(error.code, ErrorCode::METHOD_NOT_FOUND);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_calls_over_two_workers_all_succeed() {
    let pool = start(sdk_worker(), |b| b.workers(2)).await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..10_000u32 {
        let pool = pool.clone();
        calls.spawn(async move {
            let params = raw(&format!(r#"{{"i":{i}}}"#));
            let result = pool.call("test.echo", Some(&params)).await;
            (i, result)
        });
    }
    let mut ok = 0;
    while let Some(joined) = calls.join_next().await {
        let (i, result) = joined.unwrap();
        let result = result.unwrap_or_else(|e| panic!("call {i} failed: {e}"));
        assert_eq!(value(&result)["i"], i);
        ok += 1;
    }
    assert_eq!(ok, 10_000);
    let stats = pool.stats();
    assert_eq!(stats.served, 10_000);
    assert!(
        stats.workers.iter().all(|w| w.served > 1_000),
        "least-loaded routing uses both workers: {:?}",
        stats.workers.iter().map(|w| w.served).collect::<Vec<_>>()
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_rejects_with_its_capacity_and_waiters_run_in_order() {
    let one = NonZeroUsize::new(1).unwrap();
    let pool = start(sdk_worker(), |b| {
        b.workers(1).max_in_flight(one).queue_capacity(3)
    })
    .await;
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut calls = Vec::new();
    // One call takes the worker's only slot; three wait, in order.
    for i in 0..4u32 {
        let (caller, done) = (pool.clone(), Arc::clone(&order));
        calls.push(tokio::spawn(async move {
            // The first call holds the slot long enough for the queue to fill
            // and the next call to find it full, however slow the machine.
            let ms = if i == 0 { 3000 } else { 50 };
            let params = raw(&format!(r#"{{"ms":{ms}}}"#));
            let r = caller.call("test.sleep", Some(&params)).await;
            done.lock().unwrap().push(i);
            r
        }));
        // Arrival order must be deterministic for the ordering assertion.
        eventually(
            Duration::from_secs(5),
            "call is queued, running or done",
            || {
                let stats = pool.stats();
                stats.queued + stats.workers[0].in_flight + order.lock().unwrap().len()
                    == i as usize + 1
            },
        )
        .await;
    }
    let err = pool.call("test.echo", None).await.unwrap_err();
    assert!(
        matches!(err, Error::QueueFull { capacity: 3 }),
        "got {err:?}"
    );
    assert!(err.not_processed());
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_in_the_queue_times_out_as_never_sent() {
    let one = NonZeroUsize::new(1).unwrap();
    let pool = start(sdk_worker(), |b| b.workers(1).max_in_flight(one)).await;
    let busy = {
        let pool = pool.clone();
        // Busy far past the queued call's deadline, however slow the machine.
        tokio::spawn(async move { pool.call("test.sleep", Some(&raw(r#"{"ms":3000}"#))).await })
    };
    eventually(Duration::from_secs(5), "the worker is busy", || {
        pool.stats().workers[0].in_flight == 1
    })
    .await;
    let deadline = Instant::now() + Duration::from_millis(100);
    let err = pool
        .call_with_deadline("test.echo", None, deadline)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                stage: TimeoutStage::Queued,
                ..
            }
        ),
        "got {err:?}"
    );
    assert!(err.not_processed());
    busy.await.unwrap().unwrap();
    assert_eq!(pool.stats().queued, 0);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_call_is_cancelled_in_the_worker_and_frees_its_slot() {
    let pool = start(sdk_worker(), |b| b.workers(1)).await;
    let deadline = Instant::now() + Duration::from_millis(150);
    let started = Instant::now();
    let err = pool
        .call_with_deadline("test.sleep", Some(&raw(r#"{"seconds":10}"#)), deadline)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                stage: TimeoutStage::InFlight,
                ..
            }
        ),
        "got {err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // The SDK honours $/cancelRequest: the sleep ends early, its late answer
    // frees the slot, and the worker is not treated as hung.
    eventually(
        Duration::from_secs(3),
        "the cancelled call leaves the worker",
        || pool.stats().workers[0].in_flight == 0,
    )
    .await;
    let pid = pool.stats().workers[0].pid;
    pool.call("test.echo", None).await.unwrap();
    assert_eq!(
        pool.stats().workers[0].pid,
        pid,
        "the worker was not replaced"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_goes_away_does_not_leak_its_slot() {
    let pool = start(sdk_worker(), |b| b.workers(1)).await;
    let call = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.call("test.sleep", Some(&raw(r#"{"ms":200}"#))).await })
    };
    eventually(Duration::from_secs(5), "the call is in flight", || {
        pool.stats().workers[0].in_flight == 1
    })
    .await;
    call.abort();
    eventually(Duration::from_secs(3), "the slot is freed", || {
        pool.stats().workers[0].in_flight == 0
    })
    .await;
    pool.call("test.echo", None).await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_and_framings_all_work() {
    let variants: Vec<(&str, WorkerSpec)> = vec![
        (
            "ready notification",
            sdk_worker().arg("--handshake").arg("notification"),
        ),
        (
            "ping",
            sdk_worker()
                .args(["--handshake", "none"])
                .handshake(Handshake::Ping),
        ),
        (
            "none",
            sdk_worker()
                .args(["--handshake", "none"])
                .handshake(Handshake::None),
        ),
        (
            "content-length",
            sdk_worker()
                .args(["--framing", "content-length", "--handshake", "notification"])
                .framing(Framing::ContentLength),
        ),
    ];
    for (name, spec) in variants {
        let pool = start(spec, |b| b.workers(1)).await;
        let result = pool
            .call("test.echo", Some(&raw(r#"{"x":[1,"\n"]}"#)))
            .await;
        assert_eq!(
            value(&result.unwrap_or_else(|e| panic!("{name}: {e}"))),
            serde_json::json!({"x":[1,"\n"]})
        );
        pool.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_gets_its_environment_and_directory_and_no_shell() {
    let dir = tempfile::tempdir().unwrap();
    const SCRIPT: &str = r#"
import json, os, sys
print("READY", flush=True)
for line in sys.stdin:
    req = json.loads(line)
    out = {"env": os.environ.get("PYBRIDGE_TEST_VAR"), "home": os.environ.get("HOME"),
           "cwd": os.getcwd(), "argv": sys.argv[1:]}
    print(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": out}), flush=True)
"#;
    let spec = WorkerSpec::new(python())
        .args(["-c", SCRIPT, "$HOME", "a b;c"])
        .env_policy(pybridge_pool::EnvPolicy::Clear)
        .env("PYBRIDGE_TEST_VAR", "set by the test")
        .cwd(dir.path());
    let pool = start(spec, |b| b.workers(1)).await;
    let result = value(&pool.call("test.env", None).await.unwrap());
    assert_eq!(result["env"], "set by the test");
    assert_eq!(
        result["home"],
        serde_json::Value::Null,
        "the environment was cleared"
    );
    assert_eq!(
        result["cwd"],
        dir.path().canonicalize().unwrap().to_str().unwrap()
    );
    assert_eq!(
        result["argv"],
        serde_json::json!(["$HOME", "a b;c"]),
        "arguments reach the worker verbatim"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_a_worker_without_an_answer() {
    let pool = start(sdk_worker(), |b| b.workers(1)).await;
    pool.notify("test.echo", Some(&raw("[1]"))).await.unwrap();
    // The worker keeps serving, and nothing waits for the notification.
    pool.call("test.echo", None).await.unwrap();
    assert_eq!(pool.stats().workers[0].in_flight, 0);
    pool.shutdown().await;
}

#[tokio::test]
async fn configuration_errors_name_the_setting() {
    let err = PoolConfig::builder(sdk_worker())
        .min_workers(3)
        .max_workers(2)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("min_workers"), "{err}");
    let err = PoolConfig::builder(sdk_worker())
        .recycle(pybridge_pool::RecyclePolicy::default().jitter(1.5))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("recycle.jitter"), "{err}");
    let err = Pool::start(
        PoolConfig::builder(WorkerSpec::new("no-such-program-here"))
            .build()
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::ProgramNotFound { .. }), "{err:?}");
}

#[test]
fn handles_are_cheap_to_share_across_threads() {
    fn shared<T: Clone + Send + Sync + 'static>() {}
    shared::<Pool>();
    fn error<T: std::error::Error + Send + Sync + Clone + 'static>() {}
    error::<Error>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_racing_their_deadlines_are_never_lost_or_mistaken_for_a_hang() {
    // Longer than a late answer takes on a loaded machine; a slot left held
    // still gets the worker killed before the check below.
    let grace = Duration::from_secs(2);
    let health = pybridge_pool::HealthPolicy::default().cancel_grace(grace);
    let pool = start(sdk_worker().arg("--max-concurrency").arg("16"), |b| {
        b.workers(1).health(health)
    })
    .await;
    let mut events = pool.subscribe();
    let pid = pool.stats().workers[0].pid;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..400u64 {
        let pool = pool.clone();
        // Deadlines land around the time the answers do, on both sides of
        // it; spread wide enough that a slow machine still answers some.
        let deadline = Instant::now() + Duration::from_millis(5 + i % 250);
        calls.spawn(async move {
            pool.call_with_deadline("test.sleep", Some(&raw(r#"{"ms":10}"#)), deadline)
                .await
        });
    }
    let (mut ok, mut in_flight, mut queued) = (0, 0, 0);
    while let Some(joined) = calls.join_next().await {
        match joined.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::Timeout {
                stage: TimeoutStage::InFlight,
                ..
            }) => in_flight += 1,
            // Calls beyond the worker's cap wait in the queue, and some of
            // them run out of time there.
            Err(Error::Timeout {
                stage: TimeoutStage::Queued,
                ..
            }) => queued += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok + in_flight + queued, 400);
    assert!(
        ok > 0 && in_flight > 0,
        "both sides of the race: {ok} answered, {in_flight} timed out in flight"
    );
    // Every late answer frees its slot; the worker is not taken for hung.
    eventually(Duration::from_secs(5), "every slot is free", || {
        pool.stats().workers[0].in_flight == 0
    })
    .await;
    tokio::time::sleep(grace + Duration::from_millis(200)).await;
    let stats = pool.stats();
    assert_eq!(stats.workers[0].pid, pid, "the worker was not replaced");
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(
                event,
                PoolEvent::UnroutableResponse { .. } | PoolEvent::WorkerExited { .. }
            ),
            "{event:?}"
        );
    }
    pool.call("test.echo", None).await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_deadline_behind_a_long_one_still_fires_on_time() {
    let pool = start(sdk_worker().arg("--max-concurrency").arg("4"), |b| {
        b.workers(1)
    })
    .await;
    // The sweep is asleep until the long deadline; the short one must wake it.
    let long = {
        let pool = pool.clone();
        let deadline = Instant::now() + Duration::from_secs(20);
        tokio::spawn(async move {
            pool.call_with_deadline("test.sleep", Some(&raw(r#"{"ms":1500}"#)), deadline)
                .await
        })
    };
    eventually(Duration::from_secs(5), "the long call is in flight", || {
        pool.stats().workers[0].in_flight == 1
    })
    .await;
    let started = Instant::now();
    let deadline = started + Duration::from_millis(200);
    let err = pool
        .call_with_deadline("test.sleep", Some(&raw(r#"{"seconds":10}"#)), deadline)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            err,
            Error::Timeout {
                stage: TimeoutStage::InFlight,
                ..
            }
        ),
        "got {err:?}"
    );
    assert!(
        took >= Duration::from_millis(190),
        "not before its deadline: {took:?}"
    );
    assert!(
        took < Duration::from_millis(700),
        "at its deadline, not at the long one: {took:?}"
    );
    long.await.unwrap().unwrap();
    pool.shutdown().await;
}

/// Answers each request with the request's own `_meta` member (or `null`),
/// so a test sees exactly what reached the worker.
const META_ECHO: &str = r#"
import json, sys
print("READY", flush=True)
for line in sys.stdin:
    req = json.loads(line)
    if "id" in req:
        answer = {"meta": req.get("_meta"), "params": req.get("params")}
        print(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": answer}), flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_with_meta_puts_the_trace_context_beside_the_params() {
    use pybridge_protocol::Meta;
    let spec = WorkerSpec::new(python()).args(["-c", META_ECHO]);
    let pool = start(spec, |b| b.workers(1)).await;
    let deadline = || Instant::now() + Duration::from_secs(10);
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let params = raw(r#"{"a":1}"#);
    let traced = pool
        .call_with_meta(
            pool.reserve_id(),
            "m",
            Some(&params),
            deadline(),
            Some(&Meta::trace(tp, "")),
        )
        .await
        .unwrap();
    assert_eq!(
        value(&traced),
        serde_json::json!({"meta": {"traceparent": tp}, "params": {"a": 1}}),
        "the empty tracestate is left out and params are untouched"
    );
    let plain = pool
        .call_with_id(pool.reserve_id(), "m", Some(&params), deadline())
        .await
        .unwrap();
    assert_eq!(
        value(&plain),
        serde_json::json!({"meta": null, "params": {"a": 1}})
    );
    pool.shutdown().await;
}

/// A call alone on its worker writes its frame itself; one larger than the
/// pipe goes out in part, and the writer task must finish it before any
/// other frame, even if its caller has gone away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_larger_than_the_pipe_is_finished_before_any_other() {
    let pool = Arc::new(start(sdk_worker(), |b| b.workers(1)).await);
    let big = raw(&format!(r#"{{"data":"{}"}}"#, "x".repeat(1 << 20)));
    let small = raw(r#"{"n":1}"#);
    for round in 0..10 {
        let first = {
            let (pool, big) = (Arc::clone(&pool), big.clone());
            tokio::spawn(async move {
                if round % 2 == 0 {
                    Some(pool.call("test.echo", Some(&big)).await)
                } else {
                    // The caller leaves while its frame may be half written.
                    let _ = tokio::time::timeout(
                        Duration::from_micros(50),
                        pool.call("test.echo", Some(&big)),
                    )
                    .await;
                    None
                }
            })
        };
        tokio::task::yield_now().await;
        let mut others = Vec::new();
        for _ in 0..8 {
            let (pool, small) = (Arc::clone(&pool), small.clone());
            others.push(tokio::spawn(async move {
                pool.call("test.echo", Some(&small)).await
            }));
        }
        if let Some(answer) = first.await.unwrap() {
            check_echo(&answer.unwrap(), value(&big));
        }
        for other in others {
            check_echo(&other.await.unwrap().unwrap(), value(&small));
        }
    }
    let answer = pool.call("test.echo", Some(&big)).await.unwrap();
    check_echo(&answer, value(&big));
    Arc::try_unwrap(pool).unwrap().shutdown().await;
}
