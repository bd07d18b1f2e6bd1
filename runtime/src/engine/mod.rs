//! The engine: a pure, deterministic function of (program, state, input,
//! clock) — DESIGN.md §1 rule 1.
//!
//! [`Engine::process`] takes one decoded event; [`Engine::advance`] moves
//! the clock and fires the timers that came due. Both append [`Record`]s to
//! the caller's buffer and do nothing else: no I/O, no wall clock. The same
//! engine serves `mon test`, `mon simulate` and (later) the service.
//!
//! Per event: look up the (workflow, steps) routes of its type, keep the
//! workflows for which the event is relevant (the event-only part of a
//! step's `where` holds), find the instance by key, and classify the event
//! against the instance's current stage: a step it may take, a skipped step
//! to fill in, a duplicate, an out-of-order jump, or unexpected.
//!
//! Timers are not stored as such. An instance's pending deadlines follow
//! from its stage, the time it entered it and its flags, so the queue holds
//! only "look at instance S of workflow W at time T, generation G". Moving
//! an instance bumps its generation, which turns its queued entry stale:
//! cancelling is free, and stale entries are swept when they outnumber the
//! live ones.

mod state;

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;

use mon_compiler::ir::{self, Handling, Outcome, Program, Value};
use mon_compiler::Functions;
use mon_stdlib::time as t;
use serde::{Deserialize, Serialize};

pub use state::{bit, Extra, Instance, TraceEntry, TraceWhat, NOT_TAKEN};

use crate::eval::{holds, Env};
use crate::event::Event;
use crate::record::{Kind, Record};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// A queue entry: at `due`, look at slot `slot` of a workflow if it still
/// has generation `generation`. The workflow is named by its `order` (see
/// [`Engine::order`]) so that, at the same instant, upstream workflows fire
/// before the ones that `depends on` them and `caused_by` can be known.
type Entry = Reverse<(i64, u32, u32, u32)>;

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

    fn get_mut(&mut self, slot: u32) -> Option<&mut Instance> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    fn insert(&mut self, mut instance: Instance) -> u32 {
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

    fn remove(&mut self, slot: u32) {
        let Some(instance) = self.slots.get_mut(slot as usize).and_then(Option::take) else { return };
        let hash = self.hash(&instance.key);
        if let Ok(entry) = self.index.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
        self.free.push((slot, instance.generation.wrapping_add(1)));
    }

    /// Rebuilds the key index after a restore.
    fn reindex(&mut self) {
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

/// Everything the engine knows; serialisable so that a run can stop and
/// resume (the split-and-resume property test relies on it).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub workflows: Vec<Instances>,
    queue: BinaryHeap<Entry>,
    /// Per scheduled workflow: the next occurrence to open, (instant, date).
    /// Kept apart from the timers because an occurrence opening at `t`
    /// must exist for an event at `t`, while timers at `t` fire after it.
    opens: BTreeMap<u32, (i64, i32)>,
    /// Redelivery is recognized per item (LANGUAGE.md changelog v1.3): an
    /// event that took a step is remembered by its instance
    /// (`Instance::ids`); one that moved nothing (a stray, a duplicate, a
    /// dropped event) by a hash of its id and item here, since `seen_since`
    /// and in the window before, so memory stays bounded and the common
    /// case costs no lookup in a set of every id ever seen.
    #[serde(with = "sorted_set")]
    seen: FastSet<u128>,
    #[serde(with = "sorted_set")]
    seen_before: FastSet<u128>,
    seen_since: i64,
    /// When monitoring started: no occurrence before it is expected.
    pub start: i64,
    /// The latest instant the engine has seen.
    pub clock: i64,
    /// The latest event time fed to the engine (timers may have moved the
    /// clock further); a replay resumed from this state ends where it would have.
    pub last_event_time: Option<i64>,
    /// Interned group-by value lists.
    groups: Vec<Vec<String>>,
    #[serde(skip)]
    group_ids: FastMap<Vec<String>, u32>,
    /// Per workflow × stage × group counters.
    #[serde(with = "pairs")]
    pub counters: FastMap<(u32, u32, u32), Counters>,
    /// Per workflow: unexpected events that have no instance.
    pub strays: BTreeMap<u32, Counters>,
    /// Keys whose lifecycle is traced, and the trace lines of events that
    /// moved no instance.
    pub traced_keys: BTreeSet<String>,
    pub stray_trace: Vec<(u32, String, TraceEntry)>,
}

impl State {
    /// The group-by values of an interned group id.
    pub fn group(&self, id: u32) -> &[String] {
        self.groups.get(id as usize).map_or(&[], Vec::as_slice)
    }

    pub fn group_id(&self, values: &[String]) -> Option<u32> {
        self.group_ids.get(values).copied()
    }

    fn intern(&mut self, values: Vec<String>) -> u32 {
        if let Some(&id) = self.group_ids.get(&values) {
            return id;
        }
        let id = self.groups.len() as u32;
        self.groups.push(values.clone());
        self.group_ids.insert(values, id);
        id
    }
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

/// The (workflow, steps) an event type can move, grouped by workflow.
type Routes = Vec<Vec<(u32, Vec<u32>)>>;

pub struct Engine<'p> {
    program: &'p Program,
    functions: &'p dyn Functions,
    routes: Routes,
    /// Per workflow: its depth in the `depends on` graph (upstream first)
    /// in the high 16 bits, its id in the low 16.
    orders: Vec<u32>,
    /// How long the ids of strays are remembered (see `State::seen`).
    seen_window: u64,
    pub state: State,
    /// Reused per event, so routing allocates nothing.
    scratch: Vec<u32>,
    /// The id hash of the event being processed.
    current_id: u128,
}

impl<'p> Engine<'p> {
    /// An engine that starts monitoring at `start` (ms since the epoch).
    pub fn new(program: &'p Program, functions: &'p dyn Functions, start: i64) -> Self {
        let mut state = State { start, clock: start, ..State::default() };
        state.workflows = vec![Instances::default(); program.workflows.len()];
        state.intern(Vec::new());
        let mut engine = Engine::with_state(program, functions, state);
        for workflow in &program.workflows {
            if let Some(first) = engine.first_occurrence_date(workflow) {
                engine.queue_open(workflow, first);
            }
        }
        engine
    }

    /// Resumes from a saved state.
    pub fn restore(program: &'p Program, functions: &'p dyn Functions, mut state: State) -> Self {
        for instances in &mut state.workflows {
            instances.reindex();
        }
        state.group_ids = state.groups.iter().enumerate().map(|(i, g)| (g.clone(), i as u32)).collect();
        Engine::with_state(program, functions, state)
    }

    fn with_state(program: &'p Program, functions: &'p dyn Functions, state: State) -> Self {
        // Redelivery memory for strays lasts one to two of the longest
        // retention windows (at least a day).
        let seen_window = program.workflows.iter().map(|w| w.retain_ms).max().unwrap_or(0).max(86_400_000);
        Engine {
            program,
            functions,
            routes: routes(program),
            orders: orders(program),
            seen_window,
            state,
            scratch: Vec::new(),
            current_id: 0,
        }
    }

    pub fn program(&self) -> &'p Program {
        self.program
    }

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

    /// Traces the lifecycle of items with this key (as `key_of` builds it:
    /// compound keys joined by U+001F, scheduled ones as the date).
    pub fn trace_key(&mut self, key: &str) {
        self.state.traced_keys.insert(key.to_string());
    }

    // ------------------------------------------------------------ time

    /// The earliest instant at which [`advance`](Self::advance) may have
    /// something to do (a queued timer, possibly cancelled since, or an
    /// occurrence to open), so a live clock need not tick when nothing is due.
    pub fn next_due(&self) -> Option<i64> {
        let timer = self.state.queue.peek().map(|Reverse(e)| e.0);
        let open = self.state.opens.values().map(|(at, _)| *at).min();
        timer.into_iter().chain(open).min()
    }

    /// Timer entries queued (including cancelled ones not yet swept).
    pub fn timers_queued(&self) -> usize {
        self.state.queue.len()
    }

    /// Fires every timer due before `now` (or at `now` when `inclusive`).
    pub fn advance(&mut self, now: i64, inclusive: bool, out: &mut Vec<Record>) {
        loop {
            let timer = self.state.queue.peek().map(|Reverse(e)| *e).filter(|e| e.0 < now || (e.0 == now && inclusive));
            let open = self.state.opens.iter().map(|(w, (at, date))| (*at, *w, *date)).filter(|o| o.0 <= now).min();
            match (timer, open) {
                (_, Some((at, workflow, date))) if timer.is_none_or(|t| at <= t.0) => {
                    self.state.clock = self.state.clock.max(at);
                    let workflow = &self.program.workflows[workflow as usize];
                    self.open_occurrence(workflow, date, at);
                }
                (Some((due, order, slot, generation)), _) => {
                    self.state.queue.pop();
                    self.state.clock = self.state.clock.max(due);
                    let workflow = &self.program.workflows[(order & 0xffff) as usize];
                    self.fire(workflow, slot, generation, due, out);
                }
                _ => break,
            }
        }
        self.state.clock = self.state.clock.max(now);
    }

    /// Fires what is due at `due` for one instance, if the entry is current.
    fn fire(&mut self, workflow: &ir::Workflow, slot: u32, generation: u32, due: i64, out: &mut Vec<Record>) {
        let w = workflow.id as usize;
        let Some(instance) = self.state.workflows[w].get(slot) else { return };
        if instance.generation != generation {
            return; // the instance moved on: this entry was cancelled
        }
        if let Some((_, closed_at)) = instance.closed {
            if due >= after(closed_at, workflow.retain_ms) {
                self.state.workflows[w].remove(slot);
            }
            return;
        }
        // An open item with nothing left to wait for (its last deadline was
        // reported, or its stage has none) is forgotten `retain` after it
        // last moved, so stuck items cannot accumulate forever.
        if pending(workflow, instance).next().is_none() {
            if due >= after(instance.entered_at, workflow.retain_ms) {
                self.state.workflows[w].remove(slot);
            }
            return;
        }
        let fired: smallvec::SmallVec<[(bool, u32, i64); 2]> = pending(workflow, instance)
            .filter(|(at, ..)| *at == due)
            .map(|(_, step, deadline, missing)| (missing, step, deadline))
            .collect();
        if fired.is_empty() {
            self.schedule(workflow, slot);
            return;
        }
        let key = instance.key.to_string();
        for (missing, step, deadline) in fired {
            let Some(instance) = self.state.workflows[w].get_mut(slot) else { return };
            let (kind, what) = if missing {
                instance.missing |= bit(step);
                instance.at_risk &= !bit(step);
                (Kind::Missing, TraceWhat::Missing { step, deadline })
            } else {
                instance.at_risk |= bit(step);
                (Kind::AtRisk, TraceWhat::AtRisk { step, deadline })
            };
            let step_ir = &workflow.steps[step as usize];
            let mut r = Record::new(kind, due);
            r.step = Some(step_ir.name.clone());
            r.deadline = Some(deadline);
            r.severity = Some(step_ir.alerting.severity);
            r.caused_by = self.upstream_cause(workflow, &key);
            self.trace(workflow.id, slot, due, what, None);
            self.emit(workflow, &key, r, out);
        }
        self.schedule(workflow, slot);
    }

    /// Queues the instance's next pending instant, if any.
    fn schedule(&mut self, workflow: &ir::Workflow, slot: u32) {
        let Some(instance) = self.state.workflows[workflow.id as usize].get(slot) else { return };
        let next = match instance.closed {
            Some((_, closed_at)) => Some(after(closed_at, workflow.retain_ms)),
            None => pending(workflow, instance)
                .map(|(at, ..)| at)
                .min()
                .or_else(|| Some(after(instance.entered_at, workflow.retain_ms))),
        };
        if let Some(due) = next {
            let entry = Reverse((due, self.orders[workflow.id as usize], slot, instance.generation));
            self.state.queue.push(entry);
            self.sweep_if_needed();
        }
    }

    /// Drops stale queue entries once they outnumber the live instances.
    fn sweep_if_needed(&mut self) {
        let live: usize = self.state.workflows.iter().map(Instances::len).sum();
        if self.state.queue.len() <= 2 * live + 1024 {
            return;
        }
        let workflows = &self.state.workflows;
        let entries = std::mem::take(&mut self.state.queue).into_vec();
        self.state.queue = entries
            .into_iter()
            .filter(|Reverse((_, order, slot, generation))| {
                workflows[(order & 0xffff) as usize].get(*slot).is_some_and(|i| i.generation == *generation)
            })
            .collect();
    }

    // ------------------------------------------------------------ events

    /// Processes one event at its own time. Call [`advance`](Self::advance)
    /// first so that timers due before it have fired.
    pub fn process(&mut self, event: &Event, out: &mut Vec<Record>) {
        self.state.clock = self.state.clock.max(event.time);
        if self.state.clock >= after(self.state.seen_since, self.seen_window) {
            self.state.seen_before = std::mem::take(&mut self.state.seen);
            self.state.seen_since = self.state.clock;
        }
        self.current_id = id_hash(&event.id);
        let program = self.program;
        if self.routes.get(event.event_type as usize).is_none() {
            return;
        }
        let routes = std::mem::take(&mut self.routes);
        let mut relevant = std::mem::take(&mut self.scratch);
        for (workflow_id, steps) in &routes[event.event_type as usize] {
            let workflow = &program.workflows[*workflow_id as usize];
            relevant.clear();
            for &s in steps {
                let holds = match &workflow.steps[s as usize].relevance {
                    Some(condition) => {
                        holds(condition, &Env { fields: &event.fields, kept: &[], functions: self.functions })
                    }
                    None => true,
                };
                if holds {
                    relevant.push(s);
                }
            }
            let Some(key) = key_of(program, workflow, event) else {
                if !relevant.is_empty() && !self.redelivered_stray(workflow.id, "") {
                    self.stray(workflow, None, event, relevant[0], out);
                }
                continue;
            };
            if self.redelivered_stray(workflow.id, &key) {
                // Redelivery of an event that moved nothing the first time.
                self.trace_stray(workflow.id, &key, event, TraceWhat::Redelivery);
                continue;
            }
            if relevant.is_empty() {
                self.trace_stray(workflow.id, &key, event, TraceWhat::Irrelevant);
                continue;
            }
            self.route(workflow, &key, event, &relevant, out);
        }
        self.scratch = relevant;
        self.routes = routes;
    }

    fn route(&mut self, workflow: &ir::Workflow, key: &str, event: &Event, relevant: &[u32], out: &mut Vec<Record>) {
        let w = workflow.id as usize;
        let is_start = |s: u32| workflow.steps[s as usize].sources.is_empty();
        let Some(slot) = self.state.workflows[w].find(key) else {
            // No instance: a start step opens one (keyed workflows only;
            // an occurrence exists only by its schedule).
            let start = relevant.iter().copied().find(|&s| is_start(s) && self.guard_holds(workflow, s, event, &[]));
            match (start, &workflow.schedule) {
                (Some(step), None) => {
                    let date = t::local_date(event.time, &workflow.timezone).unwrap_or_default();
                    let group = self.group_of(workflow, event);
                    let instance = Instance::new(key, date, event.time, group, workflow.steps.len());
                    let slot = self.state.workflows[w].insert(instance);
                    self.take(workflow, slot, step, event, None, out);
                }
                _ => self.stray(workflow, Some(key), event, relevant[0], out),
            }
            return;
        };
        let Some(instance) = self.state.workflows[w].get(slot) else { return };
        let fingerprint = fingerprint(self.current_id);
        if relevant.iter().any(|&s| instance.ids.get(s as usize) == Some(&fingerprint) && instance.time(s).is_some()) {
            // Redelivery of the event that took this step: nothing happened.
            self.trace(workflow.id, slot, event.time, TraceWhat::Redelivery, Some(event));
            return;
        }
        let stage = instance.stage;
        let closed = instance.closed.is_some();
        // 1. A step the instance may take from where it is.
        if !closed {
            let kept = instance.kept_fields();
            let next = relevant.iter().copied().find(|&s| {
                let step = &workflow.steps[s as usize];
                let allowed = match stage {
                    Some(current) => step.sources.contains(&current),
                    None => step.sources.is_empty(),
                };
                allowed && self.guard_holds(workflow, s, event, kept)
            });
            if let Some(step) = next {
                if stage.is_none() && !workflow.group_by.is_empty() {
                    let group = self.group_of(workflow, event);
                    if let Some(i) = self.state.workflows[w].get_mut(slot) {
                        i.group = group;
                    }
                }
                self.take(workflow, slot, step, event, None, out);
                return;
            }
        }
        // 2. A skipped step's event fills it in, silently; so does an
        // optional step after the flow ended at the stage it leaves.
        let fills = |s: u32| {
            let optional_after_end = closed
                && workflow.steps[s as usize].optional
                && stage.is_some_and(|st| workflow.steps[s as usize].sources.contains(&st));
            (instance.is_skipped(s) || optional_after_end) && instance.time(s).is_none()
        };
        if let Some(step) = relevant.iter().copied().find(|&s| fills(s)) {
            let Some(instance) = self.state.workflows[w].get_mut(slot) else { return };
            instance.times[step as usize] = event.time;
            instance.ids[step as usize] = fingerprint;
            instance.skipped &= !bit(step);
            self.trace(workflow.id, slot, event.time, TraceWhat::FilledIn { step }, Some(event));
            return;
        }
        // 3. A step already taken, or a start while the instance exists.
        if let Some(step) =
            relevant.iter().copied().find(|&s| instance.was_taken(s) || (is_start(s) && stage.is_some()))
        {
            self.classified(workflow, slot, event, step, Irregular::Duplicate, out);
            return;
        }
        // 4. A step reachable later: out of order.
        if !closed {
            let kept = instance.kept_fields();
            let later = relevant.iter().copied().find_map(|s| {
                let path = match stage {
                    Some(current) => skipped_path(workflow, current, s)?,
                    None => skipped_from_start(workflow, s)?,
                };
                self.guard_holds(workflow, s, event, kept).then_some((s, path))
            });
            if let Some((step, path)) = later {
                if workflow.on_out_of_order != Handling::Drop {
                    self.take(workflow, slot, step, event, Some(&path), out);
                }
                self.classified(workflow, slot, event, step, Irregular::OutOfOrder, out);
                return;
            }
        }
        // 5. Anything else the workflow uses is a stray.
        self.classified(workflow, slot, event, relevant[0], Irregular::Unexpected, out);
    }

    fn guard_holds(&self, workflow: &ir::Workflow, step: u32, event: &Event, kept: &[(u32, u32, Value)]) -> bool {
        match &workflow.steps[step as usize].guard {
            Some(guard) => holds(guard, &Env { fields: &event.fields, kept, functions: self.functions }),
            None => true,
        }
    }

    fn group_of(&mut self, workflow: &ir::Workflow, event: &Event) -> u32 {
        if workflow.group_by.is_empty() {
            return 0;
        }
        let values: Vec<String> = workflow
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
            .collect();
        self.state.intern(values)
    }

    /// Moves the instance along `step` (after skipping `skipped`, for an
    /// out-of-order event): late/early records, new stage, new timers.
    fn take(
        &mut self,
        workflow: &ir::Workflow,
        slot: u32,
        step_id: u32,
        event: &Event,
        skipped: Option<&[u32]>,
        out: &mut Vec<Record>,
    ) {
        let w = workflow.id as usize;
        let step = &workflow.steps[step_id as usize];
        // Group values come from the first event that carries each of them.
        if let Some(current) = self.state.workflows[w].get(slot).map(|i| i.group) {
            if !workflow.group_by.is_empty() && self.state.group(current).iter().any(String::is_empty) {
                let found = self.group_of(workflow, event);
                let merged: Vec<String> = self
                    .state
                    .group(current)
                    .iter()
                    .zip(self.state.group(found))
                    .map(|(old, new)| if old.is_empty() { new.clone() } else { old.clone() })
                    .collect();
                let id = self.state.intern(merged);
                if let Some(i) = self.state.workflows[w].get_mut(slot) {
                    i.group = id;
                }
            }
        }
        let Some(instance) = self.state.workflows[w].get_mut(slot) else { return };
        let from_stage = instance.stage;
        let entered = instance.entered_at;
        // A step reached by jumping over stages never had its source stage
        // entered, so only an absolute `by` deadline applies to it.
        let deadline = match skipped {
            Some(path) if !path.is_empty() => clock_only_deadline(step, instance.date),
            _ => deadline(step, instance.date, entered),
        };
        let mut records: Vec<(Record, TraceWhat)> = Vec::new();
        if let (Some(deadline), true) = (deadline, from_stage.is_some() || workflow.schedule.is_some()) {
            if event.time > deadline {
                instance.late |= bit(step_id);
                let mut r = Record::new(Kind::Late, event.time);
                r.step = Some(step.name.clone());
                r.deadline = Some(deadline);
                r.delay_ms = Some(event.time - deadline);
                r.severity = Some(step.alerting.severity);
                r.event_id = Some(event.id.to_string());
                let what = TraceWhat::Late { step: step_id, deadline, delay_ms: event.time - deadline };
                records.push((r, what));
            }
        }
        if let Some(earliest) = not_before(step, instance.date, entered) {
            let jumped = skipped.is_some_and(|p| !p.is_empty());
            // On an unstarted occurrence only a clock time (`not before 06:00`)
            // applies; the compiler refuses a duration there.
            let applies = from_stage.is_some() || matches!(step.timing.not_before, Some(ir::NotBefore::At(_)));
            if event.time < earliest && applies && !jumped {
                let mut r = Record::new(Kind::Early, event.time);
                r.step = Some(step.name.clone());
                r.event_id = Some(event.id.to_string());
                r.severity = Some(step.alerting.severity);
                records.push((r, TraceWhat::Early { step: step_id, earliest }));
            }
        }
        for &s in skipped.unwrap_or(&[]) {
            instance.skipped |= bit(s);
        }
        instance.times[step_id as usize] = event.time;
        instance.ids[step_id as usize] = fingerprint(self.current_id);
        // The alternatives of the stage it leaves stop being expected.
        let leaving: u32 = match from_stage {
            Some(from) => workflow.stages[from as usize].outgoing.iter().fold(0u32, |m, &s| m | bit(s)),
            // The other start steps were alternatives: no longer expected.
            None => workflow.steps.iter().filter(|s| s.sources.is_empty()).fold(0, |m, s| m | bit(s.id)),
        } | skipped.unwrap_or(&[]).iter().fold(0u32, |m, &s| m | bit(s));
        instance.missing &= !leaving;
        instance.at_risk &= !leaving;
        for kept in workflow.kept.iter().filter(|k| k.step == step_id) {
            let fields = &mut instance.extra.get_or_insert_with(Default::default).kept;
            fields.retain(|(s, k, _)| !(*s == kept.step && *k == kept.slot));
            fields.push((kept.step, kept.slot, event.fields[kept.slot as usize].clone()));
        }
        instance.stage = Some(step_id);
        instance.entered_at = event.time;
        instance.generation = instance.generation.wrapping_add(1);
        let group = instance.group;
        let closes = workflow.stages[step_id as usize].closes;
        if let Some(outcome) = closes {
            instance.closed = Some((outcome, event.time));
        }
        let key = if records.is_empty() { None } else { Some(instance.key.to_string()) };
        // Counters: leaving, entering, closing.
        if let Some(from) = from_stage {
            let c = self.counters(workflow.id, from, group);
            c.stay_ms.push_back(event.time - entered);
            if c.stay_ms.len() > STAY_SAMPLE {
                c.stay_ms.pop_front();
            }
        }
        let c = self.counters(workflow.id, step_id, group);
        c.entered += 1;
        c.recent_entries.push_back(event.time);
        while c.recent_entries.front().is_some_and(|&e| e <= event.time - 60_000) {
            c.recent_entries.pop_front();
        }
        if records.iter().any(|(r, _)| r.kind == Kind::Late) {
            c.late += 1;
        }
        match closes {
            Some(Outcome::Success) => c.completed += 1,
            Some(Outcome::Failure) => c.failed += 1,
            None => {}
        }
        let skipped = skipped.map(<[u32]>::to_vec);
        self.trace(workflow.id, slot, event.time, TraceWhat::Took { step: step_id, skipped, deadline }, Some(event));
        self.schedule(workflow, slot);
        if let Some(key) = key {
            for (r, what) in records {
                self.trace(workflow.id, slot, event.time, what, Some(event));
                self.emit(workflow, &key, r, out);
            }
        }
    }

    /// `Some(upstream)` when an upstream workflow has an open `missing`
    /// record for the same key: one root cause, one page.
    fn upstream_cause(&self, workflow: &ir::Workflow, key: &str) -> Option<String> {
        workflow.depends_on.iter().find_map(|&up| {
            let instances = &self.state.workflows[up as usize];
            let instance = instances.get(instances.find(key)?)?;
            (instance.has_missing() && instance.closed.is_none())
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

    fn queue_open(&mut self, workflow: &ir::Workflow, date: i32) {
        let Some(schedule) = &workflow.schedule else { return };
        let Some(open) = t::local_to_utc(date, schedule.open_seconds, &workflow.timezone) else { return };
        self.state.opens.insert(workflow.id, (open, date));
    }

    fn open_occurrence(&mut self, workflow: &ir::Workflow, date: i32, open: i64) {
        // Dropped first: past the end of the calendar there is no next one.
        self.state.opens.remove(&workflow.id);
        if let Some(next) = date.checked_add(1) {
            self.queue_open(workflow, next);
        }
        let Some(schedule) = &workflow.schedule else { return };
        if !t::is_scheduled(schedule, &self.program.calendars, date) {
            return;
        }
        let starts = workflow.steps.iter().filter(|s| s.sources.is_empty());
        let deadlines: Vec<i64> = starts.filter_map(|s| deadline(s, date, open)).collect();
        // A fresh deployment does not alert on history it never watched.
        if deadlines.iter().all(|d| *d < self.state.start) {
            return;
        }
        let key = t::format_date(date);
        let w = workflow.id as usize;
        if self.state.workflows[w].find(&key).is_some() {
            return;
        }
        let slot = self.state.workflows[w].insert(Instance::new(&key, date, open, 0, workflow.steps.len()));
        self.schedule(workflow, slot);
    }

    // ------------------------------------------------------------ records

    /// Counts, traces and (unless dropped) records an event that took no
    /// step, as the workflow's `on duplicate|out_of_order|unexpected` says.
    fn classified(
        &mut self,
        workflow: &ir::Workflow,
        slot: u32,
        event: &Event,
        step: u32,
        irregular: Irregular,
        out: &mut Vec<Record>,
    ) {
        let handling = match irregular {
            Irregular::Duplicate => workflow.on_duplicate,
            Irregular::OutOfOrder => workflow.on_out_of_order,
            Irregular::Unexpected => workflow.on_unexpected,
        };
        let Some(instance) = self.state.workflows[workflow.id as usize].get(slot) else { return };
        let (stage, group, key) = (instance.stage.unwrap_or(step), instance.group, instance.key.to_string());
        self.remember_stray(workflow.id, &key);
        let c = self.counters(workflow.id, stage, group);
        let (kind, what) = match irregular {
            Irregular::Duplicate => {
                c.duplicate += 1;
                (Kind::Duplicate, TraceWhat::Duplicate { step })
            }
            Irregular::OutOfOrder => {
                c.out_of_order += 1;
                (Kind::OutOfOrder, TraceWhat::OutOfOrder { step, dropped: handling == Handling::Drop })
            }
            Irregular::Unexpected => {
                c.unexpected += 1;
                (Kind::Unexpected, TraceWhat::Unexpected)
            }
        };
        self.trace(workflow.id, slot, event.time, what, Some(event));
        if handling == Handling::Drop {
            return;
        }
        let mut r = Record::new(kind, event.time);
        r.step = Some(workflow.steps[step as usize].name.clone());
        r.event_id = Some(event.id.to_string());
        if handling == Handling::Alert {
            r.severity = Some(workflow.alerting.severity);
        }
        self.emit(workflow, &key, r, out);
    }

    /// An event the workflow uses that has no instance and starts none.
    fn stray(&mut self, workflow: &ir::Workflow, key: Option<&str>, event: &Event, step: u32, out: &mut Vec<Record>) {
        self.remember_stray(workflow.id, key.unwrap_or(""));
        self.state.strays.entry(workflow.id).or_default().unexpected += 1;
        if let Some(key) = key {
            self.trace_stray(workflow.id, key, event, TraceWhat::Unexpected);
        }
        if workflow.on_unexpected == Handling::Drop {
            return;
        }
        let mut r = Record::new(Kind::Unexpected, event.time);
        r.step = Some(workflow.steps[step as usize].name.clone());
        r.event_id = Some(event.id.to_string());
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

    /// The id of the current event, scoped to one item: redelivery is
    /// recognized per item (see `seen`).
    fn item_scoped_id(&self, workflow: u32, key: &str) -> u128 {
        let item = foldhash::quality::FixedState::with_seed(u64::from(workflow)).hash_one(key);
        self.current_id ^ (u128::from(item) << 32)
    }

    fn redelivered_stray(&self, workflow: u32, key: &str) -> bool {
        if self.state.seen.is_empty() && self.state.seen_before.is_empty() {
            return false;
        }
        let id = self.item_scoped_id(workflow, key);
        self.state.seen.contains(&id) || self.state.seen_before.contains(&id)
    }

    fn remember_stray(&mut self, workflow: u32, key: &str) {
        let id = self.item_scoped_id(workflow, key);
        self.state.seen.insert(id);
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

    fn counters(&mut self, workflow: u32, stage: u32, group: u32) -> &mut Counters {
        self.state.counters.entry((workflow, stage, group)).or_default()
    }

    // ------------------------------------------------------------ traces

    fn trace(&mut self, workflow: u32, slot: u32, at: i64, what: TraceWhat, event: Option<&Event>) {
        if self.state.traced_keys.is_empty() {
            return;
        }
        let Some(instance) = self.state.workflows[workflow as usize].get_mut(slot) else { return };
        if !self.state.traced_keys.contains(instance.key.as_str()) {
            return;
        }
        let entry = TraceEntry {
            at,
            what,
            event_id: event.map(|e| e.id.to_string()),
            excerpt: event.map(|e| excerpt(self.program, e)),
        };
        instance.extra.get_or_insert_with(Default::default).trace.push(entry);
    }

    fn trace_stray(&mut self, workflow: u32, key: &str, event: &Event, what: TraceWhat) {
        if self.state.traced_keys.is_empty() || !self.state.traced_keys.contains(key) {
            return;
        }
        let entry = TraceEntry {
            at: event.time,
            what,
            event_id: Some(event.id.to_string()),
            excerpt: Some(excerpt(self.program, event)),
        };
        let instances = &mut self.state.workflows[workflow as usize];
        match instances.find(key).and_then(|slot| instances.get_mut(slot)) {
            Some(instance) => instance.extra.get_or_insert_with(Default::default).trace.push(entry),
            None => self.state.stray_trace.push((workflow, key.to_string(), entry)),
        }
    }
}

/// An event that took no step of the instance it belongs to: the three
/// cases a workflow's `on ...` settings handle (LANGUAGE.md §3.6).
#[derive(Clone, Copy)]
enum Irregular {
    Duplicate,
    OutOfOrder,
    Unexpected,
}

/// The event's fields as JSON for a trace, without `pii` fields.
fn excerpt(program: &Program, event: &Event) -> String {
    let Some(declared) = program.events.get(event.event_type as usize) else { return String::new() };
    let fields: serde_json::Map<String, serde_json::Value> = declared
        .fields
        .iter()
        .filter(|f| !f.pii)
        .filter_map(|f| {
            let value = event.fields.get(f.slot as usize)?;
            (*value != Value::Null).then(|| (f.name.clone(), serde_json::Value::String(display(value, &f.ty))))
        })
        .collect();
    serde_json::Value::Object(fields).to_string()
}

/// Each workflow's queue order: its depth in the `depends on` graph above
/// its id (a cycle is cut after as many rounds as there are workflows).
fn orders(program: &Program) -> Vec<u32> {
    let n = program.workflows.len();
    let mut depth = vec![0u32; n];
    for _ in 0..n {
        let mut changed = false;
        for w in &program.workflows {
            for &up in &w.depends_on {
                if depth[w.id as usize] <= depth[up as usize] {
                    depth[w.id as usize] = depth[up as usize] + 1;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    (0..n).map(|w| (depth[w].min(0xffff) << 16) | (w as u32 & 0xffff)).collect()
}

/// For each event type, the workflows and steps it can move.
fn routes(program: &Program) -> Routes {
    program
        .candidates
        .iter()
        .map(|candidates| {
            let mut grouped: Vec<(u32, Vec<u32>)> = Vec::new();
            for c in candidates {
                match grouped.last_mut() {
                    Some((w, steps)) if *w == c.workflow => steps.push(c.step),
                    _ => grouped.push((c.workflow, vec![c.step])),
                }
            }
            grouped
        })
        .collect()
}

/// The 32-bit fingerprint an instance keeps per step (never 0, which means
/// "none"). Two ids share one with odds of 1 in 4 billion, and only a
/// genuine duplicate of the same step of the same item could be mistaken
/// for a redelivery that way.
fn fingerprint(id: u128) -> u32 {
    (id as u32) | 1
}

/// 128 bits of the event id: enough that two different ids never collide
/// in practice, and far smaller than the id.
fn id_hash(id: &str) -> u128 {
    let a = foldhash::quality::FixedState::with_seed(0x6d6f6e).hash_one(id);
    let b = foldhash::quality::FixedState::with_seed(0x726564656c6976).hash_one(id);
    ((a as u128) << 64) | b as u128
}

/// The instance key of `event` in `workflow`: compound keys joined by
/// U+001F; for a scheduled workflow, the occurrence date.
pub fn key_of<'e>(program: &Program, workflow: &ir::Workflow, event: &'e Event) -> Option<Cow<'e, str>> {
    match &workflow.schedule {
        Some(schedule) => {
            let cohort = schedule.cohort.iter().find(|(e, _)| *e == event.event_type);
            let date = match cohort.map(|(_, slot)| &event.fields[*slot as usize]) {
                Some(Value::Date(d)) => *d,
                _ => t::local_date(event.time, &workflow.timezone)?,
            };
            Some(Cow::Owned(t::format_date(date)))
        }
        None => {
            let slot_of =
                |field: &ir::KeyField| field.slots.iter().find(|(e, _)| *e == event.event_type).map(|(_, s)| *s);
            if let [field] = workflow.key.as_slice() {
                if let Value::String(s) = &event.fields[slot_of(field)? as usize] {
                    return Some(Cow::Borrowed(s.as_str()));
                }
            }
            let mut key = String::new();
            for (i, field) in workflow.key.iter().enumerate() {
                let slot = slot_of(field)?;
                if i > 0 {
                    key.push('\u{1f}');
                }
                let ty = &program.events[event.event_type as usize].fields[slot as usize].ty;
                key.push_str(&display(&event.fields[slot as usize], ty));
            }
            Some(Cow::Owned(key))
        }
    }
}

/// The pending instants of an open instance: (instant, step, deadline,
/// whether it is the `missing` instant rather than the warning).
fn pending<'a>(workflow: &'a ir::Workflow, instance: &'a Instance) -> impl Iterator<Item = (i64, u32, i64, bool)> + 'a {
    let steps: &'a [u32] = match instance.stage {
        Some(stage) => &workflow.stages[stage as usize].timers,
        None => &[],
    };
    let starts =
        workflow.steps.iter().filter(move |_| instance.stage.is_none()).filter(|s| s.sources.is_empty()).map(|s| s.id);
    steps.iter().copied().chain(starts).flat_map(move |n| {
        let step = &workflow.steps[n as usize];
        let mut out: [Option<(i64, u32, i64, bool)>; 2] = [None, None];
        // An optional step is never missing or at risk; a step already
        // reported missing waits for its late event.
        if step.optional || instance.missing & bit(n) != 0 || instance.time(n).is_some() {
            return out.into_iter().flatten();
        }
        if let Some(deadline) = deadline(step, instance.date, instance.entered_at) {
            // A deadline already past when the stage was entered is reported
            // at entry, not back-dated before the event that led here.
            let missing_at = after(deadline, step.grace_ms).max(instance.entered_at);
            out[1] = Some((missing_at, n, deadline, true));
            if instance.at_risk & bit(n) == 0 && deadline > instance.entered_at {
                let warn = match &step.timing.warn {
                    Some(ir::Warn::After(ms)) => Some(after(instance.entered_at, *ms)),
                    Some(ir::Warn::At(at)) => t::clock_deadline(instance.date, at),
                    None => None,
                };
                out[0] = warn.filter(|w| *w < deadline).map(|w| (w.max(instance.entered_at), n, deadline, false));
            }
        }
        out.into_iter().flatten()
    })
}

/// A hash set saved sorted, so that equal states serialise equally.
mod sorted_set {
    use std::collections::HashSet;
    use std::hash::{BuildHasher, Hash};

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize + Ord, H, S: Serializer>(set: &HashSet<T, H>, s: S) -> Result<S::Ok, S::Error> {
        let mut items: Vec<&T> = set.iter().collect();
        items.sort();
        s.collect_seq(items)
    }

    pub fn deserialize<'de, T, H, D>(d: D) -> Result<HashSet<T, H>, D::Error>
    where
        T: Deserialize<'de> + Eq + Hash,
        H: BuildHasher + Default,
        D: Deserializer<'de>,
    {
        Ok(Vec::<T>::deserialize(d)?.into_iter().collect())
    }
}

/// JSON maps need string keys; the counters' keys are tuples, so they are
/// saved as a list of pairs.
mod pairs {
    use std::collections::HashMap;
    use std::hash::{BuildHasher, Hash};

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize + Ord, V: Serialize, H, S: Serializer>(
        map: &HashMap<K, V, H>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        // Sorted, so that equal states serialise equally.
        let mut pairs: Vec<(&K, &V)> = map.iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        s.collect_seq(pairs)
    }

    pub fn deserialize<'de, K, V, H, D>(d: D) -> Result<HashMap<K, V, H>, D::Error>
    where
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
        H: BuildHasher + Default,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

/// The deadline of `step` for an instance of date `date` that entered the
/// step's source stage at `entered`: the earlier of `within` and `by`.
pub fn deadline(step: &ir::Step, date: i32, entered: i64) -> Option<i64> {
    let within = step.timing.within_ms.map(|ms| after(entered, ms));
    let by = step.timing.by.as_ref().and_then(|b| t::clock_deadline(date, b));
    match (within, by) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `instant + ms`, saturating: a rule may say `within 999999999d`, and an
/// instant past the end of time is simply never reached.
pub fn after(instant: i64, ms: u64) -> i64 {
    instant.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX))
}

fn clock_only_deadline(step: &ir::Step, date: i32) -> Option<i64> {
    step.timing.by.as_ref().and_then(|b| t::clock_deadline(date, b))
}

fn not_before(step: &ir::Step, date: i32, entered: i64) -> Option<i64> {
    match &step.timing.not_before {
        Some(ir::NotBefore::After(ms)) => Some(after(entered, *ms)),
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
