//! Instance keys: an event's key fields joined into the key string (one
//! string field borrowed as is; compound keys joined by U+001F; for a
//! scheduled workflow, the occurrence date), and back into the key object
//! that records carry.

use std::borrow::Cow;
use std::collections::BTreeMap;

use mon_compiler::ir::{self, Program, Value};
use mon_stdlib::time as t;

use crate::event::Event;

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
