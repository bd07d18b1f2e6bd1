//! Turning a Kafka message into the CloudEvents line the decoder reads.
//!
//! The decoder ([`mon_runtime::event`]) reads one envelope shape: CloudEvents 1.0
//! in structured mode (LANGUAGE.md §6). A Kafka message can carry an event in
//! three ways, and [`Envelopes::normalize`] turns each into that shape, or
//! says why it cannot:
//!
//! - **structured mode**: the payload is the whole envelope. It is passed on
//!   unchanged and borrowed: this is the hot path, and the decoder validates
//!   the JSON in its single pass anyway.
//! - **binary mode** (the CloudEvents Kafka protocol binding): the attributes
//!   are in `ce_*` headers, the media type in `content-type`, and the payload
//!   is `data`. Only JSON data is supported.
//! - **mapped**: any other JSON envelope, with a configured JSONPath
//!   (RFC 9535) for each attribute ([`Mapping`]).
//!
//! Everything here is pure: no I/O, no clock, no panics on input.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use serde_json_path::JsonPath;

use mon_runtime::event::reason_about;

/// The default [`EnvelopeConfig::max_bytes`]: 1 MiB.
pub const DEFAULT_MAX_BYTES: usize = 1 << 20;

/// How messages are read: the `[envelope]` section of the service
/// configuration (mon.toml). Every field may be left out (see [`Default`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvelopeConfig {
    /// Largest accepted message in bytes (the payload); default 1 MiB.
    pub max_bytes: usize,
    /// JSON-path mapping for non-CloudEvents envelopes. `None` (the default)
    /// reads CloudEvents, structured or binary mode, told apart by the
    /// headers: binary mode when there is a `ce_type` or `ce_specversion`
    /// header, unless `content-type` names a CloudEvents event format
    /// (`application/cloudevents...`), which means structured mode, as in the
    /// Kafka protocol binding.
    pub mapping: Option<Mapping>,
}

impl Default for EnvelopeConfig {
    /// 1 MiB messages, CloudEvents (no mapping).
    fn default() -> Self {
        EnvelopeConfig { max_bytes: DEFAULT_MAX_BYTES, mapping: None }
    }
}

/// JSONPath expressions (RFC 9535, e.g. `"$.header.eventType"`) locating
/// each attribute in a non-CloudEvents JSON message.
///
/// Each configured path must match exactly one node of every message; `id`,
/// `source`, `type` and `time` must be strings there (an `id` may also be a
/// number, turned into its decimal text). `data` defaults to `"$"`, the whole
/// message; `id` and `source` may be left out (the decoder then makes a
/// content id); `type` and `time` are required.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The event id (a string or a number); none = a content id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The event source (a string); none = no `source` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The event type name (a string).
    #[serde(rename = "type")]
    pub type_: String,
    /// The event time, an RFC 3339 string (checked by the decoder).
    pub time: String,
    /// The event's `data`; none = `"$"`, the whole message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl Mapping {
    /// Parses every path. The error names the attribute and says what is
    /// wrong, e.g. `envelope mapping `time`: "$.[" is not a valid JSONPath
    /// (at position 3, ...)`. Called at start to validate the configuration.
    pub fn validate(&self) -> Result<(), String> {
        self.compile().map(|_| ())
    }

    fn compile(&self) -> Result<Paths, String> {
        let optional = |attribute: &'static str, text: &Option<String>| {
            text.as_deref().map(|t| Path::parse(attribute, t)).transpose()
        };
        Ok(Paths {
            id: optional("id", &self.id)?,
            source: optional("source", &self.source)?,
            type_: Path::parse("type", &self.type_)?,
            time: Path::parse("time", &self.time)?,
            data: optional("data", &self.data)?,
        })
    }
}

/// A prepared reader: the configuration with its paths parsed once.
#[derive(Debug)]
pub struct Envelopes {
    max_bytes: usize,
    mapping: Option<Paths>,
}

/// The parsed paths of a [`Mapping`].
#[derive(Debug)]
struct Paths {
    id: Option<Path>,
    source: Option<Path>,
    type_: Path,
    time: Path,
    /// None = the whole message.
    data: Option<Path>,
}

/// One parsed path, with its text and attribute for the reasons.
#[derive(Debug)]
struct Path {
    attribute: &'static str,
    text: String,
    path: JsonPath,
}

impl Path {
    fn parse(attribute: &'static str, text: &str) -> Result<Path, String> {
        match JsonPath::parse(text) {
            Ok(path) => Ok(Path { attribute, text: text.to_string(), path }),
            Err(e) => Err(format!("envelope mapping `{attribute}`: {text:?} is not a valid JSONPath ({e})")),
        }
    }

    /// The one node the path matches in `message`.
    fn find<'v>(&self, message: &'v Value) -> Result<&'v Value, String> {
        let nodes = self.path.query(message);
        match nodes.len() {
            1 => nodes.first().ok_or_else(|| self.reason("matched nothing")),
            0 => Err(self.reason("matched nothing")),
            n => Err(self.reason(&format!("matched {n} nodes, not one"))),
        }
    }

    /// The string the path matches; a number too when `numbers` (for ids).
    fn find_text<'v>(&self, message: &'v Value, numbers: bool) -> Result<Cow<'v, str>, String> {
        match self.find(message)? {
            Value::String(s) => Ok(Cow::Borrowed(s)),
            Value::Number(n) if numbers => Ok(Cow::Owned(n.to_string())),
            other => Err(self.reason(&format!("is {}, not a string", kind(other)))),
        }
    }

    fn reason(&self, what: &str) -> String {
        format!("mapping: {} ({}) {what}", self.text, self.attribute)
    }
}

/// What a JSON value is, for the reasons.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Envelopes {
    /// Prepares a reader; the error says what is wrong with the
    /// configuration (a zero `max_bytes`, or a mapping path that does not parse).
    pub fn new(config: &EnvelopeConfig) -> Result<Envelopes, String> {
        if config.max_bytes == 0 {
            return Err("envelope max_bytes must be at least 1".into());
        }
        let mapping = config.mapping.as_ref().map(Mapping::compile).transpose()?;
        Ok(Envelopes { max_bytes: config.max_bytes, mapping })
    }

    /// The structured CloudEvents line for one message (its `payload`, none
    /// for a Kafka tombstone, and its `headers` as name and raw value), or
    /// why it cannot be read.
    ///
    /// Structured mode returns the payload unchanged and borrowed (the
    /// decoder validates it). Binary and mapped mode build a new line with
    /// `type` before `data`, the order the decoder reads in one pass.
    pub fn normalize<'a>(&self, payload: Option<&'a [u8]>, headers: &[(&str, &[u8])]) -> Result<Cow<'a, str>, String> {
        let payload = payload.unwrap_or_default();
        // Every reason starts with the event type it is about, as the
        // decoder's do: here only a binary-mode header can tell it.
        let about = |reason: String| reason_about(header_type(headers), &reason);
        if payload.len() > self.max_bytes {
            return Err(about(format!(
                "message of {} bytes is larger than the limit of {}",
                payload.len(),
                self.max_bytes
            )));
        }
        if let Some(paths) = &self.mapping {
            return mapped(paths, payload).map(Cow::Owned);
        }
        if is_binary_mode(headers).map_err(about)? {
            return binary(payload, headers).map(Cow::Owned).map_err(about);
        }
        if payload.is_empty() {
            return Err(about("empty message".into()));
        }
        utf8("payload", payload).map(Cow::Borrowed).map_err(about)
    }
}

/// The `ce_type` header's value, when there is one that can be read.
fn header_type<'h>(headers: &[(&str, &'h [u8])]) -> Option<&'h str> {
    headers
        .iter()
        .find(|(name, _)| *name == "ce_type")
        .and_then(|(_, value)| std::str::from_utf8(value).ok())
        .filter(|t| !t.trim().is_empty())
}

/// The payload or a header value as text, or a reason naming it.
fn utf8<'a>(what: &str, bytes: &'a [u8]) -> Result<&'a str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("{what} is not UTF-8 (invalid byte at {})", e.valid_up_to()))
}

fn header_utf8<'a>(name: &str, bytes: &'a [u8]) -> Result<&'a str, String> {
    std::str::from_utf8(bytes).map_err(|_| format!("header {name} is not UTF-8"))
}

/// The media type of a `content-type` value: lower case, no parameters.
fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

fn is_content_type(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-type")
}

/// Binary mode when there is a `ce_type` or `ce_specversion` header, unless
/// the `content-type` names a CloudEvents event format (structured mode).
/// A batch (`application/cloudevents-batch+json`) is refused.
fn is_binary_mode(headers: &[(&str, &[u8])]) -> Result<bool, String> {
    let mut ce = false;
    for &(name, value) in headers {
        if is_content_type(name) {
            // Compared as bytes: a non-UTF-8 content-type is not a
            // CloudEvents format, and is reported in binary mode if it matters.
            let prefix = b"application/cloudevents";
            let value = value.trim_ascii_start();
            if value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix) {
                if value[prefix.len()..].starts_with(b"-batch") {
                    return Err("batched CloudEvents (application/cloudevents-batch) are not supported".into());
                }
                return Ok(false);
            }
        } else if name == "ce_type" || name == "ce_specversion" {
            ce = true;
        }
    }
    Ok(ce)
}

/// A binary-mode event rendered as a structured one.
#[derive(Serialize)]
struct BinaryLine<'h> {
    specversion: &'h str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'h str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'h str>,
    #[serde(rename = "type")]
    type_: &'h str,
    time: &'h str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'h str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dataschema: Option<&'h str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    datacontenttype: Option<&'h str>,
    #[serde(flatten)]
    extensions: BTreeMap<&'h str, &'h str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'h RawValue>,
}

/// A binary-mode message (CloudEvents Kafka protocol binding) as a
/// structured line.
///
/// The core attributes (`ce_specversion`, `ce_id`, `ce_source`, `ce_type`,
/// `ce_time`, `ce_subject`, `ce_dataschema`) and `content-type` must be
/// UTF-8 and appear at most once; `ce_type` and `ce_time` are required and
/// `specversion` defaults to "1.0" (the decoder checks its value and the
/// time's format). Other `ce_<name>` headers with a valid attribute name
/// (lower-case letters and digits) and a UTF-8 value are passed on as
/// extension attributes (the first of a repeated one); the rest are ignored.
/// An empty payload is an event without `data`.
fn binary(payload: &[u8], headers: &[(&str, &[u8])]) -> Result<String, String> {
    let mut line = BinaryLine {
        specversion: "1.0",
        id: None,
        source: None,
        type_: "",
        time: "",
        subject: None,
        dataschema: None,
        datacontenttype: None,
        extensions: BTreeMap::new(),
        data: None,
    };
    let (mut specversion, mut type_, mut time) = (None, None, None);
    for &(name, value) in headers {
        let slot = if is_content_type(name) {
            &mut line.datacontenttype
        } else {
            let Some(attribute) = name.strip_prefix("ce_") else { continue };
            match attribute {
                "specversion" => &mut specversion,
                "id" => &mut line.id,
                "source" => &mut line.source,
                "type" => &mut type_,
                "time" => &mut time,
                "subject" => &mut line.subject,
                "dataschema" => &mut line.dataschema,
                // `data` is the payload and `datacontenttype` the content-type header.
                "data" | "datacontenttype" => continue,
                _ => {
                    let valid_name = !attribute.is_empty()
                        && attribute.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
                    if let (true, Ok(text)) = (valid_name, std::str::from_utf8(value)) {
                        line.extensions.entry(attribute).or_insert(text);
                    }
                    continue;
                }
            }
        };
        if slot.is_some() {
            return Err(format!("header {name} appears more than once"));
        }
        *slot = Some(header_utf8(name, value)?);
    }
    line.specversion = specversion.unwrap_or("1.0");
    line.type_ = type_.ok_or("binary-mode CloudEvent without the ce_type header")?;
    line.time = time.ok_or("binary-mode CloudEvent without the ce_time header")?;
    if !payload.is_empty() {
        if let Some(content_type) = line.datacontenttype {
            let media = media_type(content_type);
            if !(media == "application/json" || media == "text/json" || media.ends_with("+json")) {
                return Err(format!(
                    "binary-mode data of content-type {content_type:?} is not supported: only JSON data \
                     (application/json or a +json type) is"
                ));
            }
        }
        let text = utf8("payload", payload)?;
        let data: &RawValue =
            serde_json::from_str(text).map_err(|e| format!("binary-mode data is not valid JSON: {e}"))?;
        line.data = Some(data);
    }
    serde_json::to_string(&line).map_err(|e| format!("cannot write the event: {e}"))
}

/// A mapped message rendered as a structured line.
#[derive(Serialize)]
struct MappedLine<'v> {
    specversion: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Cow<'v, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<Cow<'v, str>>,
    #[serde(rename = "type")]
    type_: Cow<'v, str>,
    time: Cow<'v, str>,
    data: &'v Value,
}

/// A non-CloudEvents JSON message read with the mapping's paths.
fn mapped(paths: &Paths, payload: &[u8]) -> Result<String, String> {
    let unknown = |reason: String| reason_about(None, &reason);
    if payload.is_empty() {
        return Err(unknown("empty message".into()));
    }
    let text = utf8("payload", payload).map_err(unknown)?;
    let message: Value = serde_json::from_str(text).map_err(|e| unknown(format!("payload is not valid JSON: {e}")))?;
    let type_ = paths.type_.find_text(&message, false).map_err(unknown)?;
    let about = |reason: String| reason_about(Some(&type_), &reason);
    let line = MappedLine {
        specversion: "1.0",
        id: paths.id.as_ref().map(|p| p.find_text(&message, true)).transpose().map_err(about)?,
        source: paths.source.as_ref().map(|p| p.find_text(&message, false)).transpose().map_err(about)?,
        type_: type_.clone(),
        time: paths.time.find_text(&message, false).map_err(about)?,
        data: match &paths.data {
            Some(path) => path.find(&message).map_err(about)?,
            None => &message,
        },
    };
    serde_json::to_string(&line).map_err(|e| about(format!("cannot write the event: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mon_compiler::ir::{Program, Value as Slot};
    use mon_compiler::{compile, NoSchemas, SourceFile};
    use mon_runtime::event::{Decoded, Decoder};

    const TIME: &str = "2026-03-02T08:00:01.250Z";

    fn program() -> Program {
        let text = "event trade { trade_id: string, qty: int }\nworkflow w { key trade_id; expect trade }\n";
        let sources = vec![SourceFile { path: "t.mon".into(), text: text.into() }];
        compile(&sources, mon_stdlib::registry(), &NoSchemas).program.expect("compiles")
    }

    fn cloudevents() -> Envelopes {
        Envelopes::new(&EnvelopeConfig::default()).expect("default config")
    }

    fn mapping(type_: &str, time: &str) -> Mapping {
        Mapping { id: None, source: None, type_: type_.into(), time: time.into(), data: None }
    }

    fn mapped_reader(mapping: Mapping) -> Envelopes {
        Envelopes::new(&EnvelopeConfig { mapping: Some(mapping), ..EnvelopeConfig::default() }).expect("valid mapping")
    }

    fn json(line: &str) -> Value {
        serde_json::from_str(line).expect("the line is JSON")
    }

    fn rejected(reader: &Envelopes, payload: Option<&[u8]>, headers: &[(&str, &[u8])]) -> String {
        match reader.normalize(payload, headers) {
            Err(reason) => reason,
            Ok(line) => panic!("expected a rejection, got {line}"),
        }
    }

    /// Binary-mode headers for a trade, with `skip` left out.
    fn binary_headers(skip: &str) -> Vec<(&'static str, &'static [u8])> {
        let all: [(&str, &[u8]); 6] = [
            ("ce_specversion", b"1.0"),
            ("ce_id", b"e1"),
            ("ce_source", b"sys2"),
            ("ce_type", b"trade"),
            ("ce_time", TIME.as_bytes()),
            ("content-type", b"application/json"),
        ];
        all.into_iter().filter(|(name, _)| *name != skip).collect()
    }

    #[test]
    fn structured_mode_is_passed_through_borrowed_and_unchanged() {
        let payload =
            format!(r#"{{"specversion":"1.0","type":"trade","id":"e1","time":"{TIME}","data":{{"trade_id":"T1"}}}}"#);
        let bytes = payload.as_bytes();
        let headers: [(&str, &[u8]); 2] = [("content-type", b"application/cloudevents+json"), ("trace", b"\xff")];
        for headers in [&headers[..], &[]] {
            let line = cloudevents().normalize(Some(bytes), headers).expect("accepted");
            let Cow::Borrowed(text) = line else { panic!("structured mode must not copy: {line:?}") };
            assert_eq!(text, payload);
            assert_eq!(text.as_ptr(), bytes.as_ptr(), "the payload itself, not a copy");
        }
        // Not parsed here: invalid JSON is the decoder's to reject.
        let line = cloudevents().normalize(Some(b"{not json"), &[]).expect("passed on");
        assert!(matches!(line, Cow::Borrowed("{not json")));
    }

    #[test]
    fn a_cloudevents_content_type_means_structured_mode_even_with_ce_headers() {
        let payload = br#"{"type":"trade","time":"2026-03-02T08:00:00Z","data":{}}"#;
        let headers: [(&str, &[u8]); 2] =
            [("ce_type", b"other"), ("Content-Type", b"application/cloudevents+json; charset=utf-8")];
        let line = cloudevents().normalize(Some(payload), &headers).expect("accepted");
        assert!(matches!(line, Cow::Borrowed(text) if text.as_bytes() == payload));
        let batch: [(&str, &[u8]); 1] = [("content-type", b"application/cloudevents-batch+json")];
        let reason = rejected(&cloudevents(), Some(b"[]"), &batch);
        assert!(reason.contains("batched CloudEvents"), "{reason}");
    }

    #[test]
    fn binary_mode_round_trips_through_the_decoder() {
        let mut headers = binary_headers("content-type");
        headers.push(("content-type", b"application/json; charset=utf-8"));
        headers.push(("ce_subject", b"desk \"7\"\\\n\t\xc3\xa9"));
        headers.push(("ce_traceparent", b"00-abc-01"));
        headers.push(("ce_Bad_Name", b"x"));
        headers.push(("ce_data", b"{\"evil\":1}"));
        headers.push(("ce_binaryext", b"\xff"));
        headers.push(("x-other", b"y"));
        let payload = br#" {"trade_id":"T1","qty":3} "#;
        let line = cloudevents().normalize(Some(payload), &headers).expect("accepted");
        assert!(matches!(line, Cow::Owned(_)));
        let parsed = json(&line);
        let expected = serde_json::json!({
            "specversion": "1.0", "id": "e1", "source": "sys2", "type": "trade", "time": TIME,
            "subject": "desk \"7\"\\\n\té", "datacontenttype": "application/json; charset=utf-8",
            "traceparent": "00-abc-01", "data": {"trade_id": "T1", "qty": 3},
        });
        assert_eq!(parsed, expected, "{line}");
        assert!(line.find("\"type\"") < line.find("\"data\""), "type before data: {line}");

        let program = program();
        let Decoded::Event(event) = Decoder::new(&program).decode(&line) else { panic!("not an event: {line}") };
        assert_eq!(event.id.as_str(), "e1");
        assert_eq!(event.time, mon_stdlib::time::parse_rfc3339(TIME).expect("time"));
        assert_eq!(event.fields, vec![Slot::String("T1".into()), Slot::Int(3)]);
    }

    #[test]
    fn binary_mode_without_id_specversion_or_content_type() {
        let headers: Vec<_> = binary_headers("ce_id")
            .into_iter()
            .filter(|(name, _)| *name != "ce_specversion" && *name != "content-type")
            .collect();
        let payload = br#"{"trade_id":"T1","qty":3}"#;
        let line = cloudevents().normalize(Some(payload), &headers).expect("accepted");
        let parsed = json(&line);
        assert_eq!(parsed["specversion"], "1.0");
        assert!(parsed.get("id").is_none() && parsed.get("datacontenttype").is_none(), "{line}");
        let program = program();
        let id = |line: &str| match Decoder::new(&program).decode(line) {
            Decoded::Event(e) => e.id.to_string(),
            other => panic!("{other:?}"),
        };
        let again = cloudevents().normalize(Some(payload), &headers).expect("accepted");
        assert!(id(&line).starts_with("sha256:"));
        assert_eq!(id(&line), id(&again), "a redelivered copy gets the same content id");
    }

    #[test]
    fn binary_mode_without_a_payload_has_no_data() {
        for payload in [None, Some(&b""[..])] {
            let line = cloudevents().normalize(payload, &binary_headers("")).expect("accepted");
            assert!(json(&line).get("data").is_none(), "{line}");
            let program = program();
            let Decoded::Rejected(r) = Decoder::new(&program).decode(&line) else { panic!("{line}") };
            assert_eq!(r.reason, "trade: missing `data`");
        }
    }

    #[test]
    fn binary_mode_needs_ce_type_and_ce_time() {
        let data = Some(&br#"{"trade_id":"T1","qty":3}"#[..]);
        assert_eq!(
            rejected(&cloudevents(), data, &binary_headers("ce_type")),
            "type unknown: binary-mode CloudEvent without the ce_type header"
        );
        assert_eq!(
            rejected(&cloudevents(), data, &binary_headers("ce_time")),
            "trade: binary-mode CloudEvent without the ce_time header"
        );
    }

    #[test]
    fn binary_mode_headers_must_be_utf8_and_single() {
        let data = Some(&br#"{"trade_id":"T1","qty":3}"#[..]);
        let mut headers = binary_headers("ce_time");
        headers.push(("ce_time", b"2026-03-02T08:00:00\xffZ"));
        assert_eq!(rejected(&cloudevents(), data, &headers), "trade: header ce_time is not UTF-8");
        let mut headers = binary_headers("");
        headers.push(("ce_type", b"other"));
        assert_eq!(rejected(&cloudevents(), data, &headers), "trade: header ce_type appears more than once");
    }

    #[test]
    fn binary_mode_data_must_be_json() {
        for content_type in [Some(&b"application/json"[..]), Some(b"application/vnd.trade+json"), None] {
            let mut headers = binary_headers("content-type");
            headers.extend(content_type.map(|c| ("content-type", c)));
            let reason = rejected(&cloudevents(), Some(b"trade_id=T1"), &headers);
            assert!(reason.starts_with("trade: binary-mode data is not valid JSON: "), "{reason}");
            let reason = rejected(&cloudevents(), Some(br#"{"a":1} {"b":2}"#), &headers);
            assert!(reason.starts_with("trade: binary-mode data is not valid JSON: "), "{reason}");
            assert_eq!(
                rejected(&cloudevents(), Some(b"{\"a\":\"\xff\"}"), &headers),
                "trade: payload is not UTF-8 (invalid byte at 6)"
            );
        }
    }

    #[test]
    fn binary_mode_refuses_other_content_types() {
        for content_type in [&b"text/plain"[..], b"application/avro", b"application/jsonx"] {
            let mut headers = binary_headers("content-type");
            headers.push(("content-type", content_type));
            let reason = rejected(&cloudevents(), Some(br#"{"trade_id":"T1"}"#), &headers);
            assert!(reason.contains("only JSON data"), "{reason}");
            assert!(reason.contains(std::str::from_utf8(content_type).expect("utf8")), "{reason}");
        }
    }

    #[test]
    fn oversize_messages_are_refused_in_every_mode() {
        let config = |mapping| EnvelopeConfig { max_bytes: 16, mapping };
        let exactly = br#"{"t":"a","x":12}"#;
        assert_eq!(exactly.len(), 16);
        let bigger = br#"{"t":"a","x":123}"#;
        let structured = Envelopes::new(&config(None)).expect("config");
        assert!(structured.normalize(Some(exactly), &[]).is_ok(), "at the limit is accepted");
        let why = "message of 17 bytes is larger than the limit of 16";
        assert_eq!(rejected(&structured, Some(bigger), &[]), format!("type unknown: {why}"));
        assert_eq!(rejected(&structured, Some(bigger), &binary_headers("")), format!("trade: {why}"));
        let mapped = Envelopes::new(&config(Some(mapping("$.t", "$.t")))).expect("config");
        assert_eq!(rejected(&mapped, Some(bigger), &[]), format!("type unknown: {why}"));
        let default = EnvelopeConfig::default();
        assert_eq!(default.max_bytes, 1_048_576);
        let huge = vec![b' '; 2_000_000];
        assert_eq!(
            rejected(&Envelopes::new(&default).expect("config"), Some(&huge), &[]),
            "type unknown: message of 2000000 bytes is larger than the limit of 1048576"
        );
        assert!(Envelopes::new(&EnvelopeConfig { max_bytes: 0, mapping: None }).is_err());
    }

    #[test]
    fn empty_messages_are_refused() {
        let mapped = mapped_reader(mapping("$.t", "$.ts"));
        for payload in [None, Some(&b""[..])] {
            assert_eq!(rejected(&cloudevents(), payload, &[]), "type unknown: empty message");
            assert_eq!(rejected(&mapped, payload, &[]), "type unknown: empty message");
        }
    }

    #[test]
    fn garbage_bytes_are_refused_with_the_position() {
        let garbage = b"{\"type\":\xc3\x28\x00\xff}";
        assert_eq!(
            rejected(&cloudevents(), Some(garbage), &[]),
            "type unknown: payload is not UTF-8 (invalid byte at 8)"
        );
        assert_eq!(
            rejected(&mapped_reader(mapping("$.t", "$.ts")), Some(garbage), &[]),
            "type unknown: payload is not UTF-8 (invalid byte at 8)"
        );
        let reason = rejected(&mapped_reader(mapping("$.t", "$.ts")), Some(b"\x00\x01garbage"), &[]);
        assert!(reason.starts_with("type unknown: payload is not valid JSON: "), "{reason}");
    }

    const NESTED: &str = r#"{"header":{"eventType":"trade","ts":"2026-03-02T08:00:01.250Z","msgId":42,
        "origin":{"system":"sys2"}},"body":{"trade_id":"T1","qty":3}}"#;

    #[test]
    fn mapping_reads_nested_paths() {
        let reader = mapped_reader(Mapping {
            id: Some("$.header.msgId".into()),
            source: Some("$.header.origin.system".into()),
            type_: "$.header.eventType".into(),
            time: "$['header']['ts']".into(),
            data: Some("$.body".into()),
        });
        let line = reader.normalize(Some(NESTED.as_bytes()), &[]).expect("accepted");
        let expected = serde_json::json!({
            "specversion": "1.0", "id": "42", "source": "sys2", "type": "trade", "time": TIME,
            "data": {"trade_id": "T1", "qty": 3},
        });
        assert_eq!(json(&line), expected, "{line}");
        let program = program();
        let Decoded::Event(event) = Decoder::new(&program).decode(&line) else { panic!("not an event: {line}") };
        assert_eq!(event.id.as_str(), "42");
        assert_eq!(event.fields, vec![Slot::String("T1".into()), Slot::Int(3)]);
    }

    #[test]
    fn mapping_data_defaults_to_the_whole_message() {
        let message = r#"{"kind":"trade","at":"2026-03-02T08:00:01.250Z","trade_id":"T1","qty":3}"#;
        let line = mapped_reader(mapping("$.kind", "$.at")).normalize(Some(message.as_bytes()), &[]).expect("accepted");
        let parsed = json(&line);
        assert_eq!(parsed["data"], json(message));
        assert!(parsed.get("id").is_none() && parsed.get("source").is_none(), "{line}");
        let program = program();
        let Decoded::Event(event) = Decoder::new(&program).decode(&line) else { panic!("not an event: {line}") };
        assert!(event.id.starts_with("sha256:"), "a content id");
        assert_eq!(event.fields, vec![Slot::String("T1".into()), Slot::Int(3)]);
    }

    #[test]
    fn mapping_paths_must_match_exactly_one_string() {
        let payload = Some(NESTED.as_bytes());
        let reader = mapped_reader(mapping("$.header.eventType", "$.ts"));
        assert_eq!(rejected(&reader, payload, &[]), "trade: mapping: $.ts (time) matched nothing");
        let reader = mapped_reader(mapping("$.header.eventType", "$..ts"));
        let line = reader.normalize(payload, &[]).expect("a descendant path matching one node is fine");
        assert_eq!(json(&line)["time"], TIME);
        let two = br#"{"items":[{"t":"a"},{"t":"b"}],"ts":"2026-03-02T08:00:00Z"}"#;
        let reader = mapped_reader(mapping("$.items[*].t", "$.ts"));
        assert_eq!(
            rejected(&reader, Some(two), &[]),
            "type unknown: mapping: $.items[*].t (type) matched 2 nodes, not one"
        );
        let reader = mapped_reader(mapping("$.header.msgId", "$.header.ts"));
        assert_eq!(
            rejected(&reader, payload, &[]),
            "type unknown: mapping: $.header.msgId (type) is a number, not a string"
        );
        let reader = mapped_reader(Mapping {
            id: Some("$.header.origin".into()),
            ..mapping("$.header.eventType", "$.header.ts")
        });
        assert_eq!(rejected(&reader, payload, &[]), "trade: mapping: $.header.origin (id) is an object, not a string");
        let reader =
            mapped_reader(Mapping { data: Some("$.nobody".into()), ..mapping("$.header.eventType", "$.header.ts") });
        assert_eq!(rejected(&reader, payload, &[]), "trade: mapping: $.nobody (data) matched nothing");
        let reason = rejected(&reader, Some(b"{\"a\":"), &[]);
        assert!(reason.starts_with("type unknown: payload is not valid JSON: "), "{reason}");
    }

    #[test]
    fn invalid_paths_are_reported_with_their_attribute() {
        let cases = [
            (
                Mapping { id: Some("header.id".into()), ..mapping("$.t", "$.ts") },
                "envelope mapping `id`: \"header.id\"",
            ),
            (Mapping { source: Some("$[".into()), ..mapping("$.t", "$.ts") }, "envelope mapping `source`: \"$[\""),
            (mapping("$.t", "$.["), "envelope mapping `time`: \"$.[\""),
            (mapping("", "$.ts"), "envelope mapping `type`: \"\""),
            (
                Mapping { data: Some("$.body[?".into()), ..mapping("$.t", "$.ts") },
                "envelope mapping `data`: \"$.body[?\"",
            ),
        ];
        for (mapping, start) in cases {
            let reason = mapping.validate().expect_err("invalid");
            assert!(reason.starts_with(start) && reason.contains("is not a valid JSONPath"), "{reason}");
            let config = EnvelopeConfig { mapping: Some(mapping), ..EnvelopeConfig::default() };
            assert_eq!(Envelopes::new(&config).err(), Some(reason));
        }
        assert_eq!(mapping("$.t", "$.ts").validate(), Ok(()));
    }

    #[test]
    fn the_config_has_defaults_and_refuses_unknown_fields() {
        let config: EnvelopeConfig = serde_json::from_str("{}").expect("all defaults");
        assert_eq!(config, EnvelopeConfig::default());
        let config: EnvelopeConfig =
            serde_json::from_str(r#"{"max_bytes":10,"mapping":{"type":"$.t","time":"$.ts"}}"#).expect("valid");
        assert_eq!(config, EnvelopeConfig { max_bytes: 10, mapping: Some(mapping("$.t", "$.ts")) });
        let round: EnvelopeConfig =
            serde_json::to_string(&config).and_then(|t| serde_json::from_str(&t)).expect("round trip");
        assert_eq!(round, config);
        assert!(serde_json::from_str::<EnvelopeConfig>(r#"{"max_byte":10}"#).is_err());
        assert!(
            serde_json::from_str::<EnvelopeConfig>(r#"{"mapping":{"type":"$.t","time":"$.ts","tyme":"$"}}"#).is_err()
        );
        assert!(serde_json::from_str::<EnvelopeConfig>(r#"{"mapping":{"type":"$.t"}}"#).is_err(), "time is required");
    }
}
