//! The names of the pool's metrics, defined once.
//!
//! Per-worker series are labelled with the worker's *slot* (its position in
//! the pool), not its id: ids grow with every restart and would make the
//! series count grow without bound.

/// Counter: worker processes spawned.
pub const WORKERS_SPAWNED: &str = "pybridge_pool_worker_spawns_total";
/// Counter: worker processes that ended, by `reason`.
pub const WORKERS_EXITED: &str = "pybridge_pool_worker_exits_total";
/// Counter: failed starts.
pub const START_FAILURES: &str = "pybridge_pool_start_failures_total";
/// Counter: healthy workers recycled, by `reason`.
pub const WORKERS_RECYCLED: &str = "pybridge_pool_worker_recycles_total";
/// Gauge: workers ready to take calls.
pub const WORKERS_READY: &str = "pybridge_pool_workers_ready";
/// Gauge: calls waiting for a worker.
pub const QUEUE_DEPTH: &str = "pybridge_pool_queue_depth";
/// Counter: calls rejected because the queue was full.
pub const QUEUE_REJECTED: &str = "pybridge_pool_queue_rejected_total";
/// Gauge: calls in flight on a worker, by `slot`.
pub const IN_FLIGHT: &str = "pybridge_pool_in_flight";
/// Counter: calls answered, by `slot`.
pub const REQUESTS: &str = "pybridge_pool_requests_total";
/// Histogram: seconds from a call's admission to a worker (its start, or
/// the end of its queue wait) to its answer, by `slot`.
pub const REQUEST_DURATION: &str = "pybridge_pool_request_duration_seconds";
/// Counter: frames from workers that were not valid messages, by `kind`.
pub const BAD_FRAMES: &str = "pybridge_pool_bad_frames_total";
/// Counter: responses no call awaited.
pub const UNROUTABLE: &str = "pybridge_pool_unroutable_responses_total";
/// Counter: responses that arrived after their call's deadline.
pub const LATE_RESPONSES: &str = "pybridge_pool_late_responses_total";

/// Label: the worker's slot.
pub const LABEL_SLOT: &str = "slot";
/// Label: why something happened.
pub const LABEL_REASON: &str = "reason";
/// Label: the kind of bad frame.
pub const LABEL_KIND: &str = "kind";

pub(crate) fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(WORKERS_SPAWNED, "Worker processes spawned");
    describe_counter!(WORKERS_EXITED, "Worker processes that ended, by reason");
    describe_counter!(START_FAILURES, "Worker starts that failed");
    describe_counter!(WORKERS_RECYCLED, "Healthy workers replaced, by reason");
    describe_gauge!(WORKERS_READY, "Workers ready to take calls");
    describe_gauge!(QUEUE_DEPTH, "Calls waiting for a worker");
    describe_counter!(
        QUEUE_REJECTED,
        "Calls rejected because the wait queue was full"
    );
    describe_gauge!(IN_FLIGHT, "Calls in flight on a worker, by slot");
    describe_counter!(REQUESTS, "Calls answered by a worker, by slot");
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time from a call's admission to a worker (after any queue wait) to its answer, by slot"
    );
    describe_counter!(
        BAD_FRAMES,
        "Frames from workers that were not valid messages, by kind"
    );
    describe_counter!(UNROUTABLE, "Responses from workers that no call awaited");
    describe_counter!(
        LATE_RESPONSES,
        "Responses that arrived after their call's deadline"
    );
}
