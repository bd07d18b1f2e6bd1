//! An event's way through the engine.
//!
//! The routes of its type name the workflows and steps it can move; the
//! event-only part of each step's `where` decides whether it is relevant;
//! its key names the instance; and it is classified against the instance's
//! stage: a step to take, a skipped step to fill in, or (recorded by
//! `records`) a duplicate, an out-of-order jump or an unexpected event.
//! Taking a step moves the instance, checks `late` and `early`, counts, and
//! closes the instance on an outcome. With many routes on one event type,
//! the filter index (`filter`) picks the few an event can be relevant to.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

use mon_compiler::ir::{self, Handling, Outcome, Program, Value};
use mon_stdlib::time as t;

use super::conditions::Which;
use super::records::Irregular;
use super::timers::{clock_only_deadline, not_before};
use super::{after, bit, deadline, display, key_of, ClearCause, Clearance, Engine, Instance, TraceWhat};
use crate::eval::Env;
use crate::event::Event;
use crate::record::{Kind, Record};

/// The (workflow, steps) an event type can move, grouped by workflow.
pub(super) type Routes = Vec<Vec<(u32, Vec<u32>)>>;

pub(super) const STAY_SAMPLE: usize = 1024;

/// Routes of one event type beyond which [`Engine::prefetch`] does nothing.
const PREFETCH_ROUTES: usize = 4;

/// How many events ahead of the one processed [`Engine::prefetch_ahead`]
/// fetches index entries. A memory access takes about 100 ns and an event
/// several hundred, so a few events ahead is enough, and near enough that
/// the line is still in cache when it is used.
pub const PREFETCH_AHEAD: usize = 6;

impl<'p> Engine<'p> {
    /// Processes one event at its own time. Call [`advance`](Self::advance)
    /// first so that timers due before it have fired.
    pub fn process(&mut self, event: &Event, out: &mut Vec<Record>) {
        self.state.clock = self.state.clock.max(event.time);
        if self.state.clock >= after(self.state.seen_since, self.seen_window) {
            self.state.seen_before = std::mem::take(&mut self.state.seen);
            self.state.seen_since = self.state.clock;
        }
        self.current_id = id_hash(&event.id);
        self.foreign = matches!((self.state.share, self.origin), (Some(share), Some(from)) if from != share.partition);
        if self.routes.get(event.event_type as usize).is_none() {
            return;
        }
        let routes = std::mem::take(&mut self.routes);
        let type_routes = &routes[event.event_type as usize];
        let mut relevant = std::mem::take(&mut self.scratch);
        // Why only without traces: a route left out by the filter index is
        // one the event is irrelevant to, which only a trace would show.
        if self.use_filter && self.state.traced_keys.is_empty() && self.filter.indexes(event.event_type) {
            let mut candidates = std::mem::take(&mut self.scratch_routes);
            self.filter.candidates(event.event_type, &event.fields, &mut candidates);
            for &r in &candidates {
                let (workflow_id, steps) = &type_routes[r as usize];
                self.visit(*workflow_id, steps, event, &mut relevant, out);
            }
            self.scratch_routes = candidates;
        } else {
            for (workflow_id, steps) in type_routes {
                self.visit(*workflow_id, steps, event, &mut relevant, out);
            }
        }
        self.scratch = relevant;
        self.routes = routes;
    }

    /// Readies the cache for processing `event` a little later: asks the
    /// CPU for its key's index entry, so that the memory latencies of
    /// several events overlap instead of adding up. With a million items
    /// in flight, arriving in no particular order, the entry is a cache
    /// miss per event (issue 13). Changes nothing the engine does.
    ///
    /// Only the index entry. Fetching the instance it names as well (a
    /// second stage, once the entry has arrived) was tried: on the peer
    /// stream, whose live items are few and already in cache, it made the
    /// prefetch 6.5 % of a profile and showed no gain in timings.
    pub fn prefetch(&self, event: &Event) {
        if !self.use_prefetch {
            return;
        }
        // A hint must not panic: an event decoded for another program (a
        // caller's line from before an activation) is left alone.
        let declared = self.program.events.get(event.event_type as usize);
        if declared.is_none_or(|declared| declared.fields.len() != event.fields.len()) {
            return;
        }
        let Some(type_routes) = self.routes.get(event.event_type as usize) else { return };
        // Many rules on one type go through the filter index, and the
        // event touches few of them: a key per route would cost more than
        // the prefetch saves.
        if type_routes.len() > PREFETCH_ROUTES {
            return;
        }
        for (workflow_id, _) in type_routes {
            let workflow = &self.program.workflows[*workflow_id as usize];
            if workflow.schedule.is_some() {
                continue; // one occurrence a day: always in cache
            }
            let Some(key) = key_of(self.program, workflow, event) else { continue };
            let instances = &self.state.workflows[*workflow_id as usize];
            instances.prefetch(instances.hash(&key));
        }
    }

    /// [`prefetch`](Self::prefetch) for a driver holding a batch: call it
    /// before processing each event, with the events after it.
    pub fn prefetch_ahead<T>(&self, upcoming: &[T], event_of: impl Fn(&T) -> Option<&Event>) {
        if let Some(event) = upcoming.get(PREFETCH_AHEAD - 1).and_then(event_of) {
            self.prefetch(event);
        }
    }

    /// One route of the event: the workflow's relevant steps, its key, and
    /// the instance the event moves (or the stray it is).
    fn visit(
        &mut self,
        workflow_id: u32,
        steps: &[u32],
        event: &Event,
        relevant: &mut Vec<u32>,
        out: &mut Vec<Record>,
    ) {
        if self.disabled[workflow_id as usize] {
            return; // switched off: it takes no events (see `activate`)
        }
        let program = self.program;
        let workflow = &program.workflows[workflow_id as usize];
        // Another partition's engine runs it, or (from another partition)
        // this one holds none of its items (see `share`).
        if self.elsewhere[workflow_id as usize] || (self.foreign && workflow.schedule.is_none()) {
            return;
        }
        relevant.clear();
        for &s in steps {
            let holds = match &workflow.steps[s as usize].relevance {
                Some(condition) => self.conditions.holds(
                    workflow_id,
                    s,
                    Which::Relevance,
                    condition,
                    &Env { fields: &event.fields, kept: &[], functions: self.functions },
                ),
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
            return;
        };
        if self.redelivered_stray(workflow.id, &key) {
            // Redelivery of an event that moved nothing the first time.
            self.trace_stray(workflow.id, &key, event, TraceWhat::Redelivery);
            return;
        }
        if relevant.is_empty() {
            self.trace_stray(workflow.id, &key, event, TraceWhat::Irrelevant);
            return;
        }
        self.route(workflow, &key, event, relevant, out);
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
                    let mut instance = Instance::new(key, date, event.time, group, workflow.steps.len());
                    instance.partition = self.origin.unwrap_or(super::NO_PARTITION);
                    let slot = self.state.workflows[w].insert(instance);
                    self.live += 1;
                    self.take(workflow, slot, step, event, None, out);
                }
                _ => self.stray(workflow, Some(key), event, relevant[0], out),
            }
            return;
        };
        let Some(instance) = self.state.workflows[w].get(slot) else { return };
        if let Some(origin) = self.origin {
            if instance.partition != origin && instance.partition != super::NO_PARTITION {
                let owner = instance.partition;
                self.split_key(workflow.id, key, owner, origin, event.time);
            }
        }
        let Some(instance) = self.state.workflows[w].get(slot) else { return };
        let fingerprint = fingerprint(self.current_id);
        if relevant.iter().any(|&s| instance.id(s) == Some(fingerprint) && instance.time(s).is_some()) {
            // Redelivery of the event that took this step: nothing happened.
            self.trace(workflow.id, slot, event.time, TraceWhat::Redelivery, Some(event));
            return;
        }
        let stage = instance.stage;
        let closed = !instance.is_open();
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
            instance.take(step, event.time, fingerprint);
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

    fn split_key(&mut self, workflow: u32, key: &str, owner: u16, seen_on: u16, at: i64) {
        self.split.note(|| super::SplitKey { workflow, key: key.to_string(), owner, seen_on, at });
    }

    fn guard_holds(&self, workflow: &ir::Workflow, step: u32, event: &Event, kept: &[(u32, u32, Value)]) -> bool {
        match &workflow.steps[step as usize].guard {
            Some(guard) => self.conditions.holds(
                workflow.id,
                step,
                Which::Guard,
                guard,
                &Env { fields: &event.fields, kept, functions: self.functions },
            ),
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
        instance.take(step_id, event.time, fingerprint(self.current_id));
        // The alternatives of the stage it leaves stop being expected.
        let leaving: u32 = match from_stage {
            Some(from) => workflow.stages[from as usize].outgoing.iter().fold(0u32, |m, &s| m | bit(s)),
            // The other start steps were alternatives: no longer expected.
            None => workflow.steps.iter().filter(|s| s.sources.is_empty()).fold(0, |m, s| m | bit(s.id)),
        } | skipped.unwrap_or(&[]).iter().fold(0u32, |m, &s| m | bit(s));
        let cleared = (instance.missing | instance.at_risk) & leaving;
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
            instance.close(outcome, event.time);
        }
        // Alerts about this item end: a step it had an alert about was
        // taken, or the item closed after one (a late step included).
        let closed_after_alert = closes.is_some() && (instance.missing | instance.at_risk | instance.late) != 0;
        if cleared != 0 || closed_after_alert {
            let cause = if closes.is_some() { ClearCause::Closed } else { ClearCause::Taken(step_id) };
            let clearance = Clearance {
                workflow: workflow.id,
                key: instance.key.to_string(),
                at: event.time,
                steps: cleared,
                cause,
            };
            self.clearances.push(clearance);
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
        c.recent.add(event.time);
        let was_late = records.iter().any(|(r, _)| r.kind == Kind::Late);
        if was_late {
            c.late += 1;
        }
        match closes {
            Some(Outcome::Success) => c.completed += 1,
            Some(Outcome::Failure) => c.failed += 1,
            // Only an activation supersedes (engine/activate.rs), never a step.
            Some(Outcome::Superseded) | None => {}
        }
        if let Some(tally) = &mut self.tally {
            let m = tally.entry((crate::aggregates::minute_of(event.time), workflow.id, step_id, group)).or_default();
            m.entered += 1;
            m.late += u64::from(was_late);
            m.completed += u64::from(closes == Some(Outcome::Success));
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
    pub(super) fn upstream_cause(&self, workflow: &ir::Workflow, key: &str) -> Option<String> {
        workflow.depends_on.iter().find_map(|&up| {
            let instances = &self.state.workflows[up as usize];
            let instance = instances.get(instances.find(key)?)?;
            (instance.has_missing() && instance.is_open()).then(|| self.program.workflows[up as usize].name.clone())
        })
    }
}

/// Each workflow's queue order: its depth in the `depends on` graph above
/// its id (a cycle is cut after as many rounds as there are workflows).
pub(super) fn orders(program: &Program) -> Vec<u32> {
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
pub(super) fn routes(program: &Program) -> Routes {
    program.candidates.iter().map(|candidates| type_routes(candidates)).collect()
}

/// The routes of one event type: its candidate steps grouped by workflow.
fn type_routes(candidates: &[ir::Candidate]) -> Vec<(u32, Vec<u32>)> {
    let mut grouped: Vec<(u32, Vec<u32>)> = Vec::new();
    for c in candidates {
        match grouped.last_mut() {
            Some((w, steps)) if *w == c.workflow => steps.push(c.step),
            _ => grouped.push((c.workflow, vec![c.step])),
        }
    }
    grouped
}

/// The items an event names: for each workflow its type can move, the
/// (workflow, key) the engine files it under. Made from the same routes
/// and the same [`key_of`] as [`Engine::process`], so an index built from
/// it (the service's event store) cannot disagree with the engine. The
/// event's relevance is not asked: an event a step's `where` turns away
/// still shows in that key's trace (as irrelevant).
pub fn item_keys(program: &Program, event: &Event) -> Vec<(u32, String)> {
    let Some(candidates) = program.candidates.get(event.event_type as usize) else { return Vec::new() };
    type_routes(candidates)
        .into_iter()
        .filter_map(|(workflow, _)| {
            let key = key_of(program, program.workflows.get(workflow as usize)?, event)?;
            Some((workflow, key.into_owned()))
        })
        .collect()
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
