//! Lifecycle traces for the keys asked for (`mon simulate --trace`): an
//! entry per thing that happened, kept on the instance, or beside it for
//! events that moved no instance, with a payload excerpt without `pii`
//! fields. Nothing is kept for keys not traced.

use mon_compiler::ir::{Program, Value};

use super::{display, Engine, TraceEntry, TraceWhat};
use crate::event::Event;

impl<'p> Engine<'p> {
    pub(super) fn trace(&mut self, workflow: u32, slot: u32, at: i64, what: TraceWhat, event: Option<&Event>) {
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

    pub(super) fn trace_stray(&mut self, workflow: u32, key: &str, event: &Event, what: TraceWhat) {
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
