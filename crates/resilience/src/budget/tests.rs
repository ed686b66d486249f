//! Unit tests of the retry budget, on paused time.

use std::time::Duration;

use super::RetryBudget;

fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a test runtime")
}

fn budget(ttl_secs: u64, min_per_sec: u32, ratio: f64) -> RetryBudget {
    RetryBudget::builder()
        .ttl(Duration::from_secs(ttl_secs))
        .min_retries_per_sec(min_per_sec)
        .retry_ratio(ratio)
        .build()
        .expect("a valid budget")
}

/// Withdraws until refused and returns how many withdrawals succeeded.
fn drain(budget: &RetryBudget) -> u64 {
    let mut taken = 0;
    while budget.try_withdraw() {
        taken += 1;
        assert!(taken < 1_000_000, "the budget never ran out");
    }
    taken
}

#[test]
fn an_empty_budget_refuses() {
    paused().block_on(async {
        let budget = budget(1, 0, 1.0);
        assert!(!budget.try_withdraw());
        assert_eq!(budget.available(), 0);
    });
}

#[test]
fn retries_are_a_ratio_of_calls() {
    paused().block_on(async {
        let budget = budget(10, 0, 0.2);
        for _ in 0..4 {
            budget.deposit();
        }
        assert!(
            !budget.try_withdraw(),
            "four calls do not earn a retry at 0.2"
        );
        budget.deposit();
        assert_eq!(budget.available(), 1);
        assert_eq!(drain(&budget), 1);
        for _ in 0..50 {
            budget.deposit();
        }
        assert_eq!(drain(&budget), 10);
    });
}

#[test]
fn the_reserve_allows_min_per_sec_over_the_ttl() {
    paused().block_on(async {
        let budget = budget(10, 3, 0.2);
        assert_eq!(drain(&budget), 30);
        // Withdrawals expire with the ttl, which refills the reserve.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(budget.available(), 0, "half the ttl is not enough");
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(drain(&budget), 30);
    });
}

#[test]
fn deposits_expire_after_the_ttl() {
    paused().block_on(async {
        let budget = budget(2, 0, 1.0);
        budget.deposit();
        budget.deposit();
        tokio::time::advance(Duration::from_millis(1500)).await;
        budget.deposit();
        assert_eq!(budget.available(), 3);
        // The first two deposits are now older than 2 s; the third is not.
        tokio::time::advance(Duration::from_millis(700)).await;
        assert_eq!(budget.available(), 1);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(budget.available(), 0);
    });
}

#[test]
fn slot_rotation_keeps_deposits_within_the_ttl() {
    paused().block_on(async {
        // One deposit per 100 ms for 3 s into a 1 s budget: at any moment
        // only the last second's ten (or eleven, counting the slot being
        // filled) deposits count.
        let budget = budget(1, 0, 1.0);
        for _ in 0..30 {
            budget.deposit();
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        let available = budget.available();
        assert!(
            (9..=11).contains(&available),
            "{available} deposits counted"
        );
    });
}

#[test]
fn concurrent_withdrawals_never_overdraw() {
    // Real threads, no runtime: the budget's clock is then the system clock,
    // and its 60 s ttl cannot rotate away the reserve during the test.
    let budget = budget(60, 1, 0.2);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let budget = budget.clone();
            std::thread::spawn(move || (0..100).filter(|_| budget.try_withdraw()).count())
        })
        .collect();
    let taken: usize = threads
        .into_iter()
        .map(|thread| thread.join().expect("no panic"))
        .sum();
    assert_eq!(taken, 60);
}

#[test]
fn validation() {
    let invalid = |builder: super::RetryBudgetBuilder, field: &str| {
        let error = builder.build().expect_err("invalid budget");
        assert!(error.to_string().contains(field), "{error}");
    };
    invalid(
        RetryBudget::builder().ttl(Duration::from_millis(999)),
        "ttl",
    );
    invalid(RetryBudget::builder().ttl(Duration::from_secs(61)), "ttl");
    invalid(RetryBudget::builder().retry_ratio(-0.1), "retry_ratio");
    invalid(RetryBudget::builder().retry_ratio(f64::NAN), "retry_ratio");
    invalid(RetryBudget::builder().retry_ratio(1000.5), "retry_ratio");
    assert!(RetryBudget::builder().retry_ratio(0.0).build().is_ok());
}
