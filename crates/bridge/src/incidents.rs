//! Counting one incident once against a method's circuit breaker.
//!
//! A worker that dies fails every call it held at once; a worker that hangs
//! makes every call it held time out within moments of each other. Either is
//! one failure of the method, not one per call: counted per call, a single
//! crash or hang while five calls of a method were in flight would open the
//! method's breaker (five failures in a row by default) for every worker,
//! although the pool replaces the bad worker at once and the retries succeed
//! on the others.
//!
//! A method that keeps failing still opens its breaker: each death is a new
//! worker, counted once, and timeouts on one worker count again once the
//! window has passed, so a method that is slow on a worker that still
//! answers opens its breaker after as many windows as the threshold says.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use pybridge_pool::WorkerId;
use tokio::time::Instant;

/// Incidents remembered. The calls one incident fails reach the breaker
/// within moments of each other, so a short memory suffices.
const REMEMBERED: usize = 256;

/// Timeouts on one worker within this window are one incident.
const TIMEOUT_WINDOW: Duration = Duration::from_secs(1);

/// What happened to the worker holding a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Incident {
    /// It died (or was killed) holding the call.
    Death(WorkerId),
    /// It held the call past the attempt's deadline.
    Timeout(WorkerId),
}

/// The (method, incident) pairs already counted, and when.
#[derive(Debug, Default)]
pub(crate) struct Incidents {
    counted: Mutex<VecDeque<(String, Incident, Instant)>>,
}

impl Incidents {
    /// Whether this is the first failed call of `method` that `incident`
    /// reports, and so the one to count.
    pub(crate) fn first(&self, method: &str, incident: Incident) -> bool {
        let now = Instant::now();
        let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
        let seen = counted.iter().any(|(m, i, at)| {
            *i == incident
                && m == method
                && match incident {
                    Incident::Death(_) => true,
                    Incident::Timeout(_) => now.duration_since(*at) < TIMEOUT_WINDOW,
                }
        });
        if seen {
            return false;
        }
        if counted.len() == REMEMBERED {
            counted.pop_front();
        }
        counted.push_back((method.to_string(), incident, now));
        true
    }
}
