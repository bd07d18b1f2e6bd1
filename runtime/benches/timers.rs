//! Criterion benchmark of the engine's timer queue, the timing wheel
//! (`runtime/src/engine/wheel.rs`), beside the binary heap it replaced on
//! the same work, so that the pair shows what the wheel buys.
//!
//! - `schedule_pop/N`: with N timers pending (dues spread over the next ten
//!   minutes, as trades in flight have), take the earliest timer and
//!   schedule a new one up to ten minutes after it: one schedule and one
//!   pop, the queue's work per engine step, at a steady N.
//! - `same_instant/K`: K timers all due at one instant, scheduled in random
//!   order and popped; they must come out in `(due, workflow order, slot,
//!   generation)` order, which is checked before anything is timed.
//!
//! `cargo bench -p mon-runtime --bench timers`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use mon_runtime::engine::Wheel;

type Entry = (i64, u32, u32, u32);

/// Ten minutes: the spread of the pending dues, as in the trade workload.
const SPREAD_MS: u64 = 600_000;
/// 2026-03-02T08:00:00Z.
const START_MS: i64 = 1_772_438_400_000;

/// SplitMix64, inline: the benchmark's dues are a function of the seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the benchmark needs of a timer queue.
trait Queue {
    fn push(&mut self, entry: Entry);
    /// The earliest entry, removed.
    fn pop_first(&mut self) -> Option<Entry>;
}

impl Queue for Wheel {
    fn push(&mut self, entry: Entry) {
        Wheel::push(self, entry);
    }

    fn pop_first(&mut self) -> Option<Entry> {
        // As the engine does: look for a timer due by the instant, then take it.
        self.first_by(i64::MAX - 1)?;
        self.pop()
    }
}

impl Queue for BinaryHeap<Reverse<Entry>> {
    fn push(&mut self, entry: Entry) {
        BinaryHeap::push(self, Reverse(entry));
    }

    fn pop_first(&mut self) -> Option<Entry> {
        self.pop().map(|Reverse(e)| e)
    }
}

fn filled<Q: Queue>(mut queue: Q, pending: u32, random: &mut Random) -> Q {
    for slot in 0..pending {
        queue.push((START_MS + random.below(SPREAD_MS) as i64, 0, slot, 0));
    }
    queue
}

/// One pop and one push: the timer that fired is re-armed later, so the
/// number pending stays the same.
fn schedule_and_pop<Q: Queue>(queue: &mut Q, random: &mut Random) {
    let (due, order, slot, generation) = queue.pop_first().unwrap_or((START_MS, 0, 0, 0));
    queue.push((due + 1 + random.below(SPREAD_MS) as i64, order, slot, generation + 1));
    black_box(due);
}

fn schedule_pop(c: &mut Criterion) {
    let mut group = c.benchmark_group("timers/schedule_pop");
    group.throughput(Throughput::Elements(1));
    for pending in [100_000u32, 1_000_000] {
        let mut random = Random(42);
        let mut wheel = filled(Wheel::starting_at(START_MS), pending, &mut random);
        group.bench_function(BenchmarkId::new("wheel", pending), |b| {
            b.iter(|| schedule_and_pop(&mut wheel, &mut random))
        });
        let mut random = Random(42);
        let mut heap = filled(BinaryHeap::new(), pending, &mut random);
        group.bench_function(BenchmarkId::new("binary heap", pending), |b| {
            b.iter(|| schedule_and_pop(&mut heap, &mut random))
        });
    }
    group.finish();
}

/// K entries due at one instant, in a random order of (order, slot, generation).
fn one_instant(k: u32, random: &mut Random) -> Vec<Entry> {
    let mut entries: Vec<Entry> =
        (0..k).map(|i| (START_MS + 1000, (i % 3), random.below(k as u64) as u32, (i % 5))).collect();
    // Fisher–Yates, so the queue sees them out of order.
    for i in (1..entries.len()).rev() {
        entries.swap(i, random.below(i as u64 + 1) as usize);
    }
    entries
}

fn drain(entries: &[Entry]) -> Vec<Entry> {
    let mut wheel = Wheel::starting_at(START_MS);
    for &entry in entries {
        wheel.push(entry);
    }
    std::iter::from_fn(|| wheel.pop_first()).collect()
}

fn same_instant(c: &mut Criterion) {
    let mut group = c.benchmark_group("timers/same_instant");
    for k in [1_000u32, 100_000] {
        let entries = one_instant(k, &mut Random(7));
        let mut sorted = entries.clone();
        sorted.sort();
        assert_eq!(drain(&entries), sorted, "the wheel pops one instant's timers out of order");
        group.throughput(Throughput::Elements(k as u64));
        group.bench_function(BenchmarkId::from_parameter(k), |b| {
            b.iter_batched(|| entries.clone(), |entries| black_box(drain(&entries)), BatchSize::LargeInput)
        });
    }
    group.finish();
}

criterion_group!(benches, schedule_pop, same_instant);
criterion_main!(benches);
