//! State per input partition (`[kafka] state_per_partition`): one engine
//! and snapshot per partition of the input topics, as a Kafka Streams task
//! holds one partition's state, so that a partition's state can later move
//! to another process on its own (docs/notes/scaling.md).
//!
//! The processing thread still runs every task of the process, one batch
//! at a time: a message goes to the task of its partition, and an event of
//! a type a scheduled workflow takes also to that workflow's owner
//! (`mon_runtime::engine::Owners`), said in the journal to come from
//! elsewhere. Events posted over HTTP count as partition 0's.
//!
//! The journal stays the process's: one entry per batch, its inputs
//! grouped by task ([`Input::Task`] says whose the next ones are), so a
//! batch is journaled whole or not at all with one fsync, as before. (One
//! journal per task would let a crash keep a batch's entry in one task and
//! lose it in another: an event handed to a scheduled workflow's owner
//! would then be lost.) The snapshots are the tasks', in
//! `tasks/<partition>/`, taken together, each covering the batches below
//! one sequence; the journal is emptied after all of them.
//!
//! What it must not do: let a task see another partition's items, or keep
//! an event twice (the owner of a scheduled workflow does not store the
//! events it is handed: their partition's task does).

use std::sync::atomic::Ordering;

use mon_runtime::engine::note_split_keys;
use mon_runtime::event::Decoded;
use mon_runtime::live::{Fed, Input, Live};
use mon_runtime::record::Record;
use mon_runtime::State;

use super::{Pending, Processor};
use crate::store::Offsets;

/// One partition's share of the state, or the whole of it.
pub struct Task<'p> {
    /// The input partition whose items this state holds; `None`: the one
    /// state of a process that keeps one for every partition.
    pub partition: Option<u16>,
    pub live: Live<'p>,
    /// Where its snapshot is: `tasks/<partition>`, or with one task the
    /// state directory, beside the journal.
    pub dir: std::path::PathBuf,
    /// The first batch its snapshot does not cover: a replay gives it the
    /// inputs of that batch on.
    pub covered: u64,
}

impl<'p> Processor<'p> {
    /// Whether the state is kept per input partition.
    pub(super) fn per_partition(&self) -> bool {
        self.tasks.first().is_some_and(|task| task.partition.is_some())
    }

    /// The task that takes the lines of input partition `partition`
    /// (`None`: posted over HTTP).
    pub(super) fn task_of(&self, partition: Option<i32>) -> usize {
        if !self.per_partition() {
            return 0;
        }
        // A partition beyond the tasks (added to the topic later): task 0
        // rejects its messages (`poll`), and answers for its offsets.
        partition.and_then(|p| usize::try_from(p).ok()).filter(|p| *p < self.tasks.len()).unwrap_or(0)
    }

    /// The offsets of `offsets` that task `task` answers for: its
    /// partition's, and task 0 those of partitions beyond the tasks (whose
    /// messages it rejects, `poll`).
    pub(super) fn offsets_of(&self, task: usize, offsets: &Offsets) -> Offsets {
        let mine = |partition: i32| self.task_of(Some(partition)) == task;
        offsets.iter().filter(|((_, partition), _)| mine(*partition)).map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// The partition HTTP lines are said to come from: partition 0's task
    /// takes them, as its own.
    pub(super) fn http_partition(&self) -> Option<u16> {
        self.per_partition().then_some(0)
    }

    /// The engine's clock: the latest of the tasks'.
    pub(super) fn clock(&self) -> Option<i64> {
        self.tasks.iter().filter_map(|task| task.live.clock()).max()
    }

    /// The earliest instant a task's timer falls due.
    pub(super) fn next_due(&self) -> Option<i64> {
        self.tasks.iter().filter_map(|task| task.live.next_due()).min()
    }

    /// Every started engine's state.
    pub(super) fn states(&self) -> Vec<&State> {
        self.tasks.iter().filter_map(|task| task.live.state()).collect()
    }

    /// Rebuilds the views over every task's state (see `views::Board`).
    /// (Not through `states()` and `clock()`: they would borrow all of
    /// `self` while the board is borrowed to change.)
    pub(super) fn refresh_board(&mut self, always: bool) {
        let states: Vec<&State> = self.tasks.iter().filter_map(|task| task.live.state()).collect();
        let now = self.tasks.iter().filter_map(|task| task.live.clock()).max().unwrap_or(0);
        self.board.refresh(self.program, &states, now, always);
    }

    /// After `task` took an event from partition `from`: hands it to the
    /// owners of the scheduled workflows that take its type, and notes a
    /// split key if another task holds its item; a scale-out task keeps
    /// its keys of items it did not hold, for its process to ask the
    /// other tasks about (`partitions.rs`, `RecentKeys`).
    pub(super) fn after_event(&mut self, taken: Taken, batch: &mut Pending, records: &mut Vec<Record>) {
        let Taken { task, from, decoded, event_type, held_before } = taken;
        // A scale-out task's keys that another task may hold: only of its
        // own partition's events (a handed event's items are its origin
        // task's, which holds them).
        let own_partition =
            self.config.kafka.as_ref().and_then(|kafka| kafka.task).is_some_and(|t| t.partition == from);
        if let (Some(recent), Some(Decoded::Event(event)), true) = (&self.recent_keys, decoded, own_partition) {
            let started = self.held(task) > held_before;
            let program = self.program;
            // Locked only when there is a key to keep: the usual event,
            // of an item the task holds, keeps none.
            let mut kept = None;
            mon_runtime::engine::for_keys_to_check(program, event, self.tasks[task].live.state(), started, |w, key| {
                let workflow = program.workflows.get(w as usize).map_or("", |w| w.name.as_str());
                if let Ok(keys) = kept.get_or_insert_with(|| recent.lock()).as_mut() {
                    keys.push(workflow, key, started, event.time);
                }
            });
        }
        if !self.per_partition() {
            return;
        }
        self.start_together(batch, records);
        let owners: Vec<u16> = self.owners.also(event_type, from).collect();
        if !owners.is_empty() {
            let line = match batch.inputs.last() {
                Some((_, Input::Line(line))) => line.clone(),
                _ => return,
            };
            // `Owners` was made for as many partitions as there are tasks.
            for owner in owners.into_iter().map(usize::from) {
                self.say_partition(owner, Some(from), batch, records);
                // Decoded once, by the intake, when it was (not an HTTP line).
                match decoded {
                    Some(decoded) => self.tasks[owner].live.apply_decoded(decoded, records),
                    None => self.feed(owner, &Input::Line(line.clone()), records),
                };
                self.board.dirty = true;
                batch.inputs.push((owner, Input::Line(line.clone())));
            }
        }
        if let Some(Decoded::Event(event)) = decoded {
            let started = self.held(task) > held_before;
            let own = self.tasks[task].live.state();
            let others = self.tasks.iter().filter(|other| other.partition != Some(from));
            let others = others.filter_map(|other| Some((other.partition?, other.live.state()?)));
            note_split_keys(self.program, event, from, own, started, others, &mut self.split_across);
        }
    }

    /// On the event clock, the engines that have not started start where
    /// the first did, at the first event any of them saw, as one engine
    /// would (and `mon_runtime::partitioned` does): a scheduled workflow's
    /// owner then expects the same occurrences whichever partition's
    /// event came first. Journaled, so a replay starts them alike.
    fn start_together(&mut self, batch: &mut Pending, records: &mut Vec<Record>) {
        let waiting = self.tasks.iter().any(|task| task.live.state().is_none());
        if !waiting || self.config.clock != mon_runtime::live::ClockMode::Event {
            return;
        }
        let Some(start) = self.tasks.iter().filter_map(|task| task.live.state()).map(|state| state.start).min() else {
            return;
        };
        for other in 0..self.tasks.len() {
            if self.tasks[other].live.state().is_none() {
                self.apply(other, Input::Start(start), batch, records);
            }
        }
    }

    /// The instances `task` holds: taken before an event, it says after
    /// it whether the event started an item (the split-key check).
    pub(super) fn held(&self, task: usize) -> usize {
        self.tasks[task].live.engine().map_or(0, |engine| engine.held())
    }

    /// The engine's clock for the HTTP side, after a durable batch.
    pub(super) fn publish_clock(&self) {
        if let Some(clock) = self.clock() {
            self.engine_now.store(clock, Ordering::Relaxed);
        }
    }
}

/// An event a task took, for [`Processor::after_event`].
pub(super) struct Taken<'e> {
    pub task: usize,
    /// The partition it came from.
    pub from: u16,
    /// The line as the intake decoded it (an HTTP line is decoded by the
    /// engine only: its split keys are not looked for).
    pub decoded: Option<&'e Decoded>,
    pub event_type: u32,
    /// The instances the task held before it.
    pub held_before: usize,
}

/// What `fed` says of an accepted event's type.
pub(super) fn event_type(fed: &Fed) -> Option<u32> {
    match fed {
        Fed::Event { event_type } => Some(*event_type),
        _ => None,
    }
}
