//! `RateLimiter` in process: the same one-minute windows as the table limiter, without a
//! write per request.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use oratio_core::ratelimit::{Decision, RateLimiter};
use oratio_core::table::TableError;
use oratio_core::time::now_epoch;

#[derive(Default)]
pub struct InMemoryRateLimiter {
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl InMemoryRateLimiter {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RateLimiter for InMemoryRateLimiter {
    async fn check(&self, bucket: &str, per_minute: u32) -> Result<Decision, TableError> {
        let now = now_epoch();
        let window = now - now.rem_euclid(60);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > 10_000 {
            windows.retain(|_, (start, _)| *start == window);
        }
        let entry = windows.entry(bucket.to_owned()).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        if entry.1 >= per_minute {
            return Ok(Decision::Limited { retry_after_secs: u64::try_from(window + 60 - now).unwrap_or(1).max(1) });
        }
        entry.1 += 1;
        Ok(Decision::Allowed)
    }
}
