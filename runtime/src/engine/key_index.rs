//! The key index of a workflow's instances: key hash to slab slot.
//!
//! Why not a general hash table: with a million instances in flight, the
//! lookup was the largest item of every engine profile (issue 13), and it
//! was two cache misses, one for hashbrown's control bytes and one for the
//! bucket that names the slot, before the instance itself. Here an entry
//! is one `u64`, the high half of the key's hash (its tag) beside the slot,
//! in a single array with linear probing: a lookup reads one cache line
//! almost always, and the line can be prefetched before the event is
//! processed (`Engine::prefetch`). The home position is taken from the
//! tag, so growing the table moves entries without reading a single key.
//!
//! The caller compares keys: an entry whose tag matches is only a
//! candidate (`find` takes the comparison). Deletion shifts the following
//! entries back (no tombstones), so probes stay short after any number of
//! removals.

/// No entry: tag and slot both all ones. A slot `u32::MAX` would need a
/// slab of four billion instances (a terabyte), out of reach; debug builds
/// assert it in [`KeyIndex::insert`].
const EMPTY: u64 = u64::MAX;

#[derive(Clone, Debug, Default)]
pub struct KeyIndex {
    /// A power of two in length, or empty.
    entries: Vec<u64>,
    len: usize,
}

fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

fn entry(tag: u32, slot: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(slot)
}

fn slot_of(entry: u64) -> u32 {
    entry as u32
}

impl KeyIndex {
    pub fn with_capacity(keys: usize) -> Self {
        let mut index = KeyIndex::default();
        if keys > 0 {
            index.entries = vec![EMPTY; capacity_for(keys)];
        }
        index
    }

    fn mask(&self) -> usize {
        self.entries.len().wrapping_sub(1)
    }

    fn home(&self, tag: u32) -> usize {
        tag as usize & self.mask()
    }

    /// The slot whose key hashes to `hash` and for which `is_key` holds.
    #[inline]
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.entries.is_empty() {
            return None;
        }
        let tag = tag_of(hash);
        let mask = self.mask();
        let mut i = self.home(tag);
        loop {
            let e = self.entries[i];
            if e == EMPTY {
                return None;
            }
            if tag_of(e) == tag && is_key(slot_of(e)) {
                return Some(slot_of(e));
            }
            i = (i + 1) & mask;
        }
    }

    /// The address a lookup of `hash` reads first.
    pub fn home_address(&self, hash: u64) -> Option<*const u64> {
        (!self.entries.is_empty()).then(|| &self.entries[self.home(tag_of(hash))] as *const u64)
    }

    /// Adds `slot` under `hash`; the caller knows no entry has its key.
    pub fn insert(&mut self, hash: u64, slot: u32) {
        debug_assert_ne!(slot, u32::MAX, "slot u32::MAX would read as an empty entry");
        // At most three quarters full: linear probing's probes grow fast
        // beyond that.
        if (self.len + 1) * 4 > self.entries.len() * 3 {
            self.grow();
        }
        self.place(entry(tag_of(hash), slot));
        self.len += 1;
    }

    fn place(&mut self, new: u64) {
        let mask = self.mask();
        let mut i = self.home(tag_of(new));
        while self.entries[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.entries[i] = new;
    }

    fn grow(&mut self) {
        let capacity = (self.entries.len() * 2).max(capacity_for(self.len + 1));
        let old = std::mem::replace(&mut self.entries, vec![EMPTY; capacity]);
        for e in old.into_iter().filter(|&e| e != EMPTY) {
            self.place(e);
        }
    }

    /// Removes the entry of `slot` under `hash`, if there is one.
    pub fn remove(&mut self, hash: u64, slot: u32) {
        if self.entries.is_empty() {
            return;
        }
        let target = entry(tag_of(hash), slot);
        let mask = self.mask();
        let mut hole = self.home(tag_of(hash));
        loop {
            match self.entries[hole] {
                EMPTY => return,
                e if e == target => break,
                _ => hole = (hole + 1) & mask,
            }
        }
        self.len -= 1;
        // Backward shift: each later entry of the run moves into the hole
        // unless its home lies cyclically after the hole (then the hole
        // would put it before its home, where no probe looks).
        let mut next = hole;
        loop {
            next = (next + 1) & mask;
            let e = self.entries[next];
            if e == EMPTY {
                break;
            }
            let home = self.home(tag_of(e));
            let home_after_hole = if hole <= next { hole < home && home <= next } else { hole < home || home <= next };
            if !home_after_hole {
                self.entries[hole] = e;
                hole = next;
            }
        }
        self.entries[hole] = EMPTY;
    }
}

/// The smallest power of two that holds `keys` at most three quarters full.
fn capacity_for(keys: usize) -> usize {
    (keys * 4).div_ceil(3).next_power_of_two().max(8)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// A hash with few distinct home positions, so that runs, wrap-around
    /// at the table's end and equal tags are common.
    fn crowded_hash(key: u16) -> u64 {
        let tag = u64::from(key % 13) | (u64::from(key % 3) << 31);
        (tag << 32) | u64::from(key)
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u16),
        Remove(u16),
        Find(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![(0u16..200).prop_map(Op::Insert), (0u16..200).prop_map(Op::Remove), (0u16..200).prop_map(Op::Find),]
    }

    proptest! {
        /// The index answers as a map from key to slot does, whatever the
        /// order of inserts and removals, with colliding hashes and tags.
        #[test]
        fn agrees_with_a_map(ops in proptest::collection::vec(op(), 1..600)) {
            let mut index = KeyIndex::default();
            let mut model: HashMap<u16, u32> = HashMap::new();
            // Slots are handed out as the slab does: a key's slot stays
            // its own, and `keys[slot]` is the key stored there.
            let mut keys: Vec<u16> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(k) if !model.contains_key(&k) => {
                        let slot = keys.len() as u32;
                        keys.push(k);
                        index.insert(crowded_hash(k), slot);
                        model.insert(k, slot);
                    }
                    Op::Insert(_) => {}
                    Op::Remove(k) => {
                        if let Some(slot) = model.remove(&k) {
                            index.remove(crowded_hash(k), slot);
                        }
                    }
                    Op::Find(k) => {
                        let found = index.find(crowded_hash(k), |s| keys[s as usize] == k);
                        prop_assert_eq!(found, model.get(&k).copied());
                    }
                }
                prop_assert_eq!(index.len, model.len());
            }
            for (k, slot) in &model {
                prop_assert_eq!(index.find(crowded_hash(*k), |s| keys[s as usize] == *k), Some(*slot));
            }
        }
    }

    #[test]
    fn an_empty_index_finds_nothing_and_removes_nothing() {
        let mut index = KeyIndex::default();
        assert_eq!(index.find(42, |_| true), None);
        assert!(index.home_address(42).is_none());
        index.remove(42, 0);
        assert_eq!(index.len, 0);
    }

    #[test]
    fn grows_past_three_quarters_and_keeps_every_entry() {
        let mut index = KeyIndex::with_capacity(1);
        let hash = |k: u32| u64::from(k).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for k in 0..10_000u32 {
            index.insert(hash(k), k);
            assert!(index.len * 4 <= index.entries.len() * 3);
        }
        for k in 0..10_000u32 {
            assert_eq!(index.find(hash(k), |s| s == k), Some(k));
        }
        assert_eq!(index.find(hash(10_000), |s| s == 10_000), None);
    }
}
