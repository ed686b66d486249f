//! The circuit breaker through its public API, on paused time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use pybridge_resilience::{
    BreakerConfig, CallError, Error, Event, Outcome, RejectReason, State, StateChange,
    TransitionReason,
};
use tokio::time::Instant;

use crate::support::{TestError, breaker, changes, consecutive, drain, ms, nz};

/// Makes one call that ends with `outcome` after `took`, if admitted;
/// returns whether it was admitted.
fn call(breaker: &pybridge_resilience::CircuitBreaker, outcome: Outcome, took: Duration) -> bool {
    match breaker.try_acquire() {
        Ok(permit) => {
            permit.record(outcome, took);
            true
        }
        Err(_) => false,
    }
}

fn fail(breaker: &pybridge_resilience::CircuitBreaker, times: u32) {
    for _ in 0..times {
        assert!(
            call(breaker, Outcome::Failure, ms(1)),
            "the breaker rejected a call"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_open_it_and_a_success_resets_the_count() {
    let breaker = breaker(consecutive(3).break_duration(Duration::from_secs(10)));
    fail(&breaker, 2);
    assert!(call(&breaker, Outcome::Success, ms(1)));
    fail(&breaker, 2);
    assert_eq!(
        breaker.state(),
        State::Closed,
        "the success reset the count"
    );
    let opened_at = Instant::now();
    fail(&breaker, 1);
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        breaker.retry_at(),
        Some(opened_at + Duration::from_secs(10))
    );

    tokio::time::advance(Duration::from_secs(4)).await;
    let rejected = breaker.try_acquire().expect_err("open");
    assert_eq!(rejected.reason(), RejectReason::Open);
    assert_eq!(
        rejected.retry_at(),
        Some(opened_at + Duration::from_secs(10))
    );
    assert_eq!(rejected.retry_after(), Some(Duration::from_secs(6)));
    assert_eq!(
        rejected.to_string(),
        "circuit breaker is open; next probe in 6s"
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_n_probes_and_closes_after_m_successes() {
    let breaker = breaker(
        consecutive(1)
            .break_duration(Duration::from_secs(1))
            .half_open_max_probes(nz(2))
            .half_open_successes(nz(3)),
    );
    let mut events = breaker.subscribe();
    fail(&breaker, 1);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        breaker.state(),
        State::HalfOpen,
        "reported before any call arrives"
    );

    let first = breaker.try_acquire().expect("probe 1");
    let second = breaker.try_acquire().expect("probe 2");
    assert!(first.is_probe() && second.is_probe());
    let third = breaker.try_acquire().expect_err("only two probes at once");
    assert_eq!(third.reason(), RejectReason::HalfOpenFull);
    assert_eq!(third.retry_at(), None);

    first.success(ms(1));
    second.success(ms(1));
    assert_eq!(breaker.state(), State::HalfOpen, "two of three successes");
    breaker.try_acquire().expect("a freed slot").success(ms(1));
    assert_eq!(breaker.state(), State::Closed);
    assert!(!breaker.try_acquire().expect("closed").is_probe());

    assert_eq!(
        changes(&drain(&mut events)),
        [
            (
                State::Closed,
                State::Open,
                TransitionReason::ConsecutiveFailures { failures: 1 }
            ),
            (State::Open, State::HalfOpen, TransitionReason::BreakElapsed),
            (
                State::HalfOpen,
                State::Closed,
                TransitionReason::ProbesSucceeded { successes: 3 }
            ),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_with_a_growing_break() {
    let breaker = breaker(
        consecutive(1)
            .growing_break_duration(Duration::from_secs(1), 2.0, Duration::from_secs(5))
            .half_open_successes(nz(1)),
    );
    fail(&breaker, 1);
    for expected in [2, 4, 5, 5] {
        let open_until = breaker.retry_at().expect("open");
        tokio::time::advance(open_until - Instant::now()).await;
        let probe = breaker.try_acquire().expect("a probe");
        probe.failure(ms(1));
        let reopened = Instant::now();
        assert_eq!(
            breaker.retry_at(),
            Some(reopened + Duration::from_secs(expected)),
            "the break grows, capped at 5 s"
        );
    }
    // Closing starts the growth over.
    tokio::time::advance(Duration::from_secs(5)).await;
    breaker.try_acquire().expect("a probe").success(ms(1));
    assert_eq!(breaker.state(), State::Closed);
    fail(&breaker, 1);
    assert_eq!(
        breaker.retry_at(),
        Some(Instant::now() + Duration::from_secs(1))
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_a_probe_frees_its_slot() {
    let breaker = breaker(consecutive(1).break_duration(ms(100)));
    fail(&breaker, 1);
    tokio::time::advance(ms(100)).await;
    let probe = breaker.try_acquire().expect("the one probe");
    assert_eq!(
        breaker.try_acquire().expect_err("slot taken").reason(),
        RejectReason::HalfOpenFull
    );
    drop(probe);
    let owned = breaker.try_acquire_owned().expect("the slot is free again");
    drop(owned);
    let probe = breaker.try_acquire().expect("and again");
    probe.ignore();
    assert!(
        breaker.try_acquire().is_ok(),
        "an ignored probe frees its slot too"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stale_probe_does_not_free_a_slot_of_a_later_half_open_period() {
    let breaker = breaker(
        consecutive(1)
            .break_duration(ms(100))
            .half_open_max_probes(nz(2)),
    );
    fail(&breaker, 1);
    tokio::time::advance(ms(100)).await;
    let stale = breaker.try_acquire_owned().expect("probe 1");
    breaker.try_acquire().expect("probe 2").failure(ms(1));
    tokio::time::advance(ms(100)).await;
    let _fresh = breaker.try_acquire().expect("a probe of the new period");
    // The stale probe's slot belonged to the previous period; giving it back
    // must not make room for a third probe in this one.
    drop(stale);
    let _second = breaker.try_acquire().expect("the second slot");
    assert_eq!(
        breaker
            .try_acquire()
            .expect_err("both slots are taken")
            .reason(),
        RejectReason::HalfOpenFull
    );
}

#[tokio::test(start_paused = true)]
async fn slow_successes_count_as_failures_when_configured() {
    let breaker = breaker(consecutive(2).slow_call_threshold(ms(500)));
    assert!(call(&breaker, Outcome::Success, ms(501)));
    assert!(
        call(&breaker, Outcome::Success, ms(500)),
        "at the threshold is not slow"
    );
    assert_eq!(breaker.state(), State::Closed);
    assert!(call(&breaker, Outcome::Success, ms(900)));
    assert!(call(&breaker, Outcome::Success, ms(900)));
    assert_eq!(breaker.state(), State::Open);

    let not_counted = crate::support::breaker(consecutive(1));
    assert!(call(
        &not_counted,
        Outcome::Success,
        Duration::from_secs(3600)
    ));
    assert_eq!(not_counted.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_count_window_trips_on_its_failure_rate_after_min_calls() {
    let breaker = breaker(BreakerConfig::builder().failure_rate_over_calls(0.5, nz(4), nz(4)));
    let mut events = breaker.subscribe();
    fail(&breaker, 3);
    assert_eq!(
        breaker.state(),
        State::Closed,
        "100% of three calls, below min_calls"
    );
    assert!(call(&breaker, Outcome::Success, ms(1)));
    assert_eq!(breaker.state(), State::Open, "3 of 4 is at least 50%");
    assert_eq!(
        changes(&drain(&mut events)),
        [(
            State::Closed,
            State::Open,
            TransitionReason::FailureRate {
                failures: 3,
                calls: 4
            }
        )]
    );

    let healthy = crate::support::breaker(BreakerConfig::builder().failure_rate_over_calls(
        0.5,
        nz(6),
        nz(2),
    ));
    for _ in 0..20 {
        assert!(call(&healthy, Outcome::Success, ms(1)));
        assert!(call(&healthy, Outcome::Success, ms(1)));
        assert!(call(&healthy, Outcome::Failure, ms(1)));
    }
    assert_eq!(
        healthy.state(),
        State::Closed,
        "one failure in three stays below 50%"
    );
}

#[tokio::test(start_paused = true)]
async fn a_time_window_forgets_old_calls() {
    let breaker = breaker(BreakerConfig::builder().failure_rate_over_time(
        0.5,
        Duration::from_secs(10),
        nz(3),
    ));
    fail(&breaker, 2);
    tokio::time::advance(Duration::from_secs(11)).await;
    fail(&breaker, 1);
    assert_eq!(
        breaker.state(),
        State::Closed,
        "the first two failures left the window"
    );
    fail(&breaker, 1);
    assert!(call(&breaker, Outcome::Success, ms(1)));
    assert_eq!(breaker.state(), State::Open, "2 of 3 within 10 s");
}

#[tokio::test(start_paused = true)]
async fn isolate_and_reset_by_hand() {
    let breaker = breaker(consecutive(2));
    let mut events = breaker.subscribe();
    let before = breaker.try_acquire().expect("closed");
    breaker.isolate();
    breaker.isolate();
    let rejected = breaker.try_acquire().expect_err("isolated");
    assert_eq!(rejected.reason(), RejectReason::Isolated);
    assert_eq!(rejected.retry_at(), None);
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(
        breaker.state(),
        State::Isolated,
        "isolation does not expire"
    );
    before.failure(ms(1));
    breaker.reset();
    assert_eq!(breaker.state(), State::Closed);
    fail(&breaker, 1);
    assert_eq!(
        breaker.state(),
        State::Closed,
        "the failure from before the reset is ignored"
    );
    assert_eq!(
        changes(&drain(&mut events)),
        [
            (State::Closed, State::Isolated, TransitionReason::Isolated),
            (State::Isolated, State::Closed, TransitionReason::Reset),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_reset_discards_calls_in_flight_even_when_closed() {
    let breaker = breaker(consecutive(2));
    let mut events = breaker.subscribe();
    fail(&breaker, 1);
    let in_flight = breaker.try_acquire().expect("closed");
    breaker.reset();
    in_flight.failure(ms(1));
    fail(&breaker, 1);
    assert_eq!(
        breaker.state(),
        State::Closed,
        "both the count and the call in flight were reset"
    );
    assert!(
        drain(&mut events).is_empty(),
        "closed to closed is no state change"
    );
}

#[tokio::test(start_paused = true)]
async fn call_classifies_results_and_skips_rejected_futures() {
    let breaker = breaker(consecutive(2).break_duration(Duration::from_secs(5)));
    for _ in 0..5 {
        let result = breaker
            .call(async { Err::<(), _>(TestError::Invalid) })
            .await;
        assert!(matches!(result, Err(CallError::Inner(TestError::Invalid))));
    }
    assert_eq!(
        breaker.state(),
        State::Closed,
        "validation errors are not the dependency's fault"
    );
    for _ in 0..2 {
        let _ = breaker.call(async { Err::<(), _>(TestError::Fatal) }).await;
    }
    assert_eq!(breaker.state(), State::Open);

    let polled = AtomicBool::new(false);
    let result = breaker
        .call(async {
            polled.store(true, Ordering::SeqCst);
            Ok::<_, TestError>(())
        })
        .await;
    match result {
        Err(CallError::Policy(Error::Rejected(rejected))) => {
            assert_eq!(rejected.retry_after(), Some(Duration::from_secs(5)));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(!polled.load(Ordering::SeqCst), "a rejected call never runs");
}

#[tokio::test(start_paused = true)]
async fn call_measures_slow_calls_and_a_cancelled_probe_frees_its_slot() {
    let breaker = breaker(
        consecutive(1)
            .slow_call_threshold(ms(100))
            .break_duration(ms(10)),
    );
    let slow = breaker.call(async {
        tokio::time::sleep(ms(150)).await;
        Ok::<_, TestError>(())
    });
    assert!(slow.await.is_ok());
    assert_eq!(
        breaker.state(),
        State::Open,
        "a slow success counts as a failure"
    );

    tokio::time::advance(ms(10)).await;
    let hanging = breaker.call(std::future::pending::<Result<(), TestError>>());
    let timed_out = tokio::time::timeout(ms(50), hanging).await;
    assert!(timed_out.is_err());
    assert!(
        breaker
            .try_acquire()
            .expect("the cancelled probe freed its slot")
            .is_probe()
    );
}

#[tokio::test(start_paused = true)]
async fn state_changes_carry_the_name_and_time() {
    let breaker = pybridge_resilience::CircuitBreaker::named(
        "framework.patterns.find",
        consecutive(1).build().unwrap(),
    );
    assert_eq!(breaker.name(), Some("framework.patterns.find"));
    let mut events = breaker.subscribe();
    let at = Instant::now();
    fail(&breaker, 1);
    match drain(&mut events).as_slice() {
        [
            Event::StateChanged(StateChange {
                breaker: name,
                at: when,
                to,
                ..
            }),
        ] => {
            assert_eq!(name.as_deref(), Some("framework.patterns.find"));
            assert_eq!(*when, at);
            assert_eq!(*to, State::Open);
        }
        other => panic!("expected one state change, got {other:?}"),
    }
}

/// Real threads hammer a half-open breaker: the number of probes in flight
/// never exceeds the cap, and every slot is free again at the end.
#[tokio::test(start_paused = true)]
async fn the_probe_cap_holds_under_contention() {
    const PROBES: u32 = 3;
    let breaker = breaker(
        consecutive(1)
            .break_duration(ms(1))
            .half_open_max_probes(nz(PROBES))
            // Never closes during the test: probes only succeed or are ignored.
            .half_open_successes(nz(1_000_000)),
    );
    fail(&breaker, 1);
    tokio::time::advance(ms(1)).await;
    breaker.try_acquire().expect("enters half-open").ignore();

    let in_flight = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let (breaker, in_flight, peak) = (breaker.clone(), in_flight.clone(), peak.clone());
            std::thread::spawn(move || {
                let mut admitted = 0;
                for i in 0..5_000_u32 {
                    if let Ok(permit) = breaker.try_acquire() {
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::hint::spin_loop();
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        match (i + thread) % 3 {
                            0 => permit.success(Duration::ZERO),
                            1 => permit.ignore(),
                            _ => drop(permit),
                        }
                        admitted += 1;
                    }
                }
                admitted
            })
        })
        .collect();
    let admitted: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(admitted > 0);
    assert!(
        peak.load(Ordering::SeqCst) <= PROBES,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    assert_eq!(breaker.state(), State::HalfOpen);
    let held: Vec<_> = (0..PROBES)
        .map(|_| breaker.try_acquire().expect("every slot was freed"))
        .collect();
    assert!(breaker.try_acquire().is_err());
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn a_time_window_counts_calls_at_the_time_the_caller_says_they_ended() {
    let breaker = breaker(BreakerConfig::builder().failure_rate_over_time(
        0.5,
        Duration::from_secs(10),
        nz(3),
    ));
    let start = Instant::now();
    let fail_at = |at: Instant| ended_at(&breaker, Outcome::Failure, at);
    // The clock never moves; the readings the caller passes do.
    fail_at(start);
    fail_at(start);
    fail_at(start + Duration::from_secs(11));
    fail_at(start + Duration::from_secs(12));
    assert_eq!(
        breaker.state(),
        State::Closed,
        "the first two failures ended more than a window before the others: 2 calls"
    );
    let permit = breaker.try_acquire_owned().expect("still closed");
    permit.record_at(Outcome::Failure, ms(1), start + Duration::from_secs(12));
    assert_eq!(
        breaker.state(),
        State::Open,
        "3 failures in 3 calls within 10 s"
    );
}

/// Records one call that ended at `at` with `outcome`; the breaker admits it.
fn ended_at(breaker: &pybridge_resilience::CircuitBreaker, outcome: Outcome, at: Instant) {
    let permit = breaker.try_acquire().expect("a closed breaker admits");
    permit.record_at(outcome, ms(1), at);
}

#[tokio::test(start_paused = true)]
async fn a_late_failure_of_an_older_bucket_leaves_the_next_success_to_trip_the_window() {
    // Buckets of 1 s; 25 % of at least 10 calls opens it.
    let breaker = breaker(BreakerConfig::builder().failure_rate_over_time(
        0.25,
        Duration::from_secs(10),
        nz(10),
    ));
    let start = Instant::now();
    let at = |ms_since: u64| start + Duration::from_millis(ms_since);
    // Bucket 5: 1 failure in 3 calls. Bucket 6: 1 failure in 7 calls, which
    // brings the window to 2 in 10 (20 %): enough calls, no trip.
    ended_at(&breaker, Outcome::Failure, at(5_000));
    ended_at(&breaker, Outcome::Success, at(5_000));
    ended_at(&breaker, Outcome::Success, at(5_000));
    ended_at(&breaker, Outcome::Failure, at(6_000));
    for _ in 0..6 {
        ended_at(&breaker, Outcome::Success, at(6_000));
    }
    assert_eq!(breaker.state(), State::Closed, "2 failures in 10 calls");
    // A call that ended in bucket 5 is recorded late: the window as of
    // 5.9 s holds 2 failures in 4 calls, too few calls to trip.
    ended_at(&breaker, Outcome::Failure, at(5_900));
    assert_eq!(breaker.state(), State::Closed, "4 calls as of 5.9 s");
    // As of 6 s the window now holds 3 failures in 11 calls, and one more
    // success makes 3 in 12: 25 %, which opens it.
    ended_at(&breaker, Outcome::Success, at(6_000));
    assert_eq!(breaker.state(), State::Open, "3 failures in 12 calls");
}

#[tokio::test(start_paused = true)]
async fn a_window_settled_before_a_trip_counts_again_after_the_breaker_closes() {
    let breaker = breaker(
        BreakerConfig::builder()
            .failure_rate_over_time(0.5, Duration::from_secs(10), nz(3))
            .break_duration(ms(100))
            .half_open_successes(nz(1)),
    );
    // Three successes settle the window; three failures then trip it
    // (3 in 6), all within one bucket.
    for _ in 0..3 {
        assert!(call(&breaker, Outcome::Success, ms(1)));
    }
    fail(&breaker, 3);
    assert_eq!(breaker.state(), State::Open);
    tokio::time::advance(ms(200)).await;
    assert!(call(&breaker, Outcome::Success, ms(1)), "the probe");
    assert_eq!(breaker.state(), State::Closed);
    // Still the same bucket. The window starts empty: 2 failures and a
    // success are 3 calls at 67 %, and that success opens it.
    fail(&breaker, 2);
    assert_eq!(breaker.state(), State::Closed, "2 calls are too few");
    assert!(call(&breaker, Outcome::Success, ms(1)));
    assert_eq!(breaker.state(), State::Open, "2 failures in 3 calls");
}

#[tokio::test(start_paused = true)]
async fn successes_from_many_threads_are_all_counted_before_failures_trip_the_window() {
    // 4,000 successes from four threads, all in one bucket; then failures
    // from this thread. At 50 % the 4,000th failure must be the one that
    // opens it: one lost success would open it a call early.
    let breaker = breaker(BreakerConfig::builder().failure_rate_over_time(
        0.5,
        Duration::from_secs(10),
        nz(100),
    ));
    let at = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let breaker = breaker.clone();
            std::thread::spawn(move || {
                for _ in 0..1_000 {
                    let permit = breaker.try_acquire().expect("a closed breaker admits");
                    permit.record_at(Outcome::Success, ms(1), at);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a recording thread");
    }
    for n in 1..4_000 {
        ended_at(&breaker, Outcome::Failure, at);
        assert_eq!(
            breaker.state(),
            State::Closed,
            "{n} failures in {} calls",
            4_000 + n
        );
    }
    ended_at(&breaker, Outcome::Failure, at);
    assert_eq!(
        breaker.state(),
        State::Open,
        "4,000 failures in 8,000 calls"
    );
}
