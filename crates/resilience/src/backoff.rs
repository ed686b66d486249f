//! Backoff schedules and jitter: the delay before each retry.
//!
//! The arithmetic is our own rather than `backon`'s: backon computes in `f32`
//! (a 100 ms step drifts by nanoseconds), adds its jitter on top of the cap
//! (so a "capped" delay can be twice the cap), has no linear schedule and no
//! equal or decorrelated jitter, and its retry loop cannot consult a budget,
//! a deadline or a server's hint. Here delays are whole nanoseconds, jitter
//! stays within documented ranges, and the cap holds for every delay.

use std::time::Duration;

use rand::Rng;

use crate::{Error, RetryHint};

/// How the delay before each retry grows, before jitter and the cap.
///
/// Retries are numbered from 0 (the first retry, after the first attempt
/// failed); `n` below is that number.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Backoff {
    /// The same delay every time.
    Constant {
        /// The delay.
        delay: Duration,
    },
    /// `initial + step · n`.
    Linear {
        /// The first delay.
        initial: Duration,
        /// How much each retry adds.
        step: Duration,
    },
    /// `initial · factor^n`.
    Exponential {
        /// The first delay.
        initial: Duration,
        /// The growth factor, at least 1.
        factor: f64,
    },
}

impl Backoff {
    /// The same delay before every retry.
    #[must_use]
    pub fn constant(delay: Duration) -> Self {
        Backoff::Constant { delay }
    }

    /// `initial + step · n`; `linear(d, d)` is the original system's
    /// `initial · (n + 1)`.
    #[must_use]
    pub fn linear(initial: Duration, step: Duration) -> Self {
        Backoff::Linear { initial, step }
    }

    /// `initial · factor^n`; `factor` 2 doubles the delay each time.
    #[must_use]
    pub fn exponential(initial: Duration, factor: f64) -> Self {
        Backoff::Exponential { initial, factor }
    }

    fn initial(&self) -> Duration {
        match *self {
            Backoff::Constant { delay } => delay,
            Backoff::Linear { initial, .. } | Backoff::Exponential { initial, .. } => initial,
        }
    }

    /// The delay before retry `n`, before jitter and the cap; saturates
    /// instead of overflowing.
    fn base(&self, n: u32) -> Duration {
        match *self {
            Backoff::Constant { delay } => delay,
            Backoff::Linear { initial, step } => step
                .checked_mul(n)
                .and_then(|grown| initial.checked_add(grown))
                .unwrap_or(Duration::MAX),
            Backoff::Exponential { initial, factor } => {
                let exponent = i32::try_from(n).unwrap_or(i32::MAX);
                let nanos = initial.as_nanos() as f64 * factor.powi(exponent);
                // `as` saturates, and the caller caps the result anyway.
                if nanos.is_finite() && nanos < u64::MAX as f64 {
                    Duration::from_nanos(nanos.round() as u64)
                } else {
                    Duration::MAX
                }
            }
        }
    }

    pub(crate) fn validate(&self, max_delay: Duration) -> Result<(), Error> {
        if self.initial().is_zero() {
            return Err(Error::config("retry", "backoff", "must start above zero"));
        }
        if self.initial() > max_delay {
            return Err(Error::config(
                "retry",
                "backoff",
                "must not start above `max_delay`",
            ));
        }
        if let Backoff::Exponential { factor, .. } = *self
            && !(factor.is_finite() && factor >= 1.0)
        {
            return Err(Error::config(
                "retry",
                "backoff",
                "factor must be a finite number of at least 1",
            ));
        }
        Ok(())
    }
}

/// How randomness spreads the delays so that callers that failed together do
/// not retry together. `b` is the capped backoff for this retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// Exactly `b`. Synchronised callers stay synchronised.
    None,
    /// Uniform in `[0, b]`.
    Full,
    /// Uniform in `[b/2, b]`.
    Equal,
    /// Uniform in `[b, max(b, 3 · previous delay)]`, capped; the first
    /// retry's "previous delay" is the first backoff. This is the default: it
    /// spreads retries widely while still growing with the backoff.
    #[default]
    Decorrelated,
}

/// A validated backoff, jitter and cap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Schedule {
    pub(crate) backoff: Backoff,
    pub(crate) jitter: Jitter,
    pub(crate) max_delay: Duration,
}

impl Schedule {
    /// The backoff for retry `n`, capped.
    pub(crate) fn capped_base(&self, n: u32) -> Duration {
        self.backoff.base(n).min(self.max_delay)
    }

    /// The jittered delay before retry `n`, given the delay used before the
    /// previous retry (for decorrelated jitter).
    pub(crate) fn delay<R: Rng + ?Sized>(
        &self,
        n: u32,
        previous: Option<Duration>,
        rng: &mut R,
    ) -> Duration {
        let base = self.capped_base(n);
        let jittered = match self.jitter {
            Jitter::None => base,
            Jitter::Full => uniform(rng, Duration::ZERO, base),
            Jitter::Equal => {
                let half = base / 2;
                uniform(rng, half, base)
            }
            Jitter::Decorrelated => {
                let previous = previous.unwrap_or_else(|| self.capped_base(0));
                let high = previous.saturating_mul(3).max(base);
                uniform(rng, base, high)
            }
        };
        jittered.min(self.max_delay)
    }

    /// The delay to wait when the error carried a hint: at least the server's
    /// `retry_after`, never more than the cap.
    pub(crate) fn honour_hint(&self, delay: Duration, hint: RetryHint) -> Duration {
        match hint {
            RetryHint::After(not_before) => delay.max(not_before).min(self.max_delay),
            RetryHint::Yes | RetryHint::No => delay,
        }
    }
}

/// A uniform sample in `[low, high]` at nanosecond resolution.
fn uniform<R: Rng + ?Sized>(rng: &mut R, low: Duration, high: Duration) -> Duration {
    let low = saturating_nanos(low);
    let high = saturating_nanos(high);
    if low >= high {
        return Duration::from_nanos(low);
    }
    Duration::from_nanos(rng.random_range(low..=high))
}

fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
