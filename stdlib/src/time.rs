//! Time zones, calendars and deadline arithmetic for the engine (LANGUAGE.md
//! §3.4, §3.5 and §3.8).
//!
//! Conventions, shared with the compiler's IR:
//!
//! - an *instant* is an `i64` count of milliseconds since the Unix epoch, UTC;
//! - a *date* is an `i32` count of days since 1970-01-01 (a local calendar
//!   date: which instants it covers depends on a zone);
//! - a *time of day* is a `u32` count of seconds after local midnight;
//! - weekdays are numbered 0 = Monday … 6 = Sunday;
//! - zones are IANA names, spelled exactly (`Europe/London`, `UTC`).
//!
//! Nothing here reads the clock: the current time is always an argument.
//! An unknown zone name gives `None` (or `false` for the yes/no questions).

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone};
use chrono_tz::Tz;
use mon_compiler::ir::{Calendar, ClockDeadline, MaintenanceWindow, Schedule};

const MS_PER_SECOND: i64 = 1_000;
const MS_PER_DAY: i64 = 86_400_000;
const SECONDS_PER_DAY: u32 = 86_400;
/// `NaiveDate::num_days_from_ce` of 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;
/// Further from UTC than any zone's offset has ever been (the largest is +14:00).
const BEYOND_ANY_OFFSET_MS: i64 = 15 * 3_600_000;

/// The zone named `name`; chrono-tz parses by binary search over its table, so
/// there is nothing to gain from a cache.
fn zone(name: &str) -> Option<Tz> {
    name.parse().ok()
}

/// The chrono date of a day number; `None` beyond chrono's range (±262,000 years).
fn naive_date(date: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(date.checked_add(UNIX_EPOCH_DAYS_FROM_CE)?)
}

/// The day number of a chrono date.
fn day_number(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE
}

/// The UTC offset, in milliseconds, that `tz` uses at the instant `ms`.
fn offset_ms(tz: Tz, ms: i64) -> Option<i64> {
    let utc = DateTime::from_timestamp_millis(ms)?.naive_utc();
    Some(i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc()) * MS_PER_SECOND)
}

/// The local calendar date of an instant in `zone`: an event at 23:30 UTC in
/// summer is already the next day in Europe/Berlin, and one at 02:00 UTC is
/// still the previous day in New York.
pub fn local_date(instant_ms: i64, zone_name: &str) -> Option<i32> {
    let tz = zone(zone_name)?;
    let local = DateTime::from_timestamp_millis(instant_ms)?.with_timezone(&tz);
    Some(day_number(local.date_naive()))
}

/// The instant at which the clocks of `zone` read `seconds` after midnight on
/// `date` (LANGUAGE.md §3.4): a time skipped by a spring-forward gap moves
/// forward by the gap (01:30 on 2026-03-29 in London is 02:30 BST, 01:30 UTC);
/// a time repeated by an autumn fall-back takes the earlier instant (01:30 on
/// 2026-10-25 in London is the BST one, 00:30 UTC). `seconds` of a day or more
/// carry into the following days.
pub fn local_to_utc(date: i32, seconds: u32, zone_name: &str) -> Option<i64> {
    let tz = zone(zone_name)?;
    let date = date.checked_add(i32::try_from(seconds / SECONDS_PER_DAY).ok()?)?;
    let time = NaiveTime::from_num_seconds_from_midnight_opt(seconds % SECONDS_PER_DAY, 0)?;
    let naive = naive_date(date)?.and_time(time);
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t.timestamp_millis()),
        LocalResult::Ambiguous(a, b) => Some(a.timestamp_millis().min(b.timestamp_millis())),
        LocalResult::None => Some(across_gap(tz, naive)?),
    }
}

/// A local time that falls in a gap, read with the offset in force just before
/// the gap: the same instant as the local time moved forward by the gap.
///
/// With `wall` the local time read as if it were UTC, and the transition at
/// instant `T` from offset `before` to `after`, being in the gap means
/// `wall - after < T <= wall - before`. So `wall - after` is an instant less
/// than a gap before `T`, where `before` is in force; `after` is in force at
/// `wall + 15h`, past any `T` (offsets stay within ±15h), unless another
/// transition follows within a day, which no zone has done: the fallback then
/// takes `before` from `wall - 15h`, also before `T`.
fn across_gap(tz: Tz, naive: NaiveDateTime) -> Option<i64> {
    let wall = naive.and_utc().timestamp_millis();
    let after = offset_ms(tz, wall.checked_add(BEYOND_ANY_OFFSET_MS)?)?;
    let before = offset_ms(tz, wall.checked_sub(after)?)?;
    let instant = wall.checked_sub(before)?;
    if offset_ms(tz, instant)? == after && before < after {
        return Some(instant);
    }
    let before = offset_ms(tz, wall.checked_sub(BEYOND_ANY_OFFSET_MS)?)?;
    wall.checked_sub(before)
}

/// The instant of a `by` (or `warn at`, `not before`) clock time for the
/// instance of `date`: the local time `day_offset` days after that date, so
/// `by 08:00 +1d` across a DST change is 23 or 25 hours after `by 08:00`.
pub fn clock_deadline(date: i32, deadline: &ClockDeadline) -> Option<i64> {
    let date = date.checked_add(i32::try_from(deadline.day_offset).ok()?)?;
    local_to_utc(date, deadline.seconds, &deadline.zone)
}

/// The weekday of a date, 0 = Monday … 6 = Sunday (1970-01-01 was a Thursday);
/// correct before 1970 too.
pub fn weekday(date: i32) -> u8 {
    (i64::from(date) + 3).rem_euclid(7) as u8
}

/// The calendar with id `id`: calendars are numbered by position, but the id is
/// checked rather than trusted.
fn calendar(calendars: &[Calendar], id: u32) -> Option<&Calendar> {
    let at = usize::try_from(id).ok().and_then(|i| calendars.get(i)).filter(|c| c.id == id);
    at.or_else(|| calendars.iter().find(|c| c.id == id))
}

/// Whether a schedule has an occurrence on `date`: its weekday is one of the
/// schedule's and no `except` calendar lists the date (calendar dates are
/// sorted, so this is a binary search; an unknown calendar id excludes nothing).
pub fn is_scheduled(schedule: &Schedule, calendars: &[Calendar], date: i32) -> bool {
    schedule.weekdays & (1 << weekday(date)) != 0
        && !schedule
            .except
            .iter()
            .filter_map(|&id| calendar(calendars, id))
            .any(|c| c.dates.binary_search(&date).is_ok())
}

/// The first scheduled date among the `limit_days` dates starting at
/// `from_date` (`from_date` itself included); `None` if there is none, so a
/// schedule with no weekdays, or one a calendar blocks out, cannot loop forever.
pub fn next_scheduled(schedule: &Schedule, calendars: &[Calendar], from_date: i32, limit_days: i32) -> Option<i32> {
    if schedule.weekdays & 0x7f == 0 {
        return None;
    }
    (0..limit_days.max(0)).map_while(|i| from_date.checked_add(i)).find(|&d| is_scheduled(schedule, calendars, d))
}

/// Whether `instant_ms` is inside a maintenance window (§3.8). Windows include
/// their start and exclude their end. A fixed window is `from <= t < to`. A
/// weekly one runs from (`from_day`, from time) to the next (`to_day`, to time)
/// in its zone, wrapping across the week end (`sat 22:00 to sun 06:00`, `fri
/// 22:00 to mon 06:00`, `sun 22:00 to mon 02:00`); without days it is daily,
/// wrapping midnight when the end time is earlier (`22:00 to 02:00`); with only
/// one day, the other end is the nearest matching time. A start equal to its
/// end is an empty window. The local boundaries become instants as deadlines
/// do (§3.4), so a boundary in a spring-forward gap moves forward by the gap
/// and an ambiguous one is the earlier instant. An unknown zone or a day
/// number above 6 is never in maintenance.
pub fn in_maintenance(window: &MaintenanceWindow, instant_ms: i64) -> bool {
    match window {
        MaintenanceWindow::Fixed { from_ms, to_ms } => *from_ms <= instant_ms && instant_ms < *to_ms,
        MaintenanceWindow::Weekly { from_day, from_seconds, to_day, to_seconds, zone } => {
            in_weekly(*from_day, *from_seconds, *to_day, *to_seconds, zone, instant_ms).unwrap_or(false)
        }
    }
}

/// [`in_maintenance`] for a weekly or daily window; `None` for an unknown zone
/// or bad day numbers.
fn in_weekly(
    from_day: Option<u8>,
    from_seconds: u32,
    to_day: Option<u8>,
    to_seconds: u32,
    zone_name: &str,
    instant_ms: i64,
) -> Option<bool> {
    if from_day.is_some_and(|d| d > 6) || to_day.is_some_and(|d| d > 6) {
        return None;
    }
    let wraps = to_seconds < from_seconds;
    // The window's start weekday (`None`: every day) and how many dates its end is after its start.
    let (start_day, span_days) = match (from_day, to_day) {
        (None, None) => (None, i32::from(wraps)),
        (Some(from), None) => (Some(from), i32::from(wraps)),
        (None, Some(to)) => (Some((to + 7 - u8::from(wraps)) % 7), i32::from(wraps)),
        (Some(from), Some(to)) => {
            let days = (i32::from(to) - i32::from(from)).rem_euclid(7);
            (Some(from), if days == 0 && wraps { 7 } else { days })
        }
    };
    // A window containing the instant started no later than about its local
    // date (a day later only where clocks went back across midnight) and at
    // most its span before it.
    let today = local_date(instant_ms, zone_name)?;
    for start in (today - span_days - 1)..=(today + 1) {
        if start_day.is_some_and(|d| weekday(start) != d) {
            continue;
        }
        let from = local_to_utc(start, from_seconds, zone_name)?;
        let to = local_to_utc(start + span_days, to_seconds, zone_name)?;
        if from <= instant_ms && instant_ms < to {
            return Some(true);
        }
    }
    Some(false)
}

/// An instant as RFC 3339 in UTC with a `Z`, showing milliseconds only when
/// there are some (`2026-03-02T08:00:00Z`, `2026-03-02T08:00:01.250Z`); total
/// over `i64`, with years beyond 0000–9999 signed as ISO 8601 expands them.
pub fn format_rfc3339(instant_ms: i64) -> String {
    let days = instant_ms.div_euclid(MS_PER_DAY);
    let ms_of_day = instant_ms.rem_euclid(MS_PER_DAY);
    let (hour, minute) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
    let (second, millis) = (ms_of_day / 1_000 % 60, ms_of_day % 1_000);
    let mut text = format!("{}T{hour:02}:{minute:02}:{second:02}", format_civil(days));
    if millis != 0 {
        text.push_str(&format!(".{millis:03}"));
    }
    text.push('Z');
    text
}

/// The instant of an RFC 3339 timestamp with any offset (`Z`, `+01:00`),
/// accepting a lowercase `t` or `z` (and a space for the `T`), as the compiler
/// does for timestamp literals; fractions finer than a millisecond are dropped.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    // Every event carries a timestamp, so the common shape is parsed by hand;
    // anything unusual goes to chrono, which decides.
    fast_rfc3339(text.as_bytes()).or_else(|| DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis()))
}

/// `YYYY-MM-DDTHH:MM:SS[.fff...](Z|+HH:MM|-HH:MM)`, validated; `None` for
/// anything else (including leap seconds), which the caller hands to chrono.
fn fast_rfc3339(b: &[u8]) -> Option<i64> {
    fn digits(b: &[u8]) -> Option<i64> {
        b.iter().try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
    }
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute, second) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    if !(1..=12).contains(&month) || day < 1 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if day > month_days[(month - 1) as usize] {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let fraction = &b[start..i.min(start + 3)];
        millis = digits(fraction)? * 10i64.pow(3 - fraction.len() as u32);
    }
    let offset_minutes = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some((days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60) * 1000 + millis)
}

/// A date as `YYYY-MM-DD` (`2026-03-02`); total over `i32`, years beyond
/// 0000–9999 signed (`+12345-01-01`, `-0001-12-31`), which [`parse_date`] reads back.
pub fn format_date(date: i32) -> String {
    format_civil(i64::from(date))
}

/// The date of `YYYY-MM-DD`, if it exists (`2026-02-29` does not); a sign and
/// more year digits are accepted for what [`format_date`] writes outside 0000–9999.
pub fn parse_date(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => (1, text),
    };
    let mut parts = rest.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if parts.next().is_some() || year.len() < 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    if !digits(year) || !digits(month) || !digits(day) || (year.len() > 4 && text.as_bytes()[0].is_ascii_digit()) {
        return None;
    }
    let year = sign * year.parse::<i64>().ok()?;
    let (month, day) = (month.parse::<u32>().ok()?, day.parse::<u32>().ok()?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    i32::try_from(days_from_civil(year, month, day)).ok()
}

/// `YYYY-MM-DD` of a day number, by Howard Hinnant's `civil_from_days`.
fn format_civil(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    match year {
        0..=9999 => format!("{year:04}-{month:02}-{day:02}"),
        10000.. => format!("+{year}-{month:02}-{day:02}"),
        _ => format!("-{:04}-{month:02}-{day:02}", -year),
    }
}

/// The proleptic Gregorian (year, month, day) of a day number.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

/// The day number of a proleptic Gregorian date (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let day_of_year = i64::from((153 * ((month + 9) % 12) + 2) / 5 + day - 1);
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0) => 29,
        2 => 28,
        _ => 31,
    }
}
