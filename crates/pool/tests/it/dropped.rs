//! Callers that go away: a call's future dropped at a random point (while it
//! waits for a slot, for the outbox, or around the moment its answer
//! arrives) must leave no slot held and get no healthy worker killed, and
//! every other call must still be answered. (Each of those orders is also
//! stepped through deterministically by the unit tests of `admission`.)

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use pybridge_pool::{HealthPolicy, Pool, PoolEvent};
use tokio::time::Instant;

use crate::support::*;

/// Drops `call` after it has been polled `polls` times (with a yield to the
/// scheduler between polls), unless it finished before. Yields drop a call at
/// finer points than a timer (whose resolution is a millisecond) can.
async fn drop_after_polls<F: Future>(call: F, polls: u32) -> Option<F::Output> {
    let mut call = std::pin::pin!(call);
    for _ in 0..polls {
        let polled =
            std::future::poll_fn(|cx| std::task::Poll::Ready(call.as_mut().poll(cx))).await;
        if let std::task::Poll::Ready(output) = polled {
            return Some(output);
        }
        tokio::task::yield_now().await;
    }
    None
}

/// Runs one call that its caller gives up on at a random moment.
async fn dropped_call(pool: &Pool, round_trip: Duration) {
    // Now and then a payload larger than the pipe holds: the writer blocks
    // on it, the `$/cancelRequest`s of dropped calls pile up in the outbox,
    // and later requests wait for room there when they are dropped.
    let params = if rand::random_range(0..16u32) == 0 {
        raw(&format!(r#"{{"payload":"{}"}}"#, "x".repeat(128 * 1024)))
    } else {
        raw(r#"{"payload":"x"}"#)
    };
    let call = pool.call("test.echo", Some(&params));
    match rand::random_range(0..4u32) {
        // Around the answer: a handful of scheduler turns is one round trip.
        0 | 1 => {
            drop_after_polls(call, rand::random_range(0..24)).await;
        }
        // A timer within two round trips, the way a caller-side timeout does.
        2 => {
            let within = round_trip.mul_f64(rand::random_range(0.0..2.0));
            let _ = tokio::time::timeout(within, call).await;
        }
        // Whatever happens to be first when a `select!` picks another branch.
        _ => {
            tokio::select! {
                _ = call => {}
                () = tokio::task::yield_now() => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callers_dropped_at_random_points_leak_no_slot_and_kill_no_worker() {
    // Longer than a healthy worker's late answer takes on a loaded machine,
    // shorter than the run, so a leaked slot still gets its worker killed.
    let grace = Duration::from_millis(1500);
    // A small cap, so that callers also drop while queued for a slot.
    let pool = start(sdk_worker(), |b| {
        b.workers(2)
            .max_in_flight(std::num::NonZeroUsize::new(4).expect("non-zero"))
            .queue_capacity(100_000)
            .health(HealthPolicy::default().cancel_grace(grace))
    })
    .await;
    let mut events = pool.subscribe();
    let pids = worker_pids(&pool);

    // One round trip, measured, to aim the drops at the answer.
    let mut trips = Vec::new();
    for _ in 0..50 {
        let at = Instant::now();
        pool.call("test.echo", None).await.expect("warm-up call");
        trips.push(at.elapsed());
    }
    trips.sort();
    let round_trip = trips[trips.len() / 2];

    let stop = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicU64::new(0));
    let mut droppers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (pool, stop, dropped) = (pool.clone(), Arc::clone(&stop), Arc::clone(&dropped));
        droppers.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                dropped_call(&pool, round_trip).await;
                dropped.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    // Unrelated callers that wait for their answers all along.
    let mut steady = tokio::task::JoinSet::new();
    for t in 0..2u64 {
        let (pool, stop) = (pool.clone(), Arc::clone(&stop));
        steady.spawn(async move {
            let (mut answered, mut failed) = (0u64, Vec::new());
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let params = raw(&format!(r#"{{"t":{t},"i":{i}}}"#));
                match pool.call("test.echo", Some(&params)).await {
                    Ok(result) => {
                        assert_eq!(value(&result)["i"], i);
                        answered += 1;
                    }
                    Err(err) => failed.push(format!("call {t}/{i}: {err}")),
                }
            }
            (answered, failed)
        });
    }
    // Long enough for leaked slots to outlive the cancel grace several times.
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(joined) = droppers.join_next().await {
        joined.expect("dropper task");
    }
    let (mut answered, mut failed) = (0, Vec::new());
    while let Some(joined) = steady.join_next().await {
        let (ok, errors) = joined.expect("unrelated caller");
        answered += ok;
        failed.extend(errors);
    }

    // Every late answer frees its slot; let the grace period pass twice so
    // a slot held by a forgotten call would get its worker killed.
    tokio::time::sleep(grace * 2).await;
    eventually(Duration::from_secs(5), "every slot is free", || {
        let stats = pool.stats();
        stats.queued == 0 && stats.workers.iter().all(|w| w.in_flight == 0)
    })
    .await;
    let stats = pool.stats();
    let mut exits = 0;
    while let Ok(event) = events.try_recv() {
        if matches!(event, PoolEvent::WorkerExited { .. }) {
            exits += 1;
        }
    }
    println!(
        "{} calls dropped, {answered} unrelated calls answered, round trip {round_trip:?}",
        dropped.load(Ordering::Relaxed)
    );
    assert!(answered > 0, "the unrelated callers were served");
    assert!(
        failed.is_empty(),
        "every unrelated call answered: {failed:?}"
    );
    assert_eq!(exits, 0, "no worker was killed");
    assert_eq!(stats.restarts, 0, "no worker was restarted");
    assert_eq!(worker_pids(&pool), pids, "the same workers serve");
    let held: usize = stats.workers.iter().map(|w| w.in_flight).sum();
    assert_eq!(held, 0, "no slot is held");
    pool.shutdown().await;
}
