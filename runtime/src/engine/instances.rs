//! The instances of one workflow: a slab of [`Instance`]s indexed by key.
//!
//! A freed slot is reused with its generation bumped, so a stale timer
//! entry never matches a newcomer; the key index (a hash table over the
//! slab) is not saved and is rebuilt after a restore.

use std::hash::BuildHasher;

use serde::{Deserialize, Serialize};

use super::{Engine, Instance};

/// The instances of one workflow: a slab, indexed by key.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Instances {
    slots: Vec<Option<Instance>>,
    /// Free slots and the generation their next instance starts at, so a
    /// stale queue entry never matches a newcomer.
    free: Vec<(u32, u32)>,
    #[serde(skip)]
    index: hashbrown::HashTable<u32>,
    #[serde(skip)]
    hasher: foldhash::fast::RandomState,
}

impl Instances {
    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn find(&self, key: &str) -> Option<u32> {
        let hash = self.hash(key);
        self.index.find(hash, |&slot| self.slots[slot as usize].as_ref().is_some_and(|i| i.key == key)).copied()
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
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index
            .insert_unique(hash, slot, |&s| hasher.hash_one(slots[s as usize].as_ref().map_or("", |i| i.key.as_str())));
        slot
    }

    pub(super) fn remove(&mut self, slot: u32) {
        let Some(instance) = self.slots.get_mut(slot as usize).and_then(Option::take) else { return };
        let hash = self.hash(&instance.key);
        if let Ok(entry) = self.index.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
        self.free.push((slot, instance.generation.wrapping_add(1)));
    }

    /// Rebuilds the key index after a restore.
    pub(super) fn reindex(&mut self) {
        self.index = hashbrown::HashTable::with_capacity(self.slots.len());
        for (slot, instance) in self.slots.iter().enumerate() {
            if let Some(instance) = instance {
                let hash = self.hasher.hash_one(instance.key.as_str());
                let slots = &self.slots;
                let hasher = &self.hasher;
                self.index.insert_unique(hash, slot as u32, |&s| {
                    hasher.hash_one(slots[s as usize].as_ref().map_or("", |i| i.key.as_str()))
                });
            }
        }
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
