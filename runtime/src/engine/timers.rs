//! Timers: the queue, advancing the clock, and the `at_risk` and `missing`
//! records that fire.
//!
//! Timers are derived, not stored: an instance's pending instants follow
//! from its stage, the time it entered it and its flags ([`pending`]), so
//! the queue (a timing wheel, `wheel`) holds only (due, workflow order,
//! slot, generation); the workflow order puts upstream workflows first at
//! one instant, so that `caused_by` can be known. Moving an
//! instance bumps its generation, which cancels its entry for free; stale
//! entries are swept when they outnumber the live instances.

use mon_compiler::ir;
use mon_stdlib::time as t;

use super::{bit, ClearCause, Clearance, Engine, Instance, TraceWhat};
use crate::record::{Kind, Record};

impl<'p> Engine<'p> {
    /// The earliest instant at which [`advance`](Self::advance) may have
    /// something to do (a queued timer, possibly cancelled since, or an
    /// occurrence to open), so a live clock need not tick when nothing is due.
    pub fn next_due(&self) -> Option<i64> {
        let timer = self.state.queue.next_due();
        let open = self.state.opens.values().map(|(at, _)| *at).min();
        timer.into_iter().chain(open).min()
    }

    /// Timer entries queued (including cancelled ones not yet swept).
    pub fn timers_queued(&self) -> usize {
        self.state.queue.len()
    }

    /// Instances held, over all workflows: a driver that sees it grow
    /// knows an input started an item.
    pub fn held(&self) -> usize {
        self.live
    }

    /// Fires every timer due before `now` (or at `now` when `inclusive`).
    pub fn advance(&mut self, now: i64, inclusive: bool, out: &mut Vec<Record>) {
        loop {
            let limit = if inclusive { Some(now) } else { now.checked_sub(1) };
            let timer = limit.and_then(|limit| self.state.queue.first_by(limit));
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
        if self.disabled[w] {
            // Switched off: the entry is dropped, and switching the
            // workflow on derives its timers again (`activate`).
            return;
        }
        let Some(instance) = self.state.workflows[w].get(slot) else { return };
        if instance.generation != generation {
            return; // the instance moved on: this entry was cancelled
        }
        if let Some((_, closed_at)) = instance.closed() {
            if due >= after(closed_at, workflow.retain_ms) {
                self.state.workflows[w].remove(slot);
                self.live -= 1;
            }
            return;
        }
        // An open item with nothing left to wait for (its last deadline was
        // reported, or its stage has none) is forgotten `retain` after it
        // last moved, so stuck items cannot accumulate forever.
        if pending(workflow, instance).next().is_none() {
            if due >= after(instance.entered_at, workflow.retain_ms) {
                let alerted = instance.missing | instance.at_risk | instance.late;
                if alerted != 0 {
                    let key = instance.key.to_string();
                    let steps = instance.missing | instance.at_risk;
                    self.clearances.push(Clearance {
                        workflow: workflow.id,
                        key,
                        at: due,
                        steps,
                        cause: ClearCause::Forgotten,
                    });
                }
                self.state.workflows[w].remove(slot);
                self.live -= 1;
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
        let (stage, group) = (instance.stage, instance.group);
        for (missing, step, deadline) in fired {
            let Some(instance) = self.state.workflows[w].get_mut(slot) else { return };
            let (kind, what) = if missing {
                instance.missing |= bit(step);
                // Counted in the stage the item sits in, where the UI shows it.
                if let (Some(tally), Some(stage)) = (&mut self.tally, stage) {
                    tally.entry((crate::aggregates::minute_of(due), workflow.id, stage, group)).or_default().missing +=
                        1;
                }
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
    pub(super) fn schedule(&mut self, workflow: &ir::Workflow, slot: u32) {
        let Some(instance) = self.state.workflows[workflow.id as usize].get(slot) else { return };
        let next = match instance.closed() {
            Some((_, closed_at)) => Some(after(closed_at, workflow.retain_ms)),
            None => pending(workflow, instance)
                .map(|(at, ..)| at)
                .min()
                .or_else(|| Some(after(instance.entered_at, workflow.retain_ms))),
        };
        if let Some(due) = next {
            self.state.queue.push((due, self.orders[workflow.id as usize], slot, instance.generation));
            self.sweep_if_needed();
        }
    }

    /// Drops stale queue entries once they outnumber the live instances.
    fn sweep_if_needed(&mut self) {
        // Why a running count: summing every workflow's instances here, once
        // per queued timer, cost O(workflows) per event (10,000 file SLAs).
        if self.state.queue.len() <= 2 * self.live + 1024 {
            return;
        }
        let workflows = &self.state.workflows;
        self.state.queue.retain(|&(_, order, slot, generation)| {
            workflows[(order & 0xffff) as usize].get(slot).is_some_and(|i| i.generation == generation)
        });
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

pub(super) fn clock_only_deadline(step: &ir::Step, date: i32) -> Option<i64> {
    step.timing.by.as_ref().and_then(|b| t::clock_deadline(date, b))
}

pub(super) fn not_before(step: &ir::Step, date: i32, entered: i64) -> Option<i64> {
    match &step.timing.not_before {
        Some(ir::NotBefore::After(ms)) => Some(after(entered, *ms)),
        Some(ir::NotBefore::At(at)) => t::clock_deadline(date, at),
        None => None,
    }
}
