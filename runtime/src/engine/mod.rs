//! The engine: a pure, deterministic function of (program, state, input,
//! clock) — DESIGN.md §1 rule 1.
//!
//! [`Engine::process`] takes one decoded event; [`Engine::advance`] moves
//! the clock and fires the timers that came due. Both append [`Record`]s to
//! the caller's buffer and do nothing else: no I/O, no wall clock. The same
//! engine serves `mon test`, `mon simulate` and (later) the service.
//!
//! Per event: look up the (workflow, step) candidates of its type, keep the
//! workflows for which the event is relevant (the event-only part of a
//! step's `where` holds), find the instance by key, and classify the event
//! against the instance's current stage: a step it may take, a skipped step
//! to fill in, a duplicate, an out-of-order jump, or unexpected. Timers live
//! in a binary heap; an instance's generation number invalidates the timers
//! of the stage it left, so cancelling is free.

mod state;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};

use mon_compiler::ir::{self, Handling, Outcome, Program, Severity, Value};
use mon_compiler::Functions;
use mon_stdlib::time as t;
use serde::{Deserialize, Serialize};

pub use state::{Instance, TraceEntry, TraceWhat, Visit};

use crate::eval::{holds, Env};
use crate::event::Event;
use crate::record::{Kind, Record};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum TimerKind {
    /// The step's deadline plus grace passed.
    Missing { step: u32, deadline: i64 },
    /// The step's warn instant passed.
    AtRisk { step: u32, deadline: i64 },
    /// A closed instance's retention ended.
    Expire,
    /// A scheduled workflow's occurrence for `date` opens.
    Open { date: i32 },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Timer {
    due: i64,
    seq: u64,
    workflow: u32,
    key: String,
    generation: u32,
    kind: TimerKind,
}

/// Everything the engine knows; serialisable so that a run can stop and
/// resume (the split-and-resume property test relies on it).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// Per workflow, open and retained instances by key.
    pub instances: Vec<HashMap<String, Instance>>,
    timers: BinaryHeap<Reverse<Timer>>,
    seq: u64,
    seen_ids: HashSet<String>,
    /// When monitoring started: no occurrence before it is expected.
    pub start: i64,
    /// The latest instant the engine has seen.
    pub clock: i64,
    /// Per workflow × stage × group counters.
    #[serde(with = "pairs")]
    pub counters: BTreeMap<(u32, u32, Vec<String>), Counters>,
    /// Per workflow: unexpected and duplicate events that have no instance.
    pub strays: BTreeMap<u32, Counters>,
    /// Keys whose lifecycle is traced, and the trace lines of events that
    /// moved no instance.
    pub traced_keys: HashSet<String>,
    pub stray_trace: Vec<(u32, String, TraceEntry)>,
}

/// Event counts of one workflow × stage × group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub entered: u64,
    pub completed: u64,
    pub failed: u64,
    pub late: u64,
    pub duplicate: u64,
    pub out_of_order: u64,
    pub unexpected: u64,
    /// Time spent in the stage by items that left it, ms (a bounded sample).
    pub stay_ms: VecDeque<i64>,
    /// Entry instants in the last minute, for the entry rate.
    pub recent_entries: VecDeque<i64>,
}

const STAY_SAMPLE: usize = 1024;

pub struct Engine<'p> {
    program: &'p Program,
    functions: &'p dyn Functions,
    pub state: State,
}

impl<'p> Engine<'p> {
    /// An engine that starts monitoring at `start` (ms since the epoch).
    pub fn new(program: &'p Program, functions: &'p dyn Functions, start: i64) -> Self {
        let mut engine = Engine { program, functions, state: State::default() };
        engine.state.instances = vec![HashMap::new(); program.workflows.len()];
        engine.state.start = start;
        engine.state.clock = start;
        for workflow in &program.workflows {
            if let Some(first) = engine.first_occurrence_date(workflow) {
                engine.arm_open(workflow, first);
            }
        }
        engine
    }

    /// Resumes from a saved state.
    pub fn restore(program: &'p Program, functions: &'p dyn Functions, state: State) -> Self {
        Engine { program, functions, state }
    }

    pub fn program(&self) -> &'p Program {
        self.program
    }

    /// The instances of a workflow that the engine holds (open, and closed
    /// ones until their retention ends), by key string.
    pub fn instances(&self, workflow: u32) -> impl Iterator<Item = (&str, &Instance)> {
        self.state.instances[workflow as usize].iter().map(|(k, i)| (k.as_str(), i))
    }

    /// The instance with this key string, if the engine holds one.
    pub fn instance(&self, workflow: u32, key: &str) -> Option<&Instance> {
        self.state.instances[workflow as usize].get(key)
    }

    /// Traces the lifecycle of items with this key (as `key_string` gives it).
    pub fn trace_key(&mut self, key: &str) {
        self.state.traced_keys.insert(key.to_string());
    }

    /// Fires every timer due before `now` (or at `now` when `inclusive`).
    pub fn advance(&mut self, now: i64, inclusive: bool, out: &mut Vec<Record>) {
        while let Some(Reverse(timer)) = self.state.timers.peek() {
            let due = timer.due;
            if due > now || (due == now && !inclusive) {
                break;
            }
            let Some(Reverse(timer)) = self.state.timers.pop() else { break };
            self.state.clock = self.state.clock.max(due);
            self.fire(timer, out);
        }
        self.state.clock = self.state.clock.max(now);
    }

    /// Processes one event at its own time. Call [`advance`](Self::advance)
    /// first so that timers due before it have fired.
    pub fn process(&mut self, event: &Event, out: &mut Vec<Record>) {
        self.state.clock = self.state.clock.max(event.time);
        if !self.state.seen_ids.insert(event.id.clone()) {
            // Redelivery: at-least-once transport, idempotent processing.
            return;
        }
        let program = self.program;
        let Some(candidates) = program.candidates.get(event.event_type as usize) else { return };
        let mut workflow_steps: Vec<(u32, Vec<u32>)> = Vec::new();
        for candidate in candidates {
            match workflow_steps.last_mut() {
                Some((w, steps)) if *w == candidate.workflow => steps.push(candidate.step),
                _ => workflow_steps.push((candidate.workflow, vec![candidate.step])),
            }
        }
        for (workflow_id, steps) in workflow_steps {
            let workflow = &program.workflows[workflow_id as usize];
            let relevant: Vec<u32> = steps
                .into_iter()
                .filter(|&s| match &workflow.steps[s as usize].relevance {
                    Some(condition) => holds(condition, &self.env(&event.fields, &[])),
                    None => true,
                })
                .collect();
            let key = self.key_of(workflow, event);
            if relevant.is_empty() {
                if let Some((key, _)) = key {
                    self.trace_stray(workflow_id, &key, event, TraceWhat::Irrelevant);
                }
                continue;
            }
            match key {
                Some((key, date)) => self.route(workflow, &key, date, event, &relevant, out),
                None => self.unexpected(workflow, None, event, relevant[0], out),
            }
        }
    }

    fn env<'a>(&'a self, fields: &'a [Value], kept: &'a [(u32, u32, Value)]) -> Env<'a> {
        Env { fields, kept, functions: self.functions }
    }

    /// The instance key of `event` in `workflow` and the instance's date
    /// for a scheduled workflow.
    fn key_of(&self, workflow: &ir::Workflow, event: &Event) -> Option<(String, Option<i32>)> {
        match &workflow.schedule {
            Some(schedule) => {
                let cohort = schedule.cohort.iter().find(|(e, _)| *e == event.event_type);
                let date = match cohort.map(|(_, slot)| &event.fields[*slot as usize]) {
                    Some(Value::Date(d)) => *d,
                    _ => t::local_date(event.time, &workflow.timezone)?,
                };
                Some((t::format_date(date), Some(date)))
            }
            None => {
                let mut key = String::new();
                for (i, field) in workflow.key.iter().enumerate() {
                    let (_, slot) = field.slots.iter().find(|(e, _)| *e == event.event_type)?;
                    if i > 0 {
                        key.push('\u{1f}');
                    }
                    key.push_str(&display(&event.fields[*slot as usize], &field.ty));
                }
                Some((key, None))
            }
        }
    }

    fn route(
        &mut self,
        workflow: &ir::Workflow,
        key: &str,
        date: Option<i32>,
        event: &Event,
        relevant: &[u32],
        out: &mut Vec<Record>,
    ) {
        let w = workflow.id as usize;
        let is_start = |s: &u32| workflow.steps[*s as usize].sources.is_empty();
        let Some(instance) = self.state.instances[w].get(key) else {
            // No instance: a start step opens one (keyed workflows only;
            // a scheduled occurrence exists only by its schedule).
            let start = relevant.iter().copied().find(|s| is_start(s) && self.guard_holds(workflow, *s, event, &[]));
            match (start, &workflow.schedule) {
                (Some(step), None) => {
                    let date = t::local_date(event.time, &workflow.timezone).unwrap_or_default();
                    let group = self.group_of(workflow, event);
                    let instance = Instance::new(date, event.time, group);
                    self.state.instances[w].insert(key.to_string(), instance);
                    self.take(workflow, key, step, event, None, out);
                }
                _ => {
                    let _ = date;
                    self.unexpected(workflow, Some(key), event, relevant[0], out);
                }
            }
            return;
        };
        let stage = instance.stage;
        let closed = instance.closed.is_some();
        let kept = instance.kept.clone();
        // 1. A step the instance may take from where it is.
        if !closed {
            let next = relevant.iter().copied().find(|&s| {
                let step = &workflow.steps[s as usize];
                let allowed = match stage {
                    Some(current) => step.sources.contains(&current),
                    None => step.sources.is_empty(),
                };
                allowed && self.guard_holds(workflow, s, event, &kept)
            });
            if let Some(step) = next {
                if stage.is_none() && instance.group.is_empty() {
                    let group = self.group_of(workflow, event);
                    if let Some(i) = self.state.instances[w].get_mut(key) {
                        i.group = group;
                    }
                }
                self.take(workflow, key, step, event, None, out);
                return;
            }
        }
        // 2. A skipped step's event fills it in, silently.
        let instance = &self.state.instances[w][key];
        if let Some(step) =
            relevant.iter().copied().find(|s| instance.visit(*s).is_some_and(|v| v.skipped && v.time.is_none()))
        {
            let instance = self.state.instances[w].get_mut(key).expect("looked up above");
            if let Some(visit) = instance.visits.iter_mut().find(|v| v.step == step) {
                visit.time = Some(event.time);
                visit.event_id = Some(event.id.clone());
            }
            self.trace(w as u32, key, event.time, TraceWhat::FilledIn { step }, Some(event));
            return;
        }
        // 3. A step already taken, or a start while the instance exists.
        if let Some(step) =
            relevant.iter().copied().find(|s| instance.visit(*s).is_some() || (is_start(s) && stage.is_some()))
        {
            self.classified(workflow, key, event, step, Kind::Duplicate, workflow.on_duplicate, out);
            return;
        }
        // 4. A step reachable later: out of order.
        if !closed {
            {
                let later = relevant.iter().copied().find_map(|s| {
                    let path = match stage {
                        Some(current) => skipped_path(workflow, current, s)?,
                        None => skipped_from_start(workflow, s)?,
                    };
                    self.guard_holds(workflow, s, event, &kept).then_some((s, path))
                });
                if let Some((step, path)) = later {
                    if workflow.on_out_of_order != Handling::Drop {
                        self.take(workflow, key, step, event, Some(&path), out);
                    }
                    self.classified(workflow, key, event, step, Kind::OutOfOrder, workflow.on_out_of_order, out);
                    return;
                }
            }
        }
        // 5. Anything else the workflow uses is a stray.
        self.unexpected(workflow, Some(key), event, relevant[0], out);
    }

    fn guard_holds(&self, workflow: &ir::Workflow, step: u32, event: &Event, kept: &[(u32, u32, Value)]) -> bool {
        match &workflow.steps[step as usize].guard {
            Some(guard) => holds(guard, &self.env(&event.fields, kept)),
            None => true,
        }
    }

    fn group_of(&self, workflow: &ir::Workflow, event: &Event) -> Vec<String> {
        workflow
            .group_by
            .iter()
            .map(|g| {
                g.slots
                    .iter()
                    .find(|(e, _)| *e == event.event_type)
                    .map(|(e, slot)| {
                        let ty = &self.program.events[*e as usize].fields[*slot as usize].ty;
                        display(&event.fields[*slot as usize], ty)
                    })
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Moves the instance along `step` (after skipping `skipped`, for an
    /// out-of-order event): late/early records, new stage, new timers.
    fn take(
        &mut self,
        workflow: &ir::Workflow,
        key: &str,
        step_id: u32,
        event: &Event,
        skipped: Option<&[u32]>,
        out: &mut Vec<Record>,
    ) {
        let w = workflow.id as usize;
        let step = &workflow.steps[step_id as usize];
        let program = self.program;
        let Some(instance) = self.state.instances[w].get_mut(key) else { return };
        let from_stage = instance.stage;
        let entered = instance.entered_at;
        let deadline = deadline(workflow, step, instance.date, entered);
        let mut records = Vec::new();
        if let (Some(deadline), true) = (deadline, from_stage.is_some() || workflow.schedule.is_some()) {
            if event.time > deadline {
                instance.late = true;
                let mut r = Record::new(Kind::Late, event.time);
                r.step = Some(step.name.clone());
                r.deadline = Some(deadline);
                r.delay_ms = Some(event.time - deadline);
                r.severity = Some(step.alerting.severity);
                r.event_id = Some(event.id.clone());
                records.push(r);
            }
        }
        if let Some(earliest) = not_before(step, instance.date, entered) {
            if event.time < earliest && from_stage.is_some() {
                let mut r = Record::new(Kind::Early, event.time);
                r.step = Some(step.name.clone());
                r.event_id = Some(event.id.clone());
                r.severity = Some(step.alerting.severity);
                records.push(r);
            }
        }
        for &s in skipped.unwrap_or(&[]) {
            instance.visits.push(Visit {
                step: s,
                time: None,
                deadline: None,
                late_ms: None,
                skipped: true,
                event_id: None,
            });
        }
        instance.visits.push(Visit {
            step: step_id,
            time: Some(event.time),
            deadline,
            late_ms: deadline.filter(|d| event.time > *d).map(|d| event.time - d),
            skipped: false,
            event_id: Some(event.id.clone()),
        });
        // The alternatives of the stage it leaves stop being expected.
        if let Some(from) = from_stage {
            let leaving = &workflow.stages[from as usize].outgoing;
            instance.missing.retain(|s| !leaving.contains(s));
            instance.at_risk.retain(|s| !leaving.contains(s));
        } else {
            instance.missing.retain(|s| *s != step_id);
            instance.at_risk.retain(|s| *s != step_id);
        }
        for (s, slot) in workflow.kept.iter().filter(|k| k.step == step_id).map(|k| (k.step, k.slot)) {
            instance.kept.retain(|(ks, kslot, _)| !(*ks == s && *kslot == slot));
            instance.kept.push((s, slot, event.fields[slot as usize].clone()));
        }
        instance.stage = Some(step_id);
        instance.entered_at = event.time;
        instance.generation += 1;
        let generation = instance.generation;
        let date = instance.date;
        let group = instance.group.clone();
        let closes = workflow.stages[step_id as usize].closes;
        if let Some(outcome) = closes {
            instance.closed = Some((outcome, event.time));
        }
        let late = instance.late && closes.is_some();
        // Counters: leaving, entering, closing.
        if let Some(from) = from_stage {
            let c = self.counters(workflow.id, from, &group);
            c.stay_ms.push_back(event.time - entered);
            if c.stay_ms.len() > STAY_SAMPLE {
                c.stay_ms.pop_front();
            }
        }
        {
            let c = self.counters(workflow.id, step_id, &group);
            c.entered += 1;
            c.recent_entries.push_back(event.time);
            while c.recent_entries.front().is_some_and(|&e| e <= event.time - 60_000) {
                c.recent_entries.pop_front();
            }
            if records.iter().any(|r| r.kind == Kind::Late) {
                c.late += 1;
            }
            match closes {
                Some(Outcome::Success) => c.completed += 1,
                Some(Outcome::Failure) => c.failed += 1,
                None => {}
            }
        }
        let _ = late;
        self.trace(
            workflow.id,
            key,
            event.time,
            TraceWhat::Took { step: step_id, skipped: skipped.map(<[u32]>::to_vec) },
            Some(event),
        );
        match closes {
            Some(_) => {
                self.push_timer(event.time + workflow.retain_ms as i64, workflow.id, key, generation, TimerKind::Expire)
            }
            None => self.arm_stage(workflow, key, step_id, date, event.time, generation),
        }
        for r in records {
            self.emit(workflow, key, r, out);
        }
        let _ = program;
    }

    /// Arms the deadline and warn timers of the steps leaving `stage`.
    fn arm_stage(&mut self, workflow: &ir::Workflow, key: &str, stage: u32, date: i32, entered: i64, generation: u32) {
        for &next in &workflow.stages[stage as usize].timers {
            let step = &workflow.steps[next as usize];
            if step.optional {
                // An optional step is never missing or at risk.
                continue;
            }
            self.arm_step(workflow, key, step, date, entered, generation);
        }
    }

    fn arm_step(
        &mut self,
        workflow: &ir::Workflow,
        key: &str,
        step: &ir::Step,
        date: i32,
        entered: i64,
        generation: u32,
    ) {
        let Some(deadline) = deadline(workflow, step, date, entered) else { return };
        let kind = TimerKind::Missing { step: step.id, deadline };
        self.push_timer(deadline + step.grace_ms as i64, workflow.id, key, generation, kind);
        let warn = match &step.timing.warn {
            Some(ir::Warn::After(ms)) => Some(entered + *ms as i64),
            Some(ir::Warn::At(at)) => t::clock_deadline(date, at),
            None => None,
        };
        if let Some(warn) = warn.filter(|w| *w < deadline) {
            self.push_timer(warn, workflow.id, key, generation, TimerKind::AtRisk { step: step.id, deadline });
        }
    }

    fn push_timer(&mut self, due: i64, workflow: u32, key: &str, generation: u32, kind: TimerKind) {
        self.state.seq += 1;
        let timer = Timer { due, seq: self.state.seq, workflow, key: key.to_string(), generation, kind };
        self.state.timers.push(Reverse(timer));
    }

    fn fire(&mut self, timer: Timer, out: &mut Vec<Record>) {
        let program = self.program;
        let workflow = &program.workflows[timer.workflow as usize];
        let w = timer.workflow as usize;
        if let TimerKind::Open { date } = timer.kind {
            self.open_occurrence(workflow, date, timer.due);
            return;
        }
        let Some(instance) = self.state.instances[w].get_mut(&timer.key) else { return };
        if instance.generation != timer.generation {
            return; // the instance has moved on: this timer was cancelled
        }
        match timer.kind {
            TimerKind::Expire => {
                self.state.instances[w].remove(&timer.key);
            }
            TimerKind::Missing { step, deadline } | TimerKind::AtRisk { step, deadline } => {
                let missing = matches!(timer.kind, TimerKind::Missing { .. });
                if missing {
                    instance.at_risk.retain(|s| *s != step);
                    instance.missing.push(step);
                } else {
                    instance.at_risk.push(step);
                }
                let step_ir = &workflow.steps[step as usize];
                let kind = if missing { Kind::Missing } else { Kind::AtRisk };
                let mut r = Record::new(kind, timer.due);
                r.step = Some(step_ir.name.clone());
                r.deadline = Some(deadline);
                r.severity = Some(step_ir.alerting.severity);
                r.caused_by = self.upstream_cause(workflow, &timer.key);
                let what =
                    if missing { TraceWhat::Missing { step, deadline } } else { TraceWhat::AtRisk { step, deadline } };
                self.trace(workflow.id, &timer.key, timer.due, what, None);
                self.emit(workflow, &timer.key, r, out);
            }
            TimerKind::Open { .. } => {}
        }
    }

    /// `Some(upstream)` when an upstream workflow has an open `missing`
    /// record for the same key: one root cause, one page.
    fn upstream_cause(&self, workflow: &ir::Workflow, key: &str) -> Option<String> {
        workflow.depends_on.iter().find_map(|&up| {
            let instance = self.state.instances[up as usize].get(key)?;
            (!instance.missing.is_empty() && instance.closed.is_none())
                .then(|| self.program.workflows[up as usize].name.clone())
        })
    }

    // ------------------------------------------------------------ occurrences

    /// The first date whose occurrence could have a deadline at or after
    /// the start of monitoring.
    fn first_occurrence_date(&self, workflow: &ir::Workflow) -> Option<i32> {
        workflow.schedule.as_ref()?;
        let max_offset =
            workflow.steps.iter().filter_map(|s| s.timing.by.as_ref()).map(|b| b.day_offset as i32).max().unwrap_or(0);
        Some(t::local_date(self.state.start, &workflow.timezone)? - max_offset - 1)
    }

    fn arm_open(&mut self, workflow: &ir::Workflow, date: i32) {
        let Some(schedule) = &workflow.schedule else { return };
        let Some(open) = t::local_to_utc(date, schedule.open_seconds, &workflow.timezone) else { return };
        self.push_timer(open, workflow.id, "", 0, TimerKind::Open { date });
    }

    fn open_occurrence(&mut self, workflow: &ir::Workflow, date: i32, open: i64) {
        self.arm_open(workflow, date + 1);
        let Some(schedule) = &workflow.schedule else { return };
        if !t::is_scheduled(schedule, &self.program.calendars, date) {
            return;
        }
        let starts: Vec<&ir::Step> = workflow.steps.iter().filter(|s| s.sources.is_empty()).collect();
        let deadlines: Vec<i64> = starts.iter().filter_map(|s| deadline(workflow, s, date, open)).collect();
        // A fresh deployment does not alert on history it never watched.
        if deadlines.iter().all(|d| *d < self.state.start) {
            return;
        }
        let key = t::format_date(date);
        if self.state.instances[workflow.id as usize].contains_key(&key) {
            return;
        }
        self.state.instances[workflow.id as usize].insert(key.clone(), Instance::new(date, open, Vec::new()));
        for step in starts {
            self.arm_step(workflow, &key, step, date, open, 0);
        }
    }

    // ------------------------------------------------------------ records

    fn classified(
        &mut self,
        workflow: &ir::Workflow,
        key: &str,
        event: &Event,
        step: u32,
        kind: Kind,
        handling: Handling,
        out: &mut Vec<Record>,
    ) {
        let stage = self.state.instances[workflow.id as usize].get(key).and_then(|i| i.stage).unwrap_or(step);
        let group = self.state.instances[workflow.id as usize].get(key).map(|i| i.group.clone()).unwrap_or_default();
        let c = self.counters(workflow.id, stage, &group);
        match kind {
            Kind::Duplicate => c.duplicate += 1,
            Kind::OutOfOrder => c.out_of_order += 1,
            _ => c.unexpected += 1,
        }
        let what = match kind {
            Kind::Duplicate => TraceWhat::Duplicate { step },
            Kind::OutOfOrder => TraceWhat::OutOfOrder { step, dropped: handling == Handling::Drop },
            _ => TraceWhat::Unexpected,
        };
        self.trace(workflow.id, key, event.time, what, Some(event));
        if handling == Handling::Drop {
            return;
        }
        let mut r = Record::new(kind, event.time);
        r.step = Some(workflow.steps[step as usize].name.clone());
        r.event_id = Some(event.id.clone());
        if handling == Handling::Alert {
            r.severity = Some(workflow.alerting.severity);
        }
        self.emit(workflow, key, r, out);
    }

    fn unexpected(
        &mut self,
        workflow: &ir::Workflow,
        key: Option<&str>,
        event: &Event,
        step: u32,
        out: &mut Vec<Record>,
    ) {
        let has_instance = key.is_some_and(|k| self.state.instances[workflow.id as usize].contains_key(k));
        if has_instance {
            let key = key.expect("checked");
            self.classified(workflow, key, event, step, Kind::Unexpected, workflow.on_unexpected, out);
            return;
        }
        self.state.strays.entry(workflow.id).or_default().unexpected += 1;
        if let Some(key) = key {
            self.trace_stray(workflow.id, key, event, TraceWhat::Unexpected);
        }
        if workflow.on_unexpected == Handling::Drop {
            return;
        }
        let mut r = Record::new(Kind::Unexpected, event.time);
        r.step = Some(workflow.steps[step as usize].name.clone());
        r.event_id = Some(event.id.clone());
        if workflow.on_unexpected == Handling::Alert {
            r.severity = Some(workflow.alerting.severity);
        }
        match key {
            Some(key) => self.emit(workflow, key, r, out),
            None => {
                r.workflow = Some(workflow.name.clone());
                out.push(r.with_id());
            }
        }
    }

    /// Completes a record with the workflow, the key object and the
    /// maintenance flag, and appends it.
    fn emit(&self, workflow: &ir::Workflow, key: &str, mut r: Record, out: &mut Vec<Record>) {
        r.workflow = Some(workflow.name.clone());
        r.key = Some(key_object(workflow, key));
        r.suppressed = self.in_maintenance(workflow, r.at);
        out.push(r.with_id());
    }

    fn in_maintenance(&self, workflow: &ir::Workflow, at: i64) -> bool {
        self.program
            .maintenance
            .iter()
            .filter(|m| m.workflows.is_empty() || m.workflows.contains(&workflow.id))
            .any(|m| t::in_maintenance(&m.window, at))
    }

    fn counters(&mut self, workflow: u32, stage: u32, group: &[String]) -> &mut Counters {
        self.state.counters.entry((workflow, stage, group.to_vec())).or_default()
    }

    // ------------------------------------------------------------ traces

    fn trace(&mut self, workflow: u32, key: &str, at: i64, what: TraceWhat, event: Option<&Event>) {
        if !self.state.traced_keys.contains(key) {
            return;
        }
        let entry = TraceEntry { at, what, event_id: event.map(|e| e.id.clone()) };
        if let Some(instance) = self.state.instances[workflow as usize].get_mut(key) {
            instance.trace.push(entry);
        } else {
            self.state.stray_trace.push((workflow, key.to_string(), entry));
        }
    }

    fn trace_stray(&mut self, workflow: u32, key: &str, event: &Event, what: TraceWhat) {
        if self.state.traced_keys.contains(key) {
            let entry = TraceEntry { at: event.time, what, event_id: Some(event.id.clone()) };
            match self.state.instances[workflow as usize].get_mut(key) {
                Some(instance) => instance.trace.push(entry),
                None => self.state.stray_trace.push((workflow, key.to_string(), entry)),
            }
        }
    }

    /// The key string `process` uses for key values (joined by U+001F).
    pub fn key_string(values: &[&str]) -> String {
        values.join("\u{1f}")
    }

    pub fn functions(&self) -> &'p dyn Functions {
        self.functions
    }

    pub fn severity_of(&self, workflow: u32) -> Severity {
        self.program.workflows[workflow as usize].alerting.severity
    }
}

/// JSON maps need string keys; the counters' keys are tuples, so they are
/// saved as a list of pairs.
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(map: &BTreeMap<K, V>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

/// The deadline of `step` for an instance of date `date` that entered the
/// step's source stage at `entered`: the earlier of `within` and `by`.
pub fn deadline(workflow: &ir::Workflow, step: &ir::Step, date: i32, entered: i64) -> Option<i64> {
    let _ = workflow;
    let within = step.timing.within_ms.map(|ms| entered + ms as i64);
    let by = step.timing.by.as_ref().and_then(|b| t::clock_deadline(date, b));
    match (within, by) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn not_before(step: &ir::Step, date: i32, entered: i64) -> Option<i64> {
    match &step.timing.not_before {
        Some(ir::NotBefore::After(ms)) => Some(entered + *ms as i64),
        Some(ir::NotBefore::At(at)) => t::clock_deadline(date, at),
        None => None,
    }
}

/// The stages skipped by jumping from `current` to `target`: the shortest
/// path from `current` to one of `target`'s sources, without `current`.
/// `None` if `target` cannot be reached later, or could be taken now.
fn skipped_path(workflow: &ir::Workflow, current: u32, target: u32) -> Option<Vec<u32>> {
    let sources = &workflow.steps[target as usize].sources;
    if sources.contains(&current) {
        return None;
    }
    let mut previous: HashMap<u32, u32> = HashMap::new();
    let mut queue = VecDeque::from([current]);
    while let Some(stage) = queue.pop_front() {
        for &next in &workflow.stages[stage as usize].outgoing {
            if next == current || previous.contains_key(&next) {
                continue;
            }
            previous.insert(next, stage);
            if sources.contains(&next) {
                let mut path = vec![next];
                let mut at = next;
                while let Some(&p) = previous.get(&at) {
                    if p == current {
                        break;
                    }
                    path.push(p);
                    at = p;
                }
                path.reverse();
                return Some(path);
            }
            queue.push_back(next);
        }
    }
    None
}

/// For an occurrence whose start has not happened: the start step and the
/// stages after it that an event for `target` jumps past.
fn skipped_from_start(workflow: &ir::Workflow, target: u32) -> Option<Vec<u32>> {
    if workflow.steps[target as usize].sources.is_empty() {
        return None;
    }
    workflow.steps.iter().filter(|s| s.sources.is_empty()).find_map(|start| {
        if workflow.steps[target as usize].sources.contains(&start.id) {
            return Some(vec![start.id]);
        }
        let mut path = skipped_path(workflow, start.id, target)?;
        path.insert(0, start.id);
        Some(path)
    })
}

/// A value as it appears in keys, groups and records.
pub fn display(value: &Value, ty: &ir::FieldType) -> String {
    match (value, ty) {
        (Value::String(s), _) => s.clone(),
        (Value::Int(i), _) => i.to_string(),
        (Value::Float(f), _) => f.to_string(),
        (Value::Bool(b), _) => b.to_string(),
        (Value::Date(d), _) => t::format_date(*d),
        (Value::Timestamp(ms), _) => t::format_rfc3339(*ms),
        (Value::Duration(ms), _) => format!("{ms}ms"),
        (Value::TimeOfDay(s), _) => format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60),
        (Value::Enum(i), ir::FieldType::Enum(variants)) => variants.get(*i as usize).cloned().unwrap_or_default(),
        (Value::Enum(i), _) => i.to_string(),
        (Value::Null, _) => String::new(),
    }
}

/// The record's `key` object: key field names to values; `date` for a
/// scheduled workflow.
pub fn key_object(workflow: &ir::Workflow, key: &str) -> BTreeMap<String, String> {
    if workflow.schedule.is_some() {
        return BTreeMap::from([("date".to_string(), key.to_string())]);
    }
    workflow.key.iter().map(|k| k.name.clone()).zip(key.split('\u{1f}').map(str::to_string)).collect()
}
