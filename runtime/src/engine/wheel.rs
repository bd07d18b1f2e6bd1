//! The timer queue: a hierarchical timing wheel over millisecond instants.
//!
//! It replaced a binary heap, whose `pop` was the largest single item of an
//! engine profile (issue 13): with a million instances in flight every
//! event pushes one entry and, later, pops one, at O(log n) with a cache
//! miss per level. Here an insert is a push onto a slot's vector, and an
//! entry is moved at most once per level on its way to firing (six levels),
//! so both are O(1) amortised.
//!
//! Entries come out in exactly the order the heap gave: ascending
//! `(due, workflow order, slot, generation)`, duplicates included, so the
//! engine's records do not change (the conformance corpus and the
//! split-and-resume property test rely on it). Only whole instants are
//! ordered by the wheel; entries of one instant are ordered by a small heap
//! (`ready`) once their instant is reached.
//!
//! Layout. The wheel keeps a `cursor` instant. An entry due at or after the
//! cursor sits at level `L`, the highest group of 6 bits in which its due
//! differs from the cursor, in the slot named by its due's bits of that
//! group; level 0 slots therefore hold one exact instant each, level 1
//! slots 64 ms, …, level 5 slots 2^30 ms (12 days), and the six levels span
//! 2^36 ms (2.2 years) ahead of the cursor. Anything further (a `retain` of
//! years, a saturated "never") waits in the `overflow` heap. Every entry at
//! a lower level is due before every entry at a higher one, and within a
//! level slot order is time order, so the earliest entry is in the first
//! occupied slot of the lowest occupied level; each slot keeps its minimum
//! so that [`Wheel::next_due`] needs no `&mut`. Entries due before the
//! cursor (an event's time may be behind the engine's clock) go straight to
//! `ready`, which is always earlier than the whole wheel.
//!
//! The cursor moves only forward and never past an entry left in the
//! wheel, which keeps the cascade to a single slot per move (see
//! [`Wheel::move_cursor`]). It follows the engine's clock, so new timers
//! (minutes to days ahead) land in the fine levels rather than overflow.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A queue entry: at `due`, look at slot `slot` of a workflow if it still
/// has generation `generation`; the workflow is named by its order (see
/// `routing::orders`), so that at one instant upstream workflows fire first.
pub(super) type Entry = (i64, u32, u32, u32);

const BITS: u32 = 6;
const SLOTS: usize = 1 << BITS;
const LEVELS: usize = 6;
/// A slot vector that grew larger than this is freed once emptied, so one
/// burst of timers does not pin its memory for the rest of the run.
const KEEP_CAPACITY: usize = 4096;

#[derive(Clone, Debug)]
struct Level {
    /// Bit `s` set: slot `s` holds entries.
    occupied: u64,
    slots: Vec<Vec<Entry>>,
    /// The earliest due in each occupied slot.
    mins: [i64; SLOTS],
}

impl Default for Level {
    fn default() -> Self {
        Level { occupied: 0, slots: vec![Vec::new(); SLOTS], mins: [i64::MAX; SLOTS] }
    }
}

#[derive(Clone, Debug)]
pub struct Wheel {
    /// Entries due at or after the cursor are in `levels` or `overflow`,
    /// earlier ones in `ready`. At `i64::MAX` (the end of time, after a
    /// saturated deadline fired) everything goes to `ready`.
    cursor: i64,
    ready: BinaryHeap<Reverse<Entry>>,
    levels: Vec<Level>,
    overflow: BinaryHeap<Reverse<Entry>>,
    len: usize,
}

impl Default for Wheel {
    fn default() -> Self {
        Wheel::starting_at(i64::MIN)
    }
}

impl Wheel {
    /// An empty wheel whose cursor is at `cursor`.
    pub fn starting_at(cursor: i64) -> Self {
        Wheel {
            cursor,
            ready: BinaryHeap::new(),
            levels: vec![Level::default(); LEVELS],
            overflow: BinaryHeap::new(),
            len: 0,
        }
    }

    /// Entries queued, cancelled ones included.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, entry: Entry) {
        self.len += 1;
        if entry.0 < self.cursor || self.cursor == i64::MAX {
            self.ready.push(Reverse(entry));
        } else {
            self.place(entry);
        }
    }

    /// The earliest due instant, without moving anything.
    pub fn next_due(&self) -> Option<i64> {
        match self.ready.peek() {
            Some(Reverse(e)) => Some(e.0),
            None => self.wheel_min(),
        }
    }

    /// The earliest entry, if it is due at or before `limit`; it is then
    /// what [`pop`](Self::pop) removes. Otherwise the cursor moves up to
    /// `limit`, so that the timers queued next land in the fine levels.
    pub fn first_by(&mut self, limit: i64) -> Option<Entry> {
        loop {
            if let Some(&Reverse(e)) = self.ready.peek() {
                return (e.0 <= limit).then_some(e);
            }
            let min = self.wheel_min()?;
            if min > limit {
                self.move_cursor(limit);
                return None;
            }
            // Bring the instant `min` to level 0, then take its slot whole:
            // all of its entries are due exactly then.
            self.move_cursor(min);
            let slot = (min as u64 & (SLOTS as u64 - 1)) as usize;
            let level = &mut self.levels[0];
            if level.occupied & (1 << slot) != 0 {
                level.occupied &= !(1 << slot);
                level.mins[slot] = i64::MAX;
                let mut entries = std::mem::take(&mut level.slots[slot]);
                self.ready.extend(entries.drain(..).map(Reverse));
                keep(&mut self.levels[0].slots[slot], entries);
            }
            // At `i64::MAX` (a saturated deadline) the cursor stays, and
            // `push` sends everything to `ready` from then on.
            if let Some(next) = min.checked_add(1) {
                self.move_cursor(next);
            }
        }
    }

    /// Removes the entry [`first_by`](Self::first_by) returned.
    pub fn pop(&mut self) -> Option<Entry> {
        let Reverse(e) = self.ready.pop()?;
        self.len -= 1;
        Some(e)
    }

    /// Keeps only the entries for which `live` holds.
    pub fn retain(&mut self, mut live: impl FnMut(&Entry) -> bool) {
        self.ready.retain(|Reverse(e)| live(e));
        self.overflow.retain(|Reverse(e)| live(e));
        let mut len = self.ready.len() + self.overflow.len();
        for level in &mut self.levels {
            let mut occupied = level.occupied;
            while occupied != 0 {
                let slot = occupied.trailing_zeros() as usize;
                occupied &= occupied - 1;
                let entries = &mut level.slots[slot];
                entries.retain(&mut live);
                len += entries.len();
                match entries.iter().map(|e| e.0).min() {
                    Some(min) => level.mins[slot] = min,
                    None => {
                        level.occupied &= !(1 << slot);
                        level.mins[slot] = i64::MAX;
                        keep(entries, Vec::new());
                    }
                }
            }
        }
        self.len = len;
    }

    /// Every entry, in firing order.
    pub fn sorted(&self) -> Vec<Entry> {
        let mut all: Vec<Entry> = self.ready.iter().chain(&self.overflow).map(|Reverse(e)| *e).collect();
        for level in &self.levels {
            all.extend(level.slots.iter().flatten());
        }
        all.sort_unstable();
        all
    }

    fn place(&mut self, entry: Entry) {
        let differ = (entry.0 as u64) ^ (self.cursor as u64);
        let level = if differ == 0 { 0 } else { ((63 - differ.leading_zeros()) / BITS) as usize };
        if level >= LEVELS {
            self.overflow.push(Reverse(entry));
            return;
        }
        let slot = ((entry.0 as u64 >> (BITS * level as u32)) & (SLOTS as u64 - 1)) as usize;
        let level = &mut self.levels[level];
        level.occupied |= 1 << slot;
        level.mins[slot] = level.mins[slot].min(entry.0);
        level.slots[slot].push(entry);
    }

    /// The earliest due in the levels or overflow (never in `ready`).
    fn wheel_min(&self) -> Option<i64> {
        for level in &self.levels {
            if level.occupied != 0 {
                return Some(level.mins[level.occupied.trailing_zeros() as usize]);
            }
        }
        self.overflow.peek().map(|Reverse(e)| e.0)
    }

    /// Moves the cursor forward to `to`, which must not be later than any
    /// entry in the levels or overflow.
    ///
    /// Why one slot is enough: let `top` be the highest 6-bit group in
    /// which the old and new cursor differ. An entry at a level below `top`
    /// agrees with the old cursor in group `top`, so it would be earlier
    /// than `to`: there is none. At level `top`, the entries of the slot
    /// the new cursor points into now agree with it through group `top` and
    /// belong lower down; every other entry keeps its place. Re-placed
    /// relative to the new cursor, they land where they belong at once.
    fn move_cursor(&mut self, to: i64) {
        if to <= self.cursor {
            return;
        }
        let differ = (to as u64) ^ (self.cursor as u64);
        self.cursor = to;
        let top = ((63 - differ.leading_zeros()) / BITS) as usize;
        if (1..LEVELS).contains(&top) {
            let slot = ((to as u64 >> (BITS * top as u32)) & (SLOTS as u64 - 1)) as usize;
            let level = &mut self.levels[top];
            if level.occupied & (1 << slot) != 0 {
                level.occupied &= !(1 << slot);
                level.mins[slot] = i64::MAX;
                let mut entries = std::mem::take(&mut level.slots[slot]);
                for entry in entries.drain(..) {
                    self.place(entry);
                }
                keep(&mut self.levels[top].slots[slot], entries);
            }
        }
        // Entries beyond the wheel's span come within it as the cursor
        // moves; the earliest come first.
        while let Some(&Reverse(entry)) = self.overflow.peek() {
            let differ = (entry.0 as u64) ^ (self.cursor as u64);
            if differ != 0 && ((63 - differ.leading_zeros()) / BITS) as usize >= LEVELS {
                break;
            }
            self.overflow.pop();
            self.place(entry);
        }
    }
}

/// Puts an emptied slot vector back, unless it grew large.
fn keep(slot: &mut Vec<Entry>, emptied: Vec<Entry>) {
    if emptied.capacity() <= KEEP_CAPACITY {
        *slot = emptied;
    }
}

/// Saved as the list of entries in firing order: the same JSON as the
/// binary heap it replaced (a list of `[due, order, slot, generation]`),
/// so older snapshots load, and equal queues save equally.
impl Serialize for Wheel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.sorted())
    }
}

impl<'de> Deserialize<'de> for Wheel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entries = Vec::<Entry>::deserialize(d)?;
        let cursor = entries.iter().map(|e| e.0).min().unwrap_or(i64::MIN);
        let mut wheel = Wheel::starting_at(cursor);
        for entry in entries {
            wheel.push(entry);
        }
        Ok(wheel)
    }
}

#[cfg(test)]
mod tests;
