//! Shared fixtures for the printers' tests: a fixed clock and timestamps relative to it.

use chrono::{DateTime, Duration, SecondsFormat, Utc};

pub(crate) fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_714_564_800, 0).unwrap_or_default() // 2024-05-01T12:00:00Z
}

/// An RFC 3339 timestamp `secs` seconds before [`now`].
pub(crate) fn ago(secs: i64) -> String {
    (now() - Duration::seconds(secs)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Cells from string/number literals, for compact expectations.
#[macro_export]
macro_rules! row {
    ($($cell:expr),* $(,)?) => { vec![$(serde_json::json!($cell)),*] };
}
