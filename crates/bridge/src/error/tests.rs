//! Kinds, retry hints and the error objects clients see, one `check` per failure.

use std::time::Duration;

use pybridge_pool::{Error as PoolError, TimeoutStage};
use pybridge_protocol::ErrorCode;
use serde_json::json;

use super::{Error, ErrorKind};

fn pool(source: PoolError) -> Error {
    Error::Pool {
        method: "m.x".into(),
        source,
    }
}

/// The kind, whether a retry may help, the JSON-RPC code, and the safe data.
fn check(error: Error, kind: ErrorKind, retryable: bool, code: ErrorCode) {
    assert_eq!(error.kind(), kind, "{}", error.report());
    assert_eq!(error.is_retryable(), retryable, "{}", error.report());
    let safe = error.to_safe_error_object();
    assert_eq!(safe.code, code, "{}", error.report());
    let data = safe.data_as::<serde_json::Value>().unwrap().unwrap();
    assert_eq!(
        data,
        json!({"code": kind.as_str(), "retryable": retryable}),
        "{}",
        error.report()
    );
    assert_eq!(
        error
            .to_error_object()
            .data_as::<serde_json::Value>()
            .unwrap()
            .unwrap()["code"],
        kind.as_str()
    );
}

#[test]
fn each_failure_has_its_kind_retry_hint_and_json_rpc_code() {
    let timeout = || {
        pool(PoolError::Timeout {
            elapsed: Duration::from_millis(30),
            stage: TimeoutStage::Queued,
            worker: None,
        })
    };
    check(
        pool(PoolError::QueueFull { capacity: 4 }),
        ErrorKind::QueueFull,
        true,
        ErrorCode::OVERLOADED,
    );
    check(timeout(), ErrorKind::Timeout, true, ErrorCode::TIMEOUT);
    check(
        Error::DeadlineExceeded {
            method: "m.x".into(),
            attempts: 3,
            last: Box::new(timeout()),
        },
        ErrorKind::Timeout,
        true,
        ErrorCode::TIMEOUT,
    );
    check(
        pool(PoolError::ShuttingDown),
        ErrorKind::ShuttingDown,
        false,
        ErrorCode::SHUTTING_DOWN,
    );
    check(
        Error::ShuttingDown,
        ErrorKind::ShuttingDown,
        false,
        ErrorCode::SHUTTING_DOWN,
    );
    check(
        Error::NoWorker,
        ErrorKind::Config,
        false,
        ErrorCode::INTERNAL_ERROR,
    );
    // A schema compiled on the method's first call that does not compile
    // is the catalog's or worker's fault, on either side of the call.
    let bad_schema = || pybridge_service::Error::Catalog {
        file: "manifest:worker".into(),
        key: "methods[0].params_schema".into(),
        problem: pybridge_service::CatalogProblem::InvalidSchema {
            reason: "not a schema".into(),
        },
    };
    check(
        Error::Rejected {
            method: "m.x".into(),
            source: bad_schema(),
        },
        ErrorKind::Config,
        false,
        ErrorCode::INTERNAL_ERROR,
    );
    check(
        Error::InvalidResult {
            method: "m.x".into(),
            source: bad_schema(),
        },
        ErrorKind::Config,
        false,
        ErrorCode::INTERNAL_ERROR,
    );
    check(
        Error::Shared(std::sync::Arc::new(pool(PoolError::QueueFull {
            capacity: 1,
        }))),
        ErrorKind::QueueFull,
        true,
        ErrorCode::OVERLOADED,
    );
}

#[test]
fn a_deadline_passed_over_retries_names_its_last_cause_safely() {
    let error = Error::DeadlineExceeded {
        method: "m.x".into(),
        attempts: 2,
        last: Box::new(pool(PoolError::QueueFull { capacity: 8 })),
    };
    let safe = error.to_safe_error_object();
    assert_eq!(
        safe.message,
        "deadline of `m.x` passed after 2 attempt(s): call to `m.x` failed: the wait queue is full (8 calls waiting)"
    );
}

#[test]
fn kind_names_are_distinct_snake_case_and_server_side_ones_are_the_serving_side_s() {
    use ErrorKind as K;
    let all = [
        K::InvalidParams,
        K::MethodNotFound,
        K::InvalidResult,
        K::RemoteError,
        K::WorkerFailed,
        K::Timeout,
        K::QueueFull,
        K::Unavailable,
        K::ShuttingDown,
        K::ResponseTooLarge,
        K::RequestTooLarge,
        K::CircuitOpen,
        K::DecodeError,
        K::Config,
        K::StartFailed,
        K::Internal,
    ];
    let names: std::collections::BTreeSet<&str> = all.iter().map(|k| k.as_str()).collect();
    assert_eq!(names.len(), all.len(), "{names:?}");
    for kind in all {
        let name = kind.as_str();
        assert!(
            name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{name}"
        );
        assert_eq!(serde_json::to_value(kind).unwrap(), json!(name));
        assert_eq!(kind.to_string(), name);
    }
    let server: Vec<&str> = all
        .iter()
        .filter(|k| k.is_server_side())
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        server,
        [
            "invalid_result",
            "remote_error",
            "worker_failed",
            "unavailable",
            "response_too_large",
            "decode_error",
            "internal"
        ]
    );
}
