//! Where the events came from: the input partition each batch's lines
//! came from, said in the journal ([`Input::Partition`]) so that every
//! item knows its partition after a replay too, and the events of an item
//! that came from another partition than the one that started it (a
//! producer that does not key its messages by item), counted, shown in
//! the status and warned about (docs/service.md, "Keys and partitions").
//!
//! What it must not do: drop or reorder such events. They are applied as
//! any other; only the report is added.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mon_runtime::live::Input;
use mon_runtime::record::Record;
use serde::Serialize;

use super::{Pending, Processor};

/// A producer that does not key its messages by item: the item's events
/// are on several partitions, so their order is not kept, and a process
/// that owns only some partitions sees only part of each item.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SplitKeysView {
    /// How many events came from another partition than their item's.
    pub events: u64,
    /// The latest of them.
    pub last: SplitKeyView,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SplitKeyView {
    pub workflow: String,
    pub key: String,
    /// The partition whose event started the item.
    pub owner_partition: u16,
    /// The partition this event came from.
    pub seen_on_partition: u16,
    /// The event's time (RFC 3339).
    pub at: String,
}

/// A producer that keys nothing is warned about this often, not per event.
const SPLIT_KEY_WARNING_EVERY: Duration = Duration::from_secs(60);

impl Processor<'_> {
    /// Says which partition the next lines come from, in the journal too,
    /// when it is not the one last said in this batch: each entry says it
    /// again, so a replay from any entry knows where its events came from.
    pub(super) fn say_partition(
        &mut self,
        task: usize,
        partition: Option<u16>,
        batch: &mut Pending,
        records: &mut Vec<Record>,
    ) {
        match batch.said.iter_mut().find(|(t, _)| *t == task) {
            Some((_, said)) if *said == partition => return,
            Some((_, said)) => *said = partition,
            None => batch.said.push((task, partition)),
        }
        self.apply(task, Input::Partition(partition), batch, records);
    }

    /// Counts and reports the events of an item that came from another
    /// partition than its first. A warning at most once a minute: a
    /// producer that keys nothing splits nearly every item.
    pub(super) fn report_split_keys(&mut self) {
        // Within a task (one state for every partition) the engine finds
        // them; across tasks (state per partition), `tasks.rs` does.
        let mut split = std::mem::take(&mut self.split_across.kept);
        let mut total = self.split_across.events;
        for task in &mut self.tasks {
            let (found, counted) = task.live.take_split_keys();
            split.extend(found);
            total += counted;
        }
        // They are all counted; the metric follows the count.
        let counted = self.metrics.split_key_events.get();
        self.metrics.split_key_events.inc_by(total.saturating_sub(counted));
        let Some(last) = split.last() else { return };
        let workflow = self.program.workflows.get(last.workflow as usize).map_or("", |w| w.name.as_str());
        let view = SplitKeyView {
            workflow: workflow.to_string(),
            key: last.key.clone(),
            owner_partition: last.owner,
            seen_on_partition: last.seen_on,
            at: mon_stdlib::time::format_rfc3339(last.at),
        };
        if self.split_key_warned.is_none_or(|at| at.elapsed() >= SPLIT_KEY_WARNING_EVERY) {
            self.split_key_warned = Some(Instant::now());
            tracing::warn!(
                workflow,
                key = %last.key,
                owner_partition = last.owner,
                seen_on_partition = last.seen_on,
                events_so_far = total,
                "an item's events come from two partitions: its producer does not key messages by the item, \
                 so their order is not kept and a process owning some partitions would see part of the item \
                 (docs/service.md, \"Keys and partitions\")"
            );
        }
        self.totals.split_keys = Some(SplitKeysView { events: total, last: view });
    }
}

/// A scale-out task's half of the split-key check: the keys of its own
/// partition's events whose item it did not hold before the event (it
/// started it then, or holds none of it), which another task, in another
/// process, may hold. Its process asks the other tasks about them
/// (`scale_out/group_split.rs`). The newest [`RECENT_KEYS_KEPT`] are
/// kept, numbered, so that each asker reads on from where it left; the
/// numbers start again with each start of the task, which `instance`
/// tells apart.
#[derive(Debug)]
pub struct RecentKeys {
    instance: u64,
    next: u64,
    kept: VecDeque<RecentKey>,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RecentKey {
    pub seq: u64,
    pub workflow: String,
    pub key: String,
    /// The event started the item here; otherwise the task holds none of it.
    pub started: bool,
    /// The event's time (ms).
    pub at: i64,
}

/// Enough for the keys a busy partition starts between two asks (every
/// 10 s), few enough to send in one answer.
pub const RECENT_KEYS_KEPT: usize = 10_000;

pub type SharedRecentKeys = Arc<Mutex<RecentKeys>>;

impl Default for RecentKeys {
    fn default() -> RecentKeys {
        let mut instance = [0u8; 8];
        // Without randomness, the start time tells two starts apart as well.
        if getrandom::getrandom(&mut instance).is_err() {
            instance = (crate::clock::wall_now() as u64).to_le_bytes();
        }
        RecentKeys { instance: u64::from_le_bytes(instance), next: 0, kept: VecDeque::new() }
    }
}

impl RecentKeys {
    pub fn push(&mut self, workflow: &str, key: &str, started: bool, at: i64) {
        if self.kept.len() == RECENT_KEYS_KEPT {
            self.kept.pop_front();
        }
        let (workflow, key) = (workflow.to_string(), key.to_string());
        self.kept.push_back(RecentKey { seq: self.next, workflow, key, started, at });
        self.next += 1;
    }

    /// Which start of the task numbered these keys.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// The keys numbered from `from` on, oldest first, and how many from
    /// there were dropped before they were asked for.
    pub fn from(&self, from: u64) -> (Vec<RecentKey>, u64) {
        let first = self.kept.front().map_or(self.next, |key| key.seq);
        let skip = from.saturating_sub(first) as usize;
        (self.kept.iter().skip(skip).cloned().collect(), first.saturating_sub(from))
    }

    /// The number the next key will get.
    pub fn next(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::{RecentKeys, RECENT_KEYS_KEPT};

    #[test]
    fn recent_keys_are_read_on_from_a_number_and_say_what_was_dropped() {
        let mut recent = RecentKeys::default();
        for i in 0..RECENT_KEYS_KEPT + 5 {
            recent.push("w", &format!("k{i}"), true, i as i64);
        }
        assert_eq!(recent.next(), (RECENT_KEYS_KEPT + 5) as u64);
        // From 0: the five oldest are gone.
        let (keys, dropped) = recent.from(0);
        assert_eq!((keys.len(), dropped), (RECENT_KEYS_KEPT, 5));
        assert_eq!(keys[0].key, "k5");
        // From a number still kept: from there, none dropped.
        let (keys, dropped) = recent.from(recent.next() - 2);
        let names: Vec<&str> = keys.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(
            (names, dropped),
            (vec![format!("k{}", RECENT_KEYS_KEPT + 3).as_str(), format!("k{}", RECENT_KEYS_KEPT + 4).as_str()], 0)
        );
        // From the next number: nothing yet.
        assert_eq!(recent.from(recent.next()).0.len(), 0);
    }
}
