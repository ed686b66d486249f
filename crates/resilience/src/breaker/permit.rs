//! The permits a breaker hands out: one per admitted call, recording how it
//! ended, and freeing a probe slot however it ends.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use super::{CircuitBreaker, Outcome, Shared, Ticket};
use crate::Classify;

/// Admission to make one call through a closed or half-open breaker.
///
/// Record how the call ended with [`record`](Permit::record) (or
/// [`success`](Permit::success), [`failure`](Permit::failure),
/// [`record_result`](Permit::record_result)). Dropping a permit without
/// recording counts as [`Outcome::Ignored`]: a cancelled probe frees its
/// slot instead of keeping the breaker half-open forever.
#[must_use = "record the call's outcome on the permit"]
pub struct Permit<'a> {
    pub(super) shared: &'a Shared,
    pub(super) ticket: Ticket,
    pub(super) recorded: bool,
}

/// A [`Permit`] that owns a handle to its breaker, for futures that must be
/// `'static` (a tower service, a spawned task).
#[must_use = "record the call's outcome on the permit"]
pub struct OwnedPermit {
    pub(super) breaker: CircuitBreaker,
    pub(super) ticket: Ticket,
    pub(super) recorded: bool,
}

impl Permit<'_> {
    /// Records how the call ended; `duration` is how long it took (used to
    /// detect slow calls).
    #[inline]
    pub fn record(mut self, outcome: Outcome, duration: Duration) {
        self.recorded = true;
        self.shared.record(self.ticket, outcome, duration, None);
    }

    /// Like [`record`](Permit::record), for a call that ended at `now`, a
    /// clock reading the caller already has (a time window uses it instead
    /// of reading the clock again).
    #[inline]
    pub fn record_at(mut self, outcome: Outcome, duration: Duration, now: Instant) {
        self.recorded = true;
        self.shared
            .record(self.ticket, outcome, duration, Some(now));
    }

    /// Records a success that took `duration`.
    pub fn success(self, duration: Duration) {
        self.record(Outcome::Success, duration);
    }

    /// Records a failure of the dependency.
    pub fn failure(self, duration: Duration) {
        self.record(Outcome::Failure, duration);
    }

    /// Records a call that says nothing about the dependency.
    pub fn ignore(self) {
        self.record(Outcome::Ignored, Duration::ZERO);
    }

    /// Records a result: `Ok` is a success, an error is a failure if it
    /// [is the dependency's fault](Classify::is_dependency_failure) and
    /// ignored otherwise.
    #[inline]
    pub fn record_result<T, E: Classify>(self, result: &Result<T, E>, duration: Duration) {
        self.record(outcome_of(result), duration);
    }

    /// Whether this permit admits a half-open probe.
    #[must_use]
    pub fn is_probe(&self) -> bool {
        self.ticket.probe
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.recorded && self.ticket.probe {
            self.shared.release_probe(self.ticket);
        }
    }
}

impl OwnedPermit {
    /// Records how the call ended; `duration` is how long it took.
    pub fn record(mut self, outcome: Outcome, duration: Duration) {
        self.recorded = true;
        self.breaker
            .shared
            .record(self.ticket, outcome, duration, None);
    }

    /// Like [`record`](OwnedPermit::record), for a call that ended at `now`.
    pub fn record_at(mut self, outcome: Outcome, duration: Duration, now: Instant) {
        self.recorded = true;
        self.breaker
            .shared
            .record(self.ticket, outcome, duration, Some(now));
    }

    /// Records a result, classified as [`Permit::record_result`] does.
    pub fn record_result<T, E: Classify>(self, result: &Result<T, E>, duration: Duration) {
        self.record(outcome_of(result), duration);
    }

    /// Whether this permit admits a half-open probe.
    #[must_use]
    pub fn is_probe(&self) -> bool {
        self.ticket.probe
    }
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        if !self.recorded && self.ticket.probe {
            self.breaker.shared.release_probe(self.ticket);
        }
    }
}

fn outcome_of<T, E: Classify>(result: &Result<T, E>) -> Outcome {
    match result {
        Ok(_) => Outcome::Success,
        Err(error) if error.is_dependency_failure() => Outcome::Failure,
        Err(_) => Outcome::Ignored,
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.shared.name)
            .field("generation", &self.ticket.generation)
            .field("probe", &self.ticket.probe)
            .finish()
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("breaker", &self.breaker.shared.name)
            .field("generation", &self.ticket.generation)
            .field("probe", &self.ticket.probe)
            .finish()
    }
}
