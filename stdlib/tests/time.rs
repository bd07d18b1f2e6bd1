//! Time-zone, calendar and deadline arithmetic (`mon_stdlib::time`), with
//! exact instants around the 2026 daylight-saving changes in London
//! (29 March, 25 October) and New York (8 March, 1 November).

use mon_compiler::ir::{Calendar, ClockDeadline, MaintenanceWindow, Schedule};
use mon_stdlib::time::{
    clock_deadline, format_date, format_rfc3339, in_maintenance, is_scheduled, local_date, local_to_utc,
    next_scheduled, parse_date, parse_rfc3339, weekday,
};

const LONDON: &str = "Europe/London";
const NEW_YORK: &str = "America/New_York";

/// The day number of a `YYYY-MM-DD` date.
fn d(text: &str) -> i32 {
    parse_date(text).unwrap_or_else(|| panic!("bad date {text}"))
}

/// The instant of an RFC 3339 timestamp (parse_rfc3339 is checked against
/// plain numbers in `rfc3339_known_values`).
fn t(text: &str) -> i64 {
    parse_rfc3339(text).unwrap_or_else(|| panic!("bad timestamp {text}"))
}

/// Seconds after midnight of `HH:MM`.
fn hm(hour: u32, minute: u32) -> u32 {
    hour * 3600 + minute * 60
}

// ---------------------------------------------------------------- local_to_utc

#[test]
fn london_spring_forward() {
    let day = d("2026-03-29");
    assert_eq!(local_to_utc(day, 0, LONDON), Some(t("2026-03-29T00:00:00Z")));
    assert_eq!(local_to_utc(day, hm(0, 59), LONDON), Some(t("2026-03-29T00:59:00Z")));
    // 01:00–02:00 does not exist: moved forward by the hour's gap.
    assert_eq!(local_to_utc(day, hm(1, 0), LONDON), Some(t("2026-03-29T01:00:00Z")));
    assert_eq!(local_to_utc(day, hm(1, 30), LONDON), Some(t("2026-03-29T01:30:00Z")));
    assert_eq!(local_to_utc(day, hm(2, 0), LONDON), Some(t("2026-03-29T01:00:00Z")));
    assert_eq!(local_to_utc(day, hm(2, 30), LONDON), Some(t("2026-03-29T01:30:00Z")));
    assert_eq!(local_to_utc(day, hm(12, 0), LONDON), Some(t("2026-03-29T11:00:00Z")));
    assert_eq!(local_to_utc(day - 1, hm(12, 0), LONDON), Some(t("2026-03-28T12:00:00Z")));
    assert_eq!(local_to_utc(day + 1, 0, LONDON), Some(t("2026-03-29T23:00:00Z")));
}

#[test]
fn london_fall_back() {
    let day = d("2026-10-25");
    assert_eq!(local_to_utc(day, 0, LONDON), Some(t("2026-10-24T23:00:00Z")));
    // 01:00–02:00 happens twice: the earlier, BST, instant.
    assert_eq!(local_to_utc(day, hm(1, 0), LONDON), Some(t("2026-10-25T00:00:00Z")));
    assert_eq!(local_to_utc(day, hm(1, 30), LONDON), Some(t("2026-10-25T00:30:00Z")));
    assert_eq!(local_to_utc(day, hm(1, 59) + 59, LONDON), Some(t("2026-10-25T00:59:59Z")));
    assert_eq!(local_to_utc(day, hm(2, 0), LONDON), Some(t("2026-10-25T02:00:00Z")));
    assert_eq!(local_to_utc(day, hm(12, 0), LONDON), Some(t("2026-10-25T12:00:00Z")));
    assert_eq!(local_to_utc(day - 1, hm(12, 0), LONDON), Some(t("2026-10-24T11:00:00Z")));
    assert_eq!(local_to_utc(day + 1, 0, LONDON), Some(t("2026-10-26T00:00:00Z")));
}

#[test]
fn new_york_spring_forward() {
    let day = d("2026-03-08");
    assert_eq!(local_to_utc(day, 0, NEW_YORK), Some(t("2026-03-08T05:00:00Z")));
    assert_eq!(local_to_utc(day, hm(1, 59), NEW_YORK), Some(t("2026-03-08T06:59:00Z")));
    // 02:00–03:00 does not exist.
    assert_eq!(local_to_utc(day, hm(2, 0), NEW_YORK), Some(t("2026-03-08T07:00:00Z")));
    assert_eq!(local_to_utc(day, hm(2, 30), NEW_YORK), Some(t("2026-03-08T07:30:00Z")));
    assert_eq!(local_to_utc(day, hm(3, 0), NEW_YORK), Some(t("2026-03-08T07:00:00Z")));
    assert_eq!(local_to_utc(day, hm(12, 0), NEW_YORK), Some(t("2026-03-08T16:00:00Z")));
    assert_eq!(local_to_utc(day - 1, hm(12, 0), NEW_YORK), Some(t("2026-03-07T17:00:00Z")));
}

#[test]
fn new_york_fall_back() {
    let day = d("2026-11-01");
    assert_eq!(local_to_utc(day, 0, NEW_YORK), Some(t("2026-11-01T04:00:00Z")));
    // 01:00–02:00 happens twice: the earlier, EDT, instant.
    assert_eq!(local_to_utc(day, hm(1, 0), NEW_YORK), Some(t("2026-11-01T05:00:00Z")));
    assert_eq!(local_to_utc(day, hm(1, 30), NEW_YORK), Some(t("2026-11-01T05:30:00Z")));
    assert_eq!(local_to_utc(day, hm(2, 0), NEW_YORK), Some(t("2026-11-01T07:00:00Z")));
    assert_eq!(local_to_utc(day, hm(12, 0), NEW_YORK), Some(t("2026-11-01T17:00:00Z")));
    assert_eq!(local_to_utc(day + 1, 0, NEW_YORK), Some(t("2026-11-02T05:00:00Z")));
}

#[test]
fn gaps_of_other_sizes_move_forward_by_the_gap() {
    // Lord Howe Island springs forward half an hour: 02:00 +10:30 becomes 02:30 +11:00.
    let zone = "Australia/Lord_Howe";
    assert_eq!(local_to_utc(d("2026-10-04"), hm(2, 15), zone), Some(t("2026-10-04T02:45:00+11:00")));
    assert_eq!(local_to_utc(d("2026-10-04"), hm(2, 15), zone), Some(t("2026-10-03T15:45:00Z")));
    // Samoa skipped 30 December 2011 (from -10:00 to +14:00): its noon is the 31st's noon.
    let zone = "Pacific/Apia";
    assert_eq!(local_to_utc(d("2011-12-30"), hm(12, 0), zone), Some(t("2011-12-30T22:00:00Z")));
    assert_eq!(local_to_utc(d("2011-12-31"), hm(12, 0), zone), Some(t("2011-12-30T22:00:00Z")));
    assert_eq!(local_to_utc(d("2011-12-29"), hm(12, 0), zone), Some(t("2011-12-29T22:00:00Z")));
}

#[test]
fn utc_and_carried_seconds() {
    assert_eq!(local_to_utc(0, 0, "UTC"), Some(0));
    assert_eq!(local_to_utc(-1, hm(23, 0), "UTC"), Some(-3_600_000));
    assert_eq!(local_to_utc(d("2026-03-02"), hm(8, 0), "UTC"), Some(1_772_438_400_000));
    // A day's worth of seconds or more carries into the next date, gap rule included.
    assert_eq!(local_to_utc(d("2026-03-28"), 86_400 + hm(1, 30), LONDON), Some(t("2026-03-29T01:30:00Z")));
    assert_eq!(local_to_utc(d("2026-03-28"), 86_400, LONDON), local_to_utc(d("2026-03-29"), 0, LONDON));
}

// ---------------------------------------------------------------- local_date

#[test]
fn local_dates() {
    // Berlin is UTC+2 in summer: 23:30 UTC is 01:30 the next day.
    assert_eq!(local_date(t("2026-07-15T23:30:00Z"), "Europe/Berlin"), Some(d("2026-07-16")));
    assert_eq!(local_date(t("2026-07-15T21:59:59.999Z"), "Europe/Berlin"), Some(d("2026-07-15")));
    assert_eq!(local_date(t("2026-07-15T22:00:00Z"), "Europe/Berlin"), Some(d("2026-07-16")));
    assert_eq!(local_date(t("2026-01-15T22:30:00Z"), "Europe/Berlin"), Some(d("2026-01-15")));
    assert_eq!(local_date(t("2026-03-02T23:30:00Z"), "Asia/Tokyo"), Some(d("2026-03-03")));
    assert_eq!(local_date(t("2026-03-02T14:59:59Z"), "Asia/Tokyo"), Some(d("2026-03-02")));
    assert_eq!(local_date(t("2026-03-02T15:00:00Z"), "Asia/Tokyo"), Some(d("2026-03-03")));
    // New York is UTC-5 in winter, UTC-4 in summer: 02:00 UTC is still the previous evening.
    assert_eq!(local_date(t("2026-03-03T02:00:00Z"), NEW_YORK), Some(d("2026-03-02")));
    assert_eq!(local_date(t("2026-07-03T02:00:00Z"), NEW_YORK), Some(d("2026-07-02")));
    assert_eq!(local_date(t("2026-07-03T04:00:00Z"), NEW_YORK), Some(d("2026-07-03")));
    assert_eq!(local_date(t("2026-03-02T08:00:00Z"), "UTC"), Some(20_514));
    assert_eq!(local_date(0, "UTC"), Some(0));
    assert_eq!(local_date(-1, "UTC"), Some(-1));
    // London's fall-back hour belongs to the 25th both times round.
    assert_eq!(local_date(t("2026-10-24T22:59:59Z"), LONDON), Some(d("2026-10-24")));
    assert_eq!(local_date(t("2026-10-24T23:00:00Z"), LONDON), Some(d("2026-10-25")));
    assert_eq!(local_date(t("2026-10-25T01:30:00Z"), LONDON), Some(d("2026-10-25")));
}

// ---------------------------------------------------------------- clock_deadline

fn deadline(hour: u32, minute: u32, zone: &str, day_offset: u32) -> ClockDeadline {
    ClockDeadline { seconds: hm(hour, minute), zone: zone.to_string(), day_offset }
}

#[test]
fn clock_deadlines() {
    const HOUR: i64 = 3_600_000;
    let same_day = deadline(8, 0, LONDON, 0);
    let next_day = deadline(8, 0, LONDON, 1);
    assert_eq!(clock_deadline(d("2026-03-02"), &same_day), Some(t("2026-03-02T08:00:00Z")));
    assert_eq!(clock_deadline(d("2026-03-02"), &next_day), Some(t("2026-03-03T08:00:00Z")));

    // Across spring-forward the next day's 08:00 is only 23 hours later.
    let spring = d("2026-03-28");
    assert_eq!(clock_deadline(spring, &same_day), Some(t("2026-03-28T08:00:00Z")));
    assert_eq!(clock_deadline(spring, &next_day), Some(t("2026-03-29T07:00:00Z")));
    assert_eq!(clock_deadline(spring, &next_day).unwrap() - clock_deadline(spring, &same_day).unwrap(), 23 * HOUR);

    // Across fall-back it is 25 hours later.
    let autumn = d("2026-10-24");
    assert_eq!(clock_deadline(autumn, &same_day), Some(t("2026-10-24T07:00:00Z")));
    assert_eq!(clock_deadline(autumn, &next_day), Some(t("2026-10-25T08:00:00Z")));
    assert_eq!(clock_deadline(autumn, &next_day).unwrap() - clock_deadline(autumn, &same_day).unwrap(), 25 * HOUR);

    // New York, 18:30: the same.
    let (ny_same, ny_next) = (deadline(18, 30, NEW_YORK, 0), deadline(18, 30, NEW_YORK, 1));
    assert_eq!(clock_deadline(d("2026-03-07"), &ny_same), Some(t("2026-03-07T23:30:00Z")));
    assert_eq!(clock_deadline(d("2026-03-07"), &ny_next), Some(t("2026-03-08T22:30:00Z")));
    assert_eq!(clock_deadline(d("2026-10-31"), &ny_same), Some(t("2026-10-31T22:30:00Z")));
    assert_eq!(clock_deadline(d("2026-10-31"), &ny_next), Some(t("2026-11-01T23:30:00Z")));

    // A deadline in the gap, one day on.
    assert_eq!(clock_deadline(spring, &deadline(1, 30, LONDON, 1)), Some(t("2026-03-29T01:30:00Z")));
    assert_eq!(clock_deadline(d("2026-03-02"), &deadline(8, 0, LONDON, 7)), Some(t("2026-03-09T08:00:00Z")));
    assert_eq!(clock_deadline(d("2026-03-02"), &deadline(8, 0, LONDON, u32::MAX)), None);
}

// ---------------------------------------------------------------- weekdays and schedules

#[test]
fn weekdays_of_known_dates() {
    assert_eq!(weekday(0), 3); // 1970-01-01, Thursday
    assert_eq!(weekday(-1), 2); // 1969-12-31, Wednesday
    assert_eq!(weekday(d("2026-03-02")), 0);
    assert_eq!(weekday(d("2026-03-07")), 5);
    assert_eq!(weekday(d("2026-03-29")), 6);
    assert_eq!(weekday(d("2026-12-25")), 4);
    assert_eq!(weekday(d("2000-02-29")), 1);
    assert_eq!(weekday(d("1900-01-01")), 0);
    assert!(weekday(i32::MIN) < 7);
    assert!(weekday(i32::MAX) < 7);
    // Consecutive dates cycle through the week.
    for date in -1000..1000 {
        assert_eq!(weekday(date + 1), (weekday(date) + 1) % 7);
    }
}

const WEEKDAYS: u8 = 0b001_1111;
const WEEKEND: u8 = 0b110_0000;
const MON_WED_FRI: u8 = 0b001_0101;

fn schedule(weekdays: u8, except: &[u32]) -> Schedule {
    Schedule { weekdays, except: except.to_vec(), open_seconds: 0, cohort: vec![] }
}

fn calendars() -> Vec<Calendar> {
    vec![
        Calendar {
            id: 0,
            name: "uk_holidays".to_string(),
            dates: vec![d("2026-12-25"), d("2026-12-28"), d("2027-01-01")],
        },
        Calendar { id: 1, name: "audit".to_string(), dates: vec![d("2026-03-04")] },
    ]
}

#[test]
fn scheduled_dates() {
    let cals = calendars();
    let week: Vec<i32> = (0..7).map(|i| d("2026-03-02") + i).collect(); // Monday to Sunday
    let on = |s: &Schedule| week.iter().map(|&date| is_scheduled(s, &cals, date)).collect::<Vec<_>>();
    assert_eq!(on(&schedule(0x7f, &[])), [true; 7]);
    assert_eq!(on(&schedule(WEEKDAYS, &[])), [true, true, true, true, true, false, false]);
    assert_eq!(on(&schedule(WEEKEND, &[])), [false, false, false, false, false, true, true]);
    assert_eq!(on(&schedule(MON_WED_FRI, &[])), [true, false, true, false, true, false, false]);
    assert_eq!(on(&schedule(MON_WED_FRI, &[1])), [true, false, false, false, true, false, false]);
    assert_eq!(on(&schedule(0, &[])), [false; 7]);

    let holidays = schedule(WEEKDAYS, &[0]);
    assert!(!is_scheduled(&holidays, &cals, d("2026-12-25")));
    assert!(is_scheduled(&holidays, &cals, d("2026-12-24")));
    assert!(!is_scheduled(&holidays, &cals, d("2026-12-26"))); // Saturday
    assert!(!is_scheduled(&holidays, &cals, d("2026-12-28")));
    assert!(is_scheduled(&holidays, &cals, d("2026-12-29")));
    assert!(!is_scheduled(&holidays, &cals, d("2027-01-01")));
    assert!(is_scheduled(&schedule(WEEKDAYS, &[]), &cals, d("2026-12-25")));
    // Both calendars at once; an unknown calendar id excludes nothing.
    let both = schedule(WEEKDAYS, &[1, 0]);
    assert!(!is_scheduled(&both, &cals, d("2026-03-04")));
    assert!(!is_scheduled(&both, &cals, d("2026-12-25")));
    assert!(is_scheduled(&both, &cals, d("2026-03-05")));
    assert!(is_scheduled(&schedule(WEEKDAYS, &[9]), &cals, d("2026-12-25")));
    // Calendars are found by id, not by position.
    let reversed: Vec<Calendar> = cals.iter().rev().cloned().collect();
    assert!(!is_scheduled(&holidays, &reversed, d("2026-12-25")));
    assert!(is_scheduled(&holidays, &reversed, d("2026-03-04")));
}

#[test]
fn next_scheduled_dates() {
    let cals = calendars();
    let weekdays = schedule(WEEKDAYS, &[0]);
    // Already scheduled: itself.
    assert_eq!(next_scheduled(&weekdays, &cals, d("2026-03-02"), 7), Some(d("2026-03-02")));
    // Saturday and Sunday to Monday.
    assert_eq!(next_scheduled(&weekdays, &cals, d("2026-03-07"), 7), Some(d("2026-03-09")));
    assert_eq!(next_scheduled(&weekdays, &cals, d("2026-03-08"), 7), Some(d("2026-03-09")));
    // Christmas (Friday), the weekend and the Monday holiday: Tuesday the 29th.
    assert_eq!(next_scheduled(&weekdays, &cals, d("2026-12-25"), 30), Some(d("2026-12-29")));
    assert_eq!(next_scheduled(&weekdays, &cals, d("2026-12-25"), 5), Some(d("2026-12-29")));
    assert_eq!(next_scheduled(&weekdays, &cals, d("2026-12-25"), 4), None);
    // New Year's Day (Friday): Monday the 4th.
    assert_eq!(next_scheduled(&weekdays, &cals, d("2027-01-01"), 30), Some(d("2027-01-04")));
    // Weekend only, from a Monday.
    assert_eq!(next_scheduled(&schedule(WEEKEND, &[]), &cals, d("2026-03-02"), 7), Some(d("2026-03-07")));
    // Nothing to find.
    assert_eq!(next_scheduled(&schedule(0, &[]), &cals, d("2026-03-02"), 10_000), None);
    assert_eq!(next_scheduled(&weekdays, &cals, d("2026-03-02"), 0), None);
    assert_eq!(next_scheduled(&weekdays, &cals, d("2026-03-02"), -5), None);
    let all_blocked = vec![Calendar { id: 0, name: "all".to_string(), dates: (0..100).collect() }];
    assert_eq!(next_scheduled(&schedule(0x7f, &[0]), &all_blocked, 0, 100), None);
    assert_eq!(next_scheduled(&schedule(0x7f, &[0]), &all_blocked, 0, 101), Some(100));
    // Near the end of the date range: no overflow.
    assert_eq!(next_scheduled(&schedule(0x7f, &[]), &cals, i32::MAX, 10), Some(i32::MAX));
    assert_eq!(next_scheduled(&schedule(1 << weekday(i32::MAX - 1), &[]), &cals, i32::MAX, 10), None);
}

// ---------------------------------------------------------------- maintenance windows

fn weekly(from_day: Option<u8>, from: u32, to_day: Option<u8>, to: u32, zone: &str) -> MaintenanceWindow {
    MaintenanceWindow::Weekly { from_day, from_seconds: from, to_day, to_seconds: to, zone: zone.to_string() }
}

const MON: u8 = 0;
const WED: u8 = 2;
const FRI: u8 = 4;
const SAT: u8 = 5;
const SUN: u8 = 6;

/// Asserts `in_maintenance` at each timestamp.
fn check(window: &MaintenanceWindow, cases: &[(&str, bool)]) {
    for &(at, expected) in cases {
        assert_eq!(in_maintenance(window, t(at)), expected, "{at} in {window:?}");
    }
}

#[test]
fn fixed_window() {
    let window = MaintenanceWindow::Fixed { from_ms: t("2026-03-10T20:00:00Z"), to_ms: t("2026-03-10T22:00:00Z") };
    check(
        &window,
        &[
            ("2026-03-10T19:59:59.999Z", false),
            ("2026-03-10T20:00:00Z", true),
            ("2026-03-10T21:00:00Z", true),
            ("2026-03-10T21:59:59.999Z", true),
            ("2026-03-10T22:00:00Z", false),
            ("2026-03-11T21:00:00Z", false),
        ],
    );
    assert!(!in_maintenance(&MaintenanceWindow::Fixed { from_ms: 5, to_ms: 5 }, 5));
    assert!(!in_maintenance(&MaintenanceWindow::Fixed { from_ms: 9, to_ms: 5 }, 7));
}

#[test]
fn saturday_night_to_sunday_morning() {
    let window = weekly(Some(SAT), hm(22, 0), Some(SUN), hm(6, 0), LONDON);
    check(
        &window,
        &[
            // Winter: London is on UTC.
            ("2026-03-07T21:59:59.999Z", false),
            ("2026-03-07T22:00:00Z", true),
            ("2026-03-08T00:00:00Z", true),
            ("2026-03-08T05:59:59.999Z", true),
            ("2026-03-08T06:00:00Z", false),
            ("2026-03-08T22:30:00Z", false), // Sunday night
            ("2026-03-07T03:00:00Z", false), // Saturday morning
            ("2026-03-04T23:00:00Z", false), // Wednesday night
            // Summer: BST, an hour earlier in UTC.
            ("2026-07-04T20:59:59.999Z", false),
            ("2026-07-04T21:00:00Z", true),
            ("2026-07-05T04:59:59.999Z", true),
            ("2026-07-05T05:00:00Z", false),
            // Over the spring-forward night the window lasts 7 hours.
            ("2026-03-28T22:00:00Z", true),
            ("2026-03-29T01:30:00Z", true),
            ("2026-03-29T04:59:59.999Z", true),
            ("2026-03-29T05:00:00Z", false),
            // And 9 hours over the fall-back night.
            ("2026-10-24T20:59:59.999Z", false),
            ("2026-10-24T21:00:00Z", true),
            ("2026-10-25T05:59:59.999Z", true),
            ("2026-10-25T06:00:00Z", false),
        ],
    );
}

#[test]
fn friday_night_to_monday_morning() {
    let window = weekly(Some(FRI), hm(22, 0), Some(MON), hm(6, 0), "UTC");
    check(
        &window,
        &[
            ("2026-03-06T21:59:59.999Z", false),
            ("2026-03-06T22:00:00Z", true),
            ("2026-03-07T12:00:00Z", true),
            ("2026-03-08T12:00:00Z", true),
            ("2026-03-09T05:59:59.999Z", true),
            ("2026-03-09T06:00:00Z", false),
            ("2026-03-09T12:00:00Z", false),
            ("2026-03-04T23:00:00Z", false),
            ("2026-03-06T12:00:00Z", false),
        ],
    );
}

#[test]
fn sunday_night_to_monday_morning() {
    let window = weekly(Some(SUN), hm(22, 0), Some(MON), hm(2, 0), NEW_YORK);
    check(
        &window,
        &[
            // EST: 22:00 Sunday is 03:00 Monday UTC.
            ("2026-03-02T02:59:59.999Z", false),
            ("2026-03-02T03:00:00Z", true),
            ("2026-03-02T05:00:00Z", true),
            ("2026-03-02T06:59:59.999Z", true),
            ("2026-03-02T07:00:00Z", false),
            ("2026-03-01T05:00:00Z", false), // 00:00 Sunday
            ("2026-03-03T05:00:00Z", false), // 00:00 Tuesday
            ("2026-03-08T03:00:00Z", false), // 22:00 Saturday
            // EDT from 8 March.
            ("2026-03-16T01:59:59.999Z", false),
            ("2026-03-16T02:00:00Z", true),
            ("2026-03-16T05:59:59.999Z", true),
            ("2026-03-16T06:00:00Z", false),
        ],
    );
}

#[test]
fn daily_windows() {
    // 22:00 to 02:00 every day, wrapping midnight.
    let overnight = weekly(None, hm(22, 0), None, hm(2, 0), NEW_YORK);
    check(
        &overnight,
        &[
            ("2026-03-03T02:59:59.999Z", false),
            ("2026-03-03T03:00:00Z", true),
            ("2026-03-03T05:00:00Z", true),
            ("2026-03-03T06:59:59.999Z", true),
            ("2026-03-03T07:00:00Z", false),
            ("2026-03-03T17:00:00Z", false),
            ("2026-03-07T04:00:00Z", true), // Friday night: every day
            ("2026-03-08T04:00:00Z", true), // Saturday night
        ],
    );
    // 09:00 to 17:00 every day.
    let office = weekly(None, hm(9, 0), None, hm(17, 0), "UTC");
    check(
        &office,
        &[
            ("2026-03-02T08:59:59Z", false),
            ("2026-03-02T09:00:00Z", true),
            ("2026-03-02T16:59:59.999Z", true),
            ("2026-03-02T17:00:00Z", false),
            ("2026-03-08T12:00:00Z", true),
            ("2026-03-08T23:00:00Z", false),
        ],
    );
    // A start equal to its end is empty.
    let empty = weekly(None, hm(9, 0), None, hm(9, 0), "UTC");
    check(&empty, &[("2026-03-02T09:00:00Z", false), ("2026-03-02T12:00:00Z", false)]);
}

#[test]
fn same_day_windows() {
    let morning = weekly(Some(SAT), hm(10, 0), Some(SAT), hm(12, 0), "UTC");
    check(
        &morning,
        &[
            ("2026-03-07T09:59:59Z", false),
            ("2026-03-07T10:00:00Z", true),
            ("2026-03-07T11:59:59.999Z", true),
            ("2026-03-07T12:00:00Z", false),
            ("2026-03-08T11:00:00Z", false),
        ],
    );
    // Saturday 22:00 to Saturday 06:00 is the whole week but Saturday's day.
    let most = weekly(Some(SAT), hm(22, 0), Some(SAT), hm(6, 0), "UTC");
    check(
        &most,
        &[
            ("2026-03-04T12:00:00Z", true),
            ("2026-03-07T05:59:59.999Z", true),
            ("2026-03-07T06:00:00Z", false),
            ("2026-03-07T21:59:59.999Z", false),
            ("2026-03-07T22:00:00Z", true),
        ],
    );
    let empty = weekly(Some(WED), hm(9, 0), Some(WED), hm(9, 0), "UTC");
    check(&empty, &[("2026-03-04T09:00:00Z", false), ("2026-03-05T09:00:00Z", false)]);
}

#[test]
fn windows_with_one_day() {
    // `every sat 22:00 to 06:00`: ends at the next 06:00, Sunday's.
    let from_only = weekly(Some(SAT), hm(22, 0), None, hm(6, 0), "UTC");
    check(
        &from_only,
        &[
            ("2026-03-07T22:00:00Z", true),
            ("2026-03-08T05:59:59Z", true),
            ("2026-03-08T06:00:00Z", false),
            ("2026-03-08T22:00:00Z", false),
            ("2026-03-06T22:00:00Z", false),
        ],
    );
    // `every 22:00 to sun 06:00`: starts at the 22:00 before, Saturday's.
    let to_only = weekly(None, hm(22, 0), Some(SUN), hm(6, 0), "UTC");
    check(
        &to_only,
        &[
            ("2026-03-07T21:59:59Z", false),
            ("2026-03-07T22:00:00Z", true),
            ("2026-03-08T05:59:59Z", true),
            ("2026-03-08T06:00:00Z", false),
            ("2026-03-09T01:00:00Z", false),
        ],
    );
    // `every sat 10:00 to 12:00`: Saturday morning only.
    let short = weekly(Some(SAT), hm(10, 0), None, hm(12, 0), "UTC");
    check(&short, &[("2026-03-07T11:00:00Z", true), ("2026-03-08T11:00:00Z", false)]);
}

#[test]
fn window_boundaries_follow_the_deadline_rules() {
    // An end in the spring-forward gap moves forward by the gap: 01:30 GMT is 02:30 BST.
    let window = weekly(None, 0, None, hm(1, 30), LONDON);
    check(
        &window,
        &[
            ("2026-03-29T00:00:00Z", true),
            ("2026-03-29T01:29:59.999Z", true),
            ("2026-03-29T01:30:00Z", false),
            // An ambiguous end is the earlier 01:30 (BST), not the second one.
            ("2026-10-24T22:59:59.999Z", false),
            ("2026-10-24T23:00:00Z", true),
            ("2026-10-25T00:29:59.999Z", true),
            ("2026-10-25T00:30:00Z", false),
            ("2026-10-25T01:15:00Z", false),
        ],
    );
}

#[test]
fn bad_windows_are_never_in_force() {
    let unknown = weekly(None, 0, None, hm(23, 0), "Europe/Atlantis");
    assert!(!in_maintenance(&unknown, t("2026-03-02T12:00:00Z")));
    let bad_day = weekly(Some(7), 0, Some(SUN), hm(23, 0), "UTC");
    assert!(!in_maintenance(&bad_day, t("2026-03-08T12:00:00Z")));
}

// ---------------------------------------------------------------- unknown zones

#[test]
fn unknown_zones_give_none() {
    for zone in ["Europe/Atlantis", "", "BST", "europe/london", "Europe/London "] {
        assert_eq!(local_date(0, zone), None, "{zone:?}");
        assert_eq!(local_to_utc(0, 0, zone), None, "{zone:?}");
        assert_eq!(clock_deadline(0, &deadline(8, 0, zone, 1)), None, "{zone:?}");
        assert!(!in_maintenance(&weekly(None, 0, None, hm(23, 59), zone), t("1970-01-01T12:00:00Z")), "{zone:?}");
    }
}

// ---------------------------------------------------------------- RFC 3339 and dates

#[test]
fn rfc3339_known_values() {
    assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(format_rfc3339(1_772_438_400_000), "2026-03-02T08:00:00Z");
    assert_eq!(format_rfc3339(1_772_438_401_250), "2026-03-02T08:00:01.250Z");
    assert_eq!(format_rfc3339(1_772_438_400_007), "2026-03-02T08:00:00.007Z");
    assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
    assert_eq!(format_rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    assert_eq!(format_rfc3339(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
    assert_eq!(format_rfc3339(-62_167_219_200_000), "0000-01-01T00:00:00Z");

    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_rfc3339("2026-03-02T08:00:00Z"), Some(1_772_438_400_000));
    assert_eq!(parse_rfc3339("2026-03-02T08:00:01.250Z"), Some(1_772_438_401_250));
    assert_eq!(parse_rfc3339("2026-03-02T08:00:01.25Z"), Some(1_772_438_401_250));
    assert_eq!(parse_rfc3339("2026-03-02T08:00:01.2509Z"), Some(1_772_438_401_250));
    assert_eq!(parse_rfc3339("2026-03-02T09:00:00+01:00"), Some(1_772_438_400_000));
    assert_eq!(parse_rfc3339("2026-03-02T03:00:00-05:00"), Some(1_772_438_400_000));
    assert_eq!(parse_rfc3339("2026-03-02T13:45:00+05:45"), Some(1_772_438_400_000));
    assert_eq!(parse_rfc3339("2026-03-02t08:00:00z"), Some(1_772_438_400_000));
    assert_eq!(parse_rfc3339("2026-03-02t09:00:00+01:00"), Some(1_772_438_400_000));
    assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999Z"), Some(-1));
}

#[test]
fn rfc3339_rejects() {
    for text in [
        "",
        "2026-03-02",
        "2026-03-02T08:00:00",
        "2026-03-02T08:00Z",
        "2026-02-29T08:00:00Z",
        "2026-03-02T24:00:00Z",
        "2026-03-02T08:00:00+25:00",
        "2026-03-02T08:00:00Zjunk",
        "2026-3-2T08:00:00Z",
        "yesterday",
    ] {
        assert_eq!(parse_rfc3339(text), None, "{text:?}");
    }
}

#[test]
fn rfc3339_round_trips() {
    let instants = [
        0,
        1,
        -1,
        999,
        1_000,
        1_772_438_400_000,
        1_772_438_401_250,
        t("2026-03-29T01:30:00Z"),
        t("2026-10-25T00:30:00Z"),
        -62_167_219_200_000,
        253_402_300_799_999,
        -86_400_000 * 365 * 100 + 123,
    ];
    for ms in instants {
        assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms), "{ms}");
    }
    for text in ["2026-03-02T08:00:00Z", "2026-03-02T08:00:01.250Z", "1969-07-20T20:17:40Z"] {
        assert_eq!(format_rfc3339(parse_rfc3339(text).unwrap()), text);
    }
    // Uneven steps over ninety-five years, read back by chrono's parser.
    let mut ms = -1_000_000_000_000;
    while ms < 2_000_000_000_000 {
        let text = format_rfc3339(ms);
        assert_eq!(parse_rfc3339(&text), Some(ms), "{text}");
        ms += 12_345_678_901;
    }
    // Total over i64: no panic at the extremes.
    assert!(format_rfc3339(i64::MAX).ends_with('Z'));
    assert!(format_rfc3339(i64::MIN).starts_with('-'));
}

#[test]
fn dates() {
    assert_eq!(format_date(0), "1970-01-01");
    assert_eq!(format_date(-1), "1969-12-31");
    assert_eq!(format_date(20_514), "2026-03-02");
    assert_eq!(format_date(11_016), "2000-02-29");
    assert_eq!(format_date(-719_528), "0000-01-01");
    assert_eq!(format_date(-719_529), "-0001-12-31");
    assert_eq!(format_date(2_932_897), "+10000-01-01");

    assert_eq!(parse_date("1970-01-01"), Some(0));
    assert_eq!(parse_date("2026-03-02"), Some(20_514));
    assert_eq!(parse_date("2000-02-29"), Some(11_016));
    assert_eq!(parse_date("2024-02-29"), Some(19_782));
    assert_eq!(parse_date("0000-01-01"), Some(-719_528));
    assert_eq!(parse_date("-0001-12-31"), Some(-719_529));
    assert_eq!(parse_date("+10000-01-01"), Some(2_932_897));
    for text in [
        "",
        "2026-02-29",
        "1900-02-29",
        "2026-13-01",
        "2026-00-01",
        "2026-01-00",
        "2026-04-31",
        "2026-3-2",
        "26-03-02",
        "20260302",
        "2026-03-02x",
        "2026-03-02T00:00:00Z",
        "12026-03-02",
        "+2026-03-02-",
        "2026/03/02",
        " 2026-03-02",
    ] {
        assert_eq!(parse_date(text), None, "{text:?}");
    }
    // Round trips at the edges and across the years, checked against chrono's calendar.
    for date in [i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX - 1, i32::MAX] {
        assert_eq!(parse_date(&format_date(date)), Some(date), "{date}");
    }
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    for date in (-800_000..800_000).step_by(97) {
        let text = format_date(date);
        assert_eq!(parse_date(&text), Some(date), "{text}");
        let chrono_date = epoch + chrono::Duration::days(i64::from(date));
        if (0..=9999).contains(&chrono::Datelike::year(&chrono_date)) {
            assert_eq!(text, chrono_date.format("%Y-%m-%d").to_string());
        }
    }
}

#[test]
fn the_fast_rfc3339_path_agrees_with_chrono() {
    let cases = [
        "2026-03-02T08:00:00Z",
        "2026-03-02T08:00:01.250Z",
        "2026-03-02T08:00:01.2Z",
        "2026-03-02T08:00:01.123456789Z",
        "2026-03-02t08:00:00z",
        "2026-03-02T09:00:00+01:00",
        "2026-03-01T23:30:00-05:30",
        "2024-02-29T12:00:00Z",
        "1970-01-01T00:00:00Z",
        "1969-12-31T23:59:59.999Z",
        "2000-03-01T00:00:00Z",
        "2100-02-28T23:59:59Z",
    ];
    for text in cases {
        let chrono = chrono::DateTime::parse_from_rfc3339(text).map(|t| t.timestamp_millis()).ok();
        assert_eq!(parse_rfc3339(text), chrono, "{text}");
    }
    for bad in [
        "2026-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-03-02T24:00:00Z",
        "2026-03-02T08:00:00",
        "2026-03-02 08:00Z",
        "2026-03-02T08:00:00.Z",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad}");
    }
}
