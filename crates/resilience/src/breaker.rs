//! The circuit breaker: closed, open and half-open, with a permit per call.
//!
//! The hot paths touch one atomic word that packs the state, a generation
//! and a small count (failures in a row while closed, probes in flight while
//! half-open). Admitting a call while closed, rejecting one while open or
//! while the probe slots are full, and recording a success in
//! consecutive-failure mode are a load or a compare-and-swap on that word:
//! no lock, no allocation. A success in a time window's current bucket is an
//! atomic add once the window holds enough calls (`window.rs`). The mutex is
//! taken for state changes, for failures and the count window, and for probe
//! results, which are rare or bounded.
//!
//! Every state change bumps the generation. A permit remembers the generation
//! it was issued in, and its result is ignored if the breaker has moved on
//! since: a slow success from before a trip cannot close the breaker, and a
//! failure from before a reset cannot open it.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use metrics::{Counter, Gauge};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::event::{self, Event, StateChange};
use crate::{CallError, Classify, Error, RejectReason, Rejected};

mod config;
mod permit;
mod window;

pub use config::{BreakDuration, BreakerConfig, BreakerConfigBuilder, FailureMode};
pub use permit::{OwnedPermit, Permit};

use window::{Tally, TimeWindow, Window};

/// A circuit breaker guarding one dependency (or one method of it).
///
/// A cheap handle: clones share the state. Ask for a [`Permit`] with
/// [`try_acquire`](CircuitBreaker::try_acquire) before each call and record
/// the call's outcome on it, or let [`call`](CircuitBreaker::call) do both.
#[derive(Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Calls pass; failures are counted.
    Closed = 0,
    /// Calls are rejected until the break duration has passed.
    Open = 1,
    /// A limited number of probe calls pass; their results decide.
    HalfOpen = 2,
    /// Opened by hand: calls are rejected until [`CircuitBreaker::reset`].
    Isolated = 3,
}

/// Why a circuit breaker changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransitionReason {
    /// Closed → open: this many failures in a row.
    ConsecutiveFailures {
        /// Failures in a row.
        failures: u32,
    },
    /// Closed → open: the failure rate over the window reached the threshold.
    FailureRate {
        /// Failures in the window.
        failures: u32,
        /// Calls in the window.
        calls: u32,
    },
    /// Open → half-open: the break duration passed and a call arrived.
    BreakElapsed,
    /// Half-open → open: a probe failed.
    ProbeFailed,
    /// Half-open → closed: enough probes succeeded.
    ProbesSucceeded {
        /// Successful probes.
        successes: u32,
    },
    /// Any → isolated, by hand.
    Isolated,
    /// Any → closed, by hand.
    Reset,
}

/// How a call admitted by a breaker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// It succeeded (it still counts as a failure if it was slow and the
    /// breaker counts slow calls).
    Success,
    /// It failed because of the dependency.
    Failure,
    /// It says nothing about the dependency (a validation error, a
    /// cancellation, a rejection by another policy); a probe slot is freed.
    Ignored,
}

#[derive(Debug, Clone, Copy)]
struct Ticket {
    generation: u32,
    probe: bool,
}

pub(crate) struct Shared {
    /// `generation << 32 | state << 30 | count`; see [`Word`].
    word: AtomicU64,
    /// When an open breaker admits probes, in nanoseconds since `epoch`.
    /// Written before the word that says "open", so a reader that sees the
    /// open word sees this deadline or a later one.
    open_until: AtomicU64,
    epoch: Instant,
    config: BreakerConfig,
    name: Option<Arc<str>>,
    inner: Mutex<Inner>,
    /// The time window (time-window mode only), beside the lock: a success
    /// in its current bucket is counted without taking it.
    time: Option<TimeWindow>,
    events: broadcast::Sender<Event>,
    /// A registry's channel, which sees the state changes of its breakers.
    forward: Option<broadcast::Sender<Event>>,
    metrics: BreakerMetrics,
}

struct Inner {
    window: Window,
    /// Successful probes in the current half-open period.
    probe_successes: u32,
    /// Trips in a row without closing, for a growing break duration.
    trips: u32,
}

struct BreakerMetrics {
    rejected_open: Counter,
    rejected_half_open: Counter,
    rejected_isolated: Counter,
    state: Gauge,
    name: metrics::SharedString,
}

/// The packed atomic word.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Word(u64);

const STATE_SHIFT: u32 = 30;
const COUNT_MASK: u64 = (1 << STATE_SHIFT) - 1;

impl Word {
    #[inline]
    fn new(generation: u32, state: State, count: u32) -> Self {
        Word(
            u64::from(generation) << 32
                | (state as u64) << STATE_SHIFT
                | (u64::from(count) & COUNT_MASK),
        )
    }

    #[inline]
    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    #[inline]
    fn state(self) -> State {
        match (self.0 >> STATE_SHIFT) & 0b11 {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            _ => State::Isolated,
        }
    }

    #[inline]
    fn count(self) -> u32 {
        (self.0 & COUNT_MASK) as u32
    }

    #[inline]
    fn with_count(self, count: u32) -> Self {
        Word::new(self.generation(), self.state(), count)
    }

    /// Whether a permit of `ticket` still belongs to this word's state.
    #[inline]
    fn matches(self, ticket: Ticket, state: State) -> bool {
        self.generation() == ticket.generation && self.state() == state
    }
}

impl CircuitBreaker {
    /// A breaker without a name (events carry `None`, metrics the label
    /// `unnamed`).
    #[must_use]
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreaker::build(None, config, None)
    }

    /// A breaker whose events and metrics carry `name`.
    #[must_use]
    pub fn named(name: impl Into<Arc<str>>, config: BreakerConfig) -> Self {
        CircuitBreaker::build(Some(name.into()), config, None)
    }

    pub(crate) fn build(
        name: Option<Arc<str>>,
        config: BreakerConfig,
        forward: Option<broadcast::Sender<Event>>,
    ) -> Self {
        let (window, time) = match config.mode {
            FailureMode::Consecutive { .. } => (Window::None, None),
            FailureMode::CountWindow { size, .. } => (Window::count(size.get()), None),
            FailureMode::TimeWindow { window, .. } => (Window::None, Some(TimeWindow::new(window))),
        };
        let label: metrics::SharedString = match &name {
            Some(name) => Arc::clone(name).into(),
            None => "unnamed".into(),
        };
        let rejected = |reason: &'static str| {
            metrics::counter!(
                crate::metrics::BREAKER_REJECTIONS_TOTAL,
                "breaker" => label.clone(),
                "reason" => reason
            )
        };
        let metrics = BreakerMetrics {
            rejected_open: rejected("open"),
            rejected_half_open: rejected("half_open_full"),
            rejected_isolated: rejected("isolated"),
            state: metrics::gauge!(crate::metrics::BREAKER_STATE, "breaker" => label.clone()),
            name: label,
        };
        metrics.state.set(0.0);
        CircuitBreaker {
            shared: Arc::new(Shared {
                word: AtomicU64::new(Word::new(0, State::Closed, 0).0),
                open_until: AtomicU64::new(0),
                epoch: Instant::now(),
                config,
                name,
                inner: Mutex::new(Inner {
                    window,
                    probe_successes: 0,
                    trips: 0,
                }),
                time,
                events: event::channel(),
                forward,
                metrics,
            }),
        }
    }

    /// The breaker's name, if it has one.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.shared.name.as_deref()
    }

    /// The breaker's configuration.
    #[must_use]
    pub fn config(&self) -> &BreakerConfig {
        &self.shared.config
    }

    /// Asks to make one call.
    ///
    /// While closed this is one atomic load. While open it is a load and a
    /// clock read; the first call after the break duration moves the breaker
    /// to half-open (state changes happen when calls arrive, there is no
    /// timer task). While half-open it takes a probe slot if one is free.
    ///
    /// # Errors
    ///
    /// [`Rejected`], saying why and when a probe will be admitted, while the
    /// breaker is open, isolated, or half-open with every probe slot taken.
    /// Building it allocates nothing.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        let ticket = self.shared.admit()?;
        Ok(Permit {
            shared: &self.shared,
            ticket,
            recorded: false,
        })
    }

    /// Like [`try_acquire`](CircuitBreaker::try_acquire), with a permit that
    /// owns a handle to the breaker.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](CircuitBreaker::try_acquire).
    pub fn try_acquire_owned(&self) -> Result<OwnedPermit, Rejected> {
        let ticket = self.shared.admit()?;
        Ok(OwnedPermit {
            breaker: self.clone(),
            ticket,
            recorded: false,
        })
    }

    /// Runs `future` if the breaker admits it and records its result,
    /// classified by [`Classify::is_dependency_failure`]. If the breaker
    /// counts slow calls, the call's duration is measured; if the returned
    /// future is dropped before it finishes, the call counts as ignored.
    ///
    /// # Errors
    ///
    /// [`CallError::Policy`] with [`Error::Rejected`] if the breaker rejected
    /// the call (`future` is dropped unpolled), or [`CallError::Inner`] with
    /// the future's own error.
    pub async fn call<T, E, F>(&self, future: F) -> Result<T, CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
        E: Classify,
    {
        let permit = self
            .try_acquire()
            .map_err(|rejected| CallError::Policy(Error::Rejected(rejected)))?;
        let started = self.shared.config.slow_call.map(|_| Instant::now());
        let result = future.await;
        let elapsed = started.map_or(Duration::ZERO, |started| started.elapsed());
        permit.record_result(&result, elapsed);
        result.map_err(CallError::Inner)
    }

    /// The state a call arriving now would find: an open breaker whose break
    /// duration has passed reports [`State::HalfOpen`], although it moves
    /// there (and says so in an event) only when the next call arrives.
    #[must_use]
    pub fn state(&self) -> State {
        let word = Word(self.shared.word.load(Ordering::Acquire));
        match word.state() {
            State::Open if self.shared.break_elapsed(Instant::now()) => State::HalfOpen,
            state => state,
        }
    }

    /// When an open breaker will admit a probe; `None` in any other state.
    #[must_use]
    pub fn retry_at(&self) -> Option<Instant> {
        let word = Word(self.shared.word.load(Ordering::Acquire));
        (word.state() == State::Open).then(|| self.shared.open_until_instant())
    }

    /// Opens the breaker by hand until [`reset`](CircuitBreaker::reset),
    /// whatever its state. Results of calls in flight are ignored.
    pub fn isolate(&self) {
        let shared = &*self.shared;
        let mut inner = shared.lock();
        let word = Word(shared.word.load(Ordering::Acquire));
        if word.state() != State::Isolated {
            shared.transition(
                &mut inner,
                word,
                State::Isolated,
                TransitionReason::Isolated,
            );
        }
    }

    /// Closes the breaker by hand and forgets every count, whatever its
    /// state. Results of calls in flight are ignored.
    pub fn reset(&self) {
        let shared = &*self.shared;
        let mut inner = shared.lock();
        let word = Word(shared.word.load(Ordering::Acquire));
        shared.transition(&mut inner, word, State::Closed, TransitionReason::Reset);
    }

    /// Receives an [`Event::StateChanged`] for every state change of this
    /// breaker. The channel is bounded; a receiver that falls behind loses
    /// the oldest events.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    pub(crate) fn is_evictable(&self) -> bool {
        Word(self.shared.word.load(Ordering::Acquire)).state() == State::Closed
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves `Inner` consistent before it can
        // panic (only the tracing and metrics facades run under the lock,
        // after the update), so a poisoned lock still guards valid data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn nanos_since_epoch(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn open_until_instant(&self) -> Instant {
        self.epoch + Duration::from_nanos(self.open_until.load(Ordering::Acquire))
    }

    fn break_elapsed(&self, now: Instant) -> bool {
        self.nanos_since_epoch(now) >= self.open_until.load(Ordering::Acquire)
    }

    /// Admits a call: inlined for the closed state, the common case.
    #[inline]
    fn admit(&self) -> Result<Ticket, Rejected> {
        let word = Word(self.word.load(Ordering::Acquire));
        if word.state() == State::Closed {
            return Ok(Ticket {
                generation: word.generation(),
                probe: false,
            });
        }
        self.admit_slow(word)
    }

    fn admit_slow(&self, mut word: Word) -> Result<Ticket, Rejected> {
        loop {
            match word.state() {
                State::Closed => {
                    return Ok(Ticket {
                        generation: word.generation(),
                        probe: false,
                    });
                }
                State::Open => {
                    let now = Instant::now();
                    let now_nanos = self.nanos_since_epoch(now);
                    let until = self.open_until.load(Ordering::Acquire);
                    if now_nanos < until {
                        self.metrics.rejected_open.increment(1);
                        return Err(Rejected {
                            reason: RejectReason::Open,
                            retry_at: Some(self.epoch + Duration::from_nanos(until)),
                            retry_after: Some(Duration::from_nanos(until - now_nanos)),
                        });
                    }
                    word = self.enter_half_open(word);
                }
                State::HalfOpen => {
                    if word.count() >= self.config.half_open_max_probes {
                        self.metrics.rejected_half_open.increment(1);
                        return Err(Rejected {
                            reason: RejectReason::HalfOpenFull,
                            retry_at: None,
                            retry_after: None,
                        });
                    }
                    let taken = word.with_count(word.count() + 1);
                    match self.word.compare_exchange_weak(
                        word.0,
                        taken.0,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => {
                            return Ok(Ticket {
                                generation: word.generation(),
                                probe: true,
                            });
                        }
                        Err(actual) => word = Word(actual),
                    }
                }
                State::Isolated => {
                    self.metrics.rejected_isolated.increment(1);
                    return Err(Rejected {
                        reason: RejectReason::Isolated,
                        retry_at: None,
                        retry_after: None,
                    });
                }
            }
        }
    }

    /// Moves an open breaker whose break passed to half-open, unless another
    /// call already did; returns the word to continue with.
    #[cold]
    fn enter_half_open(&self, seen: Word) -> Word {
        let mut inner = self.lock();
        let word = Word(self.word.load(Ordering::Acquire));
        if word == seen {
            self.transition(
                &mut inner,
                word,
                State::HalfOpen,
                TransitionReason::BreakElapsed,
            );
        }
        Word(self.word.load(Ordering::Acquire))
    }

    /// Records an outcome: inlined for a closed-state success that leaves
    /// nothing to forget in consecutive-failure mode, the common case.
    /// `now` is when the call ended, if the caller has read the clock
    /// already; a time window reads it otherwise.
    #[inline]
    fn record(&self, ticket: Ticket, outcome: Outcome, duration: Duration, now: Option<Instant>) {
        if !ticket.probe
            && outcome == Outcome::Success
            && self.config.slow_call.is_none()
            && matches!(self.config.mode, FailureMode::Consecutive { .. })
            && Word(self.word.load(Ordering::Acquire)).count() == 0
        {
            // Whatever the generation, a success with no failures counted
            // changes nothing.
            return;
        }
        self.record_slow(ticket, outcome, duration, now);
    }

    fn record_slow(
        &self,
        ticket: Ticket,
        outcome: Outcome,
        duration: Duration,
        now: Option<Instant>,
    ) {
        let failed = match outcome {
            Outcome::Ignored => {
                if ticket.probe {
                    self.release_probe(ticket);
                }
                return;
            }
            Outcome::Success => self.config.slow_call.is_some_and(|limit| duration > limit),
            Outcome::Failure => true,
        };
        if ticket.probe {
            self.record_probe(ticket, failed);
        } else {
            self.record_closed(ticket, failed, now);
        }
    }

    fn record_closed(&self, ticket: Ticket, failed: bool, now: Option<Instant>) {
        match self.config.mode {
            FailureMode::Consecutive { threshold } => {
                let mut word = Word(self.word.load(Ordering::Acquire));
                loop {
                    if !word.matches(ticket, State::Closed) {
                        return;
                    }
                    let count = if failed { word.count() + 1 } else { 0 };
                    if count == word.count() {
                        // A success with no failures to forget: nothing to
                        // write, so healthy traffic never contends on the word.
                        return;
                    }
                    if count >= threshold.get() {
                        self.trip(
                            ticket,
                            TransitionReason::ConsecutiveFailures { failures: count },
                        );
                        return;
                    }
                    match self.word.compare_exchange_weak(
                        word.0,
                        word.with_count(count).0,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return,
                        Err(actual) => word = Word(actual),
                    }
                }
            }
            FailureMode::CountWindow {
                failure_rate,
                min_calls,
                ..
            }
            | FailureMode::TimeWindow {
                failure_rate,
                min_calls,
                ..
            } => {
                let time = self.time.as_ref().map(|window| {
                    (
                        window,
                        self.nanos_since_epoch(now.unwrap_or_else(Instant::now)),
                    )
                });
                // A success in the time window's current bucket is counted
                // without the lock. Once a tally under the lock has found
                // the window settled (enough calls, no trip) in this bucket,
                // that is all; before, the lock is taken to tally it, since
                // the success may bring it to `min_calls` and trip it. A
                // transition that races with it at worst counts one success
                // of the old state in the new one's window.
                let mut counted = false;
                if !failed
                    && let Some((window, now)) = time
                    && Word(self.word.load(Ordering::Acquire)).matches(ticket, State::Closed)
                {
                    match window.add_success(now) {
                        window::Added::Settled => return,
                        window::Added::Unsettled => counted = true,
                        window::Added::NotStarted => {}
                    }
                }
                let mut inner = self.lock();
                let word = Word(self.word.load(Ordering::Acquire));
                if !word.matches(ticket, State::Closed) {
                    return;
                }
                let Tally { failures, calls } = match time {
                    Some((window, now)) if counted => window.tally_at(now),
                    Some((window, now)) => window.record(now, failed),
                    None => inner.window.record(failed),
                };
                let trips = (Tally { failures, calls }).trips(failure_rate, min_calls.get());
                if let Some((window, now)) = time {
                    if !trips && calls >= min_calls.get() {
                        window.settle(now);
                    } else {
                        window.unsettle();
                    }
                }
                if trips {
                    self.transition(
                        &mut inner,
                        word,
                        State::Open,
                        TransitionReason::FailureRate { failures, calls },
                    );
                }
            }
        }
    }

    /// Opens a closed breaker whose permit `ticket` saw the last failure,
    /// unless the breaker moved on meanwhile.
    #[cold]
    fn trip(&self, ticket: Ticket, reason: TransitionReason) {
        let mut inner = self.lock();
        let word = Word(self.word.load(Ordering::Acquire));
        if word.matches(ticket, State::Closed) {
            self.transition(&mut inner, word, State::Open, reason);
        }
    }

    fn record_probe(&self, ticket: Ticket, failed: bool) {
        let mut inner = self.lock();
        let word = Word(self.word.load(Ordering::Acquire));
        if !word.matches(ticket, State::HalfOpen) {
            return;
        }
        if failed {
            self.transition(&mut inner, word, State::Open, TransitionReason::ProbeFailed);
            return;
        }
        inner.probe_successes += 1;
        if inner.probe_successes >= self.config.half_open_successes {
            let successes = inner.probe_successes;
            self.transition(
                &mut inner,
                word,
                State::Closed,
                TransitionReason::ProbesSucceeded { successes },
            );
        } else {
            // The generation cannot change while the lock is held, and this
            // probe's slot is part of the count, so the count is at least 1.
            self.word.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn release_probe(&self, ticket: Ticket) {
        let mut word = Word(self.word.load(Ordering::Acquire));
        loop {
            if !word.matches(ticket, State::HalfOpen) || word.count() == 0 {
                return;
            }
            match self.word.compare_exchange_weak(
                word.0,
                word.with_count(word.count() - 1).0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => word = Word(actual),
            }
        }
    }

    /// Moves from `word`'s state to `to`, with the lock held: a new
    /// generation, every counter reset, the break scheduled when opening,
    /// and the change announced.
    fn transition(&self, inner: &mut Inner, word: Word, to: State, reason: TransitionReason) {
        let now = Instant::now();
        let from = word.state();
        inner.window.clear();
        if let Some(window) = &self.time {
            window.clear();
        }
        inner.probe_successes = 0;
        match to {
            State::Open => {
                inner.trips = if from == State::HalfOpen {
                    inner.trips.saturating_add(1)
                } else {
                    1
                };
                let pause = self.config.break_duration.for_trip(inner.trips);
                let until = self
                    .nanos_since_epoch(now)
                    .saturating_add(u64::try_from(pause.as_nanos()).unwrap_or(u64::MAX));
                self.open_until.store(until, Ordering::Release);
            }
            State::Closed => inner.trips = 0,
            State::HalfOpen | State::Isolated => {}
        }
        let next = Word::new(word.generation().wrapping_add(1), to, 0);
        self.word.store(next.0, Ordering::Release);
        if from == to {
            // A reset of a closed breaker: counts and calls in flight are
            // forgotten, but nothing changed that an observer needs to know.
            return;
        }
        self.announce(from, to, reason, now);
    }

    fn announce(&self, from: State, to: State, reason: TransitionReason, at: Instant) {
        let name = self.name.as_deref().unwrap_or("unnamed");
        match to {
            State::Open | State::Isolated => tracing::warn!(
                breaker = name,
                from = from.as_str(),
                to = to.as_str(),
                ?reason,
                "circuit breaker opened"
            ),
            State::Closed | State::HalfOpen => tracing::info!(
                breaker = name,
                from = from.as_str(),
                to = to.as_str(),
                ?reason,
                "circuit breaker state changed"
            ),
        }
        self.metrics.state.set(f64::from(to as u8));
        metrics::counter!(
            crate::metrics::BREAKER_TRANSITIONS_TOTAL,
            "breaker" => self.metrics.name.clone(),
            "to" => to.as_str()
        )
        .increment(1);
        let change = || {
            Event::StateChanged(StateChange {
                breaker: self.name.clone(),
                from,
                to,
                reason,
                at,
            })
        };
        event::emit(&self.events, change);
        if let Some(forward) = &self.forward {
            event::emit(forward, change);
        }
    }
}

impl State {
    /// A short, stable label for metrics and logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::Isolated => "isolated",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = Word(self.word.load(Ordering::Acquire));
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("state", &word.state())
            .field("generation", &word.generation())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
