//! The `RateLimiter` port: at most N requests a minute per key. In process on one machine;
//! on the table (shared by every Lambda) in AWS.

use async_trait::async_trait;

use crate::table::{Condition, Key, Table, TableError, Update};
use crate::time::now_epoch;

/// The limiter's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Over the limit; the window reopens after this many seconds.
    Limited {
        retry_after_secs: u64,
    },
}

#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one request against `bucket` and says whether it may go ahead.
    async fn check(&self, bucket: &str, per_minute: u32) -> Result<Decision, TableError>;
}

/// Fixed one-minute windows counted in the table: one conditional increment per request,
/// refused once the window's count reaches the limit. Counters expire with their window.
pub struct TableRateLimiter<T: ?Sized> {
    table: std::sync::Arc<T>,
}

impl<T: Table + ?Sized> TableRateLimiter<T> {
    pub fn new(table: std::sync::Arc<T>) -> Self {
        Self { table }
    }
}

#[async_trait]
impl<T: Table + ?Sized> RateLimiter for TableRateLimiter<T> {
    async fn check(&self, bucket: &str, per_minute: u32) -> Result<Decision, TableError> {
        let now = now_epoch();
        let window = now - now.rem_euclid(60);
        let key = Key::new(format!("RATE#{bucket}"), format!("WINDOW#{window}"));
        let under_limit = Condition::Or(vec![
            Condition::AttributeNotExists("count".into()),
            Condition::LessThan("count".into(), i64::from(per_minute).into()),
        ]);
        let counted = self
            .table
            .update(&key, Update::new().add("count", 1).set("expires_at", window + 120), Some(under_limit))
            .await;
        match counted {
            Ok(_) => Ok(Decision::Allowed),
            Err(TableError::ConditionFailed { .. }) => {
                Ok(Decision::Limited { retry_after_secs: u64::try_from(window + 60 - now).unwrap_or(1).max(1) })
            }
            Err(e) => Err(e),
        }
    }
}
