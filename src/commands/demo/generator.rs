//! The event generator behind `mon demo`: realistic CloudEvents for the four
//! example programs of `examples/`, run together as one program on the wall
//! clock.
//!
//! # Interface
//!
//! ```text
//! let mut generator = Generator::new(seed, start_ms);
//! loop {
//!     for line in generator.until(now_ms()) { /* POST it to the ingest */ }
//!     sleep(..);
//! }
//! ```
//!
//! - [`Generator::new`]`(seed, start_ms)`: the same seed and start give the
//!   same events, byte for byte. `start_ms` is when the demo starts (the
//!   wall clock, in ms since the Unix epoch).
//! - [`Generator::until`]`(now_ms)`: every event whose `time` is at or before
//!   `now_ms` and that was not returned before, in time order, one JSON line
//!   each. How the calls are spaced does not matter: one call for an hour or
//!   3,600 calls a second apart return the same lines.
//! - The first call also returns a **backlog**: the flows start
//!   [`HISTORY_MS`] (25 minutes) before `start_ms` (less around a feed's
//!   deadline, see below), so the trades stuck since then are already at
//!   risk or missing, and paged, when the demo opens.
//! - Each line is a CloudEvents 1.0 envelope in structured mode, exactly as
//!   the examples' `events.ndjson`: `specversion`, `type`, `id`, `source`,
//!   `time` (RFC 3339 UTC with milliseconds), `data`. Ids are
//!   `PREFIX-RUN-COUNTER`, where RUN is derived from the seed and the start,
//!   so they are unique within a run and differ between runs (an ingest that
//!   remembers ids would otherwise drop a second run's events as redeliveries).
//!   Item keys (`T-1A2B-00042`) carry a short run tag for the same reason.
//!
//! # Pace and mix
//!
//! About one trade every 2 s and one order every 1.5 s (Poisson arrivals), a
//! batch run every 70–110 s: some 5–6 events a second. Most flows are
//! healthy. Trouble is concentrated where it is in real life (one book's
//! downstream link, one venue's router), so that the wallboard's groups show
//! green, amber and red side by side instead of all turning red at once.
//!
//! - `trade_lifecycle`: ingested, verified in 3–40 s, sent to System 3, ACK
//!   in 8–90 s, sent to System 4. EQ-LDN-1 is spotless. EQ-LDN-2: System 2
//!   publishes `sent_to_sys3` before `trade_verified` (out of order).
//!   FX-LDN-3: slow or late verification (at risk, late, missing). EQ-NY-1:
//!   slow ACKs (at risk). RATES-NY-2: NACKs (failed). EQ-HK-1: late or no
//!   ACK from System 3 (at risk, missing and paged, late). Any book: System 1
//!   replays its outbox now and then (a duplicate the rule drops).
//! - `order_flow` and `trade_confirmation`: market orders fill in seconds,
//!   limit orders rest up to 6 minutes, fills are booked within 50 s and
//!   confirmed (MATCHED or AFFIRMED) within 30 minutes. Anywhere: pre-trade
//!   and venue rejections (failures, business as usual), client cancels, a
//!   cancel that crosses its fill (unexpected), a few limit orders resting
//!   over 15 minutes (aging). XNYS options: slow or lost routing (at risk,
//!   missing). XNAS equities: the fill published before the routing (out of
//!   order). XHKF futures: slow or late booking (at risk, missing, late).
//!   XPAR: disputed confirmations (failed). XHKG: slow or no confirmations
//!   (at risk after 45 minutes, missing after the hour).
//! - `batch_sequence`: A, then B 3–9 minutes later, then C 2–8 minutes
//!   later, the regions taking turns. Sometimes: B under 2 minutes (early),
//!   B over 15 (missing, late), C after the 10-minute warning (at risk), C
//!   late or never (missing, paged), C before B (out-of-order alert), A
//!   reported twice by a scheduler retry (duplicate).
//! - `daily_positions` (by 08:00 London, weekdays except UK holidays): the
//!   file lands 07:10–07:44 and loads 6–18 minutes later. Some days it lands
//!   after the 07:45 warning (at risk), after 08:00 (missing, late) or not
//!   at all; sometimes the first load is empty and the rerun is late. The
//!   FX rates file lands from the same gateway too; the rule ignores it.
//! - `ny_eod_prices` (by 18:30 New York, weekdays except NYSE holidays):
//!   the file lands 17:35–18:25 and loads 2–9 minutes later. Some days it is
//!   late or missing, or the load is slow; now and then an intraday file
//!   comes before the 16:00 close (unexpected, alerted).
//!
//! # Scheduled feeds keep their real times of day
//!
//! File events are never moved to make the demo busier: each business
//! date's story is fixed by the seed and the date, and its events come out
//! when the clock passes their times (the file lands minutes before its
//! deadline, or after it). Outside those times of day the feeds are quiet,
//! as they are in production. Which dates are shown follows the engine
//! (LANGUAGE.md §3.5): an engine that starts monitoring at the demo's start
//! watches the occurrences whose deadline is at or after the start, and no
//! earlier one. Those are generated in full, even a file that landed in the
//! backlog (or a little before it) for a deadline still ahead; earlier ones
//! are not generated at all, since their files would be strays. So that an
//! engine that starts at the first event returned (as `mon simulate` does)
//! agrees, the backlog never reaches back across a feed's deadline: a demo
//! started at 08:10 London gets 10 minutes of history, not 25.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use mon_stdlib::time::{format_date, format_rfc3339, local_date, local_to_utc, weekday};
use serde_json::{json, Value};

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// How far before `start_ms` the flows begin: the first [`Generator::until`]
/// returns this much history.
pub const HISTORY_MS: i64 = 25 * MINUTE;

/// Mean time between two trades captured by System 1 (a Poisson stream).
const TRADE_MEAN_GAP_MS: f64 = 2_000.0;
/// Mean time between two client orders accepted by the OMS.
const ORDER_MEAN_GAP_MS: f64 = 1_500.0;
/// A batch run starts every 70–110 s (the nightly batch, compressed so that
/// a demo of a few minutes sees several runs).
const BATCH_GAP_MS: (i64, i64) = (70 * SECOND, 110 * SECOND);
/// No two flow starts closer than this (a real feed has some spacing).
const MIN_GAP_MS: f64 = 50.0;

/// System 1 replays its outbox after a restart: the same trade again, with a
/// new envelope id (the rule drops it as a duplicate).
const OUTBOX_REPLAY: f64 = 0.01;

/// Orders with a limit price (the others are market orders).
const LIMIT_SHARE: f64 = 0.4;
/// Pre-trade risk refuses the order before it is routed.
const PRE_TRADE_REJECT: f64 = 0.02;
/// The venue refuses a routed order.
const VENUE_REJECT: f64 = 0.01;
/// The client cancels a resting limit order.
const CLIENT_CANCEL: f64 = 0.12;
/// The client's cancel crosses the fill on the wire and arrives after it.
const CANCEL_CROSSES_FILL: f64 = 0.03;
/// A limit order rests on the book for more than 15 minutes.
const LONG_REST: f64 = 0.02;
/// Confirmations that say AFFIRMED (the others say MATCHED).
const AFFIRMED_SHARE: f64 = 0.35;

/// The scheduler retries a job whose completion callback timed out, so A is
/// reported twice.
const BATCH_RETRY: f64 = 0.03;

const LONDON: &str = "Europe/London";
const NEW_YORK: &str = "America/New_York";
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
struct Feed {
    zone: &'static str,
    deadline_s: u32,
    holidays: &'static [&'static str],
}

/// `daily_positions`: by 08:00 London (amber from 07:45), weekdays except UK holidays.
const POSITIONS: Feed = Feed { zone: LONDON, deadline_s: 8 * 3600, holidays: UK_HOLIDAYS };
/// `ny_eod_prices`: by 18:30 New York, weekdays except NYSE holidays.
const PRICES: Feed = Feed { zone: NEW_YORK, deadline_s: 18 * 3600 + 30 * 60, holidays: NYSE_HOLIDAYS };

impl Feed {
    /// The deadline of the feed's occurrence on this local date, if it has one.
    fn deadline(&self, date: i32) -> Option<i64> {
        let business_day = weekday(date) < 5 && !self.holidays.contains(&format_date(date).as_str());
        if business_day {
            local_to_utc(date, self.deadline_s, self.zone)
        } else {
            None
        }
    }

    /// The local date of an instant, as a day number.
    fn date_of(&self, instant: i64) -> i32 {
        local_date(instant, self.zone).unwrap_or(instant.div_euclid(DAY) as i32)
    }
}

/// Which part of time the generator shows.
#[derive(Clone, Copy)]
struct Window {
    /// The backlog begins here.
    history_start: i64,
    /// The demo's start: the engine watches the feed occurrences whose deadline is at or after it.
    start: i64,
}

impl Window {
    /// The backlog is the [`HISTORY_MS`] before the start, unless a feed's
    /// deadline falls in it: then it begins just after that deadline. An
    /// engine that starts monitoring at the start does not watch that
    /// occurrence (LANGUAGE.md §3.5: no alerts on history it never
    /// watched), so its file would be a stray; and one that starts at the
    /// first event must not watch it either, or it would miss a file it was
    /// never shown. Either way the two agree on which occurrences exist.
    fn new(start: i64) -> Window {
        let mut history_start = start.saturating_sub(HISTORY_MS);
        for feed in [&POSITIONS, &PRICES] {
            for date in feed.date_of(history_start) - 1..=feed.date_of(start) + 1 {
                if let Some(deadline) = feed.deadline(date).filter(|d| (history_start..start).contains(d)) {
                    history_start = deadline + SECOND;
                }
            }
        }
        Window { history_start, start }
    }

    /// Whether the engine watches the occurrence with this deadline.
    fn watches(&self, deadline: i64) -> bool {
        deadline >= self.start
    }
}

// ---------------------------------------------------------------------------
// The generator

/// A deterministic stream of demo events (see the module documentation).
pub struct Generator {
    /// Derived from the seed and the start: tags ids and keys of this run.
    run: u64,
    window: Window,
    outbox: Outbox,
    trades: Flows,
    orders: Flows,
    batches: Flows,
    /// The next business date (a local day number) to plan, per feed.
    positions_date: i32,
    prices_date: i32,
    positions_rng_seed: u64,
    prices_rng_seed: u64,
    /// Events returned so far: the counter in their ids.
    returned: u64,
}

impl Generator {
    /// A deterministic generator (same seed and start, same events). `start_ms`
    /// is the demo's start on the wall clock, in ms since the Unix epoch.
    pub fn new(seed: u64, start_ms: i64) -> Generator {
        let window = Window::new(start_ms);
        let history_start = window.history_start;
        Generator {
            run: derive(seed, start_ms as u64),
            window,
            outbox: Outbox::default(),
            trades: Flows::new(derive(seed, STREAM_TRADES), history_start),
            orders: Flows::new(derive(seed, STREAM_ORDERS), history_start),
            batches: Flows::new(derive(seed, STREAM_BATCHES), history_start),
            // From the day before the backlog's first local date: every
            // occurrence whose events may be in the window is planned.
            positions_date: POSITIONS.date_of(history_start) - 1,
            prices_date: PRICES.date_of(history_start) - 1,
            positions_rng_seed: derive(seed, STREAM_POSITIONS),
            prices_rng_seed: derive(seed, STREAM_PRICES),
            returned: 0,
        }
    }

    /// Every event with time <= now_ms not returned before, in time order, as JSON lines.
    /// The first call also returns a backlog of recent history (the last [`HISTORY_MS`]
    /// before start_ms, or since a feed deadline in them), so that alerts with deadlines of
    /// minutes appear as soon as the demo starts.
    pub fn until(&mut self, now_ms: i64) -> Vec<String> {
        self.plan(now_ms);
        let mut lines = Vec::new();
        while self.outbox.heap.peek().is_some_and(|Reverse(e)| e.time <= now_ms) {
            let Some(Reverse(event)) = self.outbox.heap.pop() else { break };
            self.returned += 1;
            lines.push(event.envelope(self.run, self.returned));
        }
        lines
    }

    /// Plans every flow that starts at or before `now`. A flow's events all
    /// come at or after its start, so once this is done, every event up to
    /// `now` is in the outbox; and each stream draws from its own random
    /// numbers in start order, so the plan does not depend on how `until`
    /// calls are spaced.
    fn plan(&mut self, now: i64) {
        let tag = key_tag(self.run);
        while self.trades.next_start <= now {
            let (n, t0) = self.trades.start(|rng| rng.gap(TRADE_MEAN_GAP_MS));
            plan_trade(&mut self.trades.rng, &format!("T-{tag}-{n:05}"), t0, &mut self.outbox);
        }
        while self.orders.next_start <= now {
            let (n, t0) = self.orders.start(|rng| rng.gap(ORDER_MEAN_GAP_MS));
            plan_order(&mut self.orders.rng, &tag, n, t0, &mut self.outbox);
        }
        while self.batches.next_start <= now {
            let (n, t0) = self.batches.start(|rng| rng.between(BATCH_GAP_MS.0, BATCH_GAP_MS.1));
            plan_batch(&mut self.batches.rng, &tag, n, t0, &mut self.outbox);
        }
        // A business date's file events all come after its local midnight.
        while local_to_utc(self.positions_date, 0, LONDON).is_some_and(|midnight| midnight <= now) {
            let date = self.positions_date;
            let mut rng = Rng::new(derive(self.positions_rng_seed, date as u64));
            plan_positions(&mut rng, date, self.window, &mut self.outbox);
            self.positions_date += 1;
        }
        while local_to_utc(self.prices_date, 0, NEW_YORK).is_some_and(|midnight| midnight <= now) {
            let date = self.prices_date;
            let mut rng = Rng::new(derive(self.prices_rng_seed, date as u64));
            plan_prices(&mut rng, date, self.window, &mut self.outbox);
            self.prices_date += 1;
        }
    }
}

/// One stream of flows (trades, orders or batch runs) started at random gaps.
struct Flows {
    rng: Rng,
    next_start: i64,
    started: u64,
}

impl Flows {
    fn new(seed: u64, history_start: i64) -> Flows {
        let mut rng = Rng::new(seed);
        // The first flow comes a random bit after the window opens, like any other.
        let first = history_start + rng.between(0, 2 * SECOND);
        Flows { rng, next_start: first, started: 0 }
    }

    /// The number and start instant of the next flow; draws the gap to the one after.
    fn start(&mut self, gap: impl Fn(&mut Rng) -> i64) -> (u64, i64) {
        self.started += 1;
        let t0 = self.next_start;
        self.next_start = t0 + gap(&mut self.rng);
        (self.started, t0)
    }
}

// Streams: each has its own random numbers, id prefix and tie-break rank.
const STREAM_TRADES: u64 = 0;
const STREAM_ORDERS: u64 = 1;
const STREAM_BATCHES: u64 = 2;
const STREAM_POSITIONS: u64 = 3;
const STREAM_PRICES: u64 = 4;
const STREAMS: usize = 5;

/// The envelope id prefix of each stream, as in the examples' recordings.
fn id_prefix(stream: u64) -> &'static str {
    match stream {
        STREAM_TRADES => "tl",
        STREAM_ORDERS => "oms",
        STREAM_BATCHES => "sch",
        _ => "fr",
    }
}

/// A short tag for item keys: 4 hex digits of the run.
fn key_tag(run: u64) -> String {
    format!("{:04X}", run >> 48)
}

// ---------------------------------------------------------------------------
// The outbox: planned events, in time order

/// A planned event; `data` is already rendered.
struct Planned {
    time: i64,
    stream: u64,
    /// Order of planning within the stream: breaks ties between equal times.
    seq: u64,
    source: &'static str,
    kind: &'static str,
    data: String,
}

impl Planned {
    fn rank(&self) -> (i64, u64, u64) {
        (self.time, self.stream, self.seq)
    }

    fn envelope(&self, run: u64, counter: u64) -> String {
        format!(
            r#"{{"specversion":"1.0","type":"{}","id":"{}-{:08x}-{counter:07}","source":"{}","time":"{}","data":{}}}"#,
            self.kind,
            id_prefix(self.stream),
            run & 0xffff_ffff,
            self.source,
            timestamp(self.time),
            self.data
        )
    }
}

impl PartialEq for Planned {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank()
    }
}
impl Eq for Planned {}
impl PartialOrd for Planned {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Planned {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

#[derive(Default)]
struct Outbox {
    heap: BinaryHeap<Reverse<Planned>>,
    seqs: [u64; STREAMS],
}

impl Outbox {
    /// Plans an event; `Value::Null` fields are left out (absent optional fields).
    fn add(&mut self, stream: u64, time: i64, source: &'static str, kind: &'static str, fields: &[(&str, Value)]) {
        let slot = &mut self.seqs[stream as usize % STREAMS];
        *slot += 1;
        let planned = Planned { time, stream, seq: *slot, source, kind, data: object(fields) };
        self.heap.push(Reverse(planned));
    }
}

/// A JSON object with its fields in the given order (as the producers write
/// them), leaving out nulls.
fn object(fields: &[(&str, Value)]) -> String {
    let members: Vec<String> =
        fields.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| format!("{}:{v}", Value::from(*k))).collect();
    format!("{{{}}}", members.join(","))
}

/// RFC 3339 UTC, always with milliseconds, as the producers stamp their events.
fn timestamp(ms: i64) -> String {
    let text = format_rfc3339(ms);
    if text.contains('.') {
        text
    } else {
        text.replacen('Z', ".000Z", 1)
    }
}

// ---------------------------------------------------------------------------
// Trade lifecycle: System 1 -> 2 -> 3 -> 4

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TradeFate {
    Clean,
    /// System 2's event publisher lags its outbound queue: `sent_to_sys3` beats `trade_verified`.
    SentBeforeVerified,
    /// Static-data checks take over a minute (at risk) ...
    SlowVerify,
    /// ... or over the 2 minutes allowed (late, missing if past the 30 s grace).
    LateVerify,
    /// System 3 replies after 3 minutes (at risk) ...
    SlowAck,
    /// ... or after 5 (at risk, missing past the grace, late).
    LateAck,
    /// System 3 never replies: missing, and paged.
    SilentSys3,
    /// System 3 refuses the trade: failure.
    Nack,
}

/// A trading book and the trouble its flow tends to have.
struct Book {
    name: &'static str,
    region: &'static str,
    market: &'static str,
    product: &'static str,
    currency: &'static str,
    notional: (i64, i64),
    traders: &'static [&'static str],
    weight: u32,
    troubles: &'static [(TradeFate, f64)],
}

const BOOKS: &[Book] = &[
    // The reference book: nothing goes wrong here, so its group stays green.
    Book {
        name: "EQ-LDN-1",
        region: "EMEA",
        market: "XLON",
        product: "EQUITY",
        currency: "GBP",
        notional: (20_000, 900_000),
        traders: &["Alice Smith", "Tom Reid"],
        weight: 3,
        troubles: &[],
    },
    Book {
        name: "EQ-LDN-2",
        region: "EMEA",
        market: "XPAR",
        product: "EQUITY",
        currency: "EUR",
        notional: (20_000, 600_000),
        traders: &["Dana Martin", "Eva Novak"],
        weight: 2,
        troubles: &[(TradeFate::SentBeforeVerified, 0.08)],
    },
    Book {
        name: "FX-LDN-3",
        region: "EMEA",
        market: "XOFF",
        product: "FX_FWD",
        currency: "EUR",
        notional: (1_000_000, 20_000_000),
        traders: &["Erik Larsen"],
        weight: 2,
        troubles: &[(TradeFate::SlowVerify, 0.08), (TradeFate::LateVerify, 0.03)],
    },
    Book {
        name: "EQ-NY-1",
        region: "AMER",
        market: "XNAS",
        product: "EQUITY",
        currency: "USD",
        notional: (30_000, 800_000),
        traders: &["Fay Okafor", "Sam Wilson"],
        weight: 3,
        troubles: &[(TradeFate::SlowAck, 0.04)],
    },
    Book {
        name: "RATES-NY-2",
        region: "AMER",
        market: "XNYS",
        product: "IRS",
        currency: "USD",
        notional: (5_000_000, 50_000_000),
        traders: &["Bob Jones"],
        weight: 1,
        troubles: &[(TradeFate::Nack, 0.05)],
    },
    Book {
        name: "EQ-HK-1",
        region: "APAC",
        market: "XHKG",
        product: "EQUITY",
        currency: "HKD",
        notional: (100_000, 3_000_000),
        traders: &["Chen Wei", "Kenji Sato"],
        weight: 2,
        troubles: &[(TradeFate::LateAck, 0.05), (TradeFate::SilentSys3, 0.015), (TradeFate::SlowAck, 0.03)],
    },
];

/// Why System 3 refuses a trade.
const NACK_REASONS: &[&str] = &["UNKNOWN_COUNTERPARTY", "SSI_MISSING", "TRADE_DATE_MISMATCH"];

fn plan_trade(rng: &mut Rng, trade_id: &str, t0: i64, out: &mut Outbox) {
    const S: u64 = STREAM_TRADES;
    let book = rng.weighted(BOOKS, |b| b.weight);
    let fate = rng.fate(book.troubles, TradeFate::Clean);
    let notional = rng.between(book.notional.0 / 1000, book.notional.1 / 1000) as f64 * 1000.0;
    // The trade was struck a moment before System 1 captured it.
    let trade_time = t0 - rng.between(300, 4 * SECOND);
    let ingested = [
        ("trade_id", json!(trade_id)),
        ("book", json!(book.name)),
        ("region", json!(book.region)),
        ("market", json!(book.market)),
        ("product", json!(book.product)),
        ("notional", json!(notional)),
        ("currency", json!(book.currency)),
        ("trade_time", json!(timestamp(trade_time))),
        ("trader", json!(rng.pick(book.traders))),
    ];
    out.add(S, t0, "sys1", "trade_ingested", &ingested);
    if rng.chance(OUTBOX_REPLAY) {
        out.add(S, t0 + rng.between(5 * SECOND, 60 * SECOND), "sys1", "trade_ingested", &ingested);
    }

    let verify_after = match fate {
        TradeFate::SlowVerify => rng.between(65 * SECOND, 115 * SECOND),
        TradeFate::LateVerify => rng.between(125 * SECOND, 175 * SECOND),
        _ => rng.between(3 * SECOND, 40 * SECOND),
    };
    let (verified_at, sent3_at) = if fate == TradeFate::SentBeforeVerified {
        // The trade goes out on time; the verification event trails it.
        let sent3 = t0 + verify_after;
        (sent3 + rng.between(SECOND, 6 * SECOND), sent3)
    } else {
        let verified = t0 + verify_after;
        (verified, verified + rng.between(3 * SECOND, 20 * SECOND))
    };
    let checks = rng.between(11, 13);
    out.add(
        S,
        verified_at,
        "sys2",
        "trade_verified",
        &[("trade_id", json!(trade_id)), ("system", json!("S2")), ("checks_passed", json!(checks))],
    );
    out.add(
        S,
        sent3_at,
        "sys2",
        "sent_to_sys3",
        &[("trade_id", json!(trade_id)), ("message_id", json!(format!("S3-{}", &trade_id[2..])))],
    );

    let reply = match fate {
        TradeFate::SilentSys3 => None,
        TradeFate::Nack => Some(("NACK", rng.between(5 * SECOND, 60 * SECOND))),
        TradeFate::SlowAck => Some(("ACK", rng.between(185 * SECOND, 290 * SECOND))),
        TradeFate::LateAck => Some(("ACK", rng.between(310 * SECOND, 420 * SECOND))),
        _ => Some(("ACK", rng.between(8 * SECOND, 90 * SECOND))),
    };
    let Some((status, after)) = reply else { return };
    let replied_at = sent3_at + after;
    let reason = if status == "NACK" { json!(rng.pick(NACK_REASONS)) } else { Value::Null };
    out.add(
        S,
        replied_at,
        "sys3",
        "sys3_reply",
        &[
            ("ref", json!(trade_id)),
            ("status", json!(status)),
            ("reason", reason),
            ("message_id", json!(format!("R-{}", &trade_id[2..]))),
        ],
    );
    if status == "ACK" {
        out.add(
            S,
            replied_at + rng.between(2 * SECOND, 25 * SECOND),
            "sys2",
            "sent_to_sys4",
            &[("trade_id", json!(trade_id)), ("message_id", json!(format!("S4-{}", &trade_id[2..])))],
        );
    }
}

// ---------------------------------------------------------------------------
// Grouped metrics: orders from placement to a confirmed trade

/// What can go wrong for the orders of one listing, as probabilities.
struct OrderTroubles {
    /// Routed after the 10 s warning (at risk) ...
    slow_route: f64,
    /// ... or never (missing after 30 s).
    never_routed: f64,
    /// Market orders whose fill is published before the routing event.
    fill_before_route: f64,
    /// Booked after the 1 min warning (at risk) ...
    slow_booking: f64,
    /// ... or after the 2 min deadline (missing, then late).
    late_booking: f64,
    /// The counterparty disputes the trade: failure.
    dispute: f64,
    /// Confirmed after 45 min (at risk) ...
    slow_confirm: f64,
    /// ... or never (missing after 1 h).
    never_confirmed: f64,
}

const CLEAN: OrderTroubles = OrderTroubles {
    slow_route: 0.0,
    never_routed: 0.0,
    fill_before_route: 0.0,
    slow_booking: 0.0,
    late_booking: 0.0,
    dispute: 0.0,
    slow_confirm: 0.0,
    never_confirmed: 0.0,
};

/// A product on a venue, with its booking book and typical prices and sizes.
struct Listing {
    market: &'static str,
    region: &'static str,
    product: &'static str,
    book: &'static str,
    weight: u32,
    price: (f64, f64),
    /// Order size range, in lots.
    lots: (i64, i64),
    lot: i64,
    troubles: OrderTroubles,
}

const LISTINGS: &[Listing] = &[
    Listing {
        market: "XLON",
        region: "EMEA",
        product: "EQUITY",
        book: "EQ-LDN-1",
        weight: 3,
        price: (80.0, 120.0),
        lots: (1, 100),
        lot: 100,
        troubles: CLEAN,
    },
    Listing {
        market: "XLON",
        region: "EMEA",
        product: "ETF",
        book: "ETF-LDN-1",
        weight: 1,
        price: (60.0, 80.0),
        lots: (5, 50),
        lot: 100,
        troubles: CLEAN,
    },
    // A Paris counterparty keeps disputing prices.
    Listing {
        market: "XPAR",
        region: "EMEA",
        product: "EQUITY",
        book: "EQ-PAR-1",
        weight: 2,
        price: (40.0, 90.0),
        lots: (1, 60),
        lot: 100,
        troubles: OrderTroubles { dispute: 0.03, ..CLEAN },
    },
    Listing {
        market: "XNYS",
        region: "AMER",
        product: "EQUITY",
        book: "EQ-NY-1",
        weight: 2,
        price: (30.0, 60.0),
        lots: (1, 50),
        lot: 100,
        troubles: CLEAN,
    },
    // The options gateway is slow to route, and sometimes loses an order.
    Listing {
        market: "XNYS",
        region: "AMER",
        product: "OPTION",
        book: "OPT-NY-1",
        weight: 1,
        price: (1.5, 12.0),
        lots: (1, 100),
        lot: 1,
        troubles: OrderTroubles { slow_route: 0.08, never_routed: 0.01, ..CLEAN },
    },
    // The router's drop copy lags: the fill is published before the routing.
    Listing {
        market: "XNAS",
        region: "AMER",
        product: "EQUITY",
        book: "EQ-NY-2",
        weight: 2,
        price: (100.0, 250.0),
        lots: (1, 30),
        lot: 50,
        troubles: OrderTroubles { fill_before_route: 0.05, ..CLEAN },
    },
    Listing {
        market: "XNAS",
        region: "AMER",
        product: "ETF",
        book: "ETF-NY-1",
        weight: 1,
        price: (380.0, 440.0),
        lots: (1, 20),
        lot: 10,
        troubles: CLEAN,
    },
    // The futures booking engine falls behind.
    Listing {
        market: "XHKF",
        region: "APAC",
        product: "FUTURE",
        book: "FUT-HK-1",
        weight: 1,
        price: (19_800.0, 20_100.0),
        lots: (1, 30),
        lot: 1,
        troubles: OrderTroubles { slow_booking: 0.10, late_booking: 0.04, ..CLEAN },
    },
    // Hong Kong counterparties confirm late, some only the next morning.
    Listing {
        market: "XHKG",
        region: "APAC",
        product: "EQUITY",
        book: "EQ-HK-2",
        weight: 1,
        price: (20.0, 400.0),
        lots: (1, 40),
        lot: 100,
        troubles: OrderTroubles { slow_confirm: 0.05, never_confirmed: 0.015, ..CLEAN },
    },
];

const CLIENTS: &[&str] = &[
    "Jane Doe",
    "Raj Patel",
    "Mia Chen",
    "Kenji Sato",
    "Lena Vogel",
    "Omar Haddad",
    "Tom Reid",
    "Priya Shah",
    "Sam Wilson",
    "Ana Lim",
    "Leo Park",
    "Eva Novak",
];
const PRE_TRADE_REASONS: &[&str] = &["PRE_TRADE_LIMIT", "RESTRICTED_INSTRUMENT", "CREDIT_LIMIT"];
const VENUE_REASONS: &[&str] = &["VENUE_REJECT", "PRICE_BAND"];

fn plan_order(rng: &mut Rng, tag: &str, n: u64, t0: i64, out: &mut Outbox) {
    const S: u64 = STREAM_ORDERS;
    let order_id = format!("O-{tag}-{n:05}");
    let listing = rng.weighted(LISTINGS, |l| l.weight);
    let trouble = &listing.troubles;
    let limit = rng.chance(LIMIT_SHARE);
    let qty = rng.between(listing.lots.0, listing.lots.1 + 1) * listing.lot;
    let price = cents(listing.price.0 + rng.unit() * (listing.price.1 - listing.price.0));
    let side = if rng.chance(0.5) { "BUY" } else { "SELL" };
    out.add(
        S,
        t0,
        "oms",
        "order_placed",
        &[
            ("order_id", json!(order_id)),
            ("account", json!(format!("ACC-{}", rng.between(1000, 4000)))),
            ("client_name", json!(rng.pick(CLIENTS))),
            ("market", json!(listing.market)),
            ("region", json!(listing.region)),
            ("product", json!(listing.product)),
            ("side", json!(side)),
            ("qty", json!(qty)),
            ("limit_price", if limit { json!(price) } else { Value::Null }),
        ],
    );
    let id = || json!(order_id);
    if rng.chance(PRE_TRADE_REJECT) {
        let reason = rng.pick(PRE_TRADE_REASONS);
        out.add(
            S,
            t0 + rng.between(100, 800),
            "oms-risk",
            "order_rejected",
            &[("order_id", id()), ("reason", json!(reason))],
        );
        return;
    }

    let route_after = if rng.chance(trouble.never_routed) {
        return; // the gateway lost it: the order sits in `placed` until the routing goes missing
    } else if rng.chance(trouble.slow_route) {
        rng.between(11 * SECOND, 28 * SECOND)
    } else {
        rng.between(100, 2 * SECOND)
    };
    let routed_at = t0 + route_after;
    let routed = [("order_id", id()), ("venue", json!(listing.market))];
    if rng.chance(VENUE_REJECT) {
        out.add(S, routed_at, "oms-router", "order_routed", &routed);
        let reason = rng.pick(VENUE_REASONS);
        out.add(
            S,
            routed_at + rng.between(50, 600),
            "oms",
            "order_rejected",
            &[("order_id", id()), ("reason", json!(reason))],
        );
        return;
    }
    if limit && rng.chance(CLIENT_CANCEL) {
        out.add(S, routed_at, "oms-router", "order_routed", &routed);
        out.add(
            S,
            routed_at + rng.between(20 * SECOND, 8 * MINUTE),
            "oms",
            "order_cancelled",
            &[("order_id", id()), ("reason", json!("CLIENT_REQUEST"))],
        );
        return;
    }

    // Market orders fill at once; limit orders rest until the price comes to them.
    let fill_after = if !limit {
        rng.between(300, 6 * SECOND)
    } else if rng.chance(LONG_REST) {
        rng.between(16 * MINUTE, 40 * MINUTE)
    } else {
        rng.between(5 * SECOND, 6 * MINUTE)
    };
    let filled_at = routed_at + fill_after;
    let avg_price = if limit { price } else { cents(price * (1.0 + (rng.unit() - 0.5) * 0.002)) };
    let filled = [("order_id", id()), ("filled_qty", json!(qty)), ("avg_price", json!(avg_price))];
    if !limit && rng.chance(trouble.fill_before_route) {
        out.add(S, filled_at, "oms", "order_filled", &filled);
        out.add(S, filled_at + rng.between(300, 2500), "oms-router", "order_routed", &routed);
    } else {
        out.add(S, routed_at, "oms-router", "order_routed", &routed);
        out.add(S, filled_at, "oms", "order_filled", &filled);
    }
    if limit && rng.chance(CANCEL_CROSSES_FILL) {
        out.add(
            S,
            filled_at + rng.between(100, 1500),
            "oms",
            "order_cancelled",
            &[("order_id", id()), ("reason", json!("CLIENT_REQUEST"))],
        );
    }

    let book_after = if rng.chance(trouble.late_booking) {
        rng.between(125 * SECOND, 170 * SECOND)
    } else if rng.chance(trouble.slow_booking) {
        rng.between(62 * SECOND, 115 * SECOND)
    } else {
        rng.between(5 * SECOND, 50 * SECOND)
    };
    let booked_at = filled_at + book_after;
    let trade_id = format!("BK-{tag}-{n:05}");
    out.add(
        S,
        booked_at,
        "booking-engine",
        "trade_booked",
        &[
            ("trade_id", json!(trade_id)),
            ("order_id", id()),
            ("market", json!(listing.market)),
            ("region", json!(listing.region)),
            ("product", json!(listing.product)),
            ("book", json!(listing.book)),
        ],
    );
    plan_confirmation(rng, trouble, &trade_id, booked_at, out);
}

/// The counterparty's answer to a booked trade (`trade_confirmation`).
fn plan_confirmation(rng: &mut Rng, trouble: &OrderTroubles, trade_id: &str, booked_at: i64, out: &mut Outbox) {
    if rng.chance(trouble.never_confirmed) {
        return;
    }
    let (outcome, after) = if rng.chance(trouble.dispute) {
        ("DISPUTED", rng.between(5 * MINUTE, 25 * MINUTE))
    } else {
        let outcome = if rng.chance(AFFIRMED_SHARE) { "AFFIRMED" } else { "MATCHED" };
        if rng.chance(trouble.slow_confirm) {
            (outcome, rng.between(46 * MINUTE, 58 * MINUTE))
        } else {
            (outcome, rng.between(MINUTE, 30 * MINUTE))
        }
    };
    out.add(
        STREAM_ORDERS,
        booked_at + after,
        "confirmations",
        "trade_confirmed",
        &[("trade_id", json!(trade_id)), ("outcome", json!(outcome))],
    );
}

fn cents(price: f64) -> f64 {
    (price * 100.0).round() / 100.0
}

// ---------------------------------------------------------------------------
// Batch sequence: extract (A), compute (B), publish (C)

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BatchFate {
    Clean,
    /// Compute finished under 2 minutes: it skipped its inputs.
    EarlyCompute,
    /// Compute took over 15 minutes.
    LateCompute,
    /// Publish after the 10 min warning (at risk) ...
    SlowPublish,
    /// ... after the 15 min deadline (missing, paged, then late) ...
    LatePublish,
    /// ... or never.
    NoPublish,
    /// Publish fired on a stale trigger, before compute: yesterday's numbers went out.
    PublishBeforeCompute,
}

const BATCH_TROUBLES: &[(BatchFate, f64)] = &[
    (BatchFate::EarlyCompute, 0.05),
    (BatchFate::LateCompute, 0.01),
    (BatchFate::SlowPublish, 0.05),
    (BatchFate::LatePublish, 0.02),
    (BatchFate::NoPublish, 0.01),
    (BatchFate::PublishBeforeCompute, 0.03),
];

/// Region, extract host, compute/publish host, typical record count.
const BATCH_REGIONS: &[(&str, &str, &str, i64)] = &[
    ("EMEA", "batch-ldn-01", "batch-ldn-02", 182_000),
    ("AMER", "batch-ny-01", "batch-ny-02", 240_000),
    ("APAC", "batch-hk-01", "batch-hk-02", 96_000),
];

fn plan_batch(rng: &mut Rng, tag: &str, n: u64, t0: i64, out: &mut Outbox) {
    const S: u64 = STREAM_BATCHES;
    const SOURCE: &str = "scheduler/control-m";
    // The regions take turns.
    let (region, extract_host, compute_host, typical) = BATCH_REGIONS[(n as usize) % BATCH_REGIONS.len()];
    let batch_id = format!("RISK-{region}-{tag}-{n:04}");
    let fate = rng.fate(BATCH_TROUBLES, BatchFate::Clean);
    let records = typical + rng.between(-typical / 100, typical / 100);
    let a = [("batch_id", json!(batch_id)), ("records", json!(records)), ("host", json!(extract_host))];
    out.add(S, t0, SOURCE, "batch_a_completed", &a);
    if rng.chance(BATCH_RETRY) {
        out.add(S, t0 + rng.between(20 * SECOND, 90 * SECOND), SOURCE, "batch_a_completed", &a);
    }

    let compute_after = match fate {
        BatchFate::EarlyCompute => rng.between(40 * SECOND, 110 * SECOND),
        BatchFate::LateCompute => rng.between(16 * MINUTE, 20 * MINUTE),
        _ => rng.between(3 * MINUTE, 9 * MINUTE),
    };
    let publish_after = match fate {
        BatchFate::SlowPublish => Some(rng.between(10 * MINUTE + 30 * SECOND, 14 * MINUTE + 30 * SECOND)),
        BatchFate::LatePublish => Some(rng.between(16 * MINUTE, 22 * MINUTE)),
        BatchFate::NoPublish => None,
        _ => Some(rng.between(2 * MINUTE, 8 * MINUTE)),
    };
    let (compute_at, publish_at) = if fate == BatchFate::PublishBeforeCompute {
        let publish = t0 + rng.between(150 * SECOND, 4 * MINUTE);
        (publish + rng.between(MINUTE, 3 * MINUTE), Some(publish))
    } else {
        let compute = t0 + compute_after;
        (compute, publish_after.map(|p| compute + p))
    };
    // An early compute skipped its inputs: it processed nothing.
    let computed = if fate == BatchFate::EarlyCompute { 0 } else { records };
    out.add(
        S,
        compute_at,
        SOURCE,
        "batch_b_completed",
        &[("batch_id", json!(batch_id)), ("records", json!(computed)), ("host", json!(compute_host))],
    );
    if let Some(publish_at) = publish_at {
        let path = if rng.chance(0.9) { json!(format!("/reports/risk/{batch_id}.pdf")) } else { Value::Null };
        out.add(
            S,
            publish_at,
            SOURCE,
            "batch_c_completed",
            &[
                ("batch_id", json!(batch_id)),
                ("records", json!(rng.between(380, 420))),
                ("host", json!(compute_host)),
                ("report_path", path),
            ],
        );
    }
}

// ---------------------------------------------------------------------------
// File receipt: scheduled feeds, at their real times of day

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
fn plan_positions(rng: &mut Rng, date: i32, window: Window, out: &mut Outbox) {
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
fn plan_prices(rng: &mut Rng, date: i32, window: Window, out: &mut Outbox) {
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

// ---------------------------------------------------------------------------
// Random numbers: splitmix64, small and deterministic on every platform

/// The splitmix64 finaliser: a good 64-bit mix of its input.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An independent seed for one purpose (a stream, a date) of a seed.
fn derive(seed: u64, salt: u64) -> u64 {
    mix(seed ^ mix(salt.wrapping_add(0x9E37_79B9_7F4A_7C15)))
}

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in [lo, hi) (`lo` when the range is empty).
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + (self.next_u64() % (hi - lo) as u64) as i64
    }

    /// An exponential gap with this mean: the time between arrivals of a
    /// Poisson stream, which is how independent traders' trades arrive.
    fn gap(&mut self, mean_ms: f64) -> i64 {
        (-(1.0 - self.unit()).ln() * mean_ms).max(MIN_GAP_MS).round() as i64
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.between(0, items.len() as i64) as usize]
    }

    fn weighted<'a, T>(&mut self, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
        let total: i64 = items.iter().map(|i| i64::from(weight(i))).sum();
        let mut ticket = self.between(0, total);
        for item in items {
            ticket -= i64::from(weight(item));
            if ticket < 0 {
                return item;
            }
        }
        &items[items.len() - 1]
    }

    /// One of the troubles by its probability, or `otherwise`.
    fn fate<T: Copy>(&mut self, troubles: &[(T, f64)], otherwise: T) -> T {
        let mut ticket = self.unit();
        for &(fate, p) in troubles {
            if ticket < p {
                return fate;
            }
            ticket -= p;
        }
        otherwise
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashSet};
    use std::path::Path;

    use mon_compiler::compile;
    use mon_compiler::ir::Program;
    use mon_runtime::aggregates::{self, Slice, Status};
    use mon_runtime::simulate::Simulation;
    use mon_runtime::{Kind, Record};
    use mon_stdlib::time::parse_rfc3339;

    use super::*;
    use mon_loader::{load_tree, FsSchemas};

    const SEED: u64 = 20260303;
    /// Tuesday 3 March 2026, 07:50 in London (GMT): the hour covers the
    /// positions file's 08:00 deadline.
    const MORNING: &str = "2026-03-03T07:50:00Z";

    fn at(text: &str) -> i64 {
        parse_rfc3339(text).expect("a valid timestamp")
    }

    /// Every `.mon` file under `examples/`, compiled as one program (as `mon demo` does).
    fn examples_program() -> Program {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let files = load_tree(&dir).expect("examples/ is readable").files;
        let compilation = compile(&files, mon_stdlib::registry(), &FsSchemas);
        compilation.program.unwrap_or_else(|| panic!("examples/ compiles: {:?}", compilation.diagnostics))
    }

    /// A generator's lines from `start` to `end`, asked for once a minute
    /// (the demo asks more often; the result is the same, see below).
    fn run(seed: u64, start: i64, end: i64) -> Vec<String> {
        let mut generator = Generator::new(seed, start);
        let mut lines = generator.until(start);
        let mut now = start;
        while now < end {
            now = (now + MINUTE).min(end);
            lines.extend(generator.until(now));
        }
        lines
    }

    fn parse(line: &str) -> Value {
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// What a replay made: its records, and the engine's view at the end.
    struct Replay {
        records: Vec<Record>,
        /// Records made by the time the backlog had been fed.
        backlog_records: Vec<Record>,
        rejected: u64,
        /// (workflow, group) -> status at the end; the group is "" for the whole workflow.
        statuses: BTreeMap<(String, String), Status>,
        /// workflow -> (completed, failed, in flight) at the end.
        outcomes: BTreeMap<String, (u64, u64, u64)>,
    }

    /// Replays `lines` on a virtual clock up to `end`. Monitoring starts at
    /// `from`, as the demo's wall-clock engine does, or with `None` at the
    /// first event, as `mon simulate` does.
    fn replay(program: &Program, lines: &[String], backlog: usize, from: Option<i64>, end: i64) -> Replay {
        let mut simulation = Simulation::new(program, mon_stdlib::registry(), from, Some(end));
        let mut records = Vec::new();
        let mut backlog_records = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            simulation.feed(line, &mut records);
            if i + 1 == backlog {
                backlog_records = records.clone();
            }
        }
        simulation.finish(&mut records);
        let engine = simulation.engine().expect("events were fed");
        let mut statuses = BTreeMap::new();
        let mut outcomes = BTreeMap::new();
        for workflow in &program.workflows {
            let whole = Slice::default();
            statuses.insert(
                (workflow.name.clone(), String::new()),
                aggregates::status(&engine.state, workflow, &whole, end),
            );
            let m = aggregates::metrics(&engine.state, workflow, &whole, end);
            outcomes.insert(workflow.name.clone(), (m.completed, m.failed, m.in_flight));
            let groups: BTreeSet<Vec<String>> =
                engine.instances(workflow.id).map(|(_, i)| engine.state.group(i.group).to_vec()).collect();
            for group in groups.iter().filter(|g| !g.is_empty()) {
                let slice = Slice { stage: None, group: Some(group) };
                let status = aggregates::status(&engine.state, workflow, &slice, end);
                statuses.insert((workflow.name.clone(), group.join("/")), status);
            }
        }
        Replay { records, backlog_records, rejected: simulation.rejected, statuses, outcomes }
    }

    fn count_by_kind(records: &[Record]) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for r in records {
            *counts.entry(r.kind.name()).or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn generator_same_seed_and_start_same_lines_however_asked() {
        let start = at(MORNING);
        let end = start + HOUR;
        let once = Generator::new(SEED, start).until(end);
        // Asked every 7 s, as a demo loop might, with a repeated `now` in between.
        let mut generator = Generator::new(SEED, start);
        let mut chunked = Vec::new();
        let mut now = start - 5 * MINUTE;
        while now < end {
            now = (now + 7 * SECOND).min(end);
            chunked.extend(generator.until(now));
            assert!(generator.until(now).is_empty(), "a second call with the same now returns nothing new");
        }
        assert_eq!(once.len(), chunked.len());
        assert!(once == chunked, "the same events, whatever the spacing of the calls");
        assert!(generator.until(end).is_empty());
        // A later call continues where the last one stopped.
        assert!(!generator.until(end + MINUTE).is_empty());

        let other_seed = Generator::new(SEED + 1, start).until(start);
        let same_seed = Generator::new(SEED, start).until(start);
        assert_ne!(other_seed, same_seed);
    }

    #[test]
    fn generator_lines_are_ordered_cloudevents_with_unique_ids() {
        let start = at(MORNING);
        let lines = run(SEED, start, start + HOUR);
        let mut ids = HashSet::new();
        let mut last = i64::MIN;
        let mut types = BTreeSet::new();
        for line in &lines {
            let event = parse(line);
            let keys: Vec<&str> = event.as_object().expect("an object").keys().map(String::as_str).collect();
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, ["data", "id", "source", "specversion", "time", "type"], "{line}");
            assert_eq!(event["specversion"], "1.0");
            assert!(event["source"].as_str().is_some_and(|s| !s.is_empty()));
            assert!(event["data"].is_object());
            let time = event["time"].as_str().expect("a time");
            // RFC 3339 UTC with milliseconds: 2026-03-03T08:10:00.000Z
            assert!(time.len() == 24 && time.ends_with('Z') && time.as_bytes()[19] == b'.', "{time}");
            let t = parse_rfc3339(time).expect("an RFC 3339 time");
            assert!(t >= last, "time order: {line}");
            assert!(t <= start + HOUR);
            last = t;
            assert!(ids.insert(event["id"].as_str().expect("an id").to_string()), "unique ids: {line}");
            types.insert(event["type"].as_str().expect("a type").to_string());
        }
        // All four use cases are present in this morning hour.
        for t in ["trade_ingested", "sys3_reply", "order_placed", "trade_confirmed", "batch_c_completed", "file_loaded"]
        {
            assert!(types.contains(t), "no {t} in {types:?}");
        }

        // The backlog starts about HISTORY_MS before the start, and the
        // positions file of the 08:00 occurrence may make it a bit earlier.
        let first = parse_rfc3339(parse(&lines[0])["time"].as_str().expect("a time")).expect("a time");
        assert!(first <= start - HISTORY_MS + 2 * SECOND, "history begins at the window");
        assert!(first >= start - HISTORY_MS - HOUR);

        // Pace: a few events a second, about one trade or order started a second.
        let forward: Vec<Value> = lines
            .iter()
            .map(|l| parse(l))
            .filter(|e| parse_rfc3339(e["time"].as_str().unwrap()).unwrap() > start)
            .collect();
        let per_second = forward.len() as f64 / 3600.0;
        assert!((2.0..=10.0).contains(&per_second), "{per_second} events/s");
        let starts = forward.iter().filter(|e| e["type"] == "trade_ingested" || e["type"] == "order_placed").count();
        let per_second = starts as f64 / 3600.0;
        assert!((0.8..=5.0).contains(&per_second), "{per_second} flows/s");
    }

    #[test]
    fn an_hour_of_demo_events_is_valid_and_shows_every_colour() {
        let program = examples_program();
        let start = at(MORNING);
        let end = start + HOUR;
        let mut generator = Generator::new(SEED, start);
        let mut lines = generator.until(start);
        let backlog = lines.len();
        let mut now = start;
        while now < end {
            now += SECOND;
            lines.extend(generator.until(now));
        }
        let replay = replay(&program, &lines, backlog, Some(start), end);

        let first_rejection = replay.records.iter().find(|r| r.kind == Kind::Rejected);
        assert_eq!(replay.rejected, 0, "every event fits its declaration: {first_rejection:?}");
        let counts = count_by_kind(&replay.records);
        let mut by_step: BTreeMap<(String, String, &str), usize> = BTreeMap::new();
        for r in &replay.records {
            let (workflow, step) = (r.workflow.clone().unwrap_or_default(), r.step.clone().unwrap_or_default());
            *by_step.entry((workflow, step, r.kind.name())).or_insert(0) += 1;
        }
        eprintln!("{} events ({backlog} in the backlog); records by kind: {counts:?}", lines.len());
        eprintln!("records by workflow, step and kind: {by_step:?}");
        eprintln!("outcomes (completed, failed, in flight): {:?}", replay.outcomes);
        eprintln!("statuses: {:?}", replay.statuses);
        for kind in ["missing", "late", "at_risk", "out_of_order", "early", "duplicate", "unexpected"] {
            assert!(counts.get(kind).copied().unwrap_or(0) > 0, "no {kind} record: {counts:?}");
        }
        // Some alerts are already there when the demo opens.
        let backlog_counts = count_by_kind(&replay.backlog_records);
        eprintln!("records from the backlog alone: {backlog_counts:?}");
        assert!(backlog_counts.get("missing").copied().unwrap_or(0) > 0, "{backlog_counts:?}");
        assert!(backlog_counts.get("at_risk").copied().unwrap_or(0) > 0, "{backlog_counts:?}");
        assert!(replay.backlog_records.iter().any(Record::is_alert));

        // Most trades complete: the ones not done are the last few minutes'
        // in flight, the NACKs and System 3's silences.
        let trades: HashSet<String> = lines
            .iter()
            .map(|l| parse(l))
            .filter(|e| e["type"] == "trade_ingested")
            .map(|e| e["data"]["trade_id"].as_str().expect("a trade id").to_string())
            .collect();
        let (completed, failed, in_flight) = replay.outcomes["trade_lifecycle"];
        assert!(completed as f64 >= 0.9 * trades.len() as f64, "{completed} of {} trades completed", trades.len());
        assert!(failed > 0 && failed as f64 <= 0.02 * trades.len() as f64, "{failed} failed");
        assert!(in_flight > 0);
        let (orders_completed, _, _) = replay.outcomes["order_flow"];
        let orders = lines.iter().filter(|l| l.contains(r#""type":"order_placed""#)).count();
        assert!(orders_completed as f64 >= 0.85 * orders as f64, "{orders_completed} of {orders} orders completed");

        // The morning's positions file was watched, and none of its events was a stray.
        let (positions_done, _, positions_open) = replay.outcomes["daily_positions"];
        assert_eq!(positions_done + positions_open, 1, "one occurrence for 3 March");
        assert!(!replay
            .records
            .iter()
            .any(|r| r.kind == Kind::Unexpected && r.workflow.as_deref() == Some("daily_positions")));

        // The wallboard shows all three colours among the groups.
        let colours: BTreeSet<Status> = replay.statuses.values().copied().collect();
        assert_eq!(colours.len(), 3, "{:?}", replay.statuses);
        let status = |workflow: &str, group: &str| replay.statuses[&(workflow.to_string(), group.to_string())];
        assert_eq!(status("trade_lifecycle", "EMEA/EQ-LDN-1"), Status::Green, "the reference book stays green");
        assert_eq!(status("order_flow", "XLON/EMEA/EQUITY"), Status::Green);

        // An engine that starts at the first event makes the same records.
        let from_first_event = self::replay(&program, &lines, backlog, None, end);
        assert_eq!(count_by_kind(&from_first_event.records), counts);
    }

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
            let mut rng = Rng::new(derive(derive(SEED, STREAM_POSITIONS), date as u64));
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
