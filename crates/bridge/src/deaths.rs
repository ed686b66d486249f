//! Counting a worker's death once against each method's circuit breaker.
//!
//! A worker that dies fails every call it held at once. That is one failure
//! of the methods it was running, not one per call: counted per call, a
//! single crash while five calls of a method were in flight would open the
//! method's breaker (five failures in a row by default) for every worker,
//! although the pool replaces the dead one at once and the retries succeed
//! on the others. A method that keeps killing its workers still opens its
//! breaker: each death is a new worker, counted once.

use std::collections::VecDeque;
use std::sync::Mutex;

use pybridge_pool::WorkerId;

/// Deaths remembered. The calls one death fails reach the breaker within
/// moments of each other, so a short memory suffices.
const REMEMBERED: usize = 256;

/// The (method, worker) deaths already counted.
#[derive(Debug, Default)]
pub(crate) struct Deaths {
    counted: Mutex<VecDeque<(String, WorkerId)>>,
}

impl Deaths {
    /// Whether this is the first failed call of `method` that `worker`'s
    /// death reports, and so the one to count.
    pub(crate) fn first(&self, method: &str, worker: WorkerId) -> bool {
        let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
        if counted.iter().any(|(m, w)| *w == worker && m == method) {
            return false;
        }
        if counted.len() == REMEMBERED {
            counted.pop_front();
        }
        counted.push_back((method.to_string(), worker));
        true
    }
}
