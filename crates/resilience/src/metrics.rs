//! The names of every metric this crate records, in one place.
//!
//! All are recorded through the `metrics` facade; nothing is recorded unless
//! the program installs a recorder. Breakers and policies register their
//! handles when they are built, so install the recorder before building them.

/// Retries started (counter). Labels: none.
pub const RETRIES_TOTAL: &str = "pybridge_resilience_retries_total";
/// Runs of a retry policy that ended in an error (counter). Label `reason`:
/// `not_retryable`, `retries_exhausted`, `deadline_exceeded`, `budget_exhausted`.
pub const RETRY_STOPS_TOTAL: &str = "pybridge_resilience_retry_stops_total";
/// Circuit breaker state changes (counter). Labels `breaker`, `to`.
pub const BREAKER_TRANSITIONS_TOTAL: &str = "pybridge_resilience_breaker_transitions_total";
/// Calls a circuit breaker rejected (counter). Labels `breaker`, `reason`:
/// `open`, `half_open_full`, `isolated`.
pub const BREAKER_REJECTIONS_TOTAL: &str = "pybridge_resilience_breaker_rejections_total";
/// A circuit breaker's current state (gauge): 0 closed, 1 open, 2 half-open,
/// 3 isolated. Label `breaker`.
pub const BREAKER_STATE: &str = "pybridge_resilience_breaker_state";
/// Breakers held by registries (gauge). Labels: none.
pub const REGISTRY_BREAKERS: &str = "pybridge_resilience_registry_breakers";
/// Calls a bulkhead rejected because its queue was full (counter). Label `bulkhead`.
pub const BULKHEAD_REJECTIONS_TOTAL: &str = "pybridge_resilience_bulkhead_rejections_total";
/// Operations dropped by a timeout (counter). Labels: none.
pub const TIMEOUTS_TOTAL: &str = "pybridge_resilience_timeouts_total";

/// Registers a description for every metric above with the installed
/// recorder (for Prometheus `# HELP` lines). Call it once after installing
/// the recorder; without one it does nothing.
pub fn describe() {
    use ::metrics::{describe_counter, describe_gauge};
    describe_counter!(RETRIES_TOTAL, "Retries started by retry policies.");
    describe_counter!(
        RETRY_STOPS_TOTAL,
        "Retry policy runs that gave up, by reason."
    );
    describe_counter!(
        BREAKER_TRANSITIONS_TOTAL,
        "Circuit breaker state changes, by target state."
    );
    describe_counter!(
        BREAKER_REJECTIONS_TOTAL,
        "Calls rejected by circuit breakers, by reason."
    );
    describe_gauge!(
        BREAKER_STATE,
        "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 isolated."
    );
    describe_gauge!(REGISTRY_BREAKERS, "Circuit breakers held by registries.");
    describe_counter!(
        BULKHEAD_REJECTIONS_TOTAL,
        "Calls rejected by full bulkheads."
    );
    describe_counter!(TIMEOUTS_TOTAL, "Operations dropped by a timeout.");
}
