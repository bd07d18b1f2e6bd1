//! One program run by several engines, one per input partition, as a
//! service that owns only some partitions runs it (docs/notes/scaling.md).
//!
//! A keyed workflow's items live where their events come from: producers
//! key messages by item, so one item's events are on one partition, and
//! the engine of that partition holds the item. A scheduled workflow's
//! occurrences are created by the calendar, not by an event, so exactly one
//! engine must hold them: the *owner*, chosen from the workflow's name
//! ([`owner`]), so that every process agrees without asking. The owner
//! takes the events of its scheduled workflows from every partition (the
//! driver hands it those events too, marked as coming from elsewhere); the
//! other engines neither open occurrences of it nor take its events.

use mon_compiler::ir::{self, Program};
use serde::{Deserialize, Serialize};

use super::{key_of, Engine, SplitKey, State, SPLIT_KEYS_KEPT};
use crate::event::Event;

/// Which partition's engine this is, of how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub partition: u16,
    pub partitions: u16,
}

impl Share {
    /// Whether this engine runs `workflow`: every keyed workflow, and the
    /// scheduled workflows it owns.
    pub fn runs(&self, workflow: &ir::Workflow) -> bool {
        workflow.schedule.is_none() || owner(&workflow.name, self.partitions) == self.partition
    }
}

/// The partition whose engine holds the occurrences of the scheduled
/// workflow `name`, of `partitions`. FNV-1a of the name ([`partition_for`]):
/// written out here rather than taken from a hashing crate, because every
/// process and every future version must agree on it (a crate may change
/// its hash).
pub fn owner(name: &str, partitions: u16) -> u16 {
    partition_for(name, partitions)
}

/// A partition of `partitions` for `key`, by FNV-1a: stable across
/// processes and versions (see [`owner`]).
pub fn partition_for(key: &str, partitions: u16) -> u16 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in key.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash % u32::from(partitions.max(1))) as u16
}

/// Per workflow id: whether another partition's engine runs it.
pub(super) fn elsewhere(program: &Program, share: Option<Share>) -> Vec<bool> {
    program.workflows.iter().map(|w| share.is_some_and(|share| !share.runs(w))).collect()
}

impl Engine<'_> {
    /// Makes this engine the one of `share.partition`: it gives up the
    /// scheduled workflows another partition's engine owns. Call it on a
    /// new engine, before its first input.
    pub fn share(&mut self, share: Share) {
        self.state.share = Some(share);
        self.elsewhere = elsewhere(self.program, Some(share));
        let elsewhere = &self.elsewhere;
        self.state.opens.retain(|&w, _| !elsewhere.get(w as usize).copied().unwrap_or(false));
    }

    /// Whether this engine leaves workflow `w` to another partition's.
    pub(super) fn runs_elsewhere(&self, w: u32) -> bool {
        self.elsewhere.get(w as usize).copied().unwrap_or(false)
    }
}

/// Per event type: the partitions whose engine must also see an event of
/// that type from another partition, because they own a scheduled
/// workflow that takes it. Built once per program and partition count.
#[derive(Clone, Debug, Default)]
pub struct Owners {
    by_type: Vec<Vec<u16>>,
}

impl Owners {
    pub fn new(program: &Program, partitions: u16) -> Owners {
        // From the engine's own routes (`program.candidates`), so that an
        // owner is handed exactly the events its workflows could take.
        let by_type = program
            .candidates
            .iter()
            .map(|candidates| {
                let mut owners: Vec<u16> = candidates
                    .iter()
                    .map(|c| &program.workflows[c.workflow as usize])
                    .filter(|w| w.schedule.is_some())
                    .map(|w| owner(&w.name, partitions))
                    .collect();
                owners.sort_unstable();
                owners.dedup();
                owners
            })
            .collect();
        Owners { by_type }
    }

    /// The partitions other than `from` whose engine takes an event of
    /// `event_type` that came from partition `from`.
    pub fn also(&self, event_type: u32, from: u16) -> impl Iterator<Item = u16> + '_ {
        let owners = self.by_type.get(event_type as usize).map(Vec::as_slice).unwrap_or_default();
        owners.iter().copied().filter(move |&p| p != from)
    }
}

/// Events of an item that came from another partition than the one that
/// holds it: the first [`SPLIT_KEYS_KEPT`], and how many there were (a
/// producer that keys nothing splits nearly every item, and a driver that
/// never takes them must not keep them all).
#[derive(Clone, Debug, Default)]
pub struct SplitKeys {
    pub kept: Vec<SplitKey>,
    pub events: u64,
}

impl SplitKeys {
    pub fn note(&mut self, split: impl FnOnce() -> SplitKey) {
        self.events += 1;
        if self.kept.len() < SPLIT_KEYS_KEPT {
            self.kept.push(split());
        }
    }
}

/// With one engine per partition: notes in `split` each keyed item of
/// `event`, taken by the engine of partition `from` (whose state is
/// `own`), that another partition's engine holds (`others`). Asked only
/// where it can be so ([`for_keys_to_check`]), so that the usual event
/// costs one lookup. Scheduled workflows' occurrences are their owner's
/// whatever the partition, and never split.
pub fn note_split_keys<'s>(
    program: &Program,
    event: &Event,
    from: u16,
    own: Option<&State>,
    started: bool,
    others: impl Iterator<Item = (u16, &'s State)> + Clone,
    split: &mut SplitKeys,
) {
    for_keys_to_check(program, event, own, started, |w, key| {
        let holds = |state: &State| state.workflows.get(w as usize).is_some_and(|items| items.find(key).is_some());
        if let Some((owner, _)) = others.clone().find(|(_, state)| holds(state)) {
            split.note(|| SplitKey { workflow: w, key: key.to_string(), owner, seen_on: from, at: event.time });
        }
    });
}

/// Calls `check` with each keyed item of `event` that another partition's
/// engine may hold: those `own` (the state that took the event) does not
/// hold, or that the event has just started there (`started`). An item
/// `own` held before is its own. A scale-out task, whose other partitions
/// are in other processes, hands them to its process to ask the others.
pub fn for_keys_to_check(
    program: &Program,
    event: &Event,
    own: Option<&State>,
    started: bool,
    mut check: impl FnMut(u32, &str),
) {
    let Some(candidates) = program.candidates.get(event.event_type as usize) else { return };
    let mut last = None;
    for candidate in candidates {
        // Candidates come grouped by workflow: one look per workflow.
        if last.replace(candidate.workflow) == Some(candidate.workflow) {
            continue;
        }
        let w = candidate.workflow as usize;
        let Some(workflow) = program.workflows.get(w).filter(|w| w.schedule.is_none()) else { continue };
        let Some(key) = key_of(program, workflow, event) else { continue };
        let holds = |state: &State| state.workflows.get(w).is_some_and(|items| items.find(&key).is_some());
        if !started && own.is_some_and(holds) {
            continue;
        }
        check(workflow.id, &key);
    }
}

#[cfg(test)]
mod tests {
    use super::owner;

    /// Every process and every version must place a scheduled workflow on
    /// the same partition: these values must never change.
    #[test]
    fn the_owner_of_a_scheduled_workflow_is_fixed_by_its_name() {
        // FNV-1a of "a" is 0xe40c292c, of "" 0x811c9dc5 (the offset basis).
        assert_eq!(owner("a", 1000), (0xe40c_292c_u32 % 1000) as u16);
        assert_eq!(owner("", 7), (0x811c_9dc5_u32 % 7) as u16);
        assert_eq!(owner("daily_feed", 1), 0);
        assert_eq!(owner("daily_feed", 0), 0, "no partitions count as one");
        let spread: std::collections::BTreeSet<u16> = (0..64).map(|i| owner(&format!("feed_{i}"), 4)).collect();
        assert_eq!(spread.len(), 4, "64 names land on all of 4 partitions");
    }
}
