//! The pending-request table: correlates responses with the calls awaiting them.
//!
//! It is sans-I/O. Registering an id returns a [`Pending`] future; routing a
//! response to it is one hash lookup. Deadlines are kept in the table and
//! fired by whoever owns the clock calling [`PendingTable::expire`], so the
//! table works on any runtime or none. Dropping a `Pending` deregisters its id,
//! so an abandoned call never leaks an entry.

use std::cmp::{Ordering, Reverse};
use std::collections::hash_map::Entry as Vacancy;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::{Error, Id, Response};

/// Why a pending call ended without a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PendingError<E> {
    /// The owner failed the call (its worker died, say) with this reason.
    #[error("request failed before its response arrived")]
    Failed(#[source] E),
    /// The call's deadline passed before its response arrived.
    #[error("deadline passed before the response arrived")]
    DeadlineExceeded,
    /// Every handle to the table was dropped while the call waited, so no
    /// response can reach it any more (the owner was dropped without calling
    /// [`PendingTable::close`], say because its task panicked).
    #[error("the pending table was dropped before the response arrived")]
    TableDropped,
}

/// The outcome a [`Pending`] resolves to.
pub type PendingResult<E> = Result<Response, PendingError<E>>;

/// A table of calls awaiting responses, shared by the task that sends requests
/// and the task that reads responses. Cloning it is cheap and shares the table.
///
/// `E` is the reason the owner gives when it fails calls in bulk, for example
/// "the worker exited with status 9"; it is cloned into every failed call.
#[derive(Debug)]
pub struct PendingTable<E> {
    shared: Arc<Shared<E>>,
}

impl<E> Clone for PendingTable<E> {
    fn clone(&self) -> Self {
        PendingTable {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// A call awaiting its response. Resolves once, to the response or to the
/// reason it will never come (including every handle to its table being
/// dropped). Dropping it before then deregisters the id.
#[derive(Debug)]
#[must_use = "a pending call does nothing unless awaited, and dropping it deregisters the id"]
pub struct Pending<E> {
    id: Id,
    slot: Arc<Slot<E>>,
    table: Weak<Shared<E>>,
    finished: bool,
}

#[derive(Debug)]
struct Shared<E> {
    state: Mutex<TableState<E>>,
}

/// foldhash, not SipHash: hashing the id with SipHash was a quarter of a
/// registration's instructions.
type Entries<E> = foldhash::HashMap<Id, Entry<E>>;

#[derive(Debug)]
struct TableState<E> {
    entries: Entries<E>,
    /// Deadlines, earliest on top, removed lazily: an answered call (nearly
    /// every one) leaves its deadline behind, which is dropped when it
    /// reaches the top or when stale ones outnumber the live (see
    /// [`TableState::push_deadline`]). A sorted map paid for a removal per
    /// call and a node allocation per few.
    deadlines: BinaryHeap<Reverse<Deadline>>,
    next_seq: u64,
    /// Set by [`PendingTable::close`]: new registrations fail at once with it.
    closed: Option<E>,
}

/// A call's deadline; the sequence number breaks ties and tells a live
/// deadline from a stale one left by an earlier call with the same id.
#[derive(Debug)]
struct Deadline {
    at: Instant,
    seq: u64,
    id: Id,
}

impl Deadline {
    fn key(&self) -> (Instant, u64) {
        (self.at, self.seq)
    }
}

impl PartialEq for Deadline {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Deadline {}

impl PartialOrd for Deadline {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Deadline {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl<E> TableState<E> {
    /// Whether `deadline` is still its call's.
    fn is_live(entries: &Entries<E>, deadline: &Deadline) -> bool {
        entries
            .get(&deadline.id)
            .is_some_and(|entry| entry.deadline == Some(deadline.key()))
    }

    /// Adds a deadline; drops the stale ones once they outnumber the live,
    /// so the heap stays within a constant factor of the calls pending and
    /// each call pays for its own deadline's removal at most once.
    fn push_deadline(&mut self, deadline: Deadline) {
        self.deadlines.push(Reverse(deadline));
        if self.deadlines.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.deadlines
                .retain(|Reverse(deadline)| Self::is_live(entries, deadline));
        }
    }

    /// Drops stale deadlines from the top; returns the earliest live one.
    fn earliest(&mut self) -> Option<&Deadline> {
        while let Some(Reverse(top)) = self.deadlines.peek() {
            if Self::is_live(&self.entries, top) {
                break;
            }
            self.deadlines.pop();
        }
        self.deadlines.peek().map(|Reverse(top)| top)
    }
}

#[derive(Debug)]
struct Entry<E> {
    slot: Arc<Slot<E>>,
    deadline: Option<(Instant, u64)>,
}

#[derive(Debug)]
struct Slot<E> {
    state: Mutex<SlotState<E>>,
}

#[derive(Debug)]
enum SlotState<E> {
    Waiting(Option<Waker>),
    Done(PendingResult<E>),
    Taken,
}

/// Locks a mutex, recovering it if a panicking thread poisoned it: every
/// critical section here leaves the state consistent before anything can panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<E> Drop for Shared<E> {
    /// Fails the calls still waiting: no handle is left that could answer them
    /// or fire their deadlines, and a call must never wait forever.
    fn drop(&mut self) {
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.deadlines.clear();
        for (_, entry) in state.entries.drain() {
            entry.slot.resolve(Err(PendingError::TableDropped));
        }
    }
}

impl<E> Slot<E> {
    fn new(state: SlotState<E>) -> Arc<Slot<E>> {
        Arc::new(Slot {
            state: Mutex::new(state),
        })
    }

    /// Stores the outcome and wakes the waiter; the first outcome wins.
    fn resolve(&self, outcome: PendingResult<E>) {
        let waker = {
            let mut state = lock(&self.state);
            match &mut *state {
                SlotState::Waiting(waker) => {
                    let waker = waker.take();
                    *state = SlotState::Done(outcome);
                    waker
                }
                SlotState::Done(_) | SlotState::Taken => None,
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<E> Default for PendingTable<E> {
    fn default() -> Self {
        PendingTable::new()
    }
}

impl<E> PendingTable<E> {
    /// An empty table.
    pub fn new() -> Self {
        PendingTable {
            shared: Arc::new(Shared {
                state: Mutex::new(TableState {
                    entries: HashMap::default(),
                    deadlines: BinaryHeap::new(),
                    next_seq: 0,
                    closed: None,
                }),
            }),
        }
    }

    /// The number of calls awaiting a response.
    pub fn len(&self) -> usize {
        lock(&self.shared.state).entries.len()
    }

    /// Whether no call is awaiting a response.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `id` is awaiting a response.
    pub fn contains(&self, id: &Id) -> bool {
        lock(&self.shared.state).entries.contains_key(id)
    }

    /// The earliest deadline of any pending call.
    pub fn next_deadline(&self) -> Option<Instant> {
        lock(&self.shared.state).earliest().map(|top| top.at)
    }

    /// Routes a response to the call awaiting it.
    ///
    /// # Errors
    /// Gives the response back when no call awaits its id (unknown, late, or
    /// null), so the caller can log and count it.
    pub fn complete(&self, response: Response) -> Result<(), Response> {
        let entry = {
            let mut state = lock(&self.shared.state);
            match state.entries.remove(&response.id) {
                Some(entry) => entry,
                None => return Err(response),
            }
        };
        entry.slot.resolve(Ok(response));
        Ok(())
    }

    /// Fires every deadline at or before `now`; returns how many calls expired.
    pub fn expire(&self, now: Instant) -> usize {
        self.expire_ids(now).len()
    }

    /// Fires every deadline at or before `now`; returns the ids of the calls
    /// that expired, so the owner can tell their peer to stop working on them.
    pub fn expire_ids(&self, now: Instant) -> Vec<Id> {
        let expired: Vec<(Id, Entry<E>)> = {
            let mut state = lock(&self.shared.state);
            let mut due = Vec::new();
            while let Some(top) = state.earliest() {
                if top.at > now {
                    break;
                }
                let id = top.id.clone();
                state.deadlines.pop();
                if let Some(pending) = state.entries.remove(&id) {
                    due.push((id, pending));
                }
            }
            due
        };
        expired
            .into_iter()
            .map(|(id, entry)| {
                entry.slot.resolve(Err(PendingError::DeadlineExceeded));
                id
            })
            .collect()
    }

    fn remove_entry(&self, id: &Id) -> Option<Entry<E>> {
        lock(&self.shared.state).entries.remove(id)
    }
}

impl<E: Clone> PendingTable<E> {
    /// Registers a call awaiting the response with `id`.
    ///
    /// On a closed table the call is registered already failed, with the reason
    /// the table was closed, so no call can slip in after a worker died.
    ///
    /// # Errors
    /// [`Error::DuplicateId`] when `id` is already pending.
    pub fn register(&self, id: Id) -> Result<Pending<E>, Error> {
        self.insert(id, None)
    }

    /// Registers a call that fails with [`PendingError::DeadlineExceeded`] if
    /// its response has not arrived when [`expire`](Self::expire) is called at
    /// or after `deadline`.
    ///
    /// # Errors
    /// [`Error::DuplicateId`] when `id` is already pending.
    pub fn register_with_deadline(&self, id: Id, deadline: Instant) -> Result<Pending<E>, Error> {
        self.insert(id, Some(deadline))
    }

    fn insert(&self, id: Id, deadline: Option<Instant>) -> Result<Pending<E>, Error> {
        let mut state = lock(&self.shared.state);
        if let Some(reason) = &state.closed {
            let slot = Slot::new(SlotState::Done(Err(PendingError::Failed(reason.clone()))));
            return Ok(Pending {
                id,
                slot,
                table: Weak::new(),
                finished: false,
            });
        }
        let seq = state.next_seq;
        let Vacancy::Vacant(place) = state.entries.entry(id.clone()) else {
            return Err(Error::DuplicateId { id });
        };
        let slot = Slot::new(SlotState::Waiting(None));
        place.insert(Entry {
            slot: Arc::clone(&slot),
            deadline: deadline.map(|at| (at, seq)),
        });
        if let Some(at) = deadline {
            state.next_seq += 1;
            state.push_deadline(Deadline {
                at,
                seq,
                id: id.clone(),
            });
        }
        Ok(Pending {
            id,
            slot,
            table: Arc::downgrade(&self.shared),
            finished: false,
        })
    }

    /// Fails one call; returns whether it was pending.
    pub fn fail(&self, id: &Id, reason: E) -> bool {
        match self.remove_entry(id) {
            Some(entry) => {
                entry.slot.resolve(Err(PendingError::Failed(reason)));
                true
            }
            None => false,
        }
    }

    /// Fails every pending call with `reason`, in one step; returns how many.
    pub fn fail_all(&self, reason: &E) -> usize {
        self.drain(reason, false)
    }

    /// Fails every pending call and every later registration with `reason`;
    /// returns how many calls were pending. Used when the peer is gone for good.
    pub fn close(&self, reason: &E) -> usize {
        self.drain(reason, true)
    }

    fn drain(&self, reason: &E, close: bool) -> usize {
        let entries: Vec<Entry<E>> = {
            let mut state = lock(&self.shared.state);
            if close {
                state.closed = Some(reason.clone());
            }
            state.deadlines.clear();
            state.entries.drain().map(|(_, entry)| entry).collect()
        };
        let n = entries.len();
        for entry in entries {
            entry
                .slot
                .resolve(Err(PendingError::Failed(reason.clone())));
        }
        n
    }
}

impl<E> Pending<E> {
    /// The id this call awaits.
    pub fn id(&self) -> &Id {
        &self.id
    }
}

impl<E> Future for Pending<E> {
    type Output = PendingResult<E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<PendingResult<E>> {
        let mut state = lock(&self.slot.state);
        if let SlotState::Waiting(waker) = &mut *state {
            match waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        match std::mem::replace(&mut *state, SlotState::Taken) {
            SlotState::Done(outcome) => {
                drop(state);
                self.finished = true;
                Poll::Ready(outcome)
            }
            // Futures may panic when polled after completion; this one says why.
            _ => panic!("`Pending` polled after it resolved"),
        }
    }
}

impl<E> Drop for Pending<E> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Some(shared) = self.table.upgrade() else {
            return;
        };
        let mut state = lock(&shared.state);
        // Remove the entry only if it is still ours: the id may have been
        // completed and registered again by a later call.
        let ours = state
            .entries
            .get(&self.id)
            .is_some_and(|e| Arc::ptr_eq(&e.slot, &self.slot));
        if ours {
            state.entries.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests;
