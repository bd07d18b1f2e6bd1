//! `daily_positions` and `ny_eod_prices` (the file receipt example):
//! scheduled feeds at their real times of day, one occurrence a business
//! day, and the calendars that say which days have none.

use mon_stdlib::time::{format_date, local_date, local_to_utc, weekday};
use serde_json::json;

use crate::demo::draw::Draw;
use crate::demo::outbox::{timestamp, Outbox, STREAM_POSITIONS, STREAM_PRICES};
use crate::demo::window::Window;
use crate::demo::{DAY, MINUTE};
use crate::rng::SplitMix64;

pub(crate) const LONDON: &str = "Europe/London";
pub(crate) const NEW_YORK: &str = "America/New_York";
/// `ny_eod_prices` is not open before the 16:00 close.
const PRICES_OPEN_S: u32 = 16 * 3600;
/// The FX rates file lands from the same gateway around 07:15 London.
const FX_RATES_AT_S: u32 = 7 * 3600 + 15 * 60;

/// The calendars of `examples/file_receipt/feeds.mon`: no file on these dates.
const UK_HOLIDAYS: &[&str] = &[
    "2026-01-01",
    "2026-04-03",
    "2026-04-06",
    "2026-05-04",
    "2026-05-25",
    "2026-08-31",
    "2026-12-25",
    "2026-12-28",
    "2027-01-01",
];
const NYSE_HOLIDAYS: &[&str] = &[
    "2026-01-01",
    "2026-01-19",
    "2026-02-16",
    "2026-04-03",
    "2026-05-25",
    "2026-06-19",
    "2026-07-03",
    "2026-09-07",
    "2026-11-26",
    "2026-12-25",
];

/// A scheduled feed of `examples/file_receipt/feeds.mon`: one occurrence a
/// business day, with a deadline at a local time.
pub(crate) struct Feed {
    zone: &'static str,
    deadline_s: u32,
    holidays: &'static [&'static str],
}

/// `daily_positions`: by 08:00 London (amber from 07:45), weekdays except UK holidays.
pub(crate) const POSITIONS: Feed = Feed { zone: LONDON, deadline_s: 8 * 3600, holidays: UK_HOLIDAYS };
/// `ny_eod_prices`: by 18:30 New York, weekdays except NYSE holidays.
pub(crate) const PRICES: Feed = Feed { zone: NEW_YORK, deadline_s: 18 * 3600 + 30 * 60, holidays: NYSE_HOLIDAYS };

impl Feed {
    /// The deadline of the feed's occurrence on this local date, if it has one.
    pub(crate) fn deadline(&self, date: i32) -> Option<i64> {
        let business_day = weekday(date) < 5 && !self.holidays.contains(&format_date(date).as_str());
        if business_day {
            local_to_utc(date, self.deadline_s, self.zone)
        } else {
            None
        }
    }

    /// The local date of an instant, as a day number.
    pub(crate) fn date_of(&self, instant: i64) -> i32 {
        local_date(instant, self.zone).unwrap_or(instant.div_euclid(DAY) as i32)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Arrival {
    /// Well before the deadline.
    OnTime,
    /// After the warning, before the deadline (at risk).
    CuttingClose,
    /// After the deadline (missing, then late).
    Late,
    /// Not at all today (missing).
    Never,
}

/// `daily_positions`: the London positions file and its warehouse load.
pub(crate) fn plan_positions(rng: &mut SplitMix64, date: i32, window: Window, out: &mut Outbox) {
    const S: u64 = STREAM_POSITIONS;
    let Some(deadline) = POSITIONS.deadline(date) else { return };
    let day = format_date(date);
    let compact = day.replace('-', "");
    // Another job on the same gateway: the rule's `where job_id == ...` ignores it.
    if let Some(fx_at) = local_to_utc(date, FX_RATES_AT_S, LONDON).map(|t| t + rng.between(0, 10 * MINUTE)) {
        if fx_at >= window.history_start {
            out.add(
                S,
                fx_at,
                "sftp-gw-ldn",
                "file_received",
                &[
                    ("job_id", json!("FX_RATES")),
                    ("date", json!(day)),
                    ("path", json!(format!("/inbound/fx/FX_{compact}.csv"))),
                    ("transport", json!("S3")),
                    ("size_bytes", json!(rng.between(86_000, 90_000))),
                ],
            );
        }
    }
    if !window.watches(deadline) {
        return;
    }
    let arrival =
        rng.fate(&[(Arrival::CuttingClose, 0.12), (Arrival::Late, 0.12), (Arrival::Never, 0.04)], Arrival::OnTime);
    let received_at = match arrival {
        Arrival::OnTime => deadline - rng.between(16 * MINUTE, 50 * MINUTE),
        Arrival::CuttingClose => deadline - rng.between(MINUTE, 14 * MINUTE),
        Arrival::Late => deadline + rng.between(3 * MINUTE, 25 * MINUTE),
        Arrival::Never => return, // the upstream extract failed: nothing lands
    };
    out.add(
        S,
        received_at,
        "sftp-gw-ldn",
        "file_received",
        &[
            ("job_id", json!("DAILY_POSITIONS")),
            ("date", json!(day)),
            ("path", json!(format!("/inbound/positions/POS_{compact}.csv"))),
            ("transport", json!("SFTP")),
            ("size_bytes", json!(rng.between(18_100_000, 18_400_000))),
            ("checksum", json!(format!("{:012x}", rng.next_u64() >> 16))),
            ("landed_at", json!(timestamp(received_at - rng.between(100, 400)))),
        ],
    );
    let load = |rows: i64, duration_ms: i64| {
        [
            ("job_id", json!("DAILY_POSITIONS")),
            ("date", json!(day)),
            ("rows", json!(rows)),
            ("duration_ms", json!(duration_ms)),
        ]
    };
    let rows = rng.between(47_500, 48_800);
    if rng.chance(0.10) {
        // The loader ran before the file was complete and loaded nothing; ops rerun it by hand.
        out.add(
            S,
            received_at + rng.between(3 * MINUTE, 8 * MINUTE),
            "warehouse-loader",
            "file_loaded",
            &load(0, 1_200),
        );
        let rerun = received_at + rng.between(24 * MINUTE, 45 * MINUTE);
        out.add(S, rerun, "warehouse-loader", "file_loaded", &load(rows, rng.between(58_000, 62_000)));
    } else {
        let loaded = received_at + rng.between(6 * MINUTE, 18 * MINUTE);
        out.add(S, loaded, "warehouse-loader", "file_loaded", &load(rows, rng.between(58_000, 62_000)));
    }
}

/// `ny_eod_prices`: the New York vendor's end-of-day prices and their load.
pub(crate) fn plan_prices(rng: &mut SplitMix64, date: i32, window: Window, out: &mut Outbox) {
    const S: u64 = STREAM_PRICES;
    let Some(deadline) = PRICES.deadline(date) else { return };
    if !window.watches(deadline) {
        return;
    }
    let compact = format_date(date).replace('-', "");
    let path = json!(format!("/inbound/prices/EOD_{compact}.csv"));
    let instruments = rng.between(9_100, 9_140);
    let file = |instruments: i64| {
        [
            ("feed", json!("EOD_PRICES")),
            ("region", json!("US")),
            ("path", path.clone()),
            ("instruments", json!(instruments)),
        ]
    };
    // Now and then the vendor's job fires early and sends intraday prices
    // before the 16:00 close: an unexpected alert.
    if rng.chance(0.06) {
        if let Some(open) = local_to_utc(date, PRICES_OPEN_S, NEW_YORK) {
            let stray = open - rng.between(5 * MINUTE, 60 * MINUTE);
            if stray >= window.history_start {
                out.add(S, stray, "vendor-gw-nyc", "prices_file", &file(instruments));
            }
        }
    }
    let arrival = rng.fate(&[(Arrival::Late, 0.15), (Arrival::Never, 0.03)], Arrival::OnTime);
    let received_at = match arrival {
        Arrival::Late => deadline + rng.between(4 * MINUTE, 35 * MINUTE),
        Arrival::Never => return,
        _ => deadline - rng.between(5 * MINUTE, 55 * MINUTE),
    };
    out.add(S, received_at, "vendor-gw-nyc", "prices_file", &file(instruments));
    // The pricing database is sometimes busy with the close and loads slowly.
    let load_after =
        if rng.chance(0.08) { rng.between(16 * MINUTE, 25 * MINUTE) } else { rng.between(2 * MINUTE, 9 * MINUTE) };
    out.add(
        S,
        received_at + load_after,
        "pricing-db-loader",
        "prices_loaded",
        &[("feed", json!("EOD_PRICES")), ("region", json!("US")), ("rows", json!(instruments))],
    );
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;

    use mon_compiler::ir::Program;
    use mon_runtime::{Kind, Record};
    use mon_stdlib::time::{format_date, format_rfc3339, parse_rfc3339};

    use super::{plan_positions, POSITIONS, PRICES};
    use crate::demo::outbox::{Outbox, Planned, STREAM_POSITIONS};
    use crate::demo::tests::{at, count_by_kind, examples_program, parse, replay, run, Replay, SEED};
    use crate::demo::window::Window;
    use crate::demo::HOUR;
    use crate::rng::{derive, SplitMix64};

    #[test]
    fn scheduled_feeds_keep_their_times_of_day() {
        let types = |lines: &[String], job: &str| -> Vec<String> {
            lines.iter().filter(|l| l.contains(job)).map(|l| parse(l)["type"].as_str().unwrap().to_string()).collect()
        };
        // The afternoon in London: no positions file in sight.
        let afternoon = at("2026-03-03T14:00:00Z");
        let lines = run(SEED, afternoon, afternoon + HOUR);
        assert!(types(&lines, "DAILY_POSITIONS").is_empty() && types(&lines, "EOD_PRICES").is_empty());
        // Good Friday: neither London nor New York expects a file.
        let good_friday = at("2026-04-03T07:10:00Z");
        let lines = run(SEED, good_friday, good_friday + HOUR);
        assert!(types(&lines, "DAILY_POSITIONS").is_empty());
        // A Saturday morning.
        let saturday = at("2026-03-07T08:10:00Z");
        assert!(types(&run(SEED, saturday, saturday + HOUR), "DAILY_POSITIONS").is_empty());

        // Over four weeks of mornings, the file lands around 08:00 London and
        // is late on some days only; nothing comes on weekends or holidays.
        let mut on_time = 0;
        let mut late = 0;
        for day in 0..28 {
            let mut outbox = Outbox::default();
            let date = parse_date("2026-03-30") + day;
            let mut rng = SplitMix64::new(derive(derive(SEED, STREAM_POSITIONS), date as u64));
            plan_positions(&mut rng, date, Window { history_start: i64::MIN, start: i64::MIN }, &mut outbox);
            let events: Vec<Planned> = outbox.heap.into_sorted_vec().into_iter().map(|Reverse(p)| p).collect();
            let Some(deadline) = POSITIONS.deadline(date) else {
                assert!(events.is_empty(), "{}", format_date(date));
                continue;
            };
            let file = events.iter().find(|e| e.kind == "file_received" && e.data.contains("DAILY_POSITIONS"));
            match file {
                Some(f) if f.time <= deadline => on_time += 1,
                Some(_) => late += 1,
                None => {}
            }
            for e in &events {
                assert!((deadline - HOUR..deadline + 2 * HOUR).contains(&e.time), "{}: {}", format_date(date), e.data);
            }
        }
        assert!(on_time >= 12 && late >= 1, "{on_time} on time, {late} late");
    }

    /// Replays `lines` both ways (monitoring from `start`, and from the first
    /// event) and checks that both see the same, valid, stream.
    fn replay_both_ways(program: &Program, lines: &[String], start: i64, end: i64) -> Replay {
        let from_start = replay(program, lines, 0, Some(start), end);
        let from_first_event = replay(program, lines, 0, None, end);
        assert_eq!(from_start.rejected, 0);
        assert_eq!(from_first_event.rejected, 0);
        assert_eq!(count_by_kind(&from_start.records), count_by_kind(&from_first_event.records));
        from_start
    }

    fn feed_records<'r>(replay: &'r Replay, workflow: &str) -> Vec<&'r Record> {
        replay.records.iter().filter(|r| r.workflow.as_deref() == Some(workflow)).collect()
    }

    #[test]
    fn an_evening_in_new_york_replays_cleanly() {
        let program = examples_program();
        // 18:20 New York (EST) on Wednesday 4 March: the 18:30 deadline is ahead.
        let start = at("2026-03-04T23:20:00Z");
        let end = start + HOUR;
        let lines = run(SEED, start, end);
        assert!(lines.iter().any(|l| l.contains(r#""type":"prices_file""#)));
        let replay = replay_both_ways(&program, &lines, start, end);
        let (done, _, open) = replay.outcomes["ny_eod_prices"];
        assert_eq!(done + open, 1, "one occurrence for 4 March");
        assert!(!feed_records(&replay, "ny_eod_prices").iter().any(|r| r.kind == Kind::Unexpected));
        // Good Friday is an NYSE holiday too.
        assert_eq!(PRICES.deadline(parse_date("2026-04-03")), None);
    }

    #[test]
    fn a_demo_started_just_after_a_deadline_does_not_show_that_day() {
        let program = examples_program();
        // 08:10 London: the 08:00 occurrence is not watched by an engine
        // started now, so the backlog begins just after 08:00 and nothing of
        // that day's positions file is shown (no stray, no false alarm).
        let start = at("2026-03-03T08:10:00Z");
        let end = start + HOUR;
        let lines = run(SEED, start, end);
        let first = parse_rfc3339(parse(&lines[0])["time"].as_str().expect("a time")).expect("a time");
        assert!(first > at("2026-03-03T08:00:00Z") && first < start, "backlog from {}", format_rfc3339(first));
        assert!(!lines.iter().any(|l| l.contains("DAILY_POSITIONS")));
        let replay = replay_both_ways(&program, &lines, start, end);
        assert!(feed_records(&replay, "daily_positions").is_empty());
        assert_eq!(replay.outcomes["daily_positions"], (0, 0, 0));
    }

    fn parse_date(text: &str) -> i32 {
        mon_stdlib::time::parse_date(text).expect("a date")
    }
}
