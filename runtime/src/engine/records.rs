//! Records of events that moved nothing (duplicates, out-of-order jumps,
//! unexpected events, strays without an instance), the memory that
//! recognizes their redelivery, and [`Engine::emit`], which completes every
//! record with its workflow, key object and maintenance flag.

use std::hash::BuildHasher;

use mon_compiler::ir::{self, Handling};
use mon_stdlib::time as t;

use super::{key_object, Counters, Engine, TraceWhat};
use crate::event::Event;
use crate::record::{Kind, Record};

/// An event that took no step of the instance it belongs to: the three
/// cases a workflow's `on ...` settings handle (LANGUAGE.md §3.6).
#[derive(Clone, Copy)]
pub(super) enum Irregular {
    Duplicate,
    OutOfOrder,
    Unexpected,
}

impl<'p> Engine<'p> {
    /// Counts, traces and (unless dropped) records an event that took no
    /// step, as the workflow's `on duplicate|out_of_order|unexpected` says.
    pub(super) fn classified(
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
    pub(super) fn stray(
        &mut self,
        workflow: &ir::Workflow,
        key: Option<&str>,
        event: &Event,
        step: u32,
        out: &mut Vec<Record>,
    ) {
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

    pub(super) fn redelivered_stray(&self, workflow: u32, key: &str) -> bool {
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
    pub(super) fn emit(&self, workflow: &ir::Workflow, key: &str, mut r: Record, out: &mut Vec<Record>) {
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

    pub(super) fn counters(&mut self, workflow: u32, stage: u32, group: u32) -> &mut Counters {
        self.state.counters.entry((workflow, stage, group)).or_default()
    }
}
