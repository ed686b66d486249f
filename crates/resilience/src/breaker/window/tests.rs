//! Unit tests of the failure-rate windows.

use std::time::Duration;

use std::sync::Arc;

use super::{Added, Tally, TimeWindow, Window};

fn tally(failures: u32, calls: u32) -> Tally {
    Tally { failures, calls }
}

#[test]
fn a_count_window_forgets_the_oldest_call() {
    let mut window = Window::count(3);
    assert_eq!(window.record(true), tally(1, 1));
    assert_eq!(window.record(false), tally(1, 2));
    assert_eq!(window.record(true), tally(2, 3));
    // The first failure leaves as the fourth call arrives.
    assert_eq!(window.record(false), tally(1, 3));
    assert_eq!(window.record(false), tally(1, 3));
    assert_eq!(window.record(false), tally(0, 3));
    window.clear();
    assert_eq!(window.record(true), tally(1, 1));
}

#[test]
fn a_time_window_slides_in_tenths() {
    let second = Duration::from_secs(1).as_nanos() as u64;
    let window = TimeWindow::new(Duration::from_secs(10));
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
    let window = TimeWindow::new(Duration::from_secs(10));
    for _ in 0..5 {
        window.record(3 * second, true);
    }
    // Bucket 13 shares the slot of bucket 3 and must not inherit its counts.
    assert_eq!(window.record(13 * second, false), tally(0, 1));
}

#[test]
fn a_success_is_counted_without_the_lock_only_in_a_started_bucket() {
    let second = Duration::from_secs(1).as_nanos() as u64;
    let window = TimeWindow::new(Duration::from_secs(10));
    assert_eq!(window.record(3 * second, true), tally(1, 1));
    // Counted, but no tally has settled the bucket: the caller tallies.
    assert_eq!(window.add_success(3 * second + 1), Added::Unsettled);
    assert_eq!(window.tally_at(3 * second), tally(1, 2));
    window.settle(3 * second);
    assert_eq!(window.add_success(3 * second + 2), Added::Settled);
    assert_eq!(window.tally_at(3 * second), tally(1, 3));
    // Bucket 4 has not been started (by a call under the lock), and a
    // settled bucket 3 says nothing about it.
    assert_eq!(window.add_success(4 * second), Added::NotStarted);
    assert_eq!(window.tally_at(4 * second), tally(1, 3));
    assert_eq!(window.record(4 * second, false), tally(1, 4));
    assert_eq!(window.add_success(4 * second), Added::Unsettled);
    // Bucket 13 shares bucket 3's slot: a success at 13 s does not add to
    // bucket 3, which is out of the window then.
    assert_eq!(window.add_success(13 * second), Added::NotStarted);
    assert_eq!(window.tally_at(13 * second), tally(0, 2));
    window.settle(4 * second);
    window.clear();
    assert_eq!(window.add_success(4 * second), Added::NotStarted);
    assert_eq!(window.tally_at(4 * second), tally(0, 0));
}

#[test]
fn successes_counted_from_many_threads_are_all_counted() {
    let window = Arc::new(TimeWindow::new(Duration::from_secs(10)));
    window.record(0, true);
    window.settle(0);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let window = Arc::clone(&window);
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    assert_eq!(window.add_success(0), Added::Settled);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("counting thread");
    }
    assert_eq!(window.tally_at(0), tally(1, 40_001));
}

#[test]
fn tripping_needs_enough_calls_and_rate() {
    assert!(!tally(5, 5).trips(0.5, 6), "too few calls");
    assert!(tally(3, 6).trips(0.5, 6), "the threshold itself trips");
    assert!(!tally(2, 6).trips(0.5, 6));
    assert!(tally(1, 1).trips(1.0, 1));
    assert!(!tally(0, 10).trips(0.01, 1));
}
