//! Unit tests of the single-flight table, which the public API only reaches
//! through timing.

use std::sync::Arc;

use bytes::Bytes;

use crate::flight::{Flights, Outcome, Role};
use crate::value::Stored;
use crate::{CacheKey, Fetched, Source};

fn digest() -> crate::KeyDigest {
    *CacheKey::new("ns", "m", "[]").expect("valid").digest()
}

fn fetched() -> Fetched {
    Fetched::new(
        Stored::bytes(Bytes::from_static(b"v")),
        Source::Loader,
        false,
    )
}

#[tokio::test]
async fn a_finished_flight_leaves_the_table_and_reaches_its_waiters() {
    let flights = Flights::default();
    let Role::Leader(leader) = flights.join(digest(), 0) else {
        panic!("first caller leads")
    };
    let Role::Waiter(mut rx) = flights.join(digest(), 0) else {
        panic!("second caller waits")
    };
    assert_eq!(flights.len(), 1);
    leader.finish(Outcome::Done(fetched()));
    assert_eq!(flights.len(), 0);
    let got = rx
        .wait_for(Option::is_some)
        .await
        .expect("published")
        .clone();
    assert!(matches!(got, Some(Outcome::Done(f)) if f == fetched()));
}

#[tokio::test]
async fn a_dropped_leader_wakes_its_waiters_with_nothing() {
    let flights = Flights::default();
    let Role::Leader(leader) = flights.join(digest(), 0) else {
        panic!("first caller leads")
    };
    let Role::Waiter(mut rx) = flights.join(digest(), 0) else {
        panic!("second caller waits")
    };
    drop(leader);
    assert_eq!(flights.len(), 0);
    assert!(
        rx.wait_for(Option::is_some).await.is_err(),
        "the sender is gone"
    );
    assert!(
        matches!(flights.join(digest(), 0), Role::Leader(_)),
        "the next caller leads"
    );
}

#[tokio::test]
async fn a_flight_from_before_an_invalidation_is_not_joined() {
    let flights = Flights::default();
    let Role::Leader(old) = flights.join(digest(), 0) else {
        panic!("first caller leads")
    };
    let Role::Leader(new) = flights.join(digest(), 1) else {
        panic!("a later epoch leads anew")
    };
    // The old leader finishing must not remove the new flight.
    old.finish(Outcome::Failed(Arc::new("late")));
    assert_eq!(flights.len(), 1);
    assert!(matches!(flights.join(digest(), 1), Role::Waiter(_)));
    drop(new);
    assert_eq!(flights.len(), 0);
}

#[tokio::test]
async fn an_abandoned_flight_hands_over_and_a_waiter_that_leaves_changes_nothing() {
    let flights = Flights::default();
    let Role::Leader(leader) = flights.join(digest(), 0) else {
        panic!("first caller leads")
    };
    let Role::Waiter(out_of_time) = flights.join(digest(), 0) else {
        panic!("second caller waits")
    };
    let Role::Waiter(mut patient) = flights.join(digest(), 0) else {
        panic!("third caller waits")
    };
    // A waiter whose deadline passed just drops its receiver.
    drop(out_of_time);
    assert_eq!(flights.len(), 1);
    leader.abandon();
    assert_eq!(flights.len(), 0);
    assert!(
        patient.wait_for(Option::is_some).await.is_err(),
        "no outcome is published"
    );
    let Role::Leader(next) = flights.join(digest(), 0) else {
        panic!("the waiter that still has time leads")
    };
    next.finish(Outcome::Done(fetched()));
    assert_eq!(flights.len(), 0);
}
