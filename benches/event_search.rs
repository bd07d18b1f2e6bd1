//! Event search by item over a large event store.
//!
//! `cargo bench --bench event_search` fills a real event store directory
//! through the service's own appends (`EventStore::append`, batches of
//! 10,000 events, one journal sequence each, segments closed and indexed
//! as the service does: every hour of event time), with 10 million events
//! over 1 million keys (ten an item, spread over 14 days), then times
//! `GET /api/v1/events?workflow=orders&key=K`'s search
//! (`EventStore::search`, without HTTP) for 1,000 random keys and reports
//! p50 and p99 (target: under 50 ms), then the same after reopening the
//! store (the open segment's index rebuilt by a scan; the page cache is
//! not dropped). Each search must find exactly its item's ten events.
//! `MON_BENCH_EVENTS=N` measures another size; `MON_BENCH_DIR=path` fills
//! a directory there (on the disk to measure) instead of a temporary one.
//!
//! Under `cargo test --all-targets` it runs once on 20,000 events as a
//! smoke test: the same checks, no figure printed (as `benches/service.rs`:
//! the `--bench` argument tells the two apart).

#[path = "../tests/support/rng.rs"]
mod rng;

use std::sync::OnceLock;
use std::time::Instant;

use mon_compiler::ir::Program;
use mon_compiler::ir::Value;
use mon_compiler::{compile, SourceFile};
use mon_service::events::{EventStore, Search, StoredEvent};

const RULES: &str = "
event order_placed { order: string, region: enum { EU, US } }
event order_shipped { order: string }

workflow orders {
  key order
  start placed: order_placed
  step shipped: order_shipped after placed within 1h
}
";

const EVENTS_PER_KEY: u64 = 10;
const BATCH: u64 = 10_000;
const SEARCHES: usize = 1000;

fn measuring() -> bool {
    static MEASURING: OnceLock<bool> = OnceLock::new();
    *MEASURING.get_or_init(|| std::env::args().any(|a| a == "--bench"))
}

macro_rules! figure {
    ($($arg:tt)*) => {
        if measuring() {
            println!($($arg)*);
        }
    };
}

fn key(n: u64) -> String {
    format!("O-{n:08}")
}

/// Event `i`: item `i % keys`, its `i / keys`-th event, at a time spread
/// over 14 days (so the items' events interleave, as live).
fn event(i: u64, keys: u64, span_ms: i64, total: u64) -> StoredEvent {
    let item = i % keys;
    let placed = i / keys == 0;
    let time = 1_780_000_000_000 + (i as i128 * span_ms as i128 / total as i128) as i64;
    let mut data = vec![("order".to_string(), Value::String(key(item)))];
    if placed {
        data.push(("region".to_string(), Value::Enum((item % 2) as u32)));
    }
    StoredEvent {
        id: format!("e{i}"),
        type_name: if placed { "order_placed" } else { "order_shipped" }.to_string(),
        time,
        received: time,
        data,
        items: vec![("orders".to_string(), key(item))],
        rejected: None,
    }
}

fn main() {
    let total: u64 = match std::env::var("MON_BENCH_EVENTS") {
        Ok(n) => n.parse().expect("MON_BENCH_EVENTS: a number"),
        Err(_) if measuring() => 10_000_000,
        Err(_) => 20_000,
    };
    let keys = (total / EVENTS_PER_KEY).max(1);
    let compilation = compile(
        &[SourceFile { path: "orders.mon".into(), text: RULES.into() }],
        mon_stdlib::registry(),
        &mon_compiler::NoSchemas,
    );
    let program = compilation.program.expect("the rules compile");
    let dir = match std::env::var("MON_BENCH_DIR") {
        Ok(path) => tempfile::tempdir_in(path).expect("a directory under MON_BENCH_DIR"),
        Err(_) => tempfile::tempdir().expect("a state directory"),
    };
    let store = EventStore::open(&dir.path().join("events")).expect("open the event store");
    let span_ms = 14 * 86_400_000;
    let filling = Instant::now();
    let mut i = 0;
    while i < total {
        let end = (i + BATCH).min(total);
        let events: Vec<StoredEvent> = (i..end).map(|n| event(n, keys, span_ms, total)).collect();
        store.append(i / BATCH, &events).expect("append");
        i = end;
        if measuring() && i % 1_000_000 == 0 {
            eprintln!("  {i} events stored, {:.0} s", filling.elapsed().as_secs_f64());
        }
    }
    let fill_seconds = filling.elapsed().as_secs_f64();
    figure!(
        "filled {total} events over {keys} keys in {fill_seconds:.0} s ({:.0} events/s)",
        total as f64 / fill_seconds
    );

    let bytes: u64 = std::fs::read_dir(dir.path().join("events"))
        .expect("the event directory")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    figure!(
        "on disk: {:.0} MB ({:.0} bytes an event, segments and indexes)",
        bytes as f64 / 1e6,
        bytes as f64 / total as f64
    );
    searches(&program, &store, keys, total, "");
    drop(store);
    let reopening = Instant::now();
    let store = EventStore::open(&dir.path().join("events")).expect("reopen the event store");
    figure!("reopened in {:.2} s", reopening.elapsed().as_secs_f64());
    searches(&program, &store, keys, total, " (reopened)");
    if !measuring() {
        println!("bench event_search: runs ({total} events, {SEARCHES} searches by key); `cargo bench --bench event_search` measures it");
    }
}

/// Times `SEARCHES` searches by key and checks what each finds.
fn searches(program: &Program, events: &EventStore, keys: u64, total: u64, label: &str) {
    let mut random = rng::SplitMix64::new(42);
    let mut millis = Vec::with_capacity(SEARCHES);
    for _ in 0..SEARCHES {
        let item = key(random.next_u64() % keys);
        let search =
            Search { workflow: Some("orders".to_string()), key: Some(item.clone()), limit: 100, ..Search::default() };
        let started = Instant::now();
        let found = events.search(program, &search).expect("search");
        millis.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(found.events.len() as u64, EVENTS_PER_KEY.min(total), "{item}");
        assert!(found.events.iter().all(|(_, e)| e.items[0].1 == item));
        assert!(found.events.windows(2).all(|w| w[0].0 > w[1].0), "newest first");
    }
    millis.sort_by(f64::total_cmp);
    let p = |q: f64| millis[((millis.len() - 1) as f64 * q).round() as usize];
    figure!(
        "search by key over {total} events{label}, {SEARCHES} random keys: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target < 50 ms)",
        p(0.5),
        p(0.99),
        p(1.0)
    );
}
