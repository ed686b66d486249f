//! Unit tests of the breaker's packed word and configuration; the behaviour
//! is tested through the public API in `tests/it`.

use std::num::NonZeroU32;
use std::time::Duration;

use super::config::MAX_COUNT;
use super::{BreakDuration, BreakerConfig, State, Ticket, Word};

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("test values are not zero")
}

#[test]
fn the_word_round_trips() {
    for state in [State::Closed, State::Open, State::HalfOpen, State::Isolated] {
        for (generation, count) in [(0, 0), (1, 1), (u32::MAX, MAX_COUNT), (12345, 678)] {
            let word = Word::new(generation, state, count);
            assert_eq!(word.generation(), generation);
            assert_eq!(word.state(), state);
            assert_eq!(word.count(), count);
            let bumped = word.with_count(count.saturating_sub(1));
            assert_eq!((bumped.generation(), bumped.state()), (generation, state));
        }
    }
}

#[test]
fn a_ticket_matches_only_its_generation_and_state() {
    let word = Word::new(7, State::HalfOpen, 1);
    let ticket = |generation| Ticket {
        generation,
        probe: true,
    };
    assert!(word.matches(ticket(7), State::HalfOpen));
    assert!(!word.matches(ticket(6), State::HalfOpen));
    assert!(!word.matches(ticket(7), State::Closed));
}

#[test]
fn growing_breaks_grow_and_stop_at_the_max() {
    let growing = BreakDuration::Growing {
        initial: Duration::from_secs(1),
        factor: 2.0,
        max: Duration::from_secs(10),
    };
    let breaks: Vec<_> = (1..=6)
        .map(|trip| growing.for_trip(trip).as_secs())
        .collect();
    assert_eq!(breaks, [1, 2, 4, 8, 10, 10]);
    assert_eq!(growing.for_trip(u32::MAX), Duration::from_secs(10));
    let fixed = BreakDuration::Fixed(Duration::from_secs(3));
    assert_eq!(fixed.for_trip(1), fixed.for_trip(40));
}

#[test]
fn invalid_configurations_name_the_field() {
    let check = |builder: super::BreakerConfigBuilder, field: &str| {
        let error = builder.build().expect_err("invalid configuration");
        assert!(error.to_string().contains(field), "{error}");
    };
    let b = BreakerConfig::builder;
    check(
        b().failure_rate_over_calls(0.0, nz(10), nz(5)),
        "failure_rate",
    );
    check(
        b().failure_rate_over_calls(1.5, nz(10), nz(5)),
        "failure_rate",
    );
    check(
        b().failure_rate_over_calls(f64::NAN, nz(10), nz(5)),
        "failure_rate",
    );
    check(
        b().failure_rate_over_calls(0.5, nz(10), nz(11)),
        "min_calls",
    );
    check(b().failure_rate_over_calls(0.5, nz(100_000), nz(1)), "size");
    check(
        b().failure_rate_over_time(0.5, Duration::from_millis(99), nz(1)),
        "window",
    );
    check(
        b().failure_rate_over_time(0.5, Duration::from_secs(90_000), nz(1)),
        "window",
    );
    check(b().consecutive_failures(nz(MAX_COUNT + 1)), "threshold");
    check(
        b().half_open_max_probes(nz(MAX_COUNT + 1)),
        "half_open_max_probes",
    );
    check(b().break_duration(Duration::ZERO), "break_duration");
    check(
        b().growing_break_duration(Duration::from_secs(2), 2.0, Duration::from_secs(1)),
        "break_duration",
    );
    check(
        b().growing_break_duration(Duration::from_secs(1), 0.9, Duration::from_secs(10)),
        "break_duration",
    );
}

#[test]
fn defaults_match_the_original_system() {
    let config = BreakerConfig::default();
    assert_eq!(
        config.failure_mode(),
        super::FailureMode::Consecutive { threshold: nz(5) }
    );
    assert_eq!(
        config.break_duration(),
        BreakDuration::Fixed(Duration::from_secs(60))
    );
    assert_eq!(config.half_open_successes(), 3);
    assert_eq!(config.half_open_max_probes(), 1);
    assert_eq!(config.slow_call_threshold(), None);
}
