//! The one source of "now". Truncated to microseconds, the precision PostgreSQL keeps, so a value
//! read back equals the value written on both databases (keyset cursors depend on it).

use chrono::{DateTime, DurationRound, Utc};

pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    t.duration_trunc(chrono::Duration::microseconds(1)).unwrap_or(t)
}

/// ISO-8601 UTC with milliseconds, as JavaScript's `Date` prints it (the API's and exports' form).
pub fn iso8601(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
