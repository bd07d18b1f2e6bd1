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
//!
//! # Where things are
//!
//! This module is the interface: [`Generator`] and the flows it starts.
//! `planted` writes the demo's own rule file (a file SLA that fails on
//! any day), `scenarios/` plans each example program's events (one module each),
//! `outbox` keeps them in time order and renders their envelopes, `window`
//! says which part of time is shown, and `draw` holds the draws the
//! scenarios make on the binary's one SplitMix64 (`crate::rng`).

mod draw;
mod outbox;
pub mod planted;
mod scenarios;
#[cfg(test)]
mod tests;
mod window;

use std::cmp::Reverse;

use mon_stdlib::time::local_to_utc;

use draw::Draw;
use outbox::{Outbox, STREAM_BATCHES, STREAM_ORDERS, STREAM_POSITIONS, STREAM_PRICES, STREAM_TRADES};
use scenarios::batch_sequence::plan_batch;
use scenarios::file_receipt::{plan_positions, plan_prices, LONDON, NEW_YORK, POSITIONS, PRICES};
use scenarios::grouped_metrics::plan_order;
use scenarios::trade_lifecycle::plan_trade;
use window::Window;

use crate::rng::{derive, SplitMix64};

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
            let mut rng = SplitMix64::new(derive(self.positions_rng_seed, date as u64));
            plan_positions(&mut rng, date, self.window, &mut self.outbox);
            self.positions_date += 1;
        }
        while local_to_utc(self.prices_date, 0, NEW_YORK).is_some_and(|midnight| midnight <= now) {
            let date = self.prices_date;
            let mut rng = SplitMix64::new(derive(self.prices_rng_seed, date as u64));
            plan_prices(&mut rng, date, self.window, &mut self.outbox);
            self.prices_date += 1;
        }
    }
}

/// One stream of flows (trades, orders or batch runs) started at random gaps.
struct Flows {
    rng: SplitMix64,
    next_start: i64,
    started: u64,
}

impl Flows {
    fn new(seed: u64, history_start: i64) -> Flows {
        let mut rng = SplitMix64::new(seed);
        // The first flow comes a random bit after the window opens, like any other.
        let first = history_start + rng.between(0, 2 * SECOND);
        Flows { rng, next_start: first, started: 0 }
    }

    /// The number and start instant of the next flow; draws the gap to the one after.
    fn start(&mut self, gap: impl Fn(&mut SplitMix64) -> i64) -> (u64, i64) {
        self.started += 1;
        let t0 = self.next_start;
        self.next_start = t0 + gap(&mut self.rng);
        (self.started, t0)
    }
}

/// A short tag for item keys: 4 hex digits of the run.
fn key_tag(run: u64) -> String {
    format!("{:04X}", run >> 48)
}
