//! What several suites share: the fixed "now" their sessions and plans are
//! dated against, so that ages and expiries never depend on the clock.

use chrono::{DateTime, TimeZone, Utc};

pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0)
        .single()
        .unwrap_or_default()
}
