//! Decoding the event envelope (LANGUAGE.md §6) straight into the typed
//! slots of the compiled program, with validation.
//!
//! A line is either an [`Event`] of a type the program uses, an event of a
//! type no rule uses (ignored, but its time still counts for a virtual
//! clock), or a [`Rejection`] with the reason. `pii` fields are replaced by
//! a hash at decode time, so their values never reach the engine's state.
//!
//! A reason is read in a dead-letter log, far from the line, so it always
//! starts with what it is about: the event type (`order_placed: missing
//! required field order_id`), the type and the field (`order_placed.qty:
//! expected int, found string "x"`), or `type unknown` when the line gives
//! no type. It never shows a `pii` value, and cuts a long one.
//!
//! Two decoders give the same results for every line: the fast path in
//! [`fast`] reads the common shape by hand, and the reference here (serde_json)
//! decides every other line, every rejection included.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::{self, Display};

use compact_str::CompactString;

use mon_compiler::ir::{EventType, FieldType, Program, Value};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

mod fast;

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
    /// Starts with the event type (and field) it is about, or `type unknown`.
    pub reason: String,
    pub id: Option<String>,
    pub type_name: Option<String>,
    pub time: Option<i64>,
}

impl Rejection {
    /// A rejection of a line that says nothing of itself (not even text).
    pub fn of(reason: &str) -> Rejection {
        Rejection { reason: reason.to_string(), id: None, type_name: None, time: None }
    }
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

impl Envelope<'_> {
    fn partial(&self) -> Partial {
        let owned = |text: &Option<Cow<str>>| text.as_deref().map(str::to_string);
        Partial { type_name: owned(&self.type_name), id: owned(&self.id), time: owned(&self.time) }
    }
}

#[derive(Default)]
enum Data<'a> {
    #[default]
    Absent,
    Decoded(u32, Result<Vec<Value>, Invalid>),
    Raw(&'a RawValue),
}

/// What is wrong with `data`: the field at fault, if there is one, and how.
struct Invalid {
    field: Option<String>,
    what: String,
}

impl Invalid {
    fn data(what: impl Into<String>) -> Invalid {
        Invalid { field: None, what: what.into() }
    }
}

/// The attributes read before a line turned out to be broken, so that its
/// rejection can still name its type, its id and its time.
#[derive(Default)]
struct Partial {
    type_name: Option<String>,
    id: Option<String>,
    time: Option<String>,
}

struct EnvelopeVisitor<'d, 'p> {
    decoder: &'d Decoder<'p>,
    partial: &'d mut Partial,
}

impl<'de> Visitor<'de> for EnvelopeVisitor<'_, '_> {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a CloudEvents JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Envelope::default();
        let read = self.read(&mut envelope, &mut map);
        if read.is_err() {
            // Why: only on the error path, so a good line pays nothing.
            *self.partial = envelope.partial();
        }
        read.map(|()| envelope)
    }
}

impl<'de> EnvelopeVisitor<'_, '_> {
    fn read<A: MapAccess<'de>>(&self, envelope: &mut Envelope<'de>, map: &mut A) -> Result<(), A::Error> {
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            match name.as_ref() {
                "specversion" => envelope.specversion = map.next_value()?,
                "type" => envelope.type_name = map.next_value()?,
                "id" => envelope.id = map.next_value()?,
                "time" => envelope.time = map.next_value()?,
                "data" => {
                    let known = envelope.type_name.as_deref().and_then(|t| self.decoder.types.get(t)).copied();
                    envelope.data = match known {
                        Some(event_type) => {
                            let declared = &self.decoder.program.events[event_type as usize];
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
        Ok(())
    }
}

impl<'p> Decoder<'p> {
    pub fn new(program: &'p Program) -> Self {
        let types = program.events.iter().map(|e| (e.name.as_str(), e.id)).collect();
        Decoder { program, types }
    }

    pub fn decode(&self, line: &str) -> Decoded {
        fast::decode(self, line).unwrap_or_else(|| self.decode_reference(line))
    }

    /// The fast path alone: `None` for every line it leaves to the
    /// reference. For tests and benches; [`Decoder::decode`] is the API.
    pub fn decode_fast(&self, line: &str) -> Option<Decoded> {
        fast::decode(self, line)
    }

    /// The reference decoder alone (serde_json), for every line the fast
    /// path is not sure of; public so that tests and benches can hold the
    /// two to the same results and compare their speed.
    pub fn decode_reference(&self, line: &str) -> Decoded {
        let mut deserializer = serde_json::Deserializer::from_str(line);
        let mut partial = Partial::default();
        let parsed = deserializer.deserialize_map(EnvelopeVisitor { decoder: self, partial: &mut partial }).and_then(
            |envelope| match deserializer.end() {
                Ok(()) => Ok(envelope),
                // Trailing characters after a whole envelope: its attributes were read.
                Err(e) => {
                    partial = envelope.partial();
                    Err(e)
                }
            },
        );
        let envelope = match parsed {
            Ok(v) => v,
            Err(e) => {
                let what = if e.is_syntax() || e.is_eof() {
                    format!("invalid JSON: {}", json_error(&e))
                } else if !line.trim_start().starts_with('{') {
                    "the envelope is not a JSON object".into()
                } else {
                    format!("invalid envelope: {}", json_error(&e))
                };
                let time = partial.time.as_deref().and_then(mon_stdlib::time::parse_rfc3339);
                return reject(what, partial.id, partial.type_name, time);
            }
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
            Data::Absent => Ok(Err(Invalid::data("missing `data`"))),
            Data::Decoded(t, result) if t == event_type => Ok(result),
            Data::Decoded(..) => Ok(Err(Invalid::data("`type` is given twice"))),
            Data::Raw(raw) => DataSeed(declared).deserialize(&mut serde_json::Deserializer::from_str(raw.get())),
        };
        let invalid = match decoded {
            Ok(Ok(fields)) => return Decoded::Event(Event { id, event_type, time, fields }),
            Ok(Err(invalid)) => invalid,
            Err(e) => Invalid::data(format!("invalid `data`: {}", json_error(&e))),
        };
        let subject = match &invalid.field {
            Some(field) => format!("{type_name}.{field}"),
            None => type_name.clone(),
        };
        Decoded::Rejected(Rejection {
            reason: format!("{subject}: {}", invalid.what),
            id: Some(id.to_string()),
            type_name: Some(type_name),
            time: Some(time),
        })
    }
}

/// A rejection whose reason starts with the event type, or with `type
/// unknown` when the line did not give one.
fn reject(what: String, id: Option<String>, type_name: Option<String>, time: Option<i64>) -> Decoded {
    let reason = reason_about(type_name.as_deref(), &what);
    Decoded::Rejected(Rejection { reason, id, type_name, time })
}

/// The one shape of a rejection reason: the event type it is about (or
/// `type unknown`), then what is wrong. The service's envelope reader
/// words the messages it refuses before decoding the same way.
pub fn reason_about(type_name: Option<&str>, what: &str) -> String {
    format!("{}: {what}", type_name.unwrap_or("type unknown"))
}

/// serde_json's message, with "at line 1 column N" shortened to "at column
/// N": an event is one line, and the line that matters is the line in the
/// file, which the caller names.
fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let position = format!(" at line 1 column {}", e.column());
    match text.strip_suffix(&position) {
        Some(message) if e.line() == 1 => format!("{message} at column {}", e.column()),
        _ => text,
    }
}

/// Decodes `data` straight into the slots of its event type, checking
/// each field against its declaration. Problems come back as `Ok(Err)`:
/// they are the event's fault, not the parser's.
struct DataSeed<'d>(&'d EventType);

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = Result<Vec<Value>, Invalid>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

const NOT_AN_OBJECT: &str = "`data` is not a JSON object";

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = Result<Vec<Value>, Invalid>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let declared = self.0;
        let mut fields = vec![Value::Null; declared.fields.len()];
        let mut problems: Vec<(u32, String)> = Vec::new();
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            match declared.fields.iter().find(|f| f.name == name) {
                Some(field) => match map.next_value_seed(FieldSeed { ty: &field.ty, pii: field.pii })? {
                    Ok(Value::Null) => {}
                    Ok(value) => fields[field.slot as usize] = if field.pii { hash_pii(&value) } else { value },
                    Err(why) => problems.push((field.slot, why)),
                },
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        // The first problem in declaration order.
        for field in &declared.fields {
            if let Some((_, why)) = problems.iter().find(|(slot, _)| *slot == field.slot) {
                return Ok(Err(Invalid { field: Some(field.name.to_string()), what: why.clone() }));
            }
            if !field.optional && fields[field.slot as usize] == Value::Null {
                return Ok(Err(Invalid::data(format!("missing required field {}", field.name))));
            }
        }
        Ok(Ok(fields))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Err(Invalid::data("missing `data`")))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err(Invalid::data(NOT_AN_OBJECT)))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err(Invalid::data(NOT_AN_OBJECT)))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err(Invalid::data(NOT_AN_OBJECT)))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err(Invalid::data(NOT_AN_OBJECT)))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err(Invalid::data(NOT_AN_OBJECT)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err(Invalid::data(NOT_AN_OBJECT)))
    }
}

/// One field's value, checked against its declared type. A value of the
/// wrong type comes back as what was expected and what was found.
struct FieldSeed<'t> {
    ty: &'t FieldType,
    pii: bool,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Result<Value, String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// How much of a wrong string value a reason quotes.
const EXCERPT_CHARS: usize = 40;

impl FieldSeed<'_> {
    /// `expected int, found string "x"`; the value is left out for a `pii`
    /// field, and there is none to show for an array or an object.
    fn wrong(&self, kind: &str, value: Option<&dyn Display>) -> Result<Value, String> {
        let expected = match self.ty {
            FieldType::String => "string".to_string(),
            FieldType::Int => "int".to_string(),
            FieldType::Float => "float".to_string(),
            FieldType::Bool => "bool".to_string(),
            FieldType::Date => "date (YYYY-MM-DD)".to_string(),
            FieldType::Timestamp => "timestamp (RFC 3339)".to_string(),
            FieldType::Duration => "duration (milliseconds)".to_string(),
            FieldType::Enum(variants) => format!("one of {}", variants.join(", ")),
        };
        let article = if kind.starts_with(['a', 'o']) { "an" } else { "a" };
        let found = match value {
            Some(_) if self.pii => format!("{article} {kind} (pii: value not shown)"),
            Some(value) => format!("{kind} {value}"),
            None => format!("{article} {kind}"),
        };
        Err(format!("expected {expected}, found {found}"))
    }

    fn wrong_string(&self, s: &str) -> Result<Value, String> {
        let quoted = match s.char_indices().nth(EXCERPT_CHARS) {
            Some((cut, _)) => format!("{:?}", format!("{}…", &s[..cut])),
            None => format!("{s:?}"),
        };
        self.wrong("string", Some(&quoted))
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
        Ok(match self.ty {
            FieldType::Bool => Ok(Value::Bool(b)),
            _ => self.wrong("bool", Some(&b)),
        })
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Self::Value, E> {
        Ok(match self.ty {
            FieldType::Int => Ok(Value::Int(i)),
            FieldType::Float => Ok(Value::Float(i as f64)),
            FieldType::Duration => Ok(Value::Duration(i)),
            _ => self.wrong("number", Some(&i)),
        })
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Self::Value, E> {
        match i64::try_from(u) {
            Ok(i) => self.visit_i64(i),
            Err(_) => Ok(match self.ty {
                FieldType::Float => Ok(Value::Float(u as f64)),
                FieldType::Int | FieldType::Duration => self.wrong("number", Some(&format!("{u} (out of range)"))),
                _ => self.wrong("number", Some(&u)),
            }),
        }
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Self::Value, E> {
        Ok(match self.ty {
            FieldType::Float => Ok(Value::Float(f)),
            _ => self.wrong("number", Some(&f)),
        })
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        let value = match self.ty {
            FieldType::String => Some(Value::String(s.to_string())),
            FieldType::Date => mon_stdlib_date(s).map(Value::Date),
            FieldType::Timestamp => mon_stdlib::time::parse_rfc3339(s).map(Value::Timestamp),
            FieldType::Enum(variants) => variants.iter().position(|v| v == s).map(|i| Value::Enum(i as u32)),
            FieldType::Int | FieldType::Float | FieldType::Bool | FieldType::Duration => None,
        };
        Ok(value.map_or_else(|| self.wrong_string(s), Ok))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.wrong("array", None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(self.wrong("object", None))
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
