//! Concurrent misses of one key run one load; its value or error reaches all,
//! and every caller still ends by its own deadline.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pybridge_cache::{Cache, Fetched, Load, LoadError, Source, Tiers};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::support::{Boom, Runs, cache_on, far, get, key, memory_cache, policy};

const CALLERS: usize = 100;

/// Starts `CALLERS` calls of one key whose loader waits for `release`, lets
/// them all reach the cache, then releases the loader.
async fn hundred_callers(
    cache: &Cache,
    tiers: Tiers,
    outcome: Result<&'static str, &'static str>,
) -> (Runs, Vec<Result<Fetched, LoadError<Boom>>>) {
    let runs = Runs::default();
    let release = Arc::new(Notify::new());
    let mut set = JoinSet::new();
    for _ in 0..CALLERS {
        let (cache, runs, release) = (cache.clone(), runs.clone(), Arc::clone(&release));
        set.spawn(async move {
            cache
                .get_or_load(
                    &key("m", r#"{"q":1}"#),
                    &policy(tiers),
                    far(),
                    || async move {
                        runs.hit();
                        release.notified().await;
                        outcome
                            .map(|v| Load::Value(Bytes::from_static(v.as_bytes())))
                            .map_err(Boom)
                    },
                )
                .await
        });
    }
    // On this single-threaded runtime every task runs until it waits; yielding
    // enough times lets all of them reach the cache.
    for _ in 0..(4 * CALLERS) {
        tokio::task::yield_now().await;
    }
    assert_eq!(runs.count(), 1, "one loader started");
    release.notify_one();
    let results = set.join_all().await;
    (runs, results)
}

#[tokio::test(start_paused = true)]
async fn a_hundred_concurrent_misses_run_one_load() {
    let cache = memory_cache();
    let (runs, results) = hundred_callers(&cache, Tiers::Both, Ok("value")).await;
    assert_eq!(runs.count(), 1);
    assert_eq!(results.len(), CALLERS);
    let mut coalesced = 0;
    for result in results {
        let fetched = result.expect("every caller gets the value");
        assert_eq!(fetched.value, Bytes::from_static(b"value"));
        assert_eq!(fetched.source, Source::Loader);
        coalesced += usize::from(fetched.coalesced);
    }
    assert_eq!(coalesced, CALLERS - 1);
    let stats = cache.stats();
    assert_eq!(
        (stats.loads, stats.misses, stats.coalesced),
        (1, CALLERS as u64, CALLERS as u64 - 1)
    );
    // And the value is now cached.
    let again = get(
        &cache,
        &key("m", r#"{"q":1}"#),
        &policy(Tiers::Both),
        &runs,
        "other",
    )
    .await;
    assert_eq!((again.source, runs.count()), (Source::L1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_hundred_concurrent_misses_share_one_error_which_is_not_cached() {
    let cache = memory_cache();
    let (runs, results) = hundred_callers(&cache, Tiers::Both, Err("worker crashed")).await;
    assert_eq!(runs.count(), 1);
    let errors: Vec<Arc<Boom>> = results
        .into_iter()
        .map(|r| loader_error(r.expect_err("every caller gets the error")))
        .collect();
    assert_eq!(*errors[0], Boom("worker crashed"));
    assert!(
        errors.iter().all(|e| Arc::ptr_eq(e, &errors[0])),
        "one shared error"
    );
    assert_eq!(cache.stats().load_errors, 1);

    let next = get(
        &cache,
        &key("m", r#"{"q":1}"#),
        &policy(Tiers::Both),
        &runs,
        "recovered",
    )
    .await;
    assert_eq!(
        (next.source, &next.value[..], runs.count()),
        (Source::Loader, &b"recovered"[..], 2)
    );
}

#[tokio::test(start_paused = true)]
async fn waiters_on_a_disk_hit_all_get_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = cache_on(dir.path());
    let runs = Runs::default();
    get(
        &writer,
        &key("m", r#"{"q":1}"#),
        &policy(Tiers::L2Only),
        &runs,
        "on disk",
    )
    .await;
    writer.close().await;

    let reader = cache_on(dir.path());
    let (runs, results) = hundred_callers_on_disk(&reader).await;
    assert_eq!(runs.count(), 0, "the disk answered");
    for result in results {
        let fetched = result.expect("value");
        assert_eq!(&fetched.value[..], b"on disk");
        // A caller that first runs after the read finished finds the promoted copy.
        assert!(
            matches!(fetched.source, Source::L2 | Source::L1),
            "{fetched:?}"
        );
    }
    let stats = reader.stats();
    assert_eq!(stats.l2_hits + stats.l1_hits, CALLERS as u64, "{stats:?}");
    assert_eq!(
        stats.coalesced,
        stats.l2_hits - 1,
        "one disk read: {stats:?}"
    );
    assert_eq!(stats.loads, 0);
}

async fn hundred_callers_on_disk(cache: &Cache) -> (Runs, Vec<Result<Fetched, LoadError<Boom>>>) {
    let runs = Runs::default();
    let mut set = JoinSet::new();
    for _ in 0..CALLERS {
        let (cache, runs) = (cache.clone(), runs.clone());
        set.spawn(async move {
            cache
                .get_or_load(
                    &key("m", r#"{"q":1}"#),
                    &policy(Tiers::Both),
                    far(),
                    || async move {
                        runs.hit();
                        Ok::<_, Boom>(Bytes::from_static(b"loaded"))
                    },
                )
                .await
        });
    }
    let results = set.join_all().await;
    (runs, results)
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_leader_hands_the_load_to_a_waiter() {
    let cache = memory_cache();
    let k = key("m", "[]");
    let started = Arc::new(Notify::new());
    let leader = {
        let (cache, k, started) = (cache.clone(), k.clone(), Arc::clone(&started));
        tokio::spawn(async move {
            cache
                .get_or_load(&k, &policy(Tiers::Both), far(), || async move {
                    started.notify_one();
                    std::future::pending::<Result<Bytes, Boom>>().await
                })
                .await
        })
    };
    started.notified().await;
    let runs = Runs::default();
    let waiter = {
        let (cache, k, runs) = (cache.clone(), k.clone(), runs.clone());
        tokio::spawn(async move { get(&cache, &k, &policy(Tiers::Both), &runs, "second").await })
    };
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(runs.count(), 0, "the waiter waits for the leader");
    leader.abort();
    let fetched = waiter.await.expect("waiter finishes");
    assert_eq!(
        (fetched.source, &fetched.value[..], runs.count()),
        (Source::Loader, &b"second"[..], 1)
    );
}

// Deadlines. Each caller below is one call as the bridge makes it: the cache
// gets the caller's deadline, and the loader stands for the pool, which ends
// the call at the same deadline with an error of its own.

/// One caller: when it arrives and its deadline (both from the test's start),
/// how long its load takes, and what the load gives.
#[derive(Debug, Clone, Copy)]
struct Caller {
    arrives: Duration,
    deadline: Duration,
    work: Duration,
    outcome: Result<&'static str, &'static str>,
    /// Whether the loader itself stops at the deadline, as the pool does.
    loader_stops_at_deadline: bool,
}

impl Caller {
    /// Arrives at `arrives_ms` with `deadline_ms`; its load takes `work_ms`
    /// and gives `"value"`.
    fn at(arrives_ms: u64, deadline_ms: u64, work_ms: u64) -> Self {
        Caller {
            arrives: Duration::from_millis(arrives_ms),
            deadline: Duration::from_millis(deadline_ms),
            work: Duration::from_millis(work_ms),
            outcome: Ok("value"),
            loader_stops_at_deadline: true,
        }
    }

    fn failing(mut self, error: &'static str) -> Self {
        self.outcome = Err(error);
        self
    }

    fn with_a_loader_that_ignores_the_deadline(mut self) -> Self {
        self.loader_stops_at_deadline = false;
        self
    }
}

/// What a caller got, and when (from the test's start).
type Ended = (Result<Fetched, LoadError<Boom>>, Duration);

/// Runs `callers` concurrently on one key from a common start and returns
/// what each got, in order, with the number of loader runs.
async fn race(cache: &Cache, callers: &[Caller]) -> (Vec<Ended>, usize) {
    let runs = Runs::default();
    let t0 = Instant::now();
    let mut set = JoinSet::new();
    for (i, caller) in callers.iter().copied().enumerate() {
        let (cache, runs) = (cache.clone(), runs.clone());
        set.spawn(async move {
            tokio::time::sleep_until(t0 + caller.arrives).await;
            let deadline = t0 + caller.deadline;
            let result = cache
                .get_or_load(
                    &key("m", "[1]"),
                    &policy(Tiers::Both),
                    deadline,
                    || async move {
                        runs.hit();
                        let done = Instant::now() + caller.work;
                        if caller.loader_stops_at_deadline && deadline < done {
                            tokio::time::sleep_until(deadline).await;
                            return Err(Boom("timed out"));
                        }
                        tokio::time::sleep_until(done).await;
                        caller
                            .outcome
                            .map(|v| Bytes::from_static(v.as_bytes()))
                            .map_err(Boom)
                    },
                )
                .await;
            (i, (result, t0.elapsed()))
        });
    }
    let mut ended: Vec<(usize, Ended)> = set.join_all().await;
    ended.sort_by_key(|(i, _)| *i);
    (ended.into_iter().map(|(_, e)| e).collect(), runs.count())
}

fn loader_error(error: LoadError<Boom>) -> Arc<Boom> {
    match error {
        LoadError::Loader(e) => e,
        other => panic!("expected the loader's error, got {other:?}"),
    }
}

/// Asserts that a caller ended at `ms` (paused time; the timer wheel ticks
/// in whole milliseconds).
#[track_caller]
fn assert_ended_at(ended: &Ended, ms: u64) {
    let at = ended.1;
    assert!(
        at >= Duration::from_millis(ms) && at < Duration::from_millis(ms + 2),
        "ended at {at:?}, expected {ms} ms: {:?}",
        ended.0
    );
}

#[track_caller]
fn assert_value(ended: &Ended, ms: u64, coalesced: bool) {
    assert_ended_at(ended, ms);
    let fetched = ended.0.as_ref().expect("a value");
    assert_eq!(
        (&fetched.value[..], fetched.source, fetched.coalesced),
        (&b"value"[..], Source::Loader, coalesced)
    );
}

#[track_caller]
fn assert_deadline_exceeded(ended: &Ended, ms: u64, coalesced: bool) {
    assert_ended_at(ended, ms);
    match &ended.0 {
        Err(LoadError::DeadlineExceeded {
            elapsed,
            coalesced: was_waiting,
        }) => {
            assert_eq!(*was_waiting, coalesced, "{:?}", ended.0);
            assert!(*elapsed <= ended.1, "{elapsed:?}");
        }
        other => panic!("expected the deadline to pass, got {other:?}"),
    }
}

#[track_caller]
fn assert_loader_error(ended: &Ended, ms: u64, message: &str) -> Arc<Boom> {
    assert_ended_at(ended, ms);
    let error = loader_error(ended.0.clone().expect_err("an error"));
    assert_eq!(error.0, message);
    error
}

#[tokio::test(start_paused = true)]
async fn a_joiner_ends_at_its_own_deadline_while_the_leader_loads_on() {
    let cache = memory_cache();
    let (ended, runs) = race(
        &cache,
        &[Caller::at(0, 10_000, 2_800), Caller::at(10, 500, 2_800)],
    )
    .await;
    assert_deadline_exceeded(&ended[1], 500, true);
    assert_value(&ended[0], 2_800, false);
    assert_eq!(runs, 1, "the joiner that gave up started no load");
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.deadline_exceeded), (1, 1), "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn a_joiner_with_time_left_carries_the_load_on_when_the_leaders_deadline_passes() {
    let cache = memory_cache();
    let (ended, runs) = race(
        &cache,
        &[Caller::at(0, 800, 2_000), Caller::at(10, 10_000, 2_000)],
    )
    .await;
    // The leader's own call timed out; that is its answer, not the joiner's.
    assert_loader_error(&ended[0], 800, "timed out");
    assert_value(&ended[1], 2_800, false);
    assert_eq!(runs, 2);
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.load_errors), (2, 1), "{stats:?}");

    // The joiner's load is stored as usual.
    let again = get(
        &cache,
        &key("m", "[1]"),
        &policy(Tiers::Both),
        &Runs::default(),
        "other",
    )
    .await;
    assert_eq!(
        (again.source, &again.value[..]),
        (Source::L1, &b"value"[..])
    );
}

#[tokio::test(start_paused = true)]
async fn the_cache_ends_a_leader_at_its_deadline_even_if_its_loader_runs_on() {
    let cache = memory_cache();
    let leader = Caller::at(0, 800, 5_000).with_a_loader_that_ignores_the_deadline();
    let (ended, runs) = race(&cache, &[leader, Caller::at(10, 10_000, 2_000)]).await;
    assert_deadline_exceeded(&ended[0], 800, false);
    assert_value(&ended[1], 2_800, false);
    assert_eq!(runs, 2);
    assert_eq!(cache.stats().deadline_exceeded, 1);
}

#[tokio::test(start_paused = true)]
async fn when_the_leader_gives_up_one_joiner_leads_and_the_others_wait_on_it() {
    let cache = memory_cache();
    let joiner = Caller::at(10, 10_000, 2_000);
    let (ended, runs) = race(&cache, &[Caller::at(0, 800, 2_000), joiner, joiner, joiner]).await;
    assert_loader_error(&ended[0], 800, "timed out");
    for e in &ended[1..] {
        assert_ended_at(e, 2_800);
    }
    let coalesced = ended[1..]
        .iter()
        .filter(|(r, _)| r.as_ref().expect("a value").coalesced)
        .count();
    assert_eq!((runs, coalesced), (2, 2), "one new load for three joiners");
}

#[tokio::test(start_paused = true)]
async fn a_load_is_handed_on_until_a_caller_with_enough_time_finishes_it() {
    let cache = memory_cache();
    let (ended, runs) = race(
        &cache,
        &[
            Caller::at(0, 800, 2_000),
            // Takes over at 800 ms, gives up at 1.5 s.
            Caller::at(10, 1_500, 2_000),
            // Joins the second load at 1 s, takes over at 1.5 s.
            Caller::at(1_000, 10_000, 2_000),
        ],
    )
    .await;
    assert_loader_error(&ended[0], 800, "timed out");
    assert_loader_error(&ended[1], 1_500, "timed out");
    assert_value(&ended[2], 3_500, false);
    assert_eq!(runs, 3);
}

#[tokio::test(start_paused = true)]
async fn a_loader_error_before_the_leaders_deadline_reaches_every_joiner_once() {
    let cache = memory_cache();
    let joiner = Caller::at(10, 10_000, 2_000);
    let (ended, runs) = race(
        &cache,
        &[
            Caller::at(0, 1_000, 300).failing("worker crashed"),
            joiner,
            joiner,
        ],
    )
    .await;
    let first = assert_loader_error(&ended[0], 300, "worker crashed");
    for e in &ended[1..] {
        let shared = assert_loader_error(e, 300, "worker crashed");
        assert!(Arc::ptr_eq(&first, &shared), "one shared error");
    }
    assert_eq!(runs, 1, "the joiners did not load again");
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.load_errors, stats.coalesced), (1, 1, 2));
}

#[tokio::test(start_paused = true)]
async fn callers_that_all_have_time_share_one_load() {
    let cache = memory_cache();
    let mut callers = vec![Caller::at(0, 2_000, 1_000)];
    callers.extend((1..50).map(|i| Caller::at(i * 10, 1_000 + i * 100, 1_000)));
    let (ended, runs) = race(&cache, &callers).await;
    assert_eq!(runs, 1);
    assert_value(&ended[0], 1_000, false);
    for e in &ended[1..] {
        assert_value(e, 1_000, true);
    }
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.coalesced), (1, 49));
}

#[tokio::test(start_paused = true)]
async fn a_caller_out_of_time_is_answered_from_memory_but_runs_no_load() {
    let cache = memory_cache();
    let runs = Runs::default();
    let cached = key("m", "[1]");
    get(&cache, &cached, &policy(Tiers::Both), &runs, "value").await;
    let now = Instant::now();
    let load = || async {
        runs.hit();
        Ok::<_, Boom>(Bytes::from_static(b"late"))
    };
    let hit = cache
        .get_or_load(&cached, &policy(Tiers::Both), now, load)
        .await
        .expect("a memory hit needs no time");
    assert_eq!(hit.source, Source::L1);
    let missed = cache
        .get_or_load(&key("m", "[2]"), &policy(Tiers::Both), now, load)
        .await;
    assert!(
        matches!(
            missed,
            Err(LoadError::DeadlineExceeded {
                coalesced: false,
                ..
            })
        ),
        "{missed:?}"
    );
    assert_eq!(runs.count(), 1, "no load after the deadline");
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_bypasses_the_cache_still_ends_at_its_deadline() {
    let cache = memory_cache();
    let mut off = policy(Tiers::Both);
    off.enabled = false;
    let t0 = Instant::now();
    let result = cache
        .get_or_load(
            &key("m", "[1]"),
            &off,
            t0 + Duration::from_millis(300),
            || async { std::future::pending::<Result<Bytes, Boom>>().await },
        )
        .await;
    assert!(
        matches!(result, Err(LoadError::DeadlineExceeded { .. })),
        "{result:?}"
    );
    assert_eq!(t0.elapsed(), Duration::from_millis(300));
}
