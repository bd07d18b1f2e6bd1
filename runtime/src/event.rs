//! Decoding the event envelope (LANGUAGE.md §6) straight into the typed
//! slots of the compiled program, with validation.
//!
//! A line is either an [`Event`] of a type the program uses, an event of a
//! type no rule uses (ignored, but its time still counts for a virtual
//! clock), or a [`Rejection`] with the reason. `pii` fields are replaced by
//! a hash at decode time, so their values never reach the engine's state.

use std::collections::HashMap;

use mon_compiler::ir::{FieldType, Program, Value};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The envelope's `id`, or a content hash of the line when it has none.
    pub id: String,
    pub event_type: u32,
    /// The event (source) time that every SLA uses, ms since the epoch.
    pub time: i64,
    /// One value per slot of the event type; `Null` for absent optionals.
    pub fields: Vec<Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    Event(Event),
    /// A well-formed envelope whose type no rule uses.
    Ignored {
        id: String,
        type_name: String,
        time: i64,
    },
    Rejected(Rejection),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub reason: String,
    pub id: Option<String>,
    pub type_name: Option<String>,
    pub time: Option<i64>,
}

/// Decodes envelopes for one program.
pub struct Decoder<'p> {
    program: &'p Program,
    types: HashMap<&'p str, u32>,
}

impl<'p> Decoder<'p> {
    pub fn new(program: &'p Program) -> Self {
        let types = program.events.iter().map(|e| (e.name.as_str(), e.id)).collect();
        Decoder { program, types }
    }

    pub fn decode(&self, line: &str) -> Decoded {
        let envelope: Json = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => return reject(format!("invalid JSON: {e}"), None, None, None),
        };
        let Some(envelope) = envelope.as_object() else {
            return reject("the envelope is not a JSON object".into(), None, None, None);
        };
        let id = envelope.get("id").and_then(Json::as_str).map(str::to_string);
        let type_name = envelope.get("type").and_then(Json::as_str).map(str::to_string);
        if let Some(version) = envelope.get("specversion") {
            if version.as_str() != Some("1.0") {
                return reject(format!("unsupported specversion {version}"), id, type_name, None);
            }
        }
        let Some(type_name) = type_name else {
            return reject("missing `type`".into(), id, None, None);
        };
        let time = match envelope.get("time").and_then(Json::as_str) {
            None => return reject("missing `time`".into(), id, Some(type_name), None),
            Some(text) => match mon_compiler::time::parse_timestamp(text) {
                Some(t) => t,
                None => return reject(format!("invalid `time` {text:?}"), id, Some(type_name), None),
            },
        };
        let id = id.unwrap_or_else(|| content_id(line));
        let Some(&event_type) = self.types.get(type_name.as_str()) else {
            return Decoded::Ignored { id, type_name, time };
        };
        let data = match envelope.get("data") {
            Some(Json::Object(data)) => data,
            Some(_) => return reject("`data` is not a JSON object".into(), Some(id), Some(type_name), Some(time)),
            None => return reject("missing `data`".into(), Some(id), Some(type_name), Some(time)),
        };
        let declared = &self.program.events[event_type as usize];
        let mut fields = Vec::with_capacity(declared.fields.len());
        for field in &declared.fields {
            let value = match data.get(&field.name) {
                None | Some(Json::Null) if field.optional => Value::Null,
                None | Some(Json::Null) => {
                    return reject(
                        format!("missing required field `{}`", field.name),
                        Some(id),
                        Some(type_name),
                        Some(time),
                    );
                }
                Some(json) => match decode_value(&field.ty, json) {
                    Ok(v) => v,
                    Err(why) => {
                        return reject(format!("field `{}` {why}", field.name), Some(id), Some(type_name), Some(time));
                    }
                },
            };
            fields.push(if field.pii { hash_pii(&value) } else { value });
        }
        Decoded::Event(Event { id, event_type, time, fields })
    }
}

fn reject(reason: String, id: Option<String>, type_name: Option<String>, time: Option<i64>) -> Decoded {
    Decoded::Rejected(Rejection { reason, id, type_name, time })
}

fn describe(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a bool",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn decode_value(ty: &FieldType, json: &Json) -> Result<Value, String> {
    let wrong = |want: &str| Err(format!("must be {want}, got {}", describe(json)));
    match ty {
        FieldType::String => json.as_str().map(|s| Value::String(s.to_string())).map_or_else(|| wrong("a string"), Ok),
        FieldType::Int => match json.as_i64() {
            Some(i) => Ok(Value::Int(i)),
            None => wrong("an integer"),
        },
        FieldType::Float => json.as_f64().map(Value::Float).map_or_else(|| wrong("a number"), Ok),
        FieldType::Bool => json.as_bool().map(Value::Bool).map_or_else(|| wrong("a bool"), Ok),
        FieldType::Date => match json.as_str() {
            Some(s) => {
                mon_stdlib_date(s).map(Value::Date).ok_or_else(|| format!("must be a date (YYYY-MM-DD), got {s:?}"))
            }
            None => wrong("a date string"),
        },
        FieldType::Timestamp => match json.as_str() {
            Some(s) => mon_compiler::time::parse_timestamp(s)
                .map(Value::Timestamp)
                .ok_or_else(|| format!("must be an RFC 3339 timestamp, got {s:?}")),
            None => wrong("a timestamp string"),
        },
        FieldType::Duration => match json.as_i64() {
            Some(ms) => Ok(Value::Duration(ms)),
            None => wrong("a duration in milliseconds"),
        },
        FieldType::Enum(variants) => match json.as_str() {
            Some(s) => variants
                .iter()
                .position(|v| v == s)
                .map(|i| Value::Enum(i as u32))
                .ok_or_else(|| format!("has unknown value {s:?} (expected one of {})", variants.join(", "))),
            None => wrong("a string"),
        },
    }
}

fn mon_stdlib_date(text: &str) -> Option<i32> {
    let mut parts = text.split('-');
    let year = parts.next()?.parse().ok()?;
    let month = parts.next()?.parse().ok()?;
    let day = parts.next()?.parse().ok()?;
    if parts.next().is_some() || text.len() != 10 {
        return None;
    }
    mon_compiler::time::days_from_civil(year, month, day)
}

/// An id for an event without one: the same content gives the same id, so
/// a redelivered copy is recognized.
pub fn content_id(line: &str) -> String {
    let digest = Sha256::digest(line.trim().as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Equal pii values hash equal (so they can still be compared), but the
/// value itself is gone.
fn hash_pii(value: &Value) -> Value {
    if *value == Value::Null {
        return Value::Null;
    }
    let text = serde_json::to_string(value).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    Value::String(format!("pii:{}", digest.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>()))
}
