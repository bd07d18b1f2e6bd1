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
//! An event of an item another partition's engine holds (its producer
//! does not key by the item) is a *split key*: its own engine starts a
//! second item, or takes it for a stray. The driver looks for one whenever
//! the event's partition's engine does not hold its item, and counts and
//! keeps them ([`split_keys`](Partitioned::split_keys)), as the service
//! reports them.
//!
//! On events in time order, the records are those of one engine, in
//! another order: each engine makes its items' records, and a timer fires
//! before the next event of its partition rather than before the next
//! event of any partition. Across partitions Kafka keeps no order, and a
//! late partition then delays its own timers instead of raising false
//! alerts on its items.

use mon_compiler::ir::Program;
use mon_compiler::Functions;

use crate::engine::{note_split_keys, Owners, Share, SplitKeys, State};
use crate::event::{Decoded, Rejection};
use crate::record::Record;
use crate::simulate::{NumberedLine, Simulation, NOT_TEXT};

pub struct Partitioned<'p> {
    /// Lines fed, and of them rejected and of types no rule uses.
    pub lines: u64,
    pub rejected: u64,
    pub ignored: u64,
    /// One engine per partition, by partition number.
    tasks: Vec<Simulation<'p>>,
    owners: Owners,
    started: bool,
    /// The latest event time any engine was given.
    last_time: Option<i64>,
    /// See [`split_keys`](Self::split_keys).
    split_keys: SplitKeys,
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
            lines: 0,
            rejected: 0,
            ignored: 0,
            tasks,
            owners: Owners::new(program, partitions),
            started: from.is_some(),
            last_time: None,
            split_keys: SplitKeys::default(),
            from,
            until,
        }
    }

    pub fn partitions(&self) -> u16 {
        self.tasks.len() as u16
    }

    /// Feeds an alert book per engine, as each task of a service keeps
    /// its own: an alert group gathers one partition's alerts.
    pub fn with_alerts(mut self, config: crate::alerts::BookConfig) -> Self {
        self.tasks = self.tasks.into_iter().map(|task| task.with_alerts(config)).collect();
        self
    }

    /// The notifications every engine's book sent, partition by partition.
    pub fn notifications(&self) -> impl Iterator<Item = &crate::alerts::Notification> {
        self.tasks.iter().flat_map(|task| task.notifications.iter())
    }

    /// Feeds a line read by `mon simulate` ([`NumberedLine::decode`]) that
    /// came from `partition`; returns the event's type when no rule
    /// declares it, as [`Simulation::feed_numbered`].
    pub fn feed_numbered(&mut self, line: &NumberedLine, partition: u16, out: &mut Vec<Record>) -> Option<String> {
        match line {
            NumberedLine::Text { number, decoded } => {
                self.feed_decoded(decoded, Some(*number), partition, out);
                match decoded {
                    Decoded::Ignored { type_name, .. } => Some(type_name.clone()),
                    _ => None,
                }
            }
            NumberedLine::NotText { number } => {
                let rejection = Rejection::of(NOT_TEXT);
                self.feed_decoded(&Decoded::Rejected(rejection), Some(*number), partition, out);
                None
            }
        }
    }

    /// Feeds a decoded line that came from `partition` (taken modulo the
    /// partition count); `line` is its number in the file, if any.
    pub fn feed_decoded(&mut self, decoded: &Decoded, line: Option<u64>, partition: u16, out: &mut Vec<Record>) {
        let partition = partition % self.partitions();
        self.lines += 1;
        match decoded {
            Decoded::Rejected(_) => self.rejected += 1,
            Decoded::Ignored { .. } => self.ignored += 1,
            Decoded::Event(_) => {}
        }
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
        if let Decoded::Rejected(rejection) = decoded {
            // At the stream's time, as one engine would record it.
            let at = self.last_time.or(self.from).unwrap_or(0);
            self.tasks[partition as usize].feed_rejected(rejection, line, at, out);
            return;
        }
        if let Decoded::Event(event) = decoded {
            // Before it is fed: whether its own engine holds its item yet.
            let own = self.tasks[partition as usize].state();
            let others = self.tasks.iter().enumerate().filter(|(p, _)| *p != partition as usize);
            let others = others.filter_map(|(p, task)| Some((p as u16, task.state()?)));
            let program = self.tasks[0].program();
            note_split_keys(program, event, partition, own, false, others, &mut self.split_keys);
        }
        let task = &mut self.tasks[partition as usize];
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

    /// Events of an item that came from another partition than the one
    /// whose engine holds it: the first [`SPLIT_KEYS_KEPT`], and how many
    /// there were.
    pub fn split_keys(&self) -> &SplitKeys {
        &self.split_keys
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Decoder;

    const RULES: &str = r#"
event job_started { job: string }
event job_done { job: string }
event file_received { name: string }
workflow jobs {
  key job
  start started: job_started
  then job_done within 1h
}
workflow feed {
  timezone UTC
  expect file_received by 08:00 every day
}
"#;

    fn line(kind: &str, job: &str, time: &str) -> String {
        let data =
            if kind == "file_received" { format!(r#"{{"name":"{job}"}}"#) } else { format!(r#"{{"job":"{job}"}}"#) };
        format!(
            r#"{{"specversion":"1.0","id":"{kind}-{job}-{time}","source":"t","type":"{kind}","time":"2026-03-02T{time}Z","data":{data}}}"#
        )
    }

    /// An item whose events come from two partitions is a split key, said
    /// once per event from the wrong partition; the scheduled workflow's
    /// file, from any partition, is not.
    #[test]
    fn an_item_on_two_partitions_is_a_split_key() {
        let sources = vec![mon_compiler::SourceFile { path: "jobs.mon".into(), text: RULES.into() }];
        let program =
            mon_compiler::compile(&sources, mon_stdlib::registry(), &mon_compiler::NoSchemas).program.unwrap();
        let decoder = Decoder::new(&program);
        let mut run = Partitioned::new(&program, mon_stdlib::registry(), 2, None, None);
        let mut out = Vec::new();
        for (kind, job, time, partition) in [
            ("job_started", "J1", "07:00:00", 0),
            ("job_started", "J2", "07:00:01", 1),
            ("file_received", "F", "07:30:00", 0),
            ("file_received", "F2", "07:31:00", 1),
            ("job_done", "J1", "07:40:00", 1),
            ("job_done", "J2", "07:41:00", 1),
        ] {
            run.feed_decoded(&decoder.decode(&line(kind, job, time)), None, partition, &mut out);
        }
        let SplitKeys { kept, events } = run.split_keys();
        assert_eq!(*events, 1, "{kept:?}");
        assert_eq!((kept[0].key.as_str(), kept[0].owner, kept[0].seen_on), ("J1", 0, 1));
        // J1's end went to partition 1, which never saw it start.
        assert!(out
            .iter()
            .any(|r| r.kind == crate::Kind::Unexpected && r.event_id.as_deref() == Some("job_done-J1-07:40:00")));
        // The day's file arrived, once, at the owner of `feed`.
        run.finish(&mut out);
        let feed_records: Vec<_> = out.iter().filter(|r| r.workflow.as_deref() == Some("feed")).collect();
        assert!(feed_records.iter().all(|r| r.kind != crate::Kind::Missing), "{feed_records:?}");
    }

    /// [`RULES`] with `jobs` notifying a channel.
    fn notifying() -> mon_compiler::ir::Program {
        let rules = format!(
            "channel desk webhook \"http://127.0.0.1:9/hook\"\n{}",
            RULES.replace("  key job\n", "  key job\n  notify desk\n")
        );
        let sources = vec![mon_compiler::SourceFile { path: "jobs.mon".into(), text: rules }];
        mon_compiler::compile(&sources, mon_stdlib::registry(), &mon_compiler::NoSchemas).program.unwrap()
    }

    /// Two partitions' books each make a group for the same step at the
    /// same instant: to a receiver they are two groups (two PagerDuty
    /// incidents, two idempotency keys), each resolved by its own alerts.
    #[test]
    fn each_partitions_alert_groups_are_its_own_to_a_receiver() {
        let program = notifying();
        let decoder = Decoder::new(&program);
        let mut run = Partitioned::new(&program, mon_stdlib::registry(), 2, None, None)
            .with_alerts(crate::alerts::BookConfig { group_wait_ms: 0, group_interval_ms: 0 });
        let mut out = Vec::new();
        for (job, partition) in [("J1", 0), ("J2", 1)] {
            run.feed_decoded(&decoder.decode(&line("job_started", job, "07:00:00")), None, partition, &mut out);
        }
        // Both jobs' deadlines pass at the same instant, one in each partition.
        for partition in 0..2 {
            run.feed_decoded(&decoder.decode(&line("job_started", "later", "09:00:00")), None, partition, &mut out);
        }
        let sent: Vec<(String, String)> = run.notifications().map(|n| (n.group_key.clone(), n.id.clone())).collect();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_ne!(sent[0].0, sent[1].0, "group keys: {sent:?}");
        assert_ne!(sent[0].1, sent[1].1, "ids: {sent:?}");
        assert!(sent.iter().any(|(key, _)| key.ends_with("@partition-0")), "{sent:?}");
    }

    /// A book saved before group keys carried the partition keeps its
    /// groups' old keys while they are open (a receiver's incident under
    /// the old key is resolved under it), and takes the partition's at the
    /// next episode.
    #[test]
    fn a_book_from_before_takes_the_partitions_keys_at_a_groups_next_episode() {
        use crate::simulate::Simulation;
        let program = notifying();
        let config = crate::alerts::BookConfig { group_wait_ms: 0, group_interval_ms: 0 };
        let mut out = Vec::new();
        let mut before = Simulation::new(&program, mon_stdlib::registry(), None, None).with_alerts(config);
        for (kind, job, time) in [("job_started", "J1", "07:00:00"), ("job_started", "J2", "09:00:00")] {
            before.feed(&line(kind, job, time), &mut out);
        }
        let first: Vec<String> = before.notifications.iter().map(|n| n.group_key.clone()).collect();
        assert!(!first.is_empty() && first.iter().all(|key| !key.contains("@partition")), "{first:?}");
        before.feed(&line("job_done", "J1", "09:05:00"), &mut out);
        let saved = before.book().unwrap().state().clone();

        let mut after = Simulation::new(&program, mon_stdlib::registry(), None, None).with_alerts(config);
        after.share(crate::engine::Share { partition: 0, partitions: 2 });
        after.restore_book(saved);
        for (kind, job, time) in [("job_started", "J3", "10:00:00"), ("job_started", "J4", "12:00:00")] {
            after.feed(&line(kind, job, time), &mut out);
        }
        let next: Vec<String> = after.notifications.iter().map(|n| n.group_key.clone()).collect();
        assert!(!next.is_empty() && next.iter().all(|key| key.ends_with("@partition-0")), "{next:?}");
    }
}
