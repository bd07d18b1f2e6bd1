//! Activating a new rules version without losing state, and switching one
//! workflow off and on.
//!
//! [`Engine::activate`] moves the engine's state to another `Program` at the
//! engine's clock. Ids mean nothing across versions, so everything is
//! matched by name:
//!
//! - **Workflows** by name; **stages and steps** by name (a stage is named
//!   after the step that leads into it).
//! - An **open instance** whose workflow and stage still exist (or an
//!   occurrence not yet started, when the workflow is still scheduled)
//!   carries over: key, date, `entered_at`, the time and event fingerprint
//!   of each step and its skipped/late/missing/at-risk flags, by step name
//!   (a step gone is dropped, a new step is not taken); kept fields where
//!   the new program still keeps a field of that name and type from that
//!   step (dropped otherwise); group-by values when the workflow groups by
//!   the same field names, in the same order, else the empty group, which
//!   the instance's next step fills in as a new instance's first step does.
//!   Its generation is bumped and its timers are derived again from the new
//!   timing rules: a `within 30m` made `within 1h` fires at `entered_at +
//!   1h`, and a deadline already past under the new rule fires at the next
//!   advance, at its own instant (as an event behind the clock does).
//! - An open instance whose **workflow or stage no longer exists**, or whose
//!   workflow is now keyed differently (other key fields, or scheduled
//!   instead of keyed), is **superseded**: a `superseded` record says so
//!   (`step` is the stage it was in, `reason` says what is gone), and a
//!   [`Clearance`] with [`ClearCause::Superseded`] resolves its alerts. When
//!   its workflow still exists with the same key it stays, closed with
//!   outcome `superseded`, until `retain` (as any closed instance does);
//!   otherwise it is dropped.
//! - **Closed instances** carry over (flags and times by name) when their
//!   workflow still exists with the same key, and are dropped otherwise.
//! - **Counters** per workflow × stage × group move by names (into the
//!   empty group when the group-by fields changed); **strays** by workflow.
//! - **Scheduled workflows**: the next occurrence to open keeps its date
//!   and takes the new schedule's opening instant. A workflow that was not
//!   scheduled before (new, or keyed before) is watched from the
//!   activation on: occurrences whose deadlines are all earlier are not
//!   expected. A new workflow starts empty.
//! - The **disabled** set keeps the names that still exist.
//! - Redelivery memory of events that moved nothing is scoped by workflow
//!   id: after an activation that renumbers workflows, such an event
//!   redelivered may be recorded again.
//!
//! Activating the very program the engine runs changes no record: every
//! instance keeps its slot and its timers come out at the same instants.
//!
//! [`Engine::set_enabled`] switches a workflow off (it takes no events,
//! fires no timers, opens no occurrences; its instances stay as they are)
//! and on again. Switching on derives the timers of its instances again,
//! as an activation does, so a deadline that passed meanwhile fires at the
//! next advance: the item did miss it, and the monitor says so late rather
//! than never. Dates whose occurrence would have opened while it was off
//! are not opened afterwards.
//!
//! Like the rest of the engine, nothing here does I/O or reads a clock.

use std::collections::BTreeSet;

use mon_compiler::ir::{self, Outcome, Program, Value};
use serde::Serialize;

use super::routing::STAY_SAMPLE;
use super::steps::Steps;
use super::wheel::Wheel;
use super::{
    bit, key_object, ClearCause, Clearance, Counters, Engine, Instance, Instances, State, TraceEntry, TraceWhat,
    NOT_TAKEN,
};
use crate::record::{Kind, Record};

/// How many items [`Migration`] lists of each kind; the counts are exact.
pub const LISTED: usize = 1000;

/// What an activation did to the items in flight, for the activation's
/// response and its audit entry. The lists stop at [`LISTED`] entries each
/// (`truncated` says when either did); the counts count them all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Migration {
    /// Open items carried over to the new rules.
    pub carried: Vec<Carried>,
    pub carried_count: usize,
    /// Open items closed as `superseded`.
    pub superseded: Vec<Superseded>,
    pub superseded_count: usize,
    pub truncated: bool,
}

/// An open item carried over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Carried {
    pub workflow: String,
    /// The key for people: the value alone for one field, `a=1, b=2` for
    /// several, the date for a scheduled workflow.
    pub key: String,
    /// The stage it is in; empty for an occurrence whose start has not
    /// happened yet.
    pub stage: String,
}

/// An open item closed because the new rules have no place for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Superseded {
    pub workflow: String,
    pub key: String,
    /// The stage it was in (`None`: an occurrence not yet started).
    pub stage: Option<String>,
    /// As in its `superseded` record: `rules version 7: stage verified no
    /// longer exists`.
    pub reason: String,
}

impl Migration {
    /// Counts an item carried over; lists it while there is room (made
    /// only then: a large state carries millions).
    fn carry(&mut self, item: impl FnOnce() -> Carried) {
        self.carried_count += 1;
        if self.carried.len() < LISTED {
            self.carried.push(item());
        } else {
            self.truncated = true;
        }
    }

    fn supersede(&mut self, item: Superseded) {
        self.superseded_count += 1;
        if self.superseded.len() < LISTED {
            self.superseded.push(item);
        } else {
            self.truncated = true;
        }
    }
}

/// How one workflow of the old program maps onto its namesake.
struct Plan<'p> {
    from: &'p ir::Workflow,
    to: &'p ir::Workflow,
    /// Old step (and stage) id → new one, by name.
    steps: Vec<Option<u32>>,
    stages: Vec<Option<u32>>,
    /// The same group-by field names, in the same order.
    same_groups: bool,
    /// Keys mean the same: both scheduled, or keyed by the same field names.
    same_key: bool,
}

impl<'p> Plan<'p> {
    fn new(from: &'p ir::Workflow, to: &'p ir::Workflow) -> Self {
        let step_of = |name: &str| to.steps.iter().find(|s| s.name == name).map(|s| s.id);
        let stage_of = |name: &str| to.stages.iter().find(|s| s.name == name).map(|s| s.id);
        let same_key = match (&from.schedule, &to.schedule) {
            (Some(_), Some(_)) => true,
            (None, None) => from.key.iter().map(|f| &f.name).eq(to.key.iter().map(|f| &f.name)),
            _ => false,
        };
        Plan {
            from,
            to,
            steps: from.steps.iter().map(|s| step_of(&s.name)).collect(),
            stages: from.stages.iter().map(|s| stage_of(&s.name)).collect(),
            same_groups: from.group_by.iter().map(|f| &f.name).eq(to.group_by.iter().map(|f| &f.name)),
            same_key,
        }
    }

    fn step(&self, old: u32) -> Option<u32> {
        self.steps.get(old as usize).copied().flatten()
    }

    fn stage(&self, old: u32) -> Option<u32> {
        self.stages.get(old as usize).copied().flatten()
    }

    /// Why an open instance has no place in the new rules, if it has none.
    fn gone(&self, instance: &Instance) -> Option<String> {
        if !self.same_key {
            return Some(format!("workflow {} is keyed differently", self.from.name));
        }
        let stage = instance.stage?;
        match self.stage(stage) {
            Some(_) => None,
            None => {
                let name = self.from.stages.get(stage as usize).map_or("?", |s| s.name.as_str());
                Some(format!("stage {name} no longer exists"))
            }
        }
    }

    /// Rewrites an instance's step-indexed parts for the new workflow.
    fn remap(&self, old: &Program, new: &Program, instance: &mut Instance, group: u32) {
        let n = self.to.steps.len();
        let mut steps = Steps::new(n);
        let (mut skipped, mut late, mut missing, mut at_risk) = (0, 0, 0, 0);
        for (from, to) in self.steps.iter().enumerate() {
            let Some(to) = *to else { continue };
            let from = from as u32;
            steps.set(to as usize, instance.time(from).unwrap_or(NOT_TAKEN), instance.id(from).unwrap_or(0));
            let moved = |flags: u32| if flags & bit(from) != 0 { bit(to) } else { 0 };
            skipped |= moved(instance.skipped);
            late |= moved(instance.late);
            missing |= moved(instance.missing);
            at_risk |= moved(instance.at_risk);
        }
        instance.set_steps(steps);
        (instance.skipped, instance.late, instance.missing, instance.at_risk) = (skipped, late, missing, at_risk);
        instance.stage = instance.stage.and_then(|s| self.stage(s));
        instance.group = group;
        if let Some(extra) = instance.extra.as_deref_mut() {
            let kept = std::mem::take(&mut extra.kept);
            extra.kept =
                kept.into_iter().filter_map(|(step, slot, value)| self.kept(old, new, step, slot, value)).collect();
            let trace = std::mem::take(&mut extra.trace);
            extra.trace = trace
                .into_iter()
                .filter_map(|mut entry| {
                    entry.what = self.trace(entry.what)?;
                    Some(entry)
                })
                .collect();
        }
        if instance.extra.as_deref().is_some_and(|e| e.kept.is_empty() && e.trace.is_empty()) {
            instance.extra = None;
        }
    }

    /// A kept field in the new program: the same step, a field of the same
    /// name and type in its event, and the new workflow still keeps it.
    fn kept(&self, old: &Program, new: &Program, step: u32, slot: u32, value: Value) -> Option<(u32, u32, Value)> {
        fn fields<'a>(program: &'a Program, workflow: &ir::Workflow, step: u32) -> Option<&'a [ir::Field]> {
            let event = program.events.get(workflow.steps.get(step as usize)?.event as usize)?;
            Some(&event.fields)
        }
        let old_field = fields(old, self.from, step)?.get(slot as usize)?;
        let to_step = self.step(step)?;
        let new_field =
            fields(new, self.to, to_step)?.iter().find(|f| f.name == old_field.name && f.ty == old_field.ty)?;
        self.to.kept.iter().any(|k| k.step == to_step && k.slot == new_field.slot).then_some((
            to_step,
            new_field.slot,
            value,
        ))
    }

    /// A trace line in the new step ids; dropped when its step is gone.
    fn trace(&self, what: TraceWhat) -> Option<TraceWhat> {
        Some(match what {
            TraceWhat::Took { step, skipped, deadline } => TraceWhat::Took {
                step: self.step(step)?,
                skipped: skipped.map(|s| s.into_iter().filter_map(|s| self.step(s)).collect()),
                deadline,
            },
            TraceWhat::FilledIn { step } => TraceWhat::FilledIn { step: self.step(step)? },
            TraceWhat::Duplicate { step } => TraceWhat::Duplicate { step: self.step(step)? },
            TraceWhat::OutOfOrder { step, dropped } => TraceWhat::OutOfOrder { step: self.step(step)?, dropped },
            TraceWhat::Missing { step, deadline } => TraceWhat::Missing { step: self.step(step)?, deadline },
            TraceWhat::AtRisk { step, deadline } => TraceWhat::AtRisk { step: self.step(step)?, deadline },
            TraceWhat::Late { step, deadline, delay_ms } => {
                TraceWhat::Late { step: self.step(step)?, deadline, delay_ms }
            }
            TraceWhat::Early { step, earliest } => TraceWhat::Early { step: self.step(step)?, earliest },
            what @ (TraceWhat::Unexpected | TraceWhat::Irrelevant | TraceWhat::Redelivery) => what,
        })
    }
}

impl Counters {
    /// Adds another counter's counts (two old stages or groups that meet
    /// in one new one).
    fn absorb(&mut self, other: Counters) {
        self.entered += other.entered;
        self.completed += other.completed;
        self.failed += other.failed;
        self.late += other.late;
        self.duplicate += other.duplicate;
        self.out_of_order += other.out_of_order;
        self.unexpected += other.unexpected;
        self.stay_ms.extend(other.stay_ms);
        while self.stay_ms.len() > STAY_SAMPLE {
            self.stay_ms.pop_front();
        }
        self.recent.absorb(other.recent);
    }
}

impl<'p> Engine<'p> {
    /// Moves the engine to `program`, keeping its state (see the module
    /// docs for what carries over), at the engine's clock. `rules` names
    /// the version in the reasons of `superseded` records ("rules version
    /// 7"). Records go to `out`. The clearances returned name workflows by
    /// the **old** program's ids: hand them to the alert book before it
    /// switches to the new program.
    pub fn activate(
        &mut self,
        program: &'p Program,
        rules: &str,
        out: &mut Vec<Record>,
    ) -> (Migration, Vec<Clearance>) {
        let old = self.program;
        let at = self.state.clock;
        let mut clearances = std::mem::take(&mut self.clearances);
        let mut migration = Migration::default();
        let mut state = std::mem::take(&mut self.state);
        let plans: Vec<Option<Plan<'p>>> =
            old.workflows.iter().map(|from| program.workflow(&from.name).map(|to| Plan::new(from, to))).collect();

        // Instances, workflow by workflow, each slab kept whole so that
        // every instance keeps its slot (the timer order at one instant).
        let mut workflows = vec![Instances::default(); program.workflows.len()];
        for (old_id, mut instances) in std::mem::take(&mut state.workflows).into_iter().enumerate() {
            let Some(from) = old.workflows.get(old_id) else { continue };
            let plan = plans[old_id].as_ref();
            let slots: Vec<u32> = instances.iter().map(|(slot, _)| slot).collect();
            for slot in slots {
                let Some(instance) = instances.get_mut(slot) else { continue };
                let gone = match plan {
                    None => Some(format!("workflow {} removed", from.name)),
                    Some(plan) => plan.gone(instance),
                };
                let open = instance.is_open();
                if let (Some(reason), true) = (&gone, open) {
                    let key = instance.key.to_string();
                    let stage = instance.stage.and_then(|s| from.stages.get(s as usize)).map(|s| s.name.clone());
                    let reason = format!("{rules}: {reason}");
                    let mut r = Record::new(Kind::Superseded, at);
                    r.step = stage.clone();
                    r.reason = Some(reason.clone());
                    self.emit(from, &key, r, out);
                    clearances.push(Clearance {
                        workflow: from.id,
                        key: key.clone(),
                        at,
                        steps: instance.missing | instance.at_risk,
                        cause: ClearCause::Superseded,
                    });
                    let key = crate::alerts::key_text(&key_object(from, &key));
                    migration.supersede(Superseded { workflow: from.name.clone(), key, stage, reason });
                    instance.close(Outcome::Superseded, at);
                }
                match plan {
                    Some(plan) if plan.same_key => {
                        let group = if plan.same_groups { instance.group } else { empty_group(&mut state, plan.to) };
                        plan.remap(old, program, instance, group);
                        if gone.is_none() && open {
                            let stage = instance.stage.and_then(|s| plan.to.stages.get(s as usize));
                            migration.carry(|| Carried {
                                workflow: plan.to.name.clone(),
                                key: crate::alerts::key_text(&key_object(plan.to, &instance.key)),
                                stage: stage.map(|s| s.name.clone()).unwrap_or_default(),
                            });
                        }
                    }
                    _ => instances.remove(slot),
                }
            }
            if let Some(plan) = plan {
                workflows[plan.to.id as usize] = instances;
            }
        }
        state.workflows = workflows;

        move_tallies(&mut state, &plans);
        state.disabled.retain(|name| program.workflow(name).is_some());
        let opens = move_opens(&mut state, old, program, at);

        // The queue is rebuilt from the instances: timers are derived, and
        // the new rules may order workflows differently.
        state.queue = Wheel::starting_at(at);
        let (functions, use_filter, use_prefetch, use_jit) =
            (self.functions, self.use_filter, self.use_prefetch, self.jit_on());
        *self = Engine::with_state(program, functions, state);
        self.use_filter = use_filter;
        self.use_prefetch = use_prefetch;
        self.set_jit(use_jit);
        for (workflow, date) in opens {
            let workflow = &program.workflows[workflow as usize];
            if let Some(date) = date.or_else(|| self.first_occurrence_date(workflow)) {
                self.queue_open(workflow, date);
            }
        }
        for workflow in &program.workflows {
            if !self.disabled[workflow.id as usize] {
                self.rearm(workflow);
            }
        }
        (migration, clearances)
    }

    /// Switches a workflow off or on (see the module docs); `false` when
    /// the program has no workflow of that name, and nothing changed.
    pub fn set_enabled(&mut self, workflow: &str, enabled: bool) -> bool {
        let program = self.program;
        let Some(workflow) = program.workflow(workflow) else { return false };
        let was_disabled = std::mem::replace(&mut self.disabled[workflow.id as usize], !enabled);
        if enabled {
            self.state.disabled.remove(&workflow.name);
            if was_disabled {
                self.rearm(workflow);
            }
        } else {
            self.state.disabled.insert(workflow.name.clone());
        }
        true
    }

    /// Whether a workflow is switched off.
    pub fn is_enabled(&self, workflow: u32) -> bool {
        !self.disabled.get(workflow as usize).copied().unwrap_or(false)
    }

    /// Derives the timers of every instance of `workflow` again: each
    /// instance's generation is bumped (its queued entry turns stale) and
    /// its next instant queued.
    fn rearm(&mut self, workflow: &ir::Workflow) {
        let w = workflow.id as usize;
        let slots: Vec<u32> = self.state.workflows[w].iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            if let Some(instance) = self.state.workflows[w].get_mut(slot) {
                instance.generation = instance.generation.wrapping_add(1);
            }
            self.schedule(workflow, slot);
        }
    }
}

/// Counters and strays by name; sorted first, so that counters that meet
/// in one place always add up in the same order. Trace lines of strays
/// follow their workflow.
fn move_tallies(state: &mut State, plans: &[Option<Plan>]) {
    let plan_of = |workflow: u32| plans.get(workflow as usize).and_then(Option::as_ref);
    let mut counters: Vec<_> = std::mem::take(&mut state.counters).into_iter().collect();
    counters.sort_by_key(|(key, _)| *key);
    for ((workflow, stage, group), c) in counters {
        let Some(plan) = plan_of(workflow) else { continue };
        let Some(stage) = plan.stage(stage) else { continue };
        let group = if plan.same_groups { group } else { empty_group(state, plan.to) };
        state.counters.entry((plan.to.id, stage, group)).or_default().absorb(c);
    }
    for (workflow, c) in std::mem::take(&mut state.strays) {
        let Some(plan) = plan_of(workflow) else { continue };
        state.strays.entry(plan.to.id).or_default().absorb(c);
    }
    state.stray_trace = std::mem::take(&mut state.stray_trace)
        .into_iter()
        .filter_map(|(workflow, key, entry)| {
            let plan = plan_of(workflow)?;
            Some((plan.to.id, key, TraceEntry { what: plan.trace(entry.what)?, ..entry }))
        })
        .collect();
}

/// Occurrences: the next date of a workflow scheduled before keeps its
/// date (the new schedule gives its opening instant); one scheduled only
/// now is watched from `at` on. What to queue, by new workflow id: a date,
/// or `None` for the first date watched.
fn move_opens(state: &mut State, old: &Program, program: &Program, at: i64) -> Vec<(u32, Option<i32>)> {
    let old_opens = std::mem::take(&mut state.opens);
    let mut opens = Vec::new();
    for to in program.workflows.iter().filter(|w| w.schedule.is_some()) {
        match old.workflow(&to.name).filter(|from| from.schedule.is_some()) {
            Some(from) => {
                if let Some(&(_, date)) = old_opens.get(&from.id) {
                    opens.push((to.id, Some(date)));
                }
            }
            None => {
                state.watched_since.insert(to.name.clone(), at);
                opens.push((to.id, None));
            }
        }
    }
    state.watched_since.retain(|name, _| program.workflow(name).is_some_and(|w| w.schedule.is_some()));
    opens
}

/// The group of a workflow whose group-by fields changed: every value
/// empty, for the item's next step to fill in.
fn empty_group(state: &mut State, workflow: &ir::Workflow) -> u32 {
    state.intern(vec![String::new(); workflow.group_by.len()])
}

/// Switches a workflow off or on in the set of names a driver keeps
/// before its engine starts (the engine takes the set when it does);
/// `false` when the program has no workflow of that name.
pub fn switch_before_start(program: &Program, disabled: &mut BTreeSet<String>, workflow: &str, enabled: bool) -> bool {
    if program.workflow(workflow).is_none() {
        return false;
    }
    if enabled {
        disabled.remove(workflow);
    } else {
        disabled.insert(workflow.to_string());
    }
    true
}
