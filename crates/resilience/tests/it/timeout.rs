//! Timeouts report how long the operation ran.

use std::time::Duration;

use pybridge_resilience::{Classify, Error, RetryHint, timeout, timeout_at};
use tokio::time::Instant;

use crate::support::ms;

#[tokio::test(start_paused = true)]
async fn a_timeout_reports_elapsed_time_and_limit() {
    let start = Instant::now();
    let result = timeout(ms(100), tokio::time::sleep(Duration::from_secs(10))).await;
    let error = result.expect_err("timed out");
    assert_eq!(
        error,
        Error::Timeout {
            elapsed: ms(100),
            limit: ms(100)
        }
    );
    assert_eq!(start.elapsed(), ms(100));
    assert_eq!(error.to_string(), "timed out after 100ms (limit 100ms)");
    assert_eq!(error.retry_hint(), RetryHint::Yes);
    assert!(
        error.is_dependency_failure(),
        "a slow dependency is the dependency's fault"
    );
}

#[tokio::test(start_paused = true)]
async fn a_future_that_finishes_in_time_returns_its_output() {
    let value = timeout(ms(100), async {
        tokio::time::sleep(ms(99)).await;
        7
    })
    .await;
    assert_eq!(value, Ok(7));
}

#[tokio::test(start_paused = true)]
async fn timeout_at_uses_the_deadline() {
    tokio::time::advance(ms(5)).await;
    let deadline = Instant::now() + ms(40);
    tokio::time::advance(ms(10)).await;
    let error = timeout_at(deadline, std::future::pending::<()>())
        .await
        .unwrap_err();
    assert_eq!(
        error,
        Error::Timeout {
            elapsed: ms(30),
            limit: ms(30)
        }
    );
}
