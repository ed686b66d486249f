//! Which connection is closed to make room, and the accept loop's backoff.

use super::*;

#[tokio::test(start_paused = true)]
async fn the_connection_idle_the_longest_is_evicted_never_a_busy_one() {
    let registry = Registry::default();
    let old = registry.register();
    tokio::time::advance(Duration::from_secs(5)).await;
    let busy = registry.register();
    tokio::time::advance(Duration::from_secs(5)).await;
    let young = registry.register();
    // The oldest connection is serving a request: it stays.
    let active = Active::begin(Arc::clone(&old.state));
    tokio::time::advance(Duration::from_secs(1)).await;
    let _serving = Active::begin(Arc::clone(&busy.state));

    assert!(registry.evict_idlest());
    assert!(young.state.evicted.load(Ordering::Acquire));
    assert!(
        !registry.evict_idlest(),
        "an evicted one is not picked twice, busy ones never"
    );

    // A request ended on `old` after `young` arrived: it is now the freshest.
    drop(active);
    let newest = registry.register();
    tokio::time::advance(Duration::from_secs(1)).await;
    newest.state.touch();
    assert!(registry.evict_idlest());
    assert!(old.state.evicted.load(Ordering::Acquire));
    assert!(!newest.state.evicted.load(Ordering::Acquire));
    assert_eq!(registry.len(), 4);
    drop(newest);
    assert_eq!(
        registry.len(),
        3,
        "a connection leaves the registry when it ends"
    );
}

#[test]
fn the_backoff_doubles_to_a_second_and_resets() {
    let mut backoff = Backoff::default();
    let delays: Vec<u64> = (0..10).map(|_| backoff.next().as_millis() as u64).collect();
    assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    backoff.reset();
    assert_eq!(backoff.next(), Duration::from_millis(10));
    assert!(backoff.first());
}
