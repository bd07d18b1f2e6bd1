//! Decoding the event envelope (LANGUAGE.md §6) straight into the typed
//! slots of the compiled program, with validation.
//!
//! A line is either an [`Event`] of a type the program uses, an event of a
//! type no rule uses (ignored, but its time still counts for a virtual
//! clock), or a [`Rejection`] with the reason. `pii` fields are replaced by
//! a hash at decode time, so their values never reach the engine's state.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use compact_str::CompactString;

use mon_compiler::ir::{EventType, FieldType, Program, Value};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The envelope's `id`, or a content hash of the line when it has none
    /// (inline up to 24 bytes: no allocation per event).
    pub id: CompactString,
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
    /// Event type names to ids; a fast hash, since it runs per event.
    types: HashMap<&'p str, u32, foldhash::fast::RandomState>,
}

/// The envelope's attributes, borrowed from the line. `data` is decoded
/// in the same pass when `type` came before it (the usual order), and kept
/// raw to decode afterwards otherwise.
#[derive(Default)]
struct Envelope<'a> {
    specversion: Option<Cow<'a, str>>,
    type_name: Option<Cow<'a, str>>,
    id: Option<Cow<'a, str>>,
    time: Option<Cow<'a, str>>,
    data: Data<'a>,
}

#[derive(Default)]
enum Data<'a> {
    #[default]
    Absent,
    Decoded(u32, Result<Vec<Value>, String>),
    Raw(&'a RawValue),
}

struct EnvelopeVisitor<'d, 'p>(&'d Decoder<'p>);

impl<'de> Visitor<'de> for EnvelopeVisitor<'_, '_> {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a CloudEvents JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Envelope::default();
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            match name.as_ref() {
                "specversion" => envelope.specversion = map.next_value()?,
                "type" => envelope.type_name = map.next_value()?,
                "id" => envelope.id = map.next_value()?,
                "time" => envelope.time = map.next_value()?,
                "data" => {
                    let known = envelope.type_name.as_deref().and_then(|t| self.0.types.get(t)).copied();
                    envelope.data = match known {
                        Some(event_type) => {
                            let declared = &self.0.program.events[event_type as usize];
                            Data::Decoded(event_type, map.next_value_seed(DataSeed(declared))?)
                        }
                        None => Data::Raw(map.next_value()?),
                    };
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(envelope)
    }
}

impl<'p> Decoder<'p> {
    pub fn new(program: &'p Program) -> Self {
        let types = program.events.iter().map(|e| (e.name.as_str(), e.id)).collect();
        Decoder { program, types }
    }

    pub fn decode(&self, line: &str) -> Decoded {
        let mut deserializer = serde_json::Deserializer::from_str(line);
        let parsed = deserializer.deserialize_map(EnvelopeVisitor(self)).and_then(|e| deserializer.end().map(|()| e));
        let envelope = match parsed {
            Ok(v) => v,
            Err(e) if e.is_syntax() || e.is_eof() => return reject(format!("invalid JSON: {e}"), None, None, None),
            Err(_) if !line.trim_start().starts_with('{') => {
                return reject("the envelope is not a JSON object".into(), None, None, None);
            }
            Err(e) => return reject(format!("invalid envelope: {e}"), None, None, None),
        };
        let envelope_id = envelope.id.clone();
        let id = envelope.id.map(Cow::into_owned);
        let type_name = envelope.type_name.map(Cow::into_owned);
        // The time first: a rejection is dated by its own envelope when it can be.
        let time = match envelope.time.as_deref() {
            None => None,
            Some(text) => match mon_stdlib::time::parse_rfc3339(text) {
                Some(t) => Some(t),
                None => return reject(format!("invalid `time` {text:?}"), id, type_name, None),
            },
        };
        if let Some(version) = envelope.specversion.as_deref() {
            if version != "1.0" {
                return reject(format!("unsupported specversion {version:?}"), id, type_name, time);
            }
        }
        let Some(type_name) = type_name else {
            return reject("missing `type`".into(), id, None, time);
        };
        let Some(time) = time else {
            return reject("missing `time`".into(), id, Some(type_name), None);
        };
        let Some(&event_type) = self.types.get(type_name.as_str()) else {
            let id = id.unwrap_or_else(|| content_id(line));
            return Decoded::Ignored { id, type_name, time };
        };
        let id = match envelope_id {
            Some(id) => CompactString::new(id),
            None => CompactString::new(content_id(line)),
        };
        let declared = &self.program.events[event_type as usize];
        let decoded = match envelope.data {
            Data::Absent => Ok(Err("missing `data`".to_string())),
            Data::Decoded(t, result) if t == event_type => Ok(result),
            Data::Decoded(..) => Ok(Err("`type` is given twice".to_string())),
            Data::Raw(raw) => DataSeed(declared).deserialize(&mut serde_json::Deserializer::from_str(raw.get())),
        };
        let fields = match decoded {
            Ok(Ok(fields)) => fields,
            Ok(Err(reason)) => return reject(reason, Some(id.to_string()), Some(type_name), Some(time)),
            Err(e) => return reject(format!("invalid `data`: {e}"), Some(id.to_string()), Some(type_name), Some(time)),
        };
        Decoded::Event(Event { id, event_type, time, fields })
    }
}

fn reject(reason: String, id: Option<String>, type_name: Option<String>, time: Option<i64>) -> Decoded {
    Decoded::Rejected(Rejection { reason, id, type_name, time })
}

/// Decodes `data` straight into the slots of its event type, checking
/// each field against its declaration. Problems come back as `Ok(Err)`:
/// they are the event's fault, not the parser's.
struct DataSeed<'d>(&'d EventType);

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = Result<Vec<Value>, String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

const NOT_AN_OBJECT: &str = "`data` is not a JSON object";

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = Result<Vec<Value>, String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let declared = self.0;
        let mut fields = vec![Value::Null; declared.fields.len()];
        let mut problems: Vec<(u32, String)> = Vec::new();
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            match declared.fields.iter().find(|f| f.name == name) {
                Some(field) => match map.next_value_seed(FieldSeed(&field.ty))? {
                    Ok(Value::Null) => {}
                    Ok(value) => fields[field.slot as usize] = if field.pii { hash_pii(&value) } else { value },
                    Err(why) => problems.push((field.slot, format!("field `{}` {why}", field.name))),
                },
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        // The first problem in declaration order.
        for field in &declared.fields {
            if let Some((_, why)) = problems.iter().find(|(slot, _)| *slot == field.slot) {
                return Ok(Err(why.clone()));
            }
            if !field.optional && fields[field.slot as usize] == Value::Null {
                return Ok(Err(format!("missing required field `{}`", field.name)));
            }
        }
        Ok(Ok(fields))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Err("missing `data`".into()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err(NOT_AN_OBJECT.into()))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err(NOT_AN_OBJECT.into()))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err(NOT_AN_OBJECT.into()))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err(NOT_AN_OBJECT.into()))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err(NOT_AN_OBJECT.into()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err(NOT_AN_OBJECT.into()))
    }
}

/// One field's value, checked against its declared type.
struct FieldSeed<'t>(&'t FieldType);

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Result<Value, String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl FieldSeed<'_> {
    fn wrong(&self, got: &str) -> Result<Value, String> {
        let want = match self.0 {
            FieldType::String | FieldType::Enum(_) => "a string",
            FieldType::Int => "an integer",
            FieldType::Float => "a number",
            FieldType::Bool => "a bool",
            FieldType::Date => "a date string",
            FieldType::Timestamp => "a timestamp string",
            FieldType::Duration => "a duration in milliseconds",
        };
        Err(format!("must be {want}, got {got}"))
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = Result<Value, String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(Value::Null))
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Ok(match self.0 {
            FieldType::Bool => Ok(Value::Bool(b)),
            _ => self.wrong("a bool"),
        })
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Self::Value, E> {
        Ok(match self.0 {
            FieldType::Int => Ok(Value::Int(i)),
            FieldType::Float => Ok(Value::Float(i as f64)),
            FieldType::Duration => Ok(Value::Duration(i)),
            _ => self.wrong("a number"),
        })
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Self::Value, E> {
        match i64::try_from(u) {
            Ok(i) => self.visit_i64(i),
            Err(_) => Ok(match self.0 {
                FieldType::Float => Ok(Value::Float(u as f64)),
                FieldType::Int | FieldType::Duration => Err("is out of range".into()),
                _ => self.wrong("a number"),
            }),
        }
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Self::Value, E> {
        Ok(match self.0 {
            FieldType::Float => Ok(Value::Float(f)),
            _ => self.wrong("a number"),
        })
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(match self.0 {
            FieldType::String => Ok(Value::String(s.to_string())),
            FieldType::Date => {
                mon_stdlib_date(s).map(Value::Date).ok_or_else(|| format!("must be a date (YYYY-MM-DD), got {s:?}"))
            }
            FieldType::Timestamp => mon_stdlib::time::parse_rfc3339(s)
                .map(Value::Timestamp)
                .ok_or_else(|| format!("must be an RFC 3339 timestamp, got {s:?}")),
            FieldType::Enum(variants) => variants
                .iter()
                .position(|v| v == s)
                .map(|i| Value::Enum(i as u32))
                .ok_or_else(|| format!("has unknown value {s:?} (expected one of {})", variants.join(", "))),
            _ => self.wrong("a string"),
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.wrong("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(self.wrong("an object"))
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
