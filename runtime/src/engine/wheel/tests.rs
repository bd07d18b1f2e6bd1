//! The wheel against the binary heap it replaced: the same entries must
//! come out in the same order, whatever the instants and however the
//! cursor moved.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use proptest::prelude::*;

use super::{Entry, Wheel, LEVELS};

/// Pops everything due by `limit`, as the engine's `advance` does.
fn drain(wheel: &mut Wheel, limit: i64) -> Vec<Entry> {
    let mut out = Vec::new();
    while let Some(first) = wheel.first_by(limit) {
        assert_eq!(wheel.pop(), Some(first));
        out.push(first);
    }
    out
}

#[test]
fn entries_of_one_instant_come_out_by_order_slot_and_generation() {
    let mut wheel = Wheel::starting_at(0);
    let entries = [(500, 2, 7, 1), (500, 1, 9, 0), (500, 1, 3, 4), (500, 1, 3, 2), (499, 9, 9, 9), (500, 1, 3, 2)];
    for e in entries {
        wheel.push(e);
    }
    let mut expected = entries.to_vec();
    expected.sort();
    assert_eq!(drain(&mut wheel, 500), expected, "duplicates too, as the heap gave them");
    assert_eq!(wheel.len(), 0);
}

#[test]
fn nothing_fires_before_its_instant() {
    let mut wheel = Wheel::starting_at(1_000);
    wheel.push((1_064, 0, 0, 0));
    wheel.push((5_000, 0, 1, 0));
    assert_eq!(drain(&mut wheel, 1_063), vec![]);
    assert_eq!(wheel.next_due(), Some(1_064));
    assert_eq!(drain(&mut wheel, 4_999), vec![(1_064, 0, 0, 0)]);
    assert_eq!(drain(&mut wheel, 5_000), vec![(5_000, 0, 1, 0)]);
}

#[test]
fn cascades_across_every_level_boundary() {
    // An entry just before and just after each level's span, relative to
    // a cursor just below a boundary, so that every cascade path runs.
    let cursor = (1i64 << 40) - 3;
    let mut wheel = Wheel::starting_at(cursor);
    let mut expected = Vec::new();
    for level in 0..=LEVELS as u32 + 1 {
        for delta in [-1i64, 0, 1] {
            let due = cursor + (1i64 << (6 * level)) + delta;
            let entry = (due, level, delta as u32, 0);
            wheel.push(entry);
            expected.push(entry);
        }
    }
    expected.sort();
    let mut got = Vec::new();
    for e in &expected {
        got.extend(drain(&mut wheel, e.0));
    }
    assert_eq!(got, expected);
    assert_eq!(wheel.len(), 0);
}

#[test]
fn far_future_and_end_of_time_entries_wait_in_overflow_and_still_fire() {
    let start = 1_772_438_400_000; // 2026
    let mut wheel = Wheel::starting_at(start);
    let decade = start + 10 * 365 * 86_400_000;
    wheel.push((i64::MAX, 0, 0, 0));
    wheel.push((decade, 0, 1, 0));
    wheel.push((start + 60_000, 0, 2, 0));
    assert_eq!(wheel.next_due(), Some(start + 60_000));
    assert_eq!(drain(&mut wheel, decade - 1), vec![(start + 60_000, 0, 2, 0)]);
    assert_eq!(wheel.next_due(), Some(decade));
    assert_eq!(drain(&mut wheel, decade), vec![(decade, 0, 1, 0)]);
    assert_eq!(drain(&mut wheel, i64::MAX - 1), vec![]);
    assert_eq!(drain(&mut wheel, i64::MAX), vec![(i64::MAX, 0, 0, 0)]);
    // At the end of time, what is queued still comes out in order.
    wheel.push((i64::MAX, 0, 5, 0));
    wheel.push((3, 0, 4, 0));
    assert_eq!(drain(&mut wheel, i64::MAX), vec![(3, 0, 4, 0), (i64::MAX, 0, 5, 0)]);
}

#[test]
fn an_entry_behind_the_cursor_comes_first() {
    let mut wheel = Wheel::starting_at(0);
    wheel.push((10_000, 0, 0, 0));
    assert_eq!(drain(&mut wheel, 9_000), vec![]); // the cursor moves to 9,000
    wheel.push((4_000, 0, 1, 0)); // an event behind the engine's clock
    assert_eq!(wheel.next_due(), Some(4_000));
    assert_eq!(drain(&mut wheel, 10_000), vec![(4_000, 0, 1, 0), (10_000, 0, 0, 0)]);
}

#[test]
fn saved_and_restored_it_keeps_its_order() {
    let mut wheel = Wheel::starting_at(0);
    for i in 0..200u32 {
        wheel.push((i64::from(i % 17) * 1_000 + i64::from(i % 3), i % 4, i, 0));
    }
    drain(&mut wheel, 3_000);
    let json = serde_json::to_string(&wheel).expect("serialises");
    let mut restored: Wheel = serde_json::from_str(&json).expect("deserialises");
    assert_eq!(serde_json::to_string(&restored).expect("serialises"), json);
    assert_eq!(drain(&mut restored, i64::MAX), drain(&mut wheel, i64::MAX));
}

#[derive(Clone, Debug)]
enum Op {
    Push { ahead: i64, order: u32, slot: u32 },
    Advance { by: i64 },
    Retain { modulo: u32 },
    Restore,
}

fn op() -> impl Strategy<Value = Op> {
    let ahead = prop_oneof![
        4 => 0i64..200,
        4 => 0i64..400_000,
        2 => 0i64..(1 << 37),
        1 => -5_000i64..0,
        1 => Just(i64::MAX / 2),
    ];
    prop_oneof![
        6 => (ahead, 0u32..3, 0u32..4).prop_map(|(ahead, order, slot)| Op::Push { ahead, order, slot }),
        4 => prop_oneof![3 => 0i64..100, 3 => 0i64..100_000, 1 => 0i64..(1 << 38), 1 => -1_000i64..0]
            .prop_map(|by| Op::Advance { by }),
        1 => (2u32..5).prop_map(|modulo| Op::Retain { modulo }),
        1 => Just(Op::Restore),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random pushes, advances (forward, and backward as an event behind
    /// the clock does), sweeps and save/restore cycles: the wheel pops what
    /// a binary heap pops, in the same order, and agrees on `next_due`.
    #[test]
    fn pops_what_a_binary_heap_pops(start in -(1i64 << 45)..(1i64 << 45), ops in prop::collection::vec(op(), 1..300)) {
        let mut wheel = Wheel::starting_at(start);
        let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::new();
        let mut now = start;
        for (generation, op) in ops.into_iter().enumerate() {
            match op {
                Op::Push { ahead, order, slot } => {
                    let entry = (now.saturating_add(ahead), order, slot, generation as u32 % 3);
                    wheel.push(entry);
                    heap.push(Reverse(entry));
                }
                Op::Advance { by } => {
                    now = now.saturating_add(by);
                    let mut expected = Vec::new();
                    while let Some(Reverse(e)) = heap.peek().copied().filter(|Reverse(e)| e.0 <= now) {
                        heap.pop();
                        expected.push(e);
                    }
                    prop_assert_eq!(drain(&mut wheel, now), expected);
                }
                Op::Retain { modulo } => {
                    wheel.retain(|e| e.2 % modulo != 0);
                    heap.retain(|Reverse(e)| e.2 % modulo != 0);
                }
                Op::Restore => {
                    let json = serde_json::to_string(&wheel).expect("serialises");
                    wheel = serde_json::from_str(&json).expect("deserialises");
                }
            }
            prop_assert_eq!(wheel.len(), heap.len());
            prop_assert_eq!(wheel.next_due(), heap.peek().map(|Reverse(e)| e.0));
        }
        let rest: Vec<Entry> = heap.into_sorted_vec().into_iter().rev().map(|Reverse(e)| e).collect();
        prop_assert_eq!(drain(&mut wheel, i64::MAX), rest);
    }
}

/// The shape of `mon bench`: a burst of items within milliseconds, each
/// arming a deadline two minutes on, the clock moving with the events.
#[test]
fn a_burst_of_deadlines_pops_as_the_heap_does() {
    let base = 1_772_438_400_000i64;
    let mut wheel = Wheel::starting_at(base);
    let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::new();
    for phase in 0..5i64 {
        for i in 0..1000i64 {
            let t = base + phase * 30_000 + i * 20 / 1000;
            let mut expected = Vec::new();
            while let Some(Reverse(e)) = heap.peek().copied().filter(|Reverse(e)| e.0 < t) {
                heap.pop();
                expected.push(e);
            }
            assert_eq!(drain(&mut wheel, t - 1), expected, "phase {phase} i {i}");
            let e = (t + 120_000, 0, i as u32, phase as u32);
            wheel.push(e);
            heap.push(Reverse(e));
        }
    }
}
