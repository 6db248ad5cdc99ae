//! Upstream's `duration.HumanDuration` (k8s.io/apimachinery/pkg/util/duration), used for AGE.

use chrono::Duration;

/// A succinct duration with ~2-3 significant figures: "5s", "3m10s", "70m", "2d1h", "2y1d".
/// Durations below -1s print "<invalid>" and small negatives (clock skew) print "0s".
pub fn human_duration(d: Duration) -> String {
    // Whole seconds truncated toward zero, as Go's int(d.Seconds()).
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d.num_minutes();
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d.num_hours();
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{dy}d", hours / 24 / 365) };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: i64) -> Duration {
        Duration::seconds(n)
    }
    fn ms(n: i64) -> Duration {
        Duration::milliseconds(n)
    }
    const MIN: i64 = 60;
    const HOUR: i64 = 3600;
    const DAY: i64 = 24 * HOUR;
    const YEAR: i64 = 365 * DAY;

    /// Cases from upstream's TestHumanDuration and TestHumanDurationBoundaries.
    #[test]
    fn matches_upstream_cases() {
        let cases: Vec<(Duration, &str)> = vec![
            (s(1), "1s"),
            (s(70), "70s"),
            (s(190), "3m10s"),
            (s(70 * MIN), "70m"),
            (s(47 * HOUR), "47h"),
            (s(49 * HOUR), "2d1h"),
            (s((8 * 24 + 2) * HOUR), "8d"),
            (s(367 * DAY), "367d"),
            (s((365 * 2 * 24 + 25) * HOUR), "2y1d"),
            (s((365 * 8 * 24 + 2) * HOUR), "8y"),
            (s(-2), "<invalid>"),
            (s(-2) + Duration::nanoseconds(1), "0s"),
            (s(0), "0s"),
            (s(1) - ms(1), "0s"),
            (s(2 * MIN) - ms(1), "119s"),
            (s(2 * MIN), "2m"),
            (s(2 * MIN + 1), "2m1s"),
            (s(10 * MIN) - ms(1), "9m59s"),
            (s(10 * MIN), "10m"),
            (s(10 * MIN + 1), "10m"),
            (s(3 * HOUR) - ms(1), "179m"),
            (s(3 * HOUR), "3h"),
            (s(3 * HOUR + MIN), "3h1m"),
            (s(8 * HOUR) - ms(1), "7h59m"),
            (s(8 * HOUR), "8h"),
            (s(8 * HOUR + 59 * MIN), "8h"),
            (s(2 * DAY) - ms(1), "47h"),
            (s(2 * DAY), "2d"),
            (s(2 * DAY + HOUR), "2d1h"),
            (s(8 * DAY) - ms(1), "7d23h"),
            (s(8 * DAY), "8d"),
            (s(8 * DAY + 23 * HOUR), "8d"),
            (s(2 * YEAR) - ms(1), "729d"),
            (s(2 * YEAR), "2y"),
            (s(2 * YEAR + 23 * HOUR), "2y"),
            (s(2 * YEAR + 23 * HOUR + 59 * MIN), "2y"),
            (s(2 * YEAR + DAY) - ms(1), "2y"),
            (s(2 * YEAR + DAY), "2y1d"),
            (s(3 * YEAR), "3y"),
            (s(4 * YEAR), "4y"),
            (s(5 * YEAR), "5y"),
            (s(6 * YEAR), "6y"),
            (s(7 * YEAR), "7y"),
            (s(8 * YEAR) - ms(1), "7y364d"),
            (s(8 * YEAR), "8y"),
            (s(8 * YEAR + 364 * DAY), "8y"),
            (s(9 * YEAR), "9y"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(d), want, "{d:?}");
        }
    }
}
