//! A retry budget shared across calls: a token bucket that allows retries
//! only as a fraction of recent calls, plus a small floor per second.
//!
//! It follows tower's `TpsBudget`: every call deposits, every retry
//! withdraws, and deposits and withdrawals expire after a time to live, kept
//! in ten rotating slots. Two things differ. A deposit takes no lock (tower
//! locks on every call to rotate its slots; here only the call that crosses a
//! slot boundary does), and a withdrawal checks and takes its tokens under
//! one lock, so concurrent retries cannot overdraw the budget.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::Error;

/// How many slots the time to live is divided into.
const SLOTS: usize = 10;
/// Tokens a call deposits when the ratio is not zero; a withdrawal costs
/// `SCALE / ratio`, so ratios like 0.3 keep three digits of precision.
const SCALE: f64 = 1000.0;

/// A token bucket of retries shared by every clone of this handle (and by
/// every retry policy it is given to).
///
/// With a ratio `r`, each call adds `r` retries to the budget and each retry
/// spends one; what was added or spent more than `ttl` ago no longer counts.
/// `min_retries_per_sec` retries per second are always available, so a
/// dependency with little traffic can still be retried.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    inner: Arc<Inner>,
}

/// Builds a [`RetryBudget`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RetryBudgetBuilder {
    ttl: Duration,
    min_retries_per_sec: u32,
    retry_ratio: f64,
}

struct Inner {
    epoch: Instant,
    slot_nanos: u64,
    /// Nanoseconds since `epoch` at which the current slot ends; read without
    /// the lock so that a deposit rotates only when a boundary is crossed.
    rotate_at: AtomicU64,
    rotation: Mutex<Rotation>,
    slots: [AtomicI64; SLOTS],
    /// The current slot's running total.
    current: AtomicI64,
    reserve: i64,
    deposit: i64,
    withdraw: i64,
}

#[derive(Debug)]
struct Rotation {
    index: usize,
    /// Nanoseconds since `epoch` at which the current slot began.
    start: u64,
}

impl RetryBudget {
    /// A builder with tower's defaults: `ttl` 10 s, `min_retries_per_sec` 10,
    /// `retry_ratio` 0.2 (one retry per five calls).
    pub fn builder() -> RetryBudgetBuilder {
        RetryBudgetBuilder {
            ttl: Duration::from_secs(10),
            min_retries_per_sec: 10,
            retry_ratio: 0.2,
        }
    }

    /// Records a call (its first attempt).
    #[inline]
    pub fn deposit(&self) {
        self.deposit_at(Instant::now());
    }

    /// Records a call that started at `now`, a clock reading the caller
    /// already has: the call path reads the clock once and passes it down.
    #[inline]
    pub fn deposit_at(&self, now: Instant) {
        let inner = &*self.inner;
        let now = inner.nanos_since_epoch(now);
        if now >= inner.rotate_at.load(Ordering::Acquire) {
            let mut rotation = inner.lock();
            inner.rotate(&mut rotation, now);
        }
        inner.current.fetch_add(inner.deposit, Ordering::AcqRel);
    }

    /// Takes the tokens of one retry, if the budget has them.
    #[must_use]
    pub fn try_withdraw(&self) -> bool {
        let inner = &*self.inner;
        let now = inner.nanos_since_epoch(Instant::now());
        let mut rotation = inner.lock();
        inner.rotate(&mut rotation, now);
        // Deposits may land concurrently, but they only raise the balance, and
        // other withdrawals wait for the lock: the check stays true.
        if inner.balance() >= inner.withdraw {
            inner.current.fetch_sub(inner.withdraw, Ordering::AcqRel);
            true
        } else {
            false
        }
    }

    /// How many retries the budget would allow right now.
    #[must_use]
    pub fn available(&self) -> u64 {
        let inner = &*self.inner;
        let now = inner.nanos_since_epoch(Instant::now());
        let mut rotation = inner.lock();
        inner.rotate(&mut rotation, now);
        u64::try_from(inner.balance() / inner.withdraw).unwrap_or(0)
    }
}

impl RetryBudgetBuilder {
    /// How long a deposit or withdrawal counts, between 1 s and 60 s. Default 10 s.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Retries per second allowed whatever the traffic. Default 10.
    pub fn min_retries_per_sec(mut self, min: u32) -> Self {
        self.min_retries_per_sec = min;
        self
    }

    /// Retries allowed per call, between 0 and 1000 (0.2 = one retry per five
    /// calls). Default 0.2.
    pub fn retry_ratio(mut self, ratio: f64) -> Self {
        self.retry_ratio = ratio;
        self
    }

    /// Validates the settings and builds the budget.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `ttl` is outside 1–60 s or the ratio is
    /// not a number between 0 and 1000.
    pub fn build(self) -> Result<RetryBudget, Error> {
        if self.ttl < Duration::from_secs(1) || self.ttl > Duration::from_secs(60) {
            return Err(Error::config(
                "retry budget",
                "ttl",
                "must be between 1 s and 60 s",
            ));
        }
        let ratio = self.retry_ratio;
        if !(ratio.is_finite() && (0.0..=1000.0).contains(&ratio)) {
            return Err(Error::config(
                "retry budget",
                "retry_ratio",
                "must be a number between 0 and 1000",
            ));
        }
        let (deposit, withdraw) = if ratio == 0.0 {
            (0, 1)
        } else {
            // A tiny ratio makes a withdrawal cost more than i64 holds; the
            // clamp keeps sums of such costs from overflowing.
            let withdraw = (SCALE / ratio).round().clamp(1.0, i64::MAX as f64 / 4.0) as i64;
            (SCALE as i64, withdraw)
        };
        let reserve_f =
            f64::from(self.min_retries_per_sec) * self.ttl.as_secs_f64() * withdraw as f64;
        let reserve = reserve_f.clamp(0.0, i64::MAX as f64 / 4.0) as i64;
        let slot_nanos = u64::try_from((self.ttl / SLOTS as u32).as_nanos())
            .expect("ttl is at most 60 s, so a slot fits in u64 nanoseconds");
        Ok(RetryBudget {
            inner: Arc::new(Inner {
                epoch: Instant::now(),
                slot_nanos,
                rotate_at: AtomicU64::new(slot_nanos),
                rotation: Mutex::new(Rotation { index: 0, start: 0 }),
                slots: std::array::from_fn(|_| AtomicI64::new(0)),
                current: AtomicI64::new(0),
                reserve,
                deposit,
                withdraw,
            }),
        })
    }
}

impl Inner {
    fn nanos_since_epoch(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rotation> {
        // The guarded data is two integers that are always left consistent,
        // so a panic elsewhere cannot have broken them.
        self.rotation.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the current slot forward to `now`, committing the running total
    /// and clearing the slots that fell out of the time to live.
    fn rotate(&self, rotation: &mut Rotation, now: u64) {
        let elapsed = now.saturating_sub(rotation.start) / self.slot_nanos;
        if elapsed == 0 {
            return;
        }
        let committed = self.current.swap(0, Ordering::AcqRel);
        self.slots[rotation.index].store(committed, Ordering::Release);
        // The slot that becomes current is cleared too: its old contents are
        // a full time to live old. After SLOTS periods everything is.
        let clear = usize::try_from(elapsed).unwrap_or(usize::MAX).min(SLOTS);
        for step in 1..=clear {
            self.slots[(rotation.index + step) % SLOTS].store(0, Ordering::Release);
        }
        rotation.index = (rotation.index + (elapsed % SLOTS as u64) as usize) % SLOTS;
        rotation.start = rotation
            .start
            .saturating_add(elapsed.saturating_mul(self.slot_nanos));
        self.rotate_at.store(
            rotation.start.saturating_add(self.slot_nanos),
            Ordering::Release,
        );
    }

    fn balance(&self) -> i64 {
        let committed = self
            .slots
            .iter()
            .map(|slot| slot.load(Ordering::Acquire))
            .fold(0_i64, i64::saturating_add);
        committed
            .saturating_add(self.current.load(Ordering::Acquire))
            .saturating_add(self.reserve)
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryBudget")
            .field("deposit", &self.deposit)
            .field("withdraw", &self.withdraw)
            .field("reserve", &self.reserve)
            .field("balance", &self.balance())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
