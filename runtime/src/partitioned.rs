//! One program run as several engines, one per input partition: what a
//! service that owns only some partitions runs (docs/notes/scaling.md),
//! on a virtual clock, so that `mon simulate --partitions` and the tests
//! can compare it with one engine over the same events.
//!
//! An event goes to the engine of its partition, and also to the owners of
//! the scheduled workflows that take its type (`engine::share`). Each
//! engine keeps its own clock, moved by the events it is given, as a Kafka
//! Streams task keeps its own stream time: a timer of an item fires when
//! its own partition's time passes it, not another's. All engines start
//! at the first event any of them sees and end together.
//!
//! On events in time order, the records are those of one engine, in
//! another order: each engine makes its items' records, and a timer fires
//! before the next event of its partition rather than before the next
//! event of any partition. Across partitions Kafka keeps no order, and a
//! late partition then delays its own timers instead of raising false
//! alerts on its items.

use mon_compiler::ir::Program;
use mon_compiler::Functions;

use crate::engine::{Owners, Share, State};
use crate::event::Decoded;
use crate::record::Record;
use crate::simulate::Simulation;

pub struct Partitioned<'p> {
    /// One engine per partition, by partition number.
    tasks: Vec<Simulation<'p>>,
    owners: Owners,
    started: bool,
    /// The latest event time any engine was given.
    last_time: Option<i64>,
    from: Option<i64>,
    until: Option<i64>,
}

impl<'p> Partitioned<'p> {
    /// `partitions` engines (at least one) of `program`; `from` and `until`
    /// as [`Simulation::new`].
    pub fn new(
        program: &'p Program,
        functions: &'p dyn Functions,
        partitions: u16,
        from: Option<i64>,
        until: Option<i64>,
    ) -> Self {
        let partitions = partitions.max(1);
        let tasks = (0..partitions)
            .map(|partition| {
                let mut task = Simulation::new(program, functions, from, until);
                task.share(Share { partition, partitions });
                task
            })
            .collect();
        Partitioned {
            tasks,
            owners: Owners::new(program, partitions),
            started: from.is_some(),
            last_time: None,
            from,
            until,
        }
    }

    pub fn partitions(&self) -> u16 {
        self.tasks.len() as u16
    }

    /// Feeds a decoded line that came from `partition` (taken modulo the
    /// partition count); `line` is its number in the file, if any.
    pub fn feed_decoded(&mut self, decoded: &Decoded, line: Option<u64>, partition: u16, out: &mut Vec<Record>) {
        let partition = partition % self.partitions();
        let time = match decoded {
            Decoded::Event(event) => Some(event.time),
            Decoded::Ignored { time, .. } => Some(*time),
            Decoded::Rejected(_) => None,
        };
        if let Some(time) = time.filter(|t| self.until.is_none_or(|until| *t <= until)) {
            if !self.started {
                self.started = true;
                for task in &mut self.tasks {
                    task.start(time);
                }
            }
            self.last_time = Some(self.last_time.map_or(time, |last| last.max(time)));
        }
        let task = &mut self.tasks[partition as usize];
        if let Decoded::Rejected(rejection) = decoded {
            // At the stream's time, as one engine would record it.
            let at = self.last_time.or(self.from).unwrap_or(0);
            task.feed_rejected(rejection, line, at, out);
            return;
        }
        task.origin = Some(partition);
        task.feed_decoded(decoded, line, out);
        if let Decoded::Event(event) = decoded {
            for owner in self.owners.also(event.event_type, partition) {
                let task = &mut self.tasks[owner as usize];
                task.origin = Some(partition);
                task.feed_decoded(decoded, line, out);
            }
        }
    }

    /// Ends every engine at `until` (or the last event's time), firing the
    /// timers due by then.
    pub fn finish(&mut self, out: &mut Vec<Record>) -> Option<i64> {
        let end = self.until.or(self.last_time)?;
        for task in &mut self.tasks {
            task.finish_at(end, out);
        }
        Some(end)
    }

    /// Each engine's state, by partition (none before the first event).
    pub fn states(&self) -> impl Iterator<Item = &State> {
        self.tasks.iter().filter_map(Simulation::state)
    }

    /// The engine of one partition.
    pub fn task(&self, partition: u16) -> Option<&Simulation<'p>> {
        self.tasks.get(partition as usize)
    }
}
