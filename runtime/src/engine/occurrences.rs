//! Occurrences of scheduled workflows: one instance per scheduled date,
//! opened at the workflow's `open` instant, the next date queued as each
//! opens. Openings are kept apart from timers because an occurrence
//! opening at `t` must exist for an event at `t`, while timers at `t` fire
//! after it. A workflow an activation adds (or makes scheduled) is watched
//! from that instant, as a fresh deployment is from its start.

use mon_compiler::ir;
use mon_stdlib::time as t;

use super::{deadline, Engine, Instance};

impl<'p> Engine<'p> {
    /// The first date whose occurrence could have a deadline at or after
    /// the start of monitoring.
    pub(super) fn first_occurrence_date(&self, workflow: &ir::Workflow) -> Option<i32> {
        workflow.schedule.as_ref()?;
        let max_offset =
            workflow.steps.iter().filter_map(|s| s.timing.by.as_ref()).map(|b| b.day_offset as i32).max().unwrap_or(0);
        Some(t::local_date(self.watched_since(workflow), &workflow.timezone)? - max_offset - 1)
    }

    /// When the engine began to watch `workflow`: the start of monitoring,
    /// or the activation that added it (or made it scheduled).
    fn watched_since(&self, workflow: &ir::Workflow) -> i64 {
        self.state.watched_since.get(&workflow.name).map_or(self.state.start, |&since| since.max(self.state.start))
    }

    pub(super) fn queue_open(&mut self, workflow: &ir::Workflow, date: i32) {
        let Some(schedule) = &workflow.schedule else { return };
        if self.runs_elsewhere(workflow.id) {
            return;
        }
        let Some(open) = t::local_to_utc(date, schedule.open_seconds, &workflow.timezone) else { return };
        self.state.opens.insert(workflow.id, (open, date));
    }

    pub(super) fn open_occurrence(&mut self, workflow: &ir::Workflow, date: i32, open: i64) {
        // Dropped first: past the end of the calendar there is no next one.
        self.state.opens.remove(&workflow.id);
        if let Some(next) = date.checked_add(1) {
            self.queue_open(workflow, next);
        }
        let Some(schedule) = &workflow.schedule else { return };
        // Switched off: its dates pass without an occurrence.
        if self.disabled[workflow.id as usize] {
            return;
        }
        if !t::is_scheduled(schedule, &self.program.calendars, date) {
            return;
        }
        let starts = workflow.steps.iter().filter(|s| s.sources.is_empty());
        let deadlines: Vec<i64> = starts.filter_map(|s| deadline(s, date, open)).collect();
        // A fresh deployment does not alert on history it never watched.
        if deadlines.iter().all(|d| *d < self.watched_since(workflow)) {
            return;
        }
        let key = t::format_date(date);
        let w = workflow.id as usize;
        if self.state.workflows[w].find(&key).is_some() {
            return;
        }
        let slot = self.state.workflows[w].insert(Instance::new(&key, date, open, 0, workflow.steps.len()));
        self.live += 1;
        self.schedule(workflow, slot);
    }
}
