//! One attempt's failure, classified for the retry policy and the method's
//! breaker: may it be sent again, is the worker to blame, and which
//! incident (a death, a hang) it reports.

use std::time::Duration;

use pybridge_resilience::{Classify, RetryHint};

use crate::Error;
use crate::incidents::Incident;

/// The error of one attempt, with what the retry policy needs to know.
#[derive(Debug)]
pub(super) struct Attempt {
    pub(super) error: Error,
    /// Whether the method may run twice.
    pub(super) idempotent: bool,
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error.report())
    }
}

/// What a worker's error data says about retrying.
#[derive(serde::Deserialize)]
struct RemoteHint {
    #[serde(default)]
    recoverable: bool,
    #[serde(default)]
    retry_after_ms: Option<u64>,
}

impl Attempt {
    /// What happened to the worker that failed this attempt, if the worker
    /// and not the request is to blame.
    pub(super) fn incident(&self) -> Option<Incident> {
        use pybridge_pool::{Error as P, TimeoutStage};
        match &self.error {
            Error::Pool {
                source: P::WorkerFailed { failure, .. },
                ..
            } => Some(Incident::Death(failure.worker)),
            Error::Pool {
                source:
                    P::Timeout {
                        stage: TimeoutStage::InFlight,
                        worker: Some(worker),
                        ..
                    },
                ..
            } => Some(Incident::Timeout(*worker)),
            _ => None,
        }
    }
}

impl Classify for Attempt {
    fn retry_hint(&self) -> RetryHint {
        use pybridge_pool::Error as P;
        let Error::Pool { source, .. } = &self.error else {
            return RetryHint::No;
        };
        // Sending again is safe only if the worker never saw the request, or
        // running the method twice does no harm.
        let safe = self.idempotent || source.not_processed();
        match source {
            P::Remote { error, .. } => {
                let hint = error.data_as::<RemoteHint>().and_then(Result::ok);
                match hint {
                    Some(h) if h.recoverable && self.idempotent => match h.retry_after_ms {
                        Some(ms) => RetryHint::After(Duration::from_millis(ms)),
                        None => RetryHint::Yes,
                    },
                    _ => RetryHint::No,
                }
            }
            other if other.is_retryable() && safe => RetryHint::Yes,
            _ => RetryHint::No,
        }
    }

    fn is_dependency_failure(&self) -> bool {
        use pybridge_pool::{Error as P, TimeoutStage};
        use pybridge_protocol::ErrorCode;
        match &self.error {
            Error::Pool { source, .. } => match source {
                // The worker failed at its job.
                P::WorkerFailed { .. } | P::ResponseTooLarge { .. } | P::Unavailable { .. } => true,
                P::Timeout { stage, .. } => *stage == TimeoutStage::InFlight,
                // An answer that blames the request is no sign of a sick worker.
                P::Remote { error, .. } => !matches!(
                    error.code,
                    ErrorCode::INVALID_PARAMS
                        | ErrorCode::METHOD_NOT_FOUND
                        | ErrorCode::INVALID_REQUEST
                ),
                // Queue full, shutting down: local conditions, not the
                // worker's fault (the pool's error type is another crate's
                // and not exhaustive, so the rest are listed by a wildcard).
                _ => false,
            },
            // Failures before or after the worker's round trip.
            Error::Rejected { .. }
            | Error::InvalidResult { .. }
            | Error::CircuitOpen { .. }
            | Error::DeadlineExceeded { .. }
            | Error::EncodeParams { .. }
            | Error::DecodeResult { .. }
            | Error::ShuttingDown
            | Error::Shared(_)
            | Error::Config(_)
            | Error::Build { .. }
            | Error::Start(_)
            | Error::NoWorker => false,
        }
    }
}
