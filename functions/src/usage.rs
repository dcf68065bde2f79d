//! Writes API key usage in the background, every few seconds.

use std::sync::Arc;
use std::time::Duration;

use crate::deps::Deps;

pub const FLUSH_EVERY: Duration = Duration::from_secs(2);

pub async fn flush_forever(deps: Arc<Deps>) {
    let mut every = tokio::time::interval(FLUSH_EVERY);
    loop {
        every.tick().await;
        if let Err(e) = deps.usage.flush(deps.table.as_ref()).await {
            tracing::warn!(cause = %format!("{e:#}"), "writing API key usage failed; it is kept for the next try");
        }
    }
}
