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

#[test]
fn every_rejection_has_its_reason() {
    let program = program();
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "invalid JSON"),
        ("[1, 2]".into(), "the envelope is not a JSON object"),
        (r#"{"type":"trade","id":"x","data":{}}"#.into(), "missing `time`"),
        (r#"{"type":"trade","time":"yesterday","data":{}}"#.into(), "invalid `time`"),
        (r#"{"time":"2026-03-02T08:00:00Z","data":{}}"#.into(), "missing `type`"),
        (
            r#"{"specversion":"2.0","type":"trade","time":"2026-03-02T08:00:00Z","data":{}}"#.into(),
            "unsupported specversion",
        ),
        (r#"{"type":"trade","time":"2026-03-02T08:00:00Z"}"#.into(), "missing `data`"),
        (r#"{"type":"trade","time":"2026-03-02T08:00:00Z","data":"x"}"#.into(), "`data` is not a JSON object"),
        (line(&GOOD.replace(r#""qty":3,"#, "")), "missing required field `qty`"),
        (line(&GOOD.replace(r#""qty":3"#, r#""qty":"3""#)), "field `qty` must be an integer, got a string"),
        (line(&GOOD.replace(r#""qty":3"#, r#""qty":3.5"#)), "field `qty` must be an integer, got a number"),
        (line(&GOOD.replace("EMEA", "LATAM")), "field `region` has unknown value \"LATAM\""),
        (line(&GOOD.replace("2026-03-02\"", "2026-02-30\"")), "field `trade_date` must be a date"),
        (line(&GOOD.replace("2026-03-02T08:00:00Z", "soon")), "field `booked_at` must be an RFC 3339 timestamp"),
        (line(&GOOD.replace(r#""trade_id":"T1""#, r#""trade_id":null"#)), "missing required field `trade_id`"),
    ];
    for (text, reason) in cases {
        let got = rejected(&program, &text);
        assert!(got.starts_with(reason), "{text}\n  expected a reason starting {reason:?}\n  got {got:?}");
    }
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
