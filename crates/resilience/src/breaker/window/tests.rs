//! Unit tests of the failure-rate windows.

use std::time::Duration;

use super::{Tally, Window};

fn tally(failures: u32, calls: u32) -> Tally {
    Tally { failures, calls }
}

#[test]
fn a_count_window_forgets_the_oldest_call() {
    let mut window = Window::count(3);
    assert_eq!(window.record(0, true), tally(1, 1));
    assert_eq!(window.record(0, false), tally(1, 2));
    assert_eq!(window.record(0, true), tally(2, 3));
    // The first failure leaves as the fourth call arrives.
    assert_eq!(window.record(0, false), tally(1, 3));
    assert_eq!(window.record(0, false), tally(1, 3));
    assert_eq!(window.record(0, false), tally(0, 3));
    window.clear();
    assert_eq!(window.record(0, true), tally(1, 1));
}

#[test]
fn a_time_window_slides_in_tenths() {
    let second = Duration::from_secs(1).as_nanos() as u64;
    let mut window = Window::time(Duration::from_secs(10));
    assert_eq!(window.record(0, true), tally(1, 1));
    assert_eq!(window.record(second / 2, false), tally(1, 2));
    assert_eq!(window.record(5 * second, true), tally(2, 3));
    // At 10 s the bucket of [0 s, 1 s) is ten buckets back: it has left.
    assert_eq!(window.record(10 * second, false), tally(1, 2));
    // A long silence empties the window.
    assert_eq!(window.record(100 * second, false), tally(0, 1));
    window.clear();
    assert_eq!(window.record(100 * second, true), tally(1, 1));
}

#[test]
fn a_reused_bucket_is_reset() {
    let second = Duration::from_secs(1).as_nanos() as u64;
    let mut window = Window::time(Duration::from_secs(10));
    for _ in 0..5 {
        window.record(3 * second, true);
    }
    // Bucket 13 shares the slot of bucket 3 and must not inherit its counts.
    assert_eq!(window.record(13 * second, false), tally(0, 1));
}

#[test]
fn tripping_needs_enough_calls_and_rate() {
    assert!(!tally(5, 5).trips(0.5, 6), "too few calls");
    assert!(tally(3, 6).trips(0.5, 6), "the threshold itself trips");
    assert!(!tally(2, 6).trips(0.5, 6));
    assert!(tally(1, 1).trips(1.0, 1));
    assert!(!tally(0, 10).trips(0.01, 1));
}
