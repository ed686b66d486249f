//! The retry policy: backoff with jitter, a shared budget, deadline
//! awareness, server hints, and an event per retry.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::Counter;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::backoff::Schedule;
use crate::event::{self, Event, RetryEvent, RetryStopped};
use crate::{Backoff, Classify, Error, Jitter, RetryBudget, RetryError, RetryHint, StopReason};

/// When and how often a failed operation is tried again.
///
/// A cheap handle: clones share the configuration, the budget and the event
/// channel. Build one with [`RetryPolicy::builder`] and run operations with
/// [`run`](RetryPolicy::run).
///
/// What it guarantees:
/// - an error whose [`Classify::retry_hint`] is [`RetryHint::No`] is never
///   retried;
/// - at most `max_retries` retries follow the first attempt;
/// - no attempt starts if the deadline would pass during the delay before it;
/// - a server's `retry_after` is waited for, but never longer than `max_delay`;
/// - every retry takes a token from the shared [`RetryBudget`], if one is set.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    inner: Arc<Inner>,
}

/// Builds a [`RetryPolicy`]. The defaults are the original system's numbers
/// with its mistakes fixed: 2 retries (its "3 attempts"), exponential backoff
/// from 1 s doubling up to 30 s, decorrelated jitter, and a budget with
/// [`RetryBudget::builder`]'s defaults shared by the policy's clones.
#[derive(Debug, Clone)]
#[must_use]
pub struct RetryPolicyBuilder {
    max_retries: u32,
    backoff: Backoff,
    jitter: Jitter,
    max_delay: Duration,
    budget: BudgetChoice,
    seed: Option<u64>,
}

#[derive(Debug, Clone)]
enum BudgetChoice {
    Default,
    Shared(RetryBudget),
    Unlimited,
}

/// What a hook given to [`RetryPolicy::run_with_hook`] learns before each retry.
#[derive(Debug)]
#[non_exhaustive]
pub struct RetryInfo<'a, E> {
    /// The attempt that failed (1 is the first call).
    pub attempt: u32,
    /// How long the policy waits before the next attempt.
    pub delay: Duration,
    /// What the error said about retrying.
    pub hint: RetryHint,
    /// The failed attempt's error.
    pub error: &'a E,
}

/// A preview of the delays a policy would wait, from [`RetryPolicy::delays`].
#[derive(Debug, Clone)]
pub struct Delays {
    schedule: Schedule,
    next: u32,
    end: u32,
    previous: Option<Duration>,
    rng: SmallRng,
}

struct Inner {
    max_retries: u32,
    schedule: Schedule,
    budget: Option<RetryBudget>,
    seed: Option<u64>,
    /// Gives each seeded run its own random stream, reproducibly.
    runs: AtomicU64,
    events: broadcast::Sender<Event>,
    retries: Counter,
    stops: StopCounters,
}

struct StopCounters {
    not_retryable: Counter,
    exhausted: Counter,
    deadline: Counter,
    budget: Counter,
}

impl RetryPolicy {
    /// A builder with the defaults described on [`RetryPolicyBuilder`].
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder {
            max_retries: 2,
            backoff: Backoff::exponential(Duration::from_secs(1), 2.0),
            jitter: Jitter::Decorrelated,
            max_delay: Duration::from_secs(30),
            budget: BudgetChoice::Default,
            seed: None,
        }
    }

    /// How many retries may follow the first attempt (so at most
    /// `max_retries + 1` attempts run).
    #[must_use]
    pub fn max_retries(&self) -> u32 {
        self.inner.max_retries
    }

    /// The budget this policy draws on, if any.
    #[must_use]
    pub fn budget(&self) -> Option<&RetryBudget> {
        self.inner.budget.as_ref()
    }

    /// Receives an [`Event::Retry`] before each retry and an
    /// [`Event::RetryStopped`] when a run gives up, from every clone of this
    /// policy. The channel is bounded; a receiver that falls behind loses the
    /// oldest events.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The delays this policy would wait before each of its retries, ignoring
    /// server hints, deadlines and the budget. Jitter is drawn afresh (from
    /// the seed, if one was set).
    #[must_use]
    pub fn delays(&self) -> Delays {
        Delays {
            schedule: self.inner.schedule,
            next: 0,
            end: self.inner.max_retries,
            previous: None,
            rng: self.inner.rng(),
        }
    }

    /// Runs `op` until it succeeds or the policy stops.
    ///
    /// `op` receives the attempt number, 1 for the first call. The first
    /// attempt always runs; `op` should bound itself by the deadline (for
    /// example with [`timeout_at`](crate::timeout_at)), because this policy
    /// only decides whether to *start* each further attempt.
    ///
    /// # Errors
    ///
    /// A [`RetryError`] carrying the last attempt's error and the
    /// [`StopReason`]: not retryable, retries exhausted, deadline would be
    /// exceeded, or budget exhausted.
    pub async fn run<T, E, F, Fut>(
        &self,
        deadline: Option<Instant>,
        op: F,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Classify + fmt::Display,
    {
        self.run_with_hook(deadline, op, |_: &RetryInfo<'_, E>| {})
            .await
    }

    /// Like [`run`](RetryPolicy::run), and calls `hook` before each retry
    /// (after the policy decided to retry and before it sleeps), with the
    /// typed error.
    ///
    /// # Errors
    ///
    /// As [`run`](RetryPolicy::run).
    pub async fn run_with_hook<T, E, F, Fut, H>(
        &self,
        deadline: Option<Instant>,
        op: F,
        hook: H,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Classify + fmt::Display,
        H: FnMut(&RetryInfo<'_, E>),
    {
        self.run_with_hook_at(Instant::now(), deadline, op, hook)
            .await
    }

    /// Like [`run_with_hook`](RetryPolicy::run_with_hook), for a call that
    /// started at `now`: a caller that has already read the clock passes
    /// its reading, and the policy reads none until an attempt fails.
    ///
    /// # Errors
    ///
    /// As [`run`](RetryPolicy::run).
    pub async fn run_with_hook_at<T, E, F, Fut, H>(
        &self,
        now: Instant,
        deadline: Option<Instant>,
        mut op: F,
        mut hook: H,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Classify + fmt::Display,
        H: FnMut(&RetryInfo<'_, E>),
    {
        let inner = &*self.inner;
        if let Some(budget) = &inner.budget {
            budget.deposit_at(now);
        }
        let mut attempt: u32 = 1;
        // Created on the first retry only, so the success path draws nothing.
        let mut rng: Option<SmallRng> = None;
        let mut previous: Option<Duration> = None;
        loop {
            let error = match op(attempt).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let delay = match inner.decide(attempt, &error, deadline, previous, &mut rng) {
                Ok(delay) => delay,
                Err(reason) => return Err(inner.stop(reason, attempt, error)),
            };
            let hint = error.retry_hint();
            hook(&RetryInfo {
                attempt,
                delay,
                hint,
                error: &error,
            });
            inner.retries.increment(1);
            tracing::debug!(attempt, delay_ms = delay.as_millis() as u64, error = %error, "retrying");
            event::emit(&inner.events, || {
                Event::Retry(RetryEvent {
                    attempt,
                    delay,
                    hint,
                    error: error.to_string().into(),
                })
            });
            // The error is not needed while sleeping; dropping it first keeps
            // the future `Send` even for errors that are not `Sync`.
            drop(error);
            previous = Some(delay);
            tokio::time::sleep(delay).await;
            attempt = attempt.saturating_add(1);
        }
    }
}

impl Inner {
    fn rng(&self) -> SmallRng {
        match self.seed {
            Some(seed) => {
                let run = self.runs.fetch_add(1, Ordering::Relaxed);
                SmallRng::seed_from_u64(seed ^ run.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            }
            None => SmallRng::from_rng(&mut rand::rng()),
        }
    }

    /// Whether attempt `attempt`, which failed with `error`, is followed by
    /// another, and after which delay.
    fn decide<E: Classify>(
        &self,
        attempt: u32,
        error: &E,
        deadline: Option<Instant>,
        previous: Option<Duration>,
        rng: &mut Option<SmallRng>,
    ) -> Result<Duration, StopReason> {
        let hint = error.retry_hint();
        if !hint.is_retryable() {
            return Err(StopReason::NotRetryable);
        }
        let retry = attempt - 1;
        if retry >= self.max_retries {
            return Err(StopReason::RetriesExhausted {
                max_retries: self.max_retries,
            });
        }
        let rng = rng.get_or_insert_with(|| self.rng());
        let delay = self.schedule.delay(retry, previous, rng);
        let delay = self.schedule.honour_hint(delay, hint);
        if let Some(deadline) = deadline {
            let remaining = deadline.saturating_duration_since(Instant::now());
            // An attempt that would start at the deadline has no time to run.
            if delay >= remaining {
                return Err(StopReason::DeadlineExceeded { delay, remaining });
            }
        }
        // The budget is asked last, so a retry refused for another reason
        // spends no token.
        if let Some(budget) = &self.budget
            && !budget.try_withdraw()
        {
            return Err(StopReason::BudgetExhausted);
        }
        Ok(delay)
    }

    fn stop<E: fmt::Display>(&self, reason: StopReason, attempts: u32, error: E) -> RetryError<E> {
        let counter = match reason {
            StopReason::NotRetryable => &self.stops.not_retryable,
            StopReason::RetriesExhausted { .. } => &self.stops.exhausted,
            StopReason::DeadlineExceeded { .. } => &self.stops.deadline,
            StopReason::BudgetExhausted => &self.stops.budget,
        };
        counter.increment(1);
        tracing::debug!(attempts, reason = reason.as_str(), error = %error, "giving up");
        event::emit(&self.events, || {
            Event::RetryStopped(RetryStopped {
                attempts,
                reason,
                error: error.to_string().into(),
            })
        });
        RetryError::new(reason, attempts, error)
    }
}

impl RetryPolicyBuilder {
    /// How many retries may follow the first attempt; 0 disables retrying.
    /// Default 2 (three attempts in all).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The backoff schedule. Default exponential from 1 s, factor 2.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The jitter. Default [`Jitter::Decorrelated`].
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The cap on every delay, server hints included. Default 30 s.
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Draw retries from this budget, which may be shared with other policies.
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = BudgetChoice::Shared(budget);
        self
    }

    /// Retry without a budget (only `max_retries` and the deadline limit
    /// retries). Use with care: a budget is what stops a retry storm.
    pub fn unlimited_budget(mut self) -> Self {
        self.budget = BudgetChoice::Unlimited;
        self
    }

    /// Draw jitter from a seeded generator, so that runs are reproducible
    /// (each run of the policy still gets its own stream). Default: seeded
    /// from the thread's random generator.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Validates the settings and builds the policy.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `max_delay` is zero, the backoff starts
    /// at zero or above `max_delay`, or an exponential factor is below 1 or
    /// not finite.
    pub fn build(self) -> Result<RetryPolicy, Error> {
        if self.max_delay.is_zero() {
            return Err(Error::config("retry", "max_delay", "must be above zero"));
        }
        self.backoff.validate(self.max_delay)?;
        let budget = match self.budget {
            BudgetChoice::Default => Some(RetryBudget::builder().build()?),
            BudgetChoice::Shared(budget) => Some(budget),
            BudgetChoice::Unlimited => None,
        };
        let stop = |reason: &'static str| metrics::counter!(crate::metrics::RETRY_STOPS_TOTAL, "reason" => reason);
        Ok(RetryPolicy {
            inner: Arc::new(Inner {
                max_retries: self.max_retries,
                schedule: Schedule {
                    backoff: self.backoff,
                    jitter: self.jitter,
                    max_delay: self.max_delay,
                },
                budget,
                seed: self.seed,
                runs: AtomicU64::new(0),
                events: event::channel(),
                retries: metrics::counter!(crate::metrics::RETRIES_TOTAL),
                stops: StopCounters {
                    not_retryable: stop("not_retryable"),
                    exhausted: stop("retries_exhausted"),
                    deadline: stop("deadline_exceeded"),
                    budget: stop("budget_exhausted"),
                },
            }),
        })
    }
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.next >= self.end {
            return None;
        }
        let delay = self.schedule.delay(self.next, self.previous, &mut self.rng);
        self.previous = Some(delay);
        self.next += 1;
        Some(delay)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.end - self.next).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_retries", &self.max_retries)
            .field("schedule", &self.schedule)
            .field("budget", &self.budget)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
