//! The fast decoder and the reference (serde_json) give the same `Decoded`
//! for every line: generated envelopes, good and broken, with escapes,
//! unicode, numbers at the edges, duplicate keys, nulls, missing and extra
//! members, any order, whitespace and trailing garbage. Values are compared
//! by their `Debug` text too, so that `-0.0` and `0.0` differ.
//!
//! A second test makes sure the usual lines do take the fast path, so
//! that the differential test is not comparing the reference with itself.

use mon_compiler::ir::Program;
use mon_compiler::{compile, NoSchemas, SourceFile};
use mon_runtime::{Decoded, Decoder};
use proptest::prelude::*;

const RULES: &str = r#"
    event trade { trade_id: string, region: enum { EMEA, AMER }, notional: float, qty: int,
                  trade_date: date, booked_at: timestamp, urgent: bool, wait: duration?,
                  note: string?, trader: string pii }
    event ack { trade_id: string, status: enum { ACK, NACK }, lag: int? }
    workflow w { key trade_id; start t: trade; step a: ack after t within 5m }
"#;

fn program() -> Program {
    let sources = vec![SourceFile { path: "t.mon".into(), text: RULES.into() }];
    compile(&sources, mon_stdlib::registry(), &NoSchemas).program.expect("compiles")
}

/// Both decoders on one line, and the fast path alone where it answers.
fn assert_same(decoder: &Decoder, line: &str) -> Result<(), TestCaseError> {
    let reference = decoder.decode_reference(line);
    let decoded = decoder.decode(line);
    prop_assert_eq!(&decoded, &reference, "line: {}", line);
    prop_assert_eq!(format!("{decoded:?}"), format!("{reference:?}"), "line: {}", line);
    Ok(())
}

/// String literals, already JSON-encoded: plain text, unicode, every escape
/// (a surrogate pair, a lone surrogate), a raw control character.
fn string_literal() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        200 => "[a-zA-Z0-9 _.:-]{0,12}",
        1 => Just("é日本🙂".to_string()),
        1 => Just(r#"\""#.to_string()),
        1 => Just(r"\\".to_string()),
        1 => Just(r"\/".to_string()),
        1 => Just(r"\n\t\r\b\f".to_string()),
        1 => Just(r"\u00e9".to_string()),
        1 => Just(r"\ud83d\ude00".to_string()),
        1 => Just(r"\ud800".to_string()),
        1 => Just(r"\x".to_string()),
        1 => Just("\u{1}".to_string()),
        1 => Just("\u{7f}".to_string()),
    ];
    prop::collection::vec(piece, 0..4).prop_map(|pieces| format!("\"{}\"", pieces.concat()))
}

/// Number texts, grammatical or not, around every edge of serde_json's
/// conversions.
fn number_literal() -> impl Strategy<Value = String> {
    const EDGES: &[&str] = &[
        "0",
        "-0",
        "1",
        "-1",
        "0.0",
        "-0.0",
        "01",
        "1.",
        ".5",
        "-",
        "+1",
        "1e400",
        "-1e400",
        "1e-400",
        "1E5",
        "1e+5",
        "1.5e3",
        "2.5E-3",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "-9223372036854775809",
        "18446744073709551615",
        "18446744073709551616",
        "9007199254740992",
        "9007199254740993",
        "9007199254740993.0",
        "900719925474099.3",
        "123456789012345678",
        "1234567890123456789",
        "999999999999999999",
        "-999999999999999999",
        "0.30000000000000004",
        "0.1234567890123456789",
        "17976931348623157e292",
        "1.7976931348623157e308",
        "5e-324",
        "1e22",
        "1e23",
        "0.0000000000000000000001",
        "NaN",
        "Infinity",
        "1_000",
    ];
    prop_oneof![
        3 => prop::sample::select(EDGES).prop_map(str::to_string),
        2 => any::<i64>().prop_map(|i| i.to_string()),
        2 => (any::<i32>(), 0u32..1_000_000, 1usize..7).prop_map(|(w, f, n)| {
            let fraction = format!("{f:06}");
            format!("{w}.{}", &fraction[..n])
        }),
        1 => (any::<u64>(), 1usize..20).prop_map(|(digits, cut)| {
            let text = digits.to_string();
            let cut = cut.min(text.len());
            format!("{}.{}", &text[..cut], &text[cut..].trim_end_matches('.')).trim_end_matches('.').to_string()
        }),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| f.to_string()),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:e}")),
    ]
}

fn date_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        20 => (1970i32..2100, 1u32..13, 1u32..29).prop_map(|(y, m, d)| format!("\"{y:04}-{m:02}-{d:02}\"")),
        1 => prop::sample::select(&["\"2026-02-30\"", "\"2024-02-29\"", "\"2026-3-2\"", "\"20260302\"", "\"2026-03-02 \"", "\"+2026-03-02\""][..])
            .prop_map(str::to_string),
    ]
}

fn timestamp_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        20 => (0i64..4_102_444_800_000).prop_map(|ms| format!("\"{}\"", mon_stdlib::time::format_rfc3339(ms))),
        2 => prop::sample::select(
            &[
                "\"2026-03-02T08:00:00Z\"", "\"2026-03-02t08:00:00z\"", "\"2026-03-02T08:00:00.1Z\"",
                "\"2026-03-02T08:00:00.123456789Z\"", "\"2026-03-02T08:00:00+05:30\"", "\"2026-03-02T08:00:00-00:00\"",
                "\"2026-03-02T23:59:60Z\"", "\"2026-03-02 08:00:00Z\"", "\"2026-03-02T08:00:00\"", "\"2026-03-02T24:00:00Z\"",
                "\"2026-02-29T08:00:00Z\"", "\"2026-03-02T08:00:00.Z\"", "\"2026-03-02T08:00:00+0530\"", "\"x\"",
            ][..],
        )
        .prop_map(str::to_string),
    ]
}

/// Any JSON-ish value: scalars, nested values, and a few broken ones.
fn any_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => string_literal(),
        3 => number_literal(),
        1 => prop::sample::select(&["true", "false", "null", "tru", "nul", "[]", "[1,\"a\",null]", "{}", "{\"a\":{\"b\":1}}", "{\"a\":1", "[", "\"unterminated"][..])
            .prop_map(str::to_string),
    ]
}

/// A value for a declared field: mostly one of its type, sometimes anything.
fn field_value(ty: &'static str) -> BoxedStrategy<String> {
    let typed: BoxedStrategy<String> = match ty {
        "string" => string_literal().boxed(),
        "int" | "duration" => {
            prop_oneof![20 => any::<i64>().prop_map(|i| i.to_string()), 1 => number_literal()].boxed()
        }
        "float" => prop_oneof![
            20 => (any::<i32>(), 0u32..1000).prop_map(|(w, f)| format!("{w}.{f}")),
            1 => number_literal(),
        ]
        .boxed(),
        "bool" => prop::sample::select(&["true", "false"][..]).prop_map(str::to_string).boxed(),
        "date" => date_literal().boxed(),
        "timestamp" => timestamp_literal().boxed(),
        "region" => prop_oneof![
            20 => prop::sample::select(&["\"EMEA\"", "\"AMER\""][..]),
            1 => prop::sample::select(&["\"APAC\"", "\"emea\""][..]),
        ]
        .prop_map(str::to_string)
        .boxed(),
        "status" => prop_oneof![20 => prop::sample::select(&["\"ACK\"", "\"NACK\""][..]), 1 => Just("\"ack\"")]
            .prop_map(str::to_string)
            .boxed(),
        _ => unreachable!("no such field type in RULES"),
    };
    prop_oneof![80 => typed, 1 => Just("null".to_string()), 1 => any_literal()].boxed()
}

const TRADE: &[(&str, &str)] = &[
    ("trade_id", "string"),
    ("region", "region"),
    ("notional", "float"),
    ("qty", "int"),
    ("trade_date", "date"),
    ("booked_at", "timestamp"),
    ("urgent", "bool"),
    ("wait", "duration"),
    ("note", "string"),
    ("trader", "string"),
];
const ACK: &[(&str, &str)] = &[("trade_id", "string"), ("status", "status"), ("lag", "int")];

/// `"name":value` members in some order, some left out, some given twice,
/// some extra.
fn members(declared: &'static [(&'static str, &'static str)]) -> BoxedStrategy<Vec<(String, String)>> {
    let fields: Vec<BoxedStrategy<Option<(String, String)>>> = declared
        .iter()
        .map(|&(name, ty)| {
            let key = name.to_string();
            prop::option::weighted(0.99, field_value(ty).prop_map(move |v| (format!("\"{key}\""), v))).boxed()
        })
        .collect();
    let extra = prop::collection::vec(
        (
            prop_oneof![Just("\"extra\"".to_string()), Just("\"trade\\u005fid\"".to_string()), string_literal()],
            any_literal(),
        ),
        0..2,
    );
    (fields, extra, any::<bool>(), prop::bool::weighted(0.1), any::<u64>())
        .prop_map(|(fields, extra, shuffle, duplicate, seed)| {
            let mut members: Vec<(String, String)> = fields.into_iter().flatten().collect();
            if duplicate && !members.is_empty() {
                let twice = members[seed as usize % members.len()].clone();
                members.push(twice);
            }
            members.extend(extra);
            if shuffle {
                rotate_by(&mut members, seed);
            }
            members
        })
        .boxed()
}

/// A deterministic reordering from a seed (proptest shrinks the seed).
fn rotate_by<T>(items: &mut [T], seed: u64) {
    let mut state = seed;
    for i in (1..items.len()).rev() {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        items.swap(i, (state >> 33) as usize % (i + 1));
    }
}

const SEPARATORS: &[&str] = &["", "", "", " ", "\n", "\t", "\r\n  "];

fn object(members: &[(String, String)], spaces: &[&str]) -> String {
    let space = |i: usize| spaces[i % spaces.len()];
    let body: Vec<String> = members
        .iter()
        .enumerate()
        .map(|(i, (k, v))| format!("{}{k}{}:{}{v}{}", space(i), space(i + 1), space(i + 2), space(i + 3)))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn envelope() -> impl Strategy<Value = String> {
    // The type, and `data` mostly of that type.
    let typed_data = prop_oneof![
        24 => (Just("\"trade\"".to_string()), prop_oneof![20 => members(TRADE), 1 => members(ACK)]),
        12 => (Just("\"ack\"".to_string()), prop_oneof![20 => members(ACK), 1 => members(TRADE)]),
        4 => (Just("\"heartbeat\"".to_string()), members(ACK)),
        1 => (Just("\"tr\\u0061de\"".to_string()), members(TRADE)),
        1 => (any_literal(), members(TRADE)),
    ];
    let attribute = |weight: f64, value: BoxedStrategy<String>| prop::option::weighted(weight, value);
    (
        typed_data
            .prop_flat_map(|(t, m)| (Just(t), Just(m), prop::collection::vec(prop::sample::select(SEPARATORS), 1..5))),
        attribute(
            0.9,
            prop_oneof![38 => Just("\"1.0\"".to_string()), 1 => Just("\"0.3\"".to_string()), 1 => any_literal()]
                .boxed(),
        ),
        attribute(
            0.9,
            prop_oneof![38 => "\"[a-z0-9-]{1,30}\"".boxed(), 1 => string_literal().boxed(), 1 => any_literal().boxed()]
                .boxed(),
        ),
        attribute(0.97, prop_oneof![38 => timestamp_literal().boxed(), 1 => any_literal().boxed()].boxed()),
        (
            // No `data`; "" for the generated object; or another value in its place.
            prop::option::weighted(0.98, prop_oneof![39 => Just(String::new()), 1 => any_literal()]),
            prop::bool::weighted(0.2),
        ),
        (
            prop::collection::vec(prop::sample::select(SEPARATORS), 1..5),
            any::<u64>(),
            any::<bool>(),
            prop::bool::weighted(0.1),
        ),
        (
            prop::sample::select(&["", "", "", " ", "\n", " \t"][..]),
            prop_oneof![
                40 => Just(""),
                1 => prop::sample::select(&[" \r\n", "x", "}", ",", "{}", "\u{feff}"][..]),
            ],
        ),
        prop::option::weighted(0.05, any::<prop::sample::Index>()),
    )
        .prop_map(
            |(
                (type_name, data, data_spaces),
                version,
                id,
                time,
                (data_instead, extra),
                (spaces, seed, shuffle, duplicate),
                (lead, trail),
                cut,
            )| {
                let data_text = match data_instead {
                    Some(other) if !other.is_empty() => other,
                    Some(_) => object(&data, &data_spaces),
                    None => String::new(),
                };
                let mut attributes: Vec<(String, String)> = Vec::new();
                if let Some(v) = version {
                    attributes.push(("\"specversion\"".into(), v));
                }
                attributes.push(("\"type\"".into(), type_name));
                if let Some(id) = id {
                    attributes.push(("\"id\"".into(), id));
                }
                attributes.push(("\"source\"".into(), "\"gen\"".into()));
                if let Some(t) = time {
                    attributes.push(("\"time\"".into(), t));
                }
                if !data_text.is_empty() {
                    attributes.push(("\"data\"".into(), data_text));
                }
                if extra {
                    attributes.push(("\"ext\"".into(), "{\"a\":[1,2]}".into()));
                }
                if duplicate {
                    let twice = attributes[seed as usize % attributes.len()].clone();
                    attributes.push(twice);
                }
                if shuffle {
                    rotate_by(&mut attributes, seed);
                }
                let line = format!("{lead}{}{trail}", object(&attributes, &spaces));
                match cut {
                    // A line cut anywhere (on a character boundary).
                    Some(index) => {
                        let at = index.index(line.len() + 1);
                        let at = (0..=at).rev().find(|&i| line.is_char_boundary(i)).unwrap_or(0);
                        line[..at].to_string()
                    }
                    None => line,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn fast_and_reference_decoders_agree_on_generated_envelopes(line in envelope()) {
        let program = program();
        assert_same(&Decoder::new(&program), &line)?;
    }

    /// Any text at all, mostly not JSON.
    #[test]
    fn fast_and_reference_decoders_agree_on_arbitrary_text(line in "\\PC{0,80}") {
        let program = program();
        assert_same(&Decoder::new(&program), &line)?;
    }
}

#[test]
fn usual_lines_take_the_fast_path() {
    let program = program();
    let decoder = Decoder::new(&program);
    let usual = [
        r#"{"specversion":"1.0","type":"trade","id":"e1","source":"s","time":"2026-03-02T08:00:01.250Z","data":{"trade_id":"T1","region":"EMEA","notional":1234.5,"qty":-3,"trade_date":"2026-03-02","booked_at":"2026-03-02T08:00:00+01:00","urgent":false,"note":null,"trader":"Alice"}}"#,
        r#"{ "type": "ack", "id": "e2", "time": "2026-03-02T08:00:01Z", "data": { "status": "NACK", "trade_id": "T1", "other": 1e5 } }"#,
        r#"{"specversion":"1.0","type":"heartbeat","id":"h1","time":"2026-03-02T08:00:01Z","data":{"beat":1}}"#,
        r#"{"type":"heartbeat","id":"h2","time":"2026-03-02T08:00:01Z"}"#,
    ];
    for line in usual {
        let fast = decoder.decode_fast(line);
        assert!(fast.is_some(), "the fast path gave up on {line}");
        assert_eq!(fast, Some(decoder.decode_reference(line)), "{line}");
    }
    let kinds: Vec<bool> = usual.iter().map(|l| matches!(decoder.decode(l), Decoded::Event(_))).collect();
    assert_eq!(kinds, [true, true, false, false]);
}

/// The generator reaches both paths: a share of its lines is decoded by the
/// fast path (events and ignored types), and a share is rejected.
#[test]
fn generated_envelopes_exercise_both_paths() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let program = program();
    let decoder = Decoder::new(&program);
    let mut runner = TestRunner::deterministic();
    let (mut fast_events, mut fast_ignored, mut rejected, total) = (0, 0, 0, 2000);
    for _ in 0..total {
        let line = envelope().new_tree(&mut runner).expect("a line").current();
        match decoder.decode_fast(&line) {
            Some(Decoded::Event(_)) => fast_events += 1,
            Some(_) => fast_ignored += 1,
            None => {}
        }
        let reference = decoder.decode_reference(&line);
        rejected += usize::from(matches!(reference, Decoded::Rejected(_)));
    }
    eprintln!("of {total}: {fast_events} fast events, {fast_ignored} fast ignored, {rejected} rejected");
    assert!(fast_events * 10 >= total, "only {fast_events} of {total} generated lines took the fast path");
    assert!(fast_ignored > 0, "no generated line of an ignored type took the fast path");
    assert!(rejected * 5 >= total, "only {rejected} of {total} generated lines were rejected");
}
