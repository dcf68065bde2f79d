//! The `RateLimiter` contract.

use std::sync::Arc;

use oratio_core::ratelimit::{Decision, RateLimiter};

type Subject = Arc<dyn RateLimiter>;

pub async fn requests_over_the_limit_are_refused_with_a_retry_time(limiter: Subject) {
    // A window boundary could fall inside the loop; then the new window starts afresh,
    // which the loop tolerates by checking at most one extra allowance.
    let mut allowed = 0;
    let mut refusal = None;
    for _ in 0..12 {
        match limiter.check("key_a", 5).await.expect("check") {
            Decision::Allowed => allowed += 1,
            Decision::Limited { retry_after_secs } => {
                refusal = Some(retry_after_secs);
                break;
            }
        }
    }
    assert!((5..=10).contains(&allowed), "allowed {allowed}");
    let retry = refusal.expect("refused once over the limit");
    assert!((1..=60).contains(&retry), "retry after {retry}");
}

pub async fn buckets_are_counted_apart(limiter: Subject) {
    for _ in 0..3 {
        assert_eq!(limiter.check("key_b", 3).await.expect("check"), Decision::Allowed);
    }
    assert_eq!(limiter.check("key_c", 3).await.expect("check"), Decision::Allowed);
}

pub async fn concurrent_requests_never_exceed_the_limit(limiter: Subject) {
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.check("key_d", 10).await })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        if task.await.expect("task").expect("check") == Decision::Allowed {
            allowed += 1;
        }
    }
    assert!((10..=20).contains(&allowed), "allowed {allowed} of 30 with a limit of 10");
}

#[macro_export]
macro_rules! ratelimit_contract {
    ($factory:path) => {
        $crate::contract_cases!(
            $factory,
            ratelimit,
            [
                requests_over_the_limit_are_refused_with_a_retry_time,
                buckets_are_counted_apart,
                concurrent_requests_never_exceed_the_limit,
            ]
        );
    };
}
