//! The little calendar arithmetic the checker needs to turn literals into
//! values. Deadline arithmetic for the engine lives in `mon-stdlib`.

use chrono::{DateTime, NaiveDate};

const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Days since 1970-01-01 of a calendar date, if it exists.
pub fn days_from_civil(year: i32, month: u32, day: u32) -> Option<i32> {
    NaiveDate::from_ymd_opt(year, month, day).map(|d| chrono::Datelike::num_days_from_ce(&d) - UNIX_EPOCH_DAYS_FROM_CE)
}

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis())
}

/// Whether `name` is an IANA time zone known to chrono-tz.
pub fn is_zone(name: &str) -> bool {
    name.parse::<chrono_tz::Tz>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_is_day_zero() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2026, 3, 2), Some(20514));
        assert_eq!(days_from_civil(2026, 2, 29), None);
    }

    #[test]
    fn timestamps_with_offsets_are_utc_millis() {
        assert_eq!(parse_timestamp("2026-03-02T09:00:00+01:00"), parse_timestamp("2026-03-02T08:00:00Z"));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.5Z"), Some(1500));
    }
}
