//! Decoding of the event envelope: typed slots, every rejection reason,
//! ignored types, content-hash ids and `pii` fields that never survive.

use mon_compiler::ir::{Program, Value};
use mon_compiler::{compile, NoSchemas, SourceFile};
use mon_runtime::{Decoded, Decoder};

fn program() -> Program {
    let text = r#"
        event trade { trade_id: string, region: enum { EMEA, AMER }, notional: float, qty: int,
                      trade_date: date, booked_at: timestamp, urgent: bool, note: string?, trader: string pii }
        workflow w { key trade_id; expect trade }
    "#;
    let sources = vec![SourceFile { path: "t.mon".into(), text: text.into() }];
    compile(&sources, &NoFunctionsOrStd, &NoSchemas).program.expect("compiles")
}

/// The stdlib is not needed to decode.
struct NoFunctionsOrStd;
impl mon_compiler::Functions for NoFunctionsOrStd {
    fn get(&self, _: &str) -> Option<&dyn mon_compiler::Function> {
        None
    }
    fn names(&self) -> Vec<&'static str> {
        Vec::new()
    }
}

const GOOD: &str = r#""trade_id":"T1","region":"EMEA","notional":1.5,"qty":3,"trade_date":"2026-03-02","booked_at":"2026-03-02T08:00:00Z","urgent":false,"trader":"Alice""#;

fn line(data: &str) -> String {
    format!(r#"{{"specversion":"1.0","type":"trade","id":"e1","time":"2026-03-02T08:00:01.250Z","data":{{{data}}}}}"#)
}

fn rejected(program: &Program, text: &str) -> String {
    match Decoder::new(program).decode(text) {
        Decoded::Rejected(r) => r.reason,
        other => panic!("expected a rejection for {text}, got {other:?}"),
    }
}

#[test]
fn a_valid_event_lands_in_its_slots() {
    let program = program();
    let Decoded::Event(event) = Decoder::new(&program).decode(&line(GOOD)) else { panic!("not an event") };
    assert_eq!(event.id.as_str(), "e1");
    assert_eq!(event.time, mon_stdlib::time::parse_rfc3339("2026-03-02T08:00:01.250Z").expect("time"));
    assert_eq!(event.fields[0], Value::String("T1".into()));
    assert_eq!(event.fields[1], Value::Enum(0));
    assert_eq!(event.fields[2], Value::Float(1.5));
    assert_eq!(event.fields[3], Value::Int(3));
    assert_eq!(event.fields[4], Value::Date(20514));
    assert_eq!(event.fields[6], Value::Bool(false));
    assert_eq!(event.fields[7], Value::Null, "an absent optional field is null");
}

#[test]
fn pii_values_are_replaced_by_a_stable_hash() {
    let program = program();
    let decode = |data: &str| match Decoder::new(&program).decode(&line(data)) {
        Decoded::Event(e) => e.fields[8].clone(),
        other => panic!("{other:?}"),
    };
    let alice = decode(GOOD);
    let Value::String(hashed) = &alice else { panic!("{alice:?}") };
    assert!(hashed.starts_with("pii:") && !hashed.contains("Alice"), "{hashed}");
    assert_eq!(alice, decode(GOOD), "equal values hash equal");
    assert_ne!(alice, decode(&GOOD.replace("Alice", "Bob")));
}

/// Every reason says which event type it is about (or that the type is
/// unknown) and, for a field, which field: a dead letter read at 3 a.m.
/// names what to fix without opening the line.
#[test]
fn every_rejection_names_the_type_and_the_field() {
    let program = program();
    let at = r#""time":"2026-03-02T08:00:00Z""#;
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "type unknown: invalid JSON: key must be a string at column 2"),
        ("[1, 2]".into(), "type unknown: the envelope is not a JSON object"),
        (format!(r#"{{{at},"data":{{}}}}"#), "type unknown: missing `type`"),
        (
            format!(r#"{{"type":3,{at},"data":{{}}}}"#),
            "type unknown: invalid envelope: invalid type: integer `3`, expected a string at column 9",
        ),
        // The type was read before the line broke off: it is named.
        (r#"{"type":"trade","id":"e1","time":"#.into(), "trade: invalid JSON: EOF while parsing a value at column 33"),
        (format!("{} {{}}", line(GOOD)), "trade: invalid JSON: trailing characters at column 239"),
        (r#"{"type":"trade","id":"x","data":{}}"#.into(), "trade: missing `time`"),
        (r#"{"type":"trade","time":"yesterday","data":{}}"#.into(), "trade: invalid `time` \"yesterday\""),
        (
            format!(r#"{{"specversion":"2.0","type":"trade",{at},"data":{{}}}}"#),
            "trade: unsupported specversion \"2.0\"",
        ),
        (format!(r#"{{"type":"trade",{at}}}"#), "trade: missing `data`"),
        (format!(r#"{{"type":"trade",{at},"data":"x"}}"#), "trade: `data` is not a JSON object"),
        (line(&GOOD.replace(r#""qty":3,"#, "")), "trade: missing required field qty"),
        (line(&GOOD.replace(r#""trade_id":"T1""#, r#""trade_id":null"#)), "trade: missing required field trade_id"),
        (line(&GOOD.replace(r#""qty":3"#, r#""qty":"x""#)), "trade.qty: expected int, found string \"x\""),
        (line(&GOOD.replace(r#""qty":3"#, r#""qty":3.5"#)), "trade.qty: expected int, found number 3.5"),
        (line(&GOOD.replace(r#""qty":3"#, r#""qty":true"#)), "trade.qty: expected int, found bool true"),
        (line(&GOOD.replace(r#""qty":3"#, r#""qty":[3]"#)), "trade.qty: expected int, found an array"),
        (
            line(&GOOD.replace(r#""qty":3"#, r#""qty":18446744073709551615"#)),
            "trade.qty: expected int, found number 18446744073709551615 (out of range)",
        ),
        (
            line(&GOOD.replace(r#""notional":1.5"#, r#""notional":{}"#)),
            "trade.notional: expected float, found an object",
        ),
        (
            line(&GOOD.replace(r#""urgent":false"#, r#""urgent":"no""#)),
            "trade.urgent: expected bool, found string \"no\"",
        ),
        (line(&GOOD.replace("EMEA", "LATAM")), "trade.region: expected one of EMEA, AMER, found string \"LATAM\""),
        (
            line(&GOOD.replace("2026-03-02\"", "2026-02-30\"")),
            "trade.trade_date: expected date (YYYY-MM-DD), found string \"2026-02-30\"",
        ),
        (
            line(&GOOD.replace("2026-03-02T08:00:00Z", "soon")),
            "trade.booked_at: expected timestamp (RFC 3339), found string \"soon\"",
        ),
    ];
    let mut wrong = String::new();
    for (text, reason) in cases {
        let got = rejected(&program, &text);
        if got != reason {
            wrong.push_str(&format!("{text}\n  expected {reason:?}\n  got      {got:?}\n"));
        }
    }
    assert!(wrong.is_empty(), "{wrong}");
}

/// A `pii` value is never shown, not even in a rejection; a long value is
/// cut so that one bad field cannot fill the dead-letter log.
#[test]
fn a_reason_never_shows_a_pii_value_and_cuts_a_long_one() {
    let program = program();
    let pii = rejected(&program, &line(&GOOD.replace(r#""trader":"Alice""#, r#""trader":["Alice"]"#)));
    assert_eq!(pii, "trade.trader: expected string, found an array");
    let pii = rejected(&program, &line(&GOOD.replace(r#""trader":"Alice""#, r#""trader":4242"#)));
    assert_eq!(pii, "trade.trader: expected string, found a number (pii: value not shown)");
    let long = "y".repeat(500);
    let got = rejected(&program, &line(&GOOD.replace(r#""qty":3"#, &format!(r#""qty":"{long}""#))));
    assert_eq!(got, format!("trade.qty: expected int, found string \"{}…\"", "y".repeat(40)));
}

/// A line cut short after its `id` still names the event in its record.
#[test]
fn a_broken_line_keeps_the_type_and_id_it_had_before_the_break() {
    let program = program();
    let Decoded::Rejected(r) = Decoder::new(&program).decode(r#"{"type":"trade","id":"e1","time":"#) else {
        panic!("not rejected")
    };
    assert_eq!((r.type_name.as_deref(), r.id.as_deref(), r.time), (Some("trade"), Some("e1"), None));
}

#[test]
fn extra_fields_are_ignored_and_unknown_types_are_not_rejected() {
    let program = program();
    let extra = line(&format!(r#"{GOOD},"extra":{{"nested":[1,2]}}"#));
    assert!(matches!(Decoder::new(&program).decode(&extra), Decoded::Event(_)));
    let other = r#"{"type":"heartbeat","id":"h1","time":"2026-03-02T08:00:00Z","data":{}}"#;
    assert!(
        matches!(Decoder::new(&program).decode(other), Decoded::Ignored { ref type_name, .. } if type_name == "heartbeat")
    );
}

#[test]
fn events_without_an_id_get_a_content_hash() {
    let program = program();
    let text = line(GOOD).replace(r#""id":"e1","#, "");
    let id = |t: &str| match Decoder::new(&program).decode(t) {
        Decoded::Event(e) => e.id.to_string(),
        other => panic!("{other:?}"),
    };
    let first = id(&text);
    assert!(first.starts_with("sha256:") && first.len() == 7 + 32, "{first}");
    assert_eq!(first, id(&text), "the same content gives the same id");
    assert_ne!(first, id(&text.replace("T1", "T2")));
}

#[test]
fn data_may_come_before_type() {
    let program = program();
    let text = format!(r#"{{"data":{{{GOOD}}},"type":"trade","id":"e9","time":"2026-03-02T08:00:00Z"}}"#);
    assert!(matches!(Decoder::new(&program).decode(&text), Decoded::Event(e) if e.id == "e9"));
}
