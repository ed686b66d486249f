//! Unit tests of the backoff schedules and jitter, mostly properties.

use std::time::Duration;

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::{Backoff, Jitter, Schedule};
use crate::RetryHint;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn schedule(backoff: Backoff, jitter: Jitter, max_delay: Duration) -> Schedule {
    backoff
        .validate(max_delay)
        .expect("test schedules are valid");
    Schedule {
        backoff,
        jitter,
        max_delay,
    }
}

/// The first `count` delays of a schedule, chaining the previous delay as the
/// retry loop does.
fn sequence(schedule: &Schedule, count: u32, seed: u64) -> Vec<Duration> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut previous = None;
    (0..count)
        .map(|n| {
            let delay = schedule.delay(n, previous, &mut rng);
            previous = Some(delay);
            delay
        })
        .collect()
}

fn check_bases(backoff: Backoff, max_delay: Duration, expected: &[Duration]) {
    let schedule = schedule(backoff, Jitter::None, max_delay);
    let count = u32::try_from(expected.len()).expect("short test sequences");
    assert_eq!(sequence(&schedule, count, 0), expected, "{backoff:?}");
}

#[test]
fn formulas_without_jitter() {
    check_bases(
        Backoff::exponential(ms(100), 2.0),
        ms(1000),
        &[ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)],
    );
    // The original system's linear formula, initial · (n + 1).
    check_bases(
        Backoff::linear(ms(1000), ms(1000)),
        ms(30_000),
        &[ms(1000), ms(2000), ms(3000), ms(4000)],
    );
    check_bases(
        Backoff::linear(ms(50), ms(10)),
        ms(75),
        &[ms(50), ms(60), ms(70), ms(75)],
    );
    check_bases(
        Backoff::constant(ms(250)),
        ms(250),
        &[ms(250), ms(250), ms(250)],
    );
    check_bases(
        Backoff::exponential(ms(10), 1.5),
        ms(100),
        &[
            ms(10),
            ms(15),
            Duration::from_micros(22_500),
            Duration::from_micros(33_750),
        ],
    );
}

#[test]
fn huge_retry_numbers_saturate_at_the_cap() {
    let exponential = schedule(Backoff::exponential(ms(1), 10.0), Jitter::None, ms(5000));
    assert_eq!(exponential.capped_base(u32::MAX), ms(5000));
    let linear = schedule(
        Backoff::linear(ms(1), Duration::MAX / 4),
        Jitter::None,
        ms(5000),
    );
    assert_eq!(linear.capped_base(u32::MAX), ms(5000));
}

#[test]
fn validation_names_the_problem() {
    let check = |backoff: Backoff, max: Duration, problem: &str| {
        let error = backoff.validate(max).expect_err("invalid backoff");
        assert!(error.to_string().contains(problem), "{error}");
    };
    check(Backoff::constant(Duration::ZERO), ms(10), "above zero");
    check(
        Backoff::exponential(ms(20), 2.0),
        ms(10),
        "above `max_delay`",
    );
    check(Backoff::exponential(ms(1), 0.5), ms(10), "at least 1");
    check(Backoff::exponential(ms(1), f64::NAN), ms(10), "at least 1");
    check(
        Backoff::exponential(ms(1), f64::INFINITY),
        ms(10),
        "at least 1",
    );
}

#[test]
fn a_hint_is_honoured_up_to_the_cap() {
    let schedule = schedule(Backoff::constant(ms(100)), Jitter::None, ms(1000));
    let check = |delay: Duration, hint: RetryHint, expected: Duration| {
        assert_eq!(
            schedule.honour_hint(delay, hint),
            expected,
            "{delay:?} {hint:?}"
        );
    };
    check(ms(100), RetryHint::After(ms(300)), ms(300));
    check(ms(500), RetryHint::After(ms(300)), ms(500));
    check(ms(100), RetryHint::After(ms(60_000)), ms(1000));
    check(ms(100), RetryHint::Yes, ms(100));
}

fn any_backoff() -> impl Strategy<Value = Backoff> {
    let initial = (1_u64..=2_000_000_000).prop_map(Duration::from_nanos);
    prop_oneof![
        initial.clone().prop_map(Backoff::constant),
        (initial.clone(), 0_u64..=5_000_000_000)
            .prop_map(|(initial, step)| Backoff::linear(initial, Duration::from_nanos(step))),
        (initial, 1.0_f64..=10.0)
            .prop_map(|(initial, factor)| Backoff::exponential(initial, factor)),
    ]
}

fn any_jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
    ]
}

/// A valid schedule: the cap is at least the first delay.
fn any_schedule() -> impl Strategy<Value = Schedule> {
    (any_backoff(), any_jitter(), 0_u64..=60_000_000_000).prop_map(|(backoff, jitter, extra)| {
        let max_delay = backoff.initial() + Duration::from_nanos(extra);
        schedule(backoff, jitter, max_delay)
    })
}

proptest! {
    #[test]
    fn bases_never_shrink_and_never_pass_the_cap(schedule in any_schedule(), count in 1_u32..200) {
        let mut last = Duration::ZERO;
        for n in 0..count {
            let base = schedule.capped_base(n);
            prop_assert!(base >= last, "retry {n}: {base:?} < {last:?}");
            prop_assert!(base <= schedule.max_delay);
            last = base;
        }
        // Once at the cap, the schedule stays there.
        if schedule.capped_base(count) == schedule.max_delay {
            prop_assert_eq!(schedule.capped_base(count + 1), schedule.max_delay);
        }
    }

    #[test]
    fn jittered_delays_stay_in_their_ranges(schedule in any_schedule(), count in 1_u32..100, seed: u64) {
        let delays = sequence(&schedule, count, seed);
        let mut previous: Option<Duration> = None;
        for (n, &delay) in (0_u32..).zip(&delays) {
            let base = schedule.capped_base(n);
            prop_assert!(delay <= schedule.max_delay, "retry {n}: {delay:?} above the cap");
            match schedule.jitter {
                Jitter::None => prop_assert_eq!(delay, base),
                Jitter::Full => prop_assert!(delay <= base),
                Jitter::Equal => prop_assert!(delay >= base / 2 && delay <= base),
                Jitter::Decorrelated => {
                    let previous = previous.unwrap_or_else(|| schedule.capped_base(0));
                    let high = previous.saturating_mul(3).max(base).min(schedule.max_delay);
                    prop_assert!(delay >= base && delay <= high, "retry {n}: {delay:?} not in [{base:?}, {high:?}]");
                }
            }
            previous = Some(delay);
        }
    }

    #[test]
    fn hints_never_shorten_a_delay_nor_pass_the_cap(
        schedule in any_schedule(),
        delay_nanos in 0_u64..=120_000_000_000,
        hint_nanos in 0_u64..=120_000_000_000,
    ) {
        let delay = Duration::from_nanos(delay_nanos).min(schedule.max_delay);
        let hint = Duration::from_nanos(hint_nanos);
        let honoured = schedule.honour_hint(delay, RetryHint::After(hint));
        prop_assert!(honoured <= schedule.max_delay);
        prop_assert!(honoured >= delay);
        prop_assert!(honoured >= hint.min(schedule.max_delay));
    }
}

#[test]
fn jitter_actually_spreads_delays() {
    // Not a statistical test: a few hundred draws from a range of a second
    // cannot all be equal unless the jitter does nothing.
    for jitter in [Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
        let schedule = schedule(Backoff::constant(ms(1000)), jitter, ms(10_000));
        let mut rng = SmallRng::seed_from_u64(7);
        let first = schedule.delay(0, None, &mut rng);
        let spread = (0..200).any(|_| schedule.delay(0, None, &mut rng) != first);
        assert!(spread, "{jitter:?} produced one value only");
    }
}
