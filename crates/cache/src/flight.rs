//! Single-flight: concurrent misses for one key share one load.
//!
//! The first caller to miss becomes the leader and runs the load inline (no
//! spawned task, so the loader needs no `'static` bound); later callers wait
//! for its outcome. If the leader gives up without an outcome (its deadline
//! passed, or it was dropped because its caller was cancelled), the waiters
//! wake up and one of them leads a new load, as moka's `try_get_with` does on
//! cancellation. Each waiter waits only until its own deadline (the cache's
//! read path enforces it); leaving a flight is just dropping its receiver. A
//! flight started before an invalidation is not joined by callers that arrive
//! after it: they start a fresh load.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::Fetched;
use crate::key::{DigestHashBuilder, KeyDigest};

/// The outcome every caller of a flight receives. The error is the loader's
/// `Arc<E>`, erased so that the map of flights need not know `E`.
#[derive(Clone)]
pub(crate) enum Outcome {
    Done(Fetched),
    Failed(Arc<dyn Any + Send + Sync>),
}

type Slot = watch::Sender<Option<Outcome>>;

struct Flight {
    epoch: u64,
    slot: Slot,
}

#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<KeyDigest, Arc<Flight>, DigestHashBuilder>>,
}

impl std::fmt::Debug for Flights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("Flights").field("in_flight", &n).finish()
    }
}

pub(crate) enum Role<'a> {
    Leader(Leader<'a>),
    Waiter(watch::Receiver<Option<Outcome>>),
}

impl Flights {
    /// Joins the flight for `key` if one started in this invalidation epoch,
    /// or starts one.
    pub(crate) fn join(&self, key: KeyDigest, epoch: u64) -> Role<'_> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = map.get(&key)
            && flight.epoch == epoch
        {
            return Role::Waiter(flight.slot.subscribe());
        }
        let flight = Arc::new(Flight {
            epoch,
            slot: watch::channel(None).0,
        });
        map.insert(key, Arc::clone(&flight));
        Role::Leader(Leader {
            flights: self,
            key,
            flight: Some(flight),
        })
    }

    fn remove(&self, key: &KeyDigest, flight: &Arc<Flight>) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map
            .get(key)
            .is_some_and(|current| Arc::ptr_eq(current, flight))
        {
            map.remove(key);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The leader's duty: publish the outcome, and leave the map whatever happens.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: KeyDigest,
    flight: Option<Arc<Flight>>,
}

impl Leader<'_> {
    pub(crate) fn finish(mut self, outcome: Outcome) {
        if let Some(flight) = self.flight.take() {
            // Leave the map first: a waiter that cannot use the outcome (an
            // error of another type) must find no flight when it retries.
            self.flights.remove(&self.key, &flight);
            flight.slot.send_replace(Some(outcome));
        }
    }
}

impl Leader<'_> {
    /// Gives the flight up without an outcome, for a failure that is the
    /// leader's alone: the waiters wake and one of them leads a new load.
    pub(crate) fn abandon(self) {
        // Dropping does it; the name says that it is meant.
        drop(self);
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        // Dropped without an outcome: the load was cancelled. Dropping the
        // last sender wakes the waiters with an error, and they retry.
        if let Some(flight) = self.flight.take() {
            self.flights.remove(&self.key, &flight);
        }
    }
}
