//! Timeouts that report how long the operation ran.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::Error;

/// Runs `future` for at most `limit`, then drops it.
///
/// # Errors
///
/// [`Error::Timeout`] with the elapsed time and the limit.
pub async fn timeout<F: Future>(limit: Duration, future: F) -> Result<F::Output, Error> {
    let started = Instant::now();
    tokio::time::timeout(limit, future)
        .await
        .map_err(|_| elapsed(started, limit))
}

/// Runs `future` until `deadline` at the latest, then drops it.
///
/// # Errors
///
/// [`Error::Timeout`] with the elapsed time, and as the limit the time that
/// was left until the deadline when the call began.
pub async fn timeout_at<F: Future>(deadline: Instant, future: F) -> Result<F::Output, Error> {
    let started = Instant::now();
    let limit = deadline.saturating_duration_since(started);
    tokio::time::timeout_at(deadline, future)
        .await
        .map_err(|_| elapsed(started, limit))
}

fn elapsed(started: Instant, limit: Duration) -> Error {
    metrics::counter!(crate::metrics::TIMEOUTS_TOTAL).increment(1);
    Error::Timeout {
        elapsed: started.elapsed(),
        limit,
    }
}
