//! The bulkhead: a concurrency limit with a bounded queue.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use pybridge_resilience::{Bulkhead, CallError, Classify, Error, RetryHint};
use tokio::sync::Mutex;

use crate::support::{TestError, ms};

fn bulkhead(max_concurrent: usize, max_queued: usize) -> Bulkhead {
    Bulkhead::builder()
        .name("test")
        .max_concurrent(NonZeroUsize::new(max_concurrent).unwrap())
        .max_queued(max_queued)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_rejects_with_a_named_error() {
    let bulkhead = bulkhead(2, 1);
    let running = [
        bulkhead.acquire().await.unwrap(),
        bulkhead.acquire().await.unwrap(),
    ];
    assert_eq!(bulkhead.available(), 0);

    let waiter = tokio::spawn({
        let bulkhead = bulkhead.clone();
        async move { bulkhead.acquire().await.map(|_| ()) }
    });
    tokio::task::yield_now().await;
    assert_eq!(bulkhead.queued(), 1);

    let full = bulkhead.acquire().await.expect_err("queue full");
    assert_eq!(
        full,
        Error::BulkheadFull {
            max_concurrent: 2,
            max_queued: 1
        }
    );
    assert_eq!(full.retry_hint(), RetryHint::Yes);
    assert!(
        !full.is_dependency_failure(),
        "a local rejection never trips a breaker"
    );
    assert!(bulkhead.try_acquire().is_err());

    drop(running);
    waiter
        .await
        .unwrap()
        .expect("the waiter got the freed slot");
    assert_eq!(bulkhead.queued(), 0);
    assert_eq!(bulkhead.available(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_waiter_leaves_the_queue() {
    let bulkhead = bulkhead(1, 1);
    let _running = bulkhead.acquire().await.unwrap();
    let waiting = tokio::time::timeout(ms(10), bulkhead.acquire()).await;
    assert!(waiting.is_err(), "the waiter timed out");
    assert_eq!(bulkhead.queued(), 0);
    // The place is free for the next caller.
    let next = tokio::spawn({
        let bulkhead = bulkhead.clone();
        async move { bulkhead.acquire().await.map(|_| ()) }
    });
    tokio::task::yield_now().await;
    assert_eq!(bulkhead.queued(), 1);
    next.abort();
}

#[tokio::test(start_paused = true)]
async fn waiters_get_slots_in_arrival_order() {
    let bulkhead = bulkhead(1, 8);
    let order = Arc::new(Mutex::new(Vec::new()));
    let first = bulkhead.acquire().await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..5 {
        let (bulkhead, order) = (bulkhead.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let _slot = bulkhead.acquire().await.unwrap();
            order.lock().await.push(n);
            tokio::time::sleep(ms(1)).await;
        }));
        tokio::task::yield_now().await;
    }
    drop(first);
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock().await, [0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn run_limits_concurrency() {
    let bulkhead = bulkhead(3, 100);
    let running = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (bulkhead, running, peak) = (bulkhead.clone(), running.clone(), peak.clone());
            tokio::spawn(async move {
                bulkhead
                    .run(async {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(ms(5)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, TestError>(())
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(peak.load(Ordering::SeqCst), 3);

    let no_queue = bulkhead_with_no_queue();
    let _held = no_queue.try_acquire().unwrap();
    let rejected = no_queue.run(async { Ok::<_, TestError>(()) }).await;
    assert!(matches!(
        rejected,
        Err(CallError::Policy(Error::BulkheadFull { .. }))
    ));
    let failed = bulkhead.run(async { Err::<(), _>(TestError::Fatal) }).await;
    assert!(matches!(failed, Err(CallError::Inner(TestError::Fatal))));
}

fn bulkhead_with_no_queue() -> Bulkhead {
    bulkhead(1, 0)
}
