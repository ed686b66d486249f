//! The keyed breaker registry: templates, sharing, the bound, events.

use std::num::NonZeroUsize;
use std::sync::Arc;

use pybridge_resilience::{BreakerRegistry, Classify, Error, Event, RetryHint, State, StateChange};

use crate::support::{consecutive, drain, ms};

fn registry(capacity: usize) -> BreakerRegistry {
    BreakerRegistry::new(
        consecutive(1).break_duration(ms(1000)).build().unwrap(),
        NonZeroUsize::new(capacity).unwrap(),
    )
}

fn trip(registry: &BreakerRegistry, key: &str) {
    registry
        .get(key)
        .unwrap()
        .try_acquire()
        .unwrap()
        .failure(ms(1));
}

fn keys(registry: &BreakerRegistry) -> Vec<String> {
    let mut keys: Vec<String> = registry
        .states()
        .into_iter()
        .map(|(k, _)| k.to_string())
        .collect();
    keys.sort();
    keys
}

#[tokio::test(start_paused = true)]
async fn a_key_always_maps_to_the_same_breaker() {
    let registry = registry(8);
    assert!(registry.get_existing("a").is_none());
    let first = registry.get("a").unwrap();
    assert_eq!(first.name(), Some("a"));
    assert_eq!(first.config(), registry.template());
    trip(&registry, "a");
    assert_eq!(first.state(), State::Open, "both handles share one breaker");
    assert_eq!(
        registry.get("b").unwrap().state(),
        State::Closed,
        "keys are independent"
    );
    assert_eq!(registry.len(), 2);
    assert_eq!(
        registry
            .states()
            .into_iter()
            .find(|(k, _)| &**k == "a")
            .map(|(_, s)| s),
        Some(State::Open)
    );
}

#[tokio::test(start_paused = true)]
async fn the_bound_evicts_closed_breakers_only() {
    let registry = registry(2);
    let mut events = registry.subscribe();
    registry.get("a").unwrap();
    registry.get("b").unwrap();
    registry.get("c").unwrap();
    assert_eq!(registry.len(), 2);
    let evicted: Vec<Arc<str>> = drain(&mut events)
        .into_iter()
        .filter_map(|event| match event {
            Event::BreakerEvicted { key } => Some(key),
            _ => None,
        })
        .collect();
    assert_eq!(evicted.len(), 1);
    assert!(["a", "b"].contains(&&*evicted[0]));

    let survivors = keys(&registry);
    for key in &survivors {
        trip(&registry, key);
    }
    let full = registry.get("d").expect_err("every breaker is open");
    assert_eq!(full, Error::RegistryFull { capacity: 2 });
    assert_eq!(full.retry_hint(), RetryHint::No);
    assert!(!full.is_dependency_failure());
    assert_eq!(
        keys(&registry),
        survivors,
        "open breakers are never forgotten"
    );
    // Existing keys still work when the registry is full.
    assert!(registry.get(&survivors[0]).is_ok());
}

#[tokio::test(start_paused = true)]
async fn eviction_gives_recently_used_breakers_a_second_chance() {
    let registry = registry(3);
    for key in ["a", "b", "c"] {
        registry.get(key).unwrap();
    }
    // Every breaker is marked as just created: the scan clears all the marks
    // and evicts one of them.
    registry.get("d").unwrap();
    let unmarked: Vec<String> = keys(&registry).into_iter().filter(|k| k != "d").collect();
    assert_eq!(unmarked.len(), 2);
    let (looked_up, idle) = (&unmarked[0], &unmarked[1]);
    registry.get_existing(looked_up).unwrap();
    // "d" (new) and the looked-up breaker are marked; the idle one is not,
    // so it goes, whatever order the scan visits them in.
    registry.get("e").unwrap();
    let mut expected = vec![looked_up.clone(), "d".to_owned(), "e".to_owned()];
    expected.sort();
    assert_eq!(
        keys(&registry),
        expected,
        "{idle} was idle and should have gone"
    );
}

#[tokio::test(start_paused = true)]
async fn the_registry_relays_its_breakers_state_changes() {
    let registry = registry(4);
    let mut events = registry.subscribe();
    trip(&registry, "framework.analyze");
    let events = drain(&mut events);
    assert_eq!(
        events[0],
        Event::BreakerCreated {
            key: "framework.analyze".into()
        }
    );
    match &events[1] {
        Event::StateChanged(StateChange { breaker, to, .. }) => {
            assert_eq!(breaker.as_deref(), Some("framework.analyze"));
            assert_eq!(*to, State::Open);
        }
        other => panic!("expected a state change, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn reset_all_and_remove() {
    let registry = registry(4);
    trip(&registry, "a");
    trip(&registry, "b");
    registry.reset_all();
    assert!(
        registry
            .states()
            .iter()
            .all(|(_, state)| *state == State::Closed)
    );
    let removed = registry.remove("a").expect("present");
    assert_eq!(removed.name(), Some("a"));
    assert!(registry.remove("a").is_none());
    assert_eq!(keys(&registry), ["b"]);
    assert!(!registry.is_empty());
    assert_eq!(registry.capacity().get(), 4);
}
