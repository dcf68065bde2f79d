//! Wall-clock helpers shared by adapters that must agree on "now".

use chrono::{DateTime, Utc};

/// Seconds since the Unix epoch, the unit of item expiry.
pub fn now_epoch() -> i64 {
    Utc::now().timestamp()
}

/// The current instant, for records.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}
