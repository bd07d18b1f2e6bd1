//! The fast path of [`Decoder::decode`](super::Decoder::decode): one pass
//! over the bytes of the common envelope shape, straight into the slots,
//! with no allocation beyond the event's own (its slots and its strings).
//!
//! It must never decide anything differently from the reference decoder
//! (serde_json), so it only answers when it is sure: a good event of a
//! known type, or a well-formed envelope of a type no rule uses. Anything
//! else gives `None` and the reference decodes the line from the start:
//! escapes, nested values, duplicate keys, `data` before `type`, a missing
//! `id`, numbers it cannot convert exactly as serde_json does, and every
//! problem at all. A rejection and its reason are therefore always the
//! reference's. `tests/decode_differential.rs` holds the two to the same
//! results.

use compact_str::CompactString;
use mon_compiler::ir::{EventType, FieldType, Value};

use super::{hash_pii, mon_stdlib_date, Decoded, Decoder, Event};

/// `None` means "not sure": the caller falls back to the reference.
pub(super) fn decode(decoder: &Decoder<'_>, line: &str) -> Option<Decoded> {
    let mut scan = Scanner { text: line, at: 0 };
    scan.eat(b'{')?;
    let (mut type_name, mut id, mut time, mut version) = (None, None, None, None);
    // What `data` turned out to be: the decoded slots of a known type, or
    // `Some(None)` once checked well-formed for a type no rule uses.
    let mut data: Option<Option<(u32, Vec<Value>)>> = None;
    if !scan.eat_if(b'}') {
        loop {
            let key = scan.plain_string()?;
            scan.eat(b':')?;
            let attribute = match key {
                "type" => Some(&mut type_name),
                "id" => Some(&mut id),
                "time" => Some(&mut time),
                "specversion" => Some(&mut version),
                "data" => {
                    // `type` after `data` makes the reference keep `data`
                    // raw and decode it afterwards: left to it.
                    let known = decoder.types.get(type_name?).copied();
                    let decoded = match known {
                        Some(event_type) => {
                            let declared = &decoder.program.events[event_type as usize];
                            Some((event_type, scan.data(declared)?))
                        }
                        None => scan.skip_flat_value().map(|()| None)?,
                    };
                    if data.replace(decoded).is_some() {
                        return None;
                    }
                    None
                }
                _ => {
                    scan.scalar()?;
                    None
                }
            };
            // Only strings, each given once (a duplicate is the reference's).
            if let Some(attribute) = attribute {
                if attribute.replace(scan.plain_string()?).is_some() {
                    return None;
                }
            }
            if !scan.next_member()? {
                break;
            }
        }
    }
    scan.skip_whitespace();
    if scan.at != line.len() {
        return None;
    }
    if version.is_some_and(|v| v != "1.0") {
        return None;
    }
    let (type_name, id) = (type_name?, id?);
    let time = mon_stdlib::time::parse_rfc3339(time?)?;
    match data {
        Some(Some((event_type, fields))) => {
            Some(Decoded::Event(Event { id: CompactString::new(id), event_type, time, fields }))
        }
        // A type no rule uses (with `data` or without): the reference only
        // checks the envelope.
        _ if !decoder.types.contains_key(type_name) => {
            Some(Decoded::Ignored { id: id.to_string(), type_name: type_name.to_string(), time })
        }
        _ => None,
    }
}

struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

/// A JSON scalar as written; strings are plain (no escapes).
enum Scalar<'a> {
    String(&'a str),
    Number(&'a str),
    Bool(bool),
    Null,
}

/// Exactly representable powers of ten: a significand below 2^53 divided
/// by one of these is correctly rounded, which is what serde_json gives
/// (with or without its `float_roundtrip` feature).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

impl<'a> Scanner<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    /// JSON's whitespace, exactly as serde_json skips it.
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.eat_if(byte).then_some(())
    }

    fn eat_if(&mut self, byte: u8) -> bool {
        self.skip_whitespace();
        let found = self.peek() == Some(byte);
        self.at += usize::from(found);
        found
    }

    /// After a member: `true` at a comma (another member follows), `false`
    /// at the closing brace.
    fn next_member(&mut self) -> Option<bool> {
        self.skip_whitespace();
        let byte = self.peek()?;
        self.at += 1;
        match byte {
            b',' => Some(true),
            b'}' => Some(false),
            _ => None,
        }
    }

    /// A string with no escape and no control character, borrowed from the
    /// line; `None` for anything else, which the reference decides.
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let length = special_byte(&self.bytes()[start..])?;
        if self.bytes()[start + length] != b'"' {
            return None;
        }
        self.at = start + length + 1;
        // Why this slice is sound: both ends sit next to an ASCII quote.
        Some(&self.text[start..start + length])
    }

    /// The key `"name"` itself, when it is next (after whitespace): the
    /// usual case, checked without searching the string's end.
    fn eat_key(&mut self, name: &str) -> bool {
        self.skip_whitespace();
        let rest = &self.bytes()[self.at..];
        let found = rest.len() > name.len() + 1
            && rest[0] == b'"'
            && rest[name.len() + 1] == b'"'
            && &rest[1..=name.len()] == name.as_bytes();
        self.at += if found { name.len() + 2 } else { 0 };
        found
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let found = self.bytes()[self.at..].starts_with(word.as_bytes());
        self.at += if found { word.len() } else { 0 };
        found.then_some(())
    }

    /// A number checked against JSON's grammar, as written.
    fn number(&mut self) -> Option<&'a str> {
        let start = self.at;
        let digits = |scan: &mut Scanner| {
            let from = scan.at;
            while scan.peek().is_some_and(|b| b.is_ascii_digit()) {
                scan.at += 1;
            }
            scan.at > from
        };
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                digits(self);
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !digits(self) {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if !digits(self) {
                return None;
            }
        }
        Some(&self.text[start..self.at])
    }

    fn scalar(&mut self) -> Option<Scalar<'a>> {
        self.skip_whitespace();
        Some(match self.peek()? {
            b'"' => Scalar::String(self.plain_string()?),
            b't' => self.literal("true").map(|()| Scalar::Bool(true))?,
            b'f' => self.literal("false").map(|()| Scalar::Bool(false))?,
            b'n' => self.literal("null").map(|()| Scalar::Null)?,
            b'-' | b'0'..=b'9' => Scalar::Number(self.number()?),
            _ => return None,
        })
    }

    /// Any scalar, or an object whose values are all scalars (the `data` of
    /// a type no rule uses: the reference only checks that it is JSON).
    fn skip_flat_value(&mut self) -> Option<()> {
        if !self.eat_if(b'{') {
            return self.scalar().map(drop);
        }
        if self.eat_if(b'}') {
            return Some(());
        }
        loop {
            self.plain_string()?;
            self.eat(b':')?;
            self.scalar()?;
            if !self.next_member()? {
                return Some(());
            }
        }
    }

    /// `data` of a known type, straight into its slots: a flat object, no
    /// duplicate field, every value of its declared type, every required
    /// field present.
    fn data(&mut self, declared: &EventType) -> Option<Vec<Value>> {
        // A bit per declared field seen, for duplicates.
        if declared.fields.len() > 64 {
            return None;
        }
        let mut seen = 0u64;
        let mut fields = vec![Value::Null; declared.fields.len()];
        self.eat(b'{')?;
        if !self.eat_if(b'}') {
            // Lines usually list the fields in declaration order: try the
            // one after the last match before searching.
            let mut next = 0;
            loop {
                let index = match declared.fields.get(next) {
                    Some(field) if self.eat_key(&field.name) => Some(next),
                    _ => {
                        let name = self.plain_string()?;
                        declared.fields.iter().position(|f| f.name == name)
                    }
                };
                self.eat(b':')?;
                let value = self.scalar()?;
                if let Some(index) = index {
                    if seen & (1 << index) != 0 {
                        return None;
                    }
                    seen |= 1 << index;
                    next = index + 1;
                    let field = &declared.fields[index];
                    let value = convert(&field.ty, value)?;
                    if value != Value::Null {
                        fields[field.slot as usize] = if field.pii { hash_pii(&value) } else { value };
                    }
                }
                if !self.next_member()? {
                    break;
                }
            }
        }
        let complete = declared.fields.iter().all(|f| f.optional || fields[f.slot as usize] != Value::Null);
        complete.then_some(fields)
    }
}

/// A scalar as a value of its declared type, as serde_json and the
/// reference's `FieldSeed` would make it; `None` for a mismatch (a
/// rejection) or a number outside what is converted here exactly.
fn convert(ty: &FieldType, scalar: Scalar<'_>) -> Option<Value> {
    Some(match (ty, scalar) {
        (_, Scalar::Null) => Value::Null,
        (FieldType::Bool, Scalar::Bool(b)) => Value::Bool(b),
        (FieldType::String, Scalar::String(s)) => Value::String(s.to_string()),
        (FieldType::Date, Scalar::String(s)) => Value::Date(mon_stdlib_date(s)?),
        (FieldType::Timestamp, Scalar::String(s)) => Value::Timestamp(mon_stdlib::time::parse_rfc3339(s)?),
        (FieldType::Enum(variants), Scalar::String(s)) => Value::Enum(variants.iter().position(|v| v == s)? as u32),
        (FieldType::Int | FieldType::Float | FieldType::Duration, Scalar::Number(text)) => match (ty, number(text)?) {
            (FieldType::Int, Number::Int(i)) => Value::Int(i),
            (FieldType::Duration, Number::Int(i)) => Value::Duration(i),
            (FieldType::Float, Number::Int(i)) => Value::Float(i as f64),
            (FieldType::Float, Number::Float(f)) => Value::Float(f),
            _ => return None,
        },
        _ => return None,
    })
}

/// The index of the first quote, backslash or control character: eight
/// bytes at a time (strings are short, so a SIMD search would not pay for
/// its setup), then byte by byte for the tail.
fn special_byte(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A high bit in every byte of `word` below `n` (n <= 128). Only the
    // lowest flag is sure (a borrow can flag a byte above it), and only
    // the lowest is used.
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let flags =
            below(word ^ (ONES * u64::from(b'"')), 1) | below(word ^ (ONES * u64::from(b'\\')), 1) | below(word, 0x20);
        if flags != 0 {
            return Some(offset + (flags.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    let tail = chunks.remainder().iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    Some(offset + tail)
}

enum Number {
    Int(i64),
    Float(f64),
}

/// The value serde_json parses from a grammatical JSON number, for the
/// shapes where it is exact here: an integer of up to 19 digits within
/// i64 (not `-0`, which serde_json makes a float), or a decimal without
/// exponent whose digits make a significand up to 2^53 with at most 18
/// digits in all.
fn number(text: &str) -> Option<Number> {
    let negative = text.starts_with('-');
    let (mut significand, mut digits, mut decimals) = (0u64, 0, None);
    for &byte in &text.as_bytes()[usize::from(negative)..] {
        match byte {
            b'0'..=b'9' => {
                digits += 1;
                // Why 19: any 19 digits fit a u64, so this cannot overflow.
                if digits > 19 {
                    return None;
                }
                significand = significand * 10 + u64::from(byte - b'0');
                decimals = decimals.map(|d: usize| d + 1);
            }
            b'.' => decimals = Some(0),
            // An exponent.
            _ => return None,
        }
    }
    match decimals {
        None if negative && significand == 0 => None,
        // As serde_json does it: 2^63 wraps to i64::MIN, which is right.
        None if negative => (significand <= 1 << 63).then(|| Number::Int((significand as i64).wrapping_neg())),
        None => i64::try_from(significand).ok().map(Number::Int),
        Some(decimals) => {
            if digits > 18 || significand > 1 << 53 {
                return None;
            }
            let magnitude = significand as f64 / *POW10.get(decimals)?;
            Some(Number::Float(if negative { -magnitude } else { magnitude }))
        }
    }
}
