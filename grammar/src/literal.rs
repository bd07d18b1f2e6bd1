//! Durations, times of day and dates: reading their text and printing it
//! canonically.
//!
//! The parser reads these literals and the formatter prints them; both sides
//! live here so that neither calls into the other, and so that what the
//! parser suggests for a badly written duration (`30m1h`) is exactly what the
//! formatter would print (`1h30m`). Nothing here knows about spans or errors:
//! each reader says what it found and the parser decides what to report.

const DAY: u64 = 86_400_000;
const HOUR: u64 = 3_600_000;
const MINUTE: u64 = 60_000;
const SECOND: u64 = 1_000;

/// A duration token as the grammar accepts it (`1h30m`, `250ms`), read.
pub(crate) struct DurationValue {
    /// The total, saturated at `u64::MAX` when it overflowed.
    pub millis: u64,
    /// The units did not come largest first (`30m1h`): the value is still
    /// their sum, but the spec asks for one spelling.
    pub units_out_of_order: bool,
    /// The arithmetic overflowed `u64` milliseconds.
    pub overflow: bool,
}

impl DurationValue {
    /// Instants are `i64` milliseconds, so a longer duration means nothing.
    pub fn out_of_range(&self) -> bool {
        self.overflow || self.millis > i64::MAX as u64
    }
}

/// Reads a duration token. The grammar guarantees digits followed by one of
/// the units `ms s m h d`, repeated.
pub(crate) fn read_duration(text: &str) -> DurationValue {
    let mut millis: u64 = 0;
    let mut number: u64 = 0;
    let mut overflow = false;
    // Units come largest first (`1h30m`, not `30m1h`).
    let mut previous_unit = u64::MAX;
    let mut units_out_of_order = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(d) = c.to_digit(10) {
            match number.checked_mul(10).and_then(|n| n.checked_add(u64::from(d))) {
                Some(n) => number = n,
                None => overflow = true,
            }
            continue;
        }
        let unit = match c {
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            's' => SECOND,
            'm' => MINUTE,
            'h' => HOUR,
            // `d`, the only unit left in the grammar.
            _ => DAY,
        };
        match number.checked_mul(unit).and_then(|n| millis.checked_add(n)) {
            Some(total) => millis = total,
            None => overflow = true,
        }
        units_out_of_order |= unit >= previous_unit;
        previous_unit = unit;
        number = 0;
    }
    DurationValue { millis, units_out_of_order, overflow }
}

/// Reads a duration written as in rules (`30s`, `1h30m`, `250ms`) for
/// flags and configuration; `None` if it is not one, or its units are not
/// largest first, or it overflows.
pub fn parse_duration(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        i += digits;
        let unit = match (bytes.get(i), bytes.get(i + 1)) {
            (Some(b'm'), Some(b's')) => 2,
            (Some(b's' | b'm' | b'h' | b'd'), _) => 1,
            _ => 0,
        };
        if digits == 0 || unit == 0 {
            return None;
        }
        i += unit;
    }
    let value = read_duration(text);
    (!text.is_empty() && !value.units_out_of_order && !value.out_of_range()).then_some(value.millis)
}

/// A duration as mon writes it: largest unit first, each unit at most once
/// (`90000` ms is `1m30s`). The formatter, the parser's suggestions and the
/// CLI's reports all use this one.
pub fn format_duration(millis: u64) -> String {
    if millis == 0 {
        return "0s".to_string();
    }
    let mut text = String::new();
    let mut rest = millis;
    for (unit, name) in [(DAY, "d"), (HOUR, "h"), (MINUTE, "m"), (SECOND, "s"), (1, "ms")] {
        if rest >= unit {
            text.push_str(&format!("{}{name}", rest / unit));
            rest %= unit;
        }
    }
    text
}

/// Reads `H:MM`, `HH:MM` or `HH:MM:SS` into hour, minute and second, and
/// whether every part is in range (`24:00` and `08:60` are not).
pub(crate) fn read_time_of_day(text: &str) -> (u32, u32, u32, bool) {
    // A part that does not read as a number is out of range on purpose.
    let mut parts = text.split(':').map(|p| p.parse::<u32>().unwrap_or(99));
    let hour = parts.next().unwrap_or(0);
    let minute = parts.next().unwrap_or(0);
    let second = parts.next().unwrap_or(0);
    let valid = hour <= 23 && minute <= 59 && second <= 59;
    (hour, minute, second, valid)
}

/// A time of day as mon writes it: `HH:MM`, with `:SS` only when needed.
pub(crate) fn format_time_of_day(hour: u32, minute: u32, second: u32) -> String {
    if second == 0 {
        format!("{hour:02}:{minute:02}")
    } else {
        format!("{hour:02}:{minute:02}:{second:02}")
    }
}

/// Reads `YYYY-MM-DD` into year, month and day, and whether that day exists
/// (`2026-02-29` does not).
pub(crate) fn read_date(text: &str) -> (i32, u32, u32, bool) {
    let mut parts = text.split('-');
    let year = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let month = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let day = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let valid = (1..=12).contains(&month) && day != 0 && day <= days_in_month(year, month);
    (year, month, day, valid)
}

/// A date as mon writes it: `YYYY-MM-DD`.
pub(crate) fn format_date(year: i32, month: u32, day: u32) -> String {
    format!("{year:04}-{month:02}-{day:02}")
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_for_flags_and_refuse_what_rules_refuse() {
        assert_eq!(parse_duration("30s"), Some(30_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("250ms"), Some(250));
        assert_eq!(parse_duration("2d"), Some(172_800_000));
        for bad in ["", "30", "s", "30m1h", "1.5h", "30 s", "-1m", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn durations_are_canonical() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(250), "250ms");
        assert_eq!(format_duration(90_000), "1m30s");
        assert_eq!(format_duration(86_400_000), "1d");
        assert_eq!(format_duration(86_400_000 + 3_600_000 * 2 + 5), "1d2h5ms");
    }

    #[test]
    fn durations_read_back_as_they_print() {
        for millis in [0, 1, 250, 1_000, 90_000, 5_400_000, 86_400_000 + 5] {
            let read = read_duration(&format_duration(millis));
            assert_eq!(read.millis, millis);
            assert!(!read.units_out_of_order && !read.overflow);
        }
        let swapped = read_duration("30m1h");
        assert_eq!(swapped.millis, 5_400_000);
        assert!(swapped.units_out_of_order);
        assert!(read_duration("99999999999999999999d").out_of_range());
    }

    #[test]
    fn times_and_dates_are_checked() {
        assert_eq!(read_time_of_day("8:05"), (8, 5, 0, true));
        assert!(!read_time_of_day("24:00").3);
        assert_eq!(format_time_of_day(8, 5, 0), "08:05");
        assert_eq!(format_time_of_day(17, 30, 15), "17:30:15");
        assert_eq!(read_date("2024-02-29"), (2024, 2, 29, true));
        assert!(!read_date("2026-02-29").3);
        assert!(!read_date("2026-13-01").3);
        assert_eq!(format_date(2026, 3, 2), "2026-03-02");
    }
}
