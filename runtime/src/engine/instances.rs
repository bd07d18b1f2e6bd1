//! The instances of one workflow: a slab of [`Instance`]s indexed by key.
//!
//! A freed slot is reused with its generation bumped, so a stale timer
//! entry never matches a newcomer; the key index ([`KeyIndex`]: key hash
//! to slot) is not saved and is rebuilt after a restore.

use std::hash::BuildHasher;

use serde::{Deserialize, Serialize};

use super::key_index::KeyIndex;
use super::{Engine, Instance};

/// The instances of one workflow: a slab, indexed by key.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Instances {
    slots: Vec<Option<Instance>>,
    /// Free slots and the generation their next instance starts at, so a
    /// stale queue entry never matches a newcomer.
    free: Vec<(u32, u32)>,
    #[serde(skip)]
    index: KeyIndex,
    #[serde(skip)]
    hasher: foldhash::fast::RandomState,
}

impl Instances {
    pub(super) fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn find(&self, key: &str) -> Option<u32> {
        self.index.find(self.hash(key), |slot| self.slots[slot as usize].as_ref().is_some_and(|i| i.key == key))
    }

    /// Asks the CPU for the index entry a lookup of `hash` reads first.
    pub(super) fn prefetch(&self, hash: u64) {
        if let Some(address) = self.index.home_address(hash) {
            prefetch(address.cast());
        }
    }

    pub fn get(&self, slot: u32) -> Option<&Instance> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    pub(super) fn get_mut(&mut self, slot: u32) -> Option<&mut Instance> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    pub(super) fn insert(&mut self, mut instance: Instance) -> u32 {
        let hash = self.hash(&instance.key);
        let slot = match self.free.pop() {
            Some((slot, generation)) => {
                instance.generation = generation;
                self.slots[slot as usize] = Some(instance);
                slot
            }
            None => {
                self.slots.push(Some(instance));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(hash, slot);
        slot
    }

    pub(super) fn remove(&mut self, slot: u32) {
        let Some(instance) = self.slots.get_mut(slot as usize).and_then(Option::take) else { return };
        self.index.remove(self.hash(&instance.key), slot);
        self.free.push((slot, instance.generation.wrapping_add(1)));
    }

    /// Rebuilds the key index after a restore.
    pub(super) fn reindex(&mut self) {
        let mut index = KeyIndex::with_capacity(self.len());
        for (slot, instance) in self.iter() {
            index.insert(self.hash(&instance.key), slot);
        }
        self.index = index;
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &Instance)> {
        self.slots.iter().enumerate().filter_map(|(s, i)| i.as_ref().map(|i| (s as u32, i)))
    }

    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A hint to the CPU: the cache line at `address` will be read soon. It
/// reads nothing and cannot fault, whatever the address.
#[inline(always)]
fn prefetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it does not dereference the address
    // architecturally, so no address can make it fault or read.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

impl<'p> Engine<'p> {
    /// The instances of a workflow that the engine holds (open, and closed
    /// ones until their retention ends), with their key strings.
    pub fn instances(&self, workflow: u32) -> impl Iterator<Item = (&str, &Instance)> {
        self.state.workflows[workflow as usize].iter().map(|(_, i)| (i.key.as_str(), i))
    }

    /// The instance with this key string, if the engine holds one.
    pub fn instance(&self, workflow: u32, key: &str) -> Option<&Instance> {
        let instances = &self.state.workflows[workflow as usize];
        instances.find(key).and_then(|slot| instances.get(slot))
    }
}
