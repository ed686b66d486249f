//! The configuration of a circuit breaker, shared as a template by a registry.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::Error;

/// The largest count-based window, in calls.
const MAX_WINDOW_CALLS: u32 = 65_536;
/// The largest count a breaker keeps in its atomic word (failures in a row,
/// or probes in flight).
pub(crate) const MAX_COUNT: u32 = (1 << 30) - 1;
const MIN_TIME_WINDOW: Duration = Duration::from_millis(100);
const MAX_TIME_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// A validated circuit breaker configuration; clone it freely (a registry
/// uses one as the template of every breaker it creates).
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    pub(crate) mode: FailureMode,
    pub(crate) slow_call: Option<Duration>,
    pub(crate) break_duration: BreakDuration,
    pub(crate) half_open_max_probes: u32,
    pub(crate) half_open_successes: u32,
}

/// Builds a [`BreakerConfig`]. The defaults are the original system's, with
/// its mistakes fixed: open after 5 consecutive failures, stay open 60 s,
/// then admit 1 probe at a time and close after 3 successful probes.
#[derive(Debug, Clone)]
#[must_use]
pub struct BreakerConfigBuilder {
    config: BreakerConfig,
}

/// When a closed breaker opens.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum FailureMode {
    /// After this many failures in a row; a success resets the count.
    Consecutive {
        /// Failures in a row that open the breaker.
        threshold: NonZeroU32,
    },
    /// When, over the last `size` calls, failures / calls reaches
    /// `failure_rate`, once at least `min_calls` calls were seen.
    CountWindow {
        /// The failure rate that opens the breaker, in (0, 1].
        failure_rate: f64,
        /// How many recent calls the window holds.
        size: NonZeroU32,
        /// Calls needed before the rate is judged.
        min_calls: NonZeroU32,
    },
    /// When, over the calls of the last `window`, failures / calls reaches
    /// `failure_rate`, once at least `min_calls` calls were seen. The window
    /// slides in tenths of its length.
    TimeWindow {
        /// The failure rate that opens the breaker, in (0, 1].
        failure_rate: f64,
        /// How far back calls count.
        window: Duration,
        /// Calls needed before the rate is judged.
        min_calls: NonZeroU32,
    },
}

/// How long an open breaker stays open before it admits probes.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum BreakDuration {
    /// The same duration after every trip.
    Fixed(Duration),
    /// `initial · factor^(k-1)` for the k-th trip in a row (a probe failing
    /// re-opens with a longer break), capped at `max`; closing starts over.
    Growing {
        /// The first break.
        initial: Duration,
        /// The growth per trip, at least 1.
        factor: f64,
        /// The longest break.
        max: Duration,
    },
}

impl BreakDuration {
    /// The break after the `trip`-th trip in a row (1 for the first).
    pub(crate) fn for_trip(&self, trip: u32) -> Duration {
        match *self {
            BreakDuration::Fixed(duration) => duration,
            BreakDuration::Growing {
                initial,
                factor,
                max,
            } => {
                let exponent = i32::try_from(trip.saturating_sub(1)).unwrap_or(i32::MAX);
                let nanos = initial.as_nanos() as f64 * factor.powi(exponent);
                let max_nanos = max.as_nanos() as f64;
                if nanos.is_finite() && nanos < max_nanos {
                    Duration::from_nanos(nanos.round() as u64)
                } else {
                    max
                }
            }
        }
    }
}

impl BreakerConfig {
    /// A builder with the defaults described on [`BreakerConfigBuilder`].
    pub fn builder() -> BreakerConfigBuilder {
        BreakerConfigBuilder {
            config: BreakerConfig {
                mode: FailureMode::Consecutive {
                    threshold: NonZeroU32::new(5).expect("5 is not zero"),
                },
                slow_call: None,
                break_duration: BreakDuration::Fixed(Duration::from_secs(60)),
                half_open_max_probes: 1,
                half_open_successes: 3,
            },
        }
    }

    /// When the breaker opens.
    #[must_use]
    pub fn failure_mode(&self) -> FailureMode {
        self.mode
    }

    /// Successful calls slower than this count as failures, if set.
    #[must_use]
    pub fn slow_call_threshold(&self) -> Option<Duration> {
        self.slow_call
    }

    /// How long the breaker stays open.
    #[must_use]
    pub fn break_duration(&self) -> BreakDuration {
        self.break_duration
    }

    /// Probe calls admitted at once while half-open.
    #[must_use]
    pub fn half_open_max_probes(&self) -> u32 {
        self.half_open_max_probes
    }

    /// Successful probes that close the breaker.
    #[must_use]
    pub fn half_open_successes(&self) -> u32 {
        self.half_open_successes
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig::builder()
            .build()
            .expect("the default configuration is valid")
    }
}

impl BreakerConfigBuilder {
    /// Sets when the breaker opens. Default: 5 consecutive failures.
    pub fn failure_mode(mut self, mode: FailureMode) -> Self {
        self.config.mode = mode;
        self
    }

    /// Open after `threshold` failures in a row.
    pub fn consecutive_failures(self, threshold: NonZeroU32) -> Self {
        self.failure_mode(FailureMode::Consecutive { threshold })
    }

    /// Open when failures / calls over the last `size` calls reaches
    /// `failure_rate`, once `min_calls` calls were seen.
    pub fn failure_rate_over_calls(
        self,
        failure_rate: f64,
        size: NonZeroU32,
        min_calls: NonZeroU32,
    ) -> Self {
        self.failure_mode(FailureMode::CountWindow {
            failure_rate,
            size,
            min_calls,
        })
    }

    /// Open when failures / calls over the last `window` of time reaches
    /// `failure_rate`, once `min_calls` calls were seen.
    pub fn failure_rate_over_time(
        self,
        failure_rate: f64,
        window: Duration,
        min_calls: NonZeroU32,
    ) -> Self {
        self.failure_mode(FailureMode::TimeWindow {
            failure_rate,
            window,
            min_calls,
        })
    }

    /// Count a successful call that took longer than `threshold` as a
    /// failure. Default: off.
    pub fn slow_call_threshold(mut self, threshold: Duration) -> Self {
        self.config.slow_call = Some(threshold);
        self
    }

    /// Stay open for `duration` after every trip. Default 60 s.
    pub fn break_duration(mut self, duration: Duration) -> Self {
        self.config.break_duration = BreakDuration::Fixed(duration);
        self
    }

    /// Stay open `initial · factor^(k-1)` after the k-th trip in a row,
    /// up to `max`.
    pub fn growing_break_duration(mut self, initial: Duration, factor: f64, max: Duration) -> Self {
        self.config.break_duration = BreakDuration::Growing {
            initial,
            factor,
            max,
        };
        self
    }

    /// Admit at most this many probe calls at once while half-open (a probe
    /// that finishes, however it finishes, frees its slot). Default 1.
    pub fn half_open_max_probes(mut self, probes: NonZeroU32) -> Self {
        self.config.half_open_max_probes = probes.get();
        self
    }

    /// Close after this many successful probes; one failed probe re-opens.
    /// Default 3.
    pub fn half_open_successes(mut self, successes: NonZeroU32) -> Self {
        self.config.half_open_successes = successes.get();
        self
    }

    /// Validates the settings.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the setting: a failure rate outside
    /// (0, 1], a count window above 65 536 calls or smaller than its
    /// `min_calls`, a time window outside 100 ms – 24 h, a zero break
    /// duration, a growth factor below 1, or a threshold or probe count
    /// above 2^30 − 1.
    pub fn build(self) -> Result<BreakerConfig, Error> {
        let config = self.config;
        let fail = |field, problem| Err(Error::config("breaker", field, problem));
        let valid_rate = |rate: f64| rate.is_finite() && rate > 0.0 && rate <= 1.0;
        match config.mode {
            FailureMode::Consecutive { threshold } => {
                if threshold.get() > MAX_COUNT {
                    return fail("threshold", "must be below 2^30");
                }
            }
            FailureMode::CountWindow {
                failure_rate,
                size,
                min_calls,
            } => {
                if !valid_rate(failure_rate) {
                    return fail("failure_rate", "must be above 0 and at most 1");
                }
                if size.get() > MAX_WINDOW_CALLS {
                    return fail("size", "must be at most 65536 calls");
                }
                if min_calls > size {
                    return fail("min_calls", "must not exceed the window size");
                }
            }
            FailureMode::TimeWindow {
                failure_rate,
                window,
                ..
            } => {
                if !valid_rate(failure_rate) {
                    return fail("failure_rate", "must be above 0 and at most 1");
                }
                if !(MIN_TIME_WINDOW..=MAX_TIME_WINDOW).contains(&window) {
                    return fail("window", "must be between 100 ms and 24 h");
                }
            }
        }
        match config.break_duration {
            BreakDuration::Fixed(duration) => {
                if duration.is_zero() {
                    return fail("break_duration", "must be above zero");
                }
            }
            BreakDuration::Growing {
                initial,
                factor,
                max,
            } => {
                if initial.is_zero() {
                    return fail("break_duration", "must start above zero");
                }
                if !(factor.is_finite() && factor >= 1.0) {
                    return fail(
                        "break_duration",
                        "factor must be a finite number of at least 1",
                    );
                }
                if max < initial {
                    return fail(
                        "break_duration",
                        "maximum must not be below the initial break",
                    );
                }
            }
        }
        if config.half_open_max_probes > MAX_COUNT {
            return fail("half_open_max_probes", "must be below 2^30");
        }
        Ok(config)
    }
}
