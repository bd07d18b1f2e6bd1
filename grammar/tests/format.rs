//! The formatter's guarantees, tested: formatting is idempotent, the output
//! parses to the same tree (spans aside, and with each step's clauses in
//! canonical order), every comment survives in order, and a file with syntax
//! errors is refused. They are checked on every ```mon block of the spec, on
//! every `.mon` file under `examples/` and `tests/`, on hand-written cases
//! with their expected output, and on random programs.

mod support;

use mon_grammar::ast::{ClauseKind, File, Item, StmtKind};
use mon_grammar::{format, parse};
use proptest::prelude::*;
use support::{repo_mon_files, spec_blocks};

// ---------------------------------------------------------------- helpers

/// The rank of a clause in the formatter's canonical order, restated here so
/// that the test says what order is expected rather than asking the formatter.
fn clause_rank(clause: &ClauseKind) -> u8 {
    match clause {
        ClauseKind::Within(_) => 0,
        ClauseKind::By { .. } => 1,
        ClauseKind::Warn(_) | ClauseKind::WarnAt { .. } => 2,
        ClauseKind::NotBefore(_) | ClauseKind::NotBeforeTime { .. } => 3,
        ClauseKind::Every(_) => 4,
        ClauseKind::Except(_) => 5,
        ClauseKind::Open(_) => 6,
        ClauseKind::Setting(_) => 7,
    }
}

/// What the formatter must preserve of a file: its tree without spans, with
/// clauses in canonical order and `//` comments without trailing blanks.
fn shape(src: &str) -> String {
    let (mut file, errors) = parse(src);
    assert!(errors.is_empty(), "expected no syntax errors: {errors:?}\n{src}");
    normalize(&mut file);
    strip_spans(&format!("{file:#?}"))
}

fn normalize(file: &mut File) {
    for item in &mut file.items {
        if let Item::Workflow(workflow) = item {
            for stmt in &mut workflow.stmts {
                if let StmtKind::Step(step) = &mut stmt.kind {
                    step.clauses.sort_by_key(|c| clause_rank(&c.kind));
                }
            }
        }
    }
    for comment in &mut file.comments {
        if comment.text.starts_with("//") {
            comment.text = comment.text.trim_end().to_string();
        }
    }
}

/// Replaces every `Span { start: N, end: M }` of a `{:#?}` dump with `Span`.
fn strip_spans(debug: &str) -> String {
    let mut out = String::with_capacity(debug.len());
    let mut rest = debug;
    while let Some(i) = rest.find("Span {") {
        out.push_str(&rest[..i]);
        out.push_str("Span");
        let close = rest[i..].find('}').expect("a span closes");
        rest = &rest[i + close + 1..];
    }
    out.push_str(rest);
    out
}

/// The first line where two texts differ, with a little context.
fn first_difference(a: &str, b: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let n = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)).unwrap_or(0);
    let window = |lines: &[&str]| lines[n.saturating_sub(6).min(lines.len())..(n + 3).min(lines.len())].join("\n");
    format!("line {}:\n--- left\n{}\n--- right\n{}", n + 1, window(&a), window(&b))
}

/// Formats `src` and checks the guarantees; returns the formatted text.
fn check(label: &str, src: &str) -> String {
    let once = format(src).unwrap_or_else(|e| panic!("{label}: refused: {e:?}\n{src}"));
    let twice = format(&once).unwrap_or_else(|e| panic!("{label}: output does not parse: {e:?}\n{once}"));
    assert!(twice == once, "{label}: not idempotent\n{}\n--- source\n{src}", first_difference(&once, &twice));
    let (before, after) = (shape(src), shape(&once));
    assert!(
        before == after,
        "{label}: the tree changed\n{}\n--- source\n{src}\n--- formatted\n{once}",
        first_difference(&before, &after)
    );
    once
}

// ---------------------------------------------------------------- corpus

#[test]
fn spec_blocks_format_stably() {
    let blocks = spec_blocks();
    assert!(blocks.len() >= 8, "found only {} mon blocks", blocks.len());
    for (label, block) in &blocks {
        check(label, block);
    }
    // Taken together, as the spec says they form one program.
    let all: String = blocks.iter().map(|(_, b)| b.as_str()).collect::<Vec<_>>().join("\n");
    check("all of LANGUAGE.md", &all);
}

#[test]
fn repo_mon_files_format_stably() {
    let files = repo_mon_files();
    // A moved directory would otherwise leave nothing to check.
    assert!(files.len() >= 100, "found only {} .mon files under examples/ and tests/", files.len());
    for path in files {
        let src = std::fs::read_to_string(&path).expect("a .mon file is readable");
        let label = path.display().to_string();
        let (_, errors) = parse(&src);
        if errors.is_empty() {
            check(&label, &src);
        } else {
            // tests/ui holds files that are broken on purpose.
            assert_eq!(format(&src), Err(errors), "{label}");
        }
    }
}

// ---------------------------------------------------------------- expected output

#[track_caller]
fn assert_formats(src: &str, expected: &str) {
    let formatted = check("case", src);
    assert!(formatted == expected, "got:\n{formatted}\n--- expected:\n{expected}\n---");
}

#[test]
fn messy_workflow_becomes_canonical() {
    assert_formats(
        r#"
workflow   trade_lifecycle{
    key trade_id;group by region,book


  start ingested :trade_ingested
        step acked:     sys3_ack where status=="ACK"    warn 3m within 5m after sent3
  step nacked: sys3_ack where (status == "NACK" or  status=="REJ")after sent3->failure
  then   maybe  booking as booked where amount==ingested.notional*1_000 within 90000ms
  status red when missing>0 or
      failed > 0
}
"#,
        r#"workflow trade_lifecycle {
  key trade_id
  group by region, book

  start ingested: trade_ingested
  step acked: sys3_ack where status == "ACK" after sent3 within 5m warn 3m
  step nacked: sys3_ack where (status == "NACK" or status == "REJ") after sent3 -> failure
  then maybe booking as booked where amount == ingested.notional * 1000 within 1m30s
  status red when missing > 0 or failed > 0
}
"#,
    );
}

#[test]
fn escalate_is_canonical_where_it_is_written() {
    assert_formats(
        "workflow w {\n  key k\n    escalate   after 90m to   pager\n  escalate after 3600s to noc\n  expect a\n  \
         then b escalate after 15m to lead   by 08:00 within 5m\n}\n",
        "workflow w {\n  key k\n  escalate after 1h30m to pager\n  escalate after 1h to noc\n  expect a\n  \
         then b within 5m by 08:00 escalate after 15m to lead\n}\n",
    );
}

#[test]
fn one_liners_stay_on_one_line() {
    assert_formats(
        "event file_loaded {job_id:string,date:date ,rows:int}\n\
         event prices_file { feed: string; region: string? pii }\n\
         workflow eod_prices { expect prices_file by 18:30 America/New_York;then prices_loaded within 5m }\n\
         calendar uk_holidays {2026-12-25,2026-12-28}\n\
         test \"t\" { at 2026-03-02T06:00:00Z; event e {a: 1,b:\"x\"} at 2026-03-02T06:00:01Z }\n\
         workflow empty {}\n",
        "event file_loaded { job_id: string, date: date, rows: int }\n\
         event prices_file { feed: string, region: string? pii }\n\
         workflow eod_prices { expect prices_file by 18:30 America/New_York; then prices_loaded within 5m }\n\
         calendar uk_holidays { 2026-12-25, 2026-12-28 }\n\
         test \"t\" { at 2026-03-02T06:00:00Z; event e { a: 1, b: \"x\" } at 2026-03-02T06:00:01Z }\n\
         workflow empty {}\n",
    );
}

#[test]
fn items_that_share_a_line_get_one_each() {
    assert_formats(
        "event a { x: string }; event b { y: int }\n\
         workflow w { key x; expect a };workflow v { key y; expect b } // v\n",
        "event a { x: string }\n\
         event b { y: int }\n\
         workflow w { key x; expect a }\n\
         workflow v { key y; expect b }  // v\n",
    );
}

#[test]
fn multi_line_items_get_one_child_per_line() {
    assert_formats(
        "event trade { trade_id: string\n  region: enum { EMEA, AMER }, trader: string pii }\n\
         calendar c { 2026-01-01, 2026-01-02,\n 2026-01-03 }\n\
         workflow w {\n}\n",
        "event trade {\n  trade_id: string\n  region: enum { EMEA, AMER }\n  trader: string pii\n}\n\
         calendar c {\n  2026-01-01\n  2026-01-02\n  2026-01-03\n}\n\
         workflow w {}\n",
    );
}

#[test]
fn multi_line_records_and_enums_are_expanded() {
    assert_formats(
        r#"event sys3_reply {
  status: enum {
      ACK, NACK // no partial acks
  }?
}
test "records" {
  event sys3_reply { ref: "T-1",
     status: ACK }   at 2026-03-02T09:00:00Z
  expect stage w for {
ref: "T-1" } acked
}
"#,
        r#"event sys3_reply {
  status: enum {
    ACK
    NACK  // no partial acks
  }?
}
test "records" {
  event sys3_reply {
    ref: "T-1"
    status: ACK
  } at 2026-03-02T09:00:00Z
  expect stage w for {
    ref: "T-1"
  } acked
}
"#,
    );
}

#[test]
fn comments_stay_where_they_were() {
    assert_formats(
        r#"// File header.

/// A file landed.
/// Second doc line.
event file_received {   // fields follow
  job_id: string
      date: date      // business date
  /// The path.
  path: string
  // the end of the fields
}
channel ops email "ops@example.com"   /* trailing block */
workflow w { // about w
  key job_id


  // before the step
  expect file_received where job_id == "A" and // why A
     date > 2026-01-01 by 08:00
  then /* inside */ file_loaded within 30m
  /* before the brace */ }
// the end
"#,
        r#"// File header.

/// A file landed.
/// Second doc line.
event file_received {  // fields follow
  job_id: string
  date: date  // business date
  /// The path.
  path: string
  // the end of the fields
}
channel ops email "ops@example.com"  /* trailing block */
workflow w {  // about w
  key job_id

  // before the step
  // why A
  expect file_received where job_id == "A" and date > 2026-01-01 by 08:00
  /* inside */
  then file_loaded within 30m
  /* before the brace */
}
// the end
"#,
    );
}

#[test]
fn comments_never_separate_a_doc_comment_from_its_item() {
    // Printed before the channel, the block comment would end the doc
    // comment's claim on it; behind the channel the doc is kept.
    assert_formats(
        "/// Pages the desk.\nchannel /* legacy */ pager pagerduty secret(\"K\")\n",
        "/// Pages the desk.\nchannel pager pagerduty secret(\"K\")  /* legacy */\n",
    );
    assert_formats(
        "/// Trades.\nevent /* v2 */ trade {\n  id: string\n}\n",
        "/// Trades.\nevent trade {  /* v2 */\n  id: string\n}\n",
    );
    // Without a doc comment the comment simply goes first.
    assert_formats("channel /* legacy */ pager email \"a\"\n", "/* legacy */\nchannel pager email \"a\"\n");
}

#[test]
fn literals_are_canonical() {
    assert_formats(
        "workflow w {\n  \
           retain 168h\n  \
           aging 60s, 300000ms, 1h0m\n  \
           grace 0ms\n  \
           status red when -x*(1.50+1_000) >= 2.0e3 and s in [\"a\\u{41}\\t\",\"q\\\"\"] and not f(y,08:00:00,8:05:09)\n  \
           expect e by 8:00 Europe/London +1d warn at 7:45 not before 6:30 every mon,tue except h open 6:00 severity low\n\
         }\n",
        "workflow w {\n  \
           retain 7d\n  \
           aging 1m, 5m, 1h\n  \
           grace 0s\n  \
           status red when -x * (1.5 + 1000) >= 2000.0 and s in [\"aA\\t\", \"q\\\"\"] and not f(y, 08:00, 08:05:09)\n  \
           expect e by 08:00 Europe/London +1d warn at 07:45 not before 06:30 every mon, tue except h open 06:00 severity low\n\
         }\n",
    );
}

#[test]
fn blank_lines_are_kept_once_and_dropped_at_block_edges() {
    assert_formats(
        "\n\n// head\n\n\n\nevent a { x: int }\nevent b { y: int }\n\n\n\nworkflow w {\n\n  key x\n\n\n  expect a\n\n}\n\n\n",
        "// head\n\nevent a { x: int }\nevent b { y: int }\n\nworkflow w {\n  key x\n\n  expect a\n}\n",
    );
}

#[test]
fn tests_and_other_items_are_canonical() {
    assert_formats(
        r#"channel pager   pagerduty secret( "K" ),"https://x"
maintenance m every   sat 22:00 to sun 6:00 Europe/London for a,b
maintenance n from 2026-03-02T08:00:00Z to 2026-03-02t09:00:00+01:00
event f from   "schemas/f.json"
test "all the statements" {
  at 2026-03-02T06:00:00Z ; advance to 2026-03-02T08:00:01Z
  advance by 3600s
  event e { a: [1, 2], b: -3.0 } id "x-1"
  expect alert missing w.s for { k: "1" }
  expect late w.s by 300s
  expect status w red
  expect count in_flight w.s >= 1_0
  expect no alert missing w.s
  expect no
}
"#,
        r#"channel pager pagerduty secret("K"), "https://x"
maintenance m every sat 22:00 to sun 06:00 Europe/London for a, b
maintenance n from 2026-03-02T08:00:00Z to 2026-03-02t09:00:00+01:00
event f from "schemas/f.json"
test "all the statements" {
  at 2026-03-02T06:00:00Z
  advance to 2026-03-02T08:00:01Z
  advance by 1h
  event e { a: [1, 2], b: -3.0 } id "x-1"
  expect alert missing w.s for { k: "1" }
  expect late w.s by 5m
  expect status w red
  expect count in_flight w.s >= 10
  expect no alert missing w.s
  expect no
}
"#,
    );
}

#[test]
fn empty_and_comment_only_files() {
    assert_formats("", "");
    assert_formats("\n\n  \n", "");
    assert_formats("\n// only a comment   \n\n\n/* and a block */\n", "// only a comment\n\n/* and a block */\n");
}

#[test]
fn a_file_with_syntax_errors_is_refused() {
    for src in [
        "workflow w {\n  expect\n}\n",
        "event e { a: }\n",
        "workflow w { then x within 5 minutes }\n",
        "event ok { a: int }\nworkflow broken {\n  key a\n",
    ] {
        let (_, errors) = parse(src);
        assert!(!errors.is_empty(), "{src}");
        assert_eq!(format(src), Err(errors));
    }
}

// ---------------------------------------------------------------- random programs

/// A source of choices for the program generator. An exhausted or zeroed
/// tape always makes the plainest choice, so proptest's shrinking (shorter
/// tapes, smaller bytes) shrinks the program too.
struct Tape {
    bytes: Vec<u8>,
    pos: usize,
}

impl Tape {
    fn pick(&mut self, n: usize) -> usize {
        let byte = self.bytes.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        byte as usize % n
    }

    fn one<'s>(&mut self, options: &[&'s str]) -> &'s str {
        options[self.pick(options.len())]
    }

    /// True with roughly `percent` % probability; false on a zero byte.
    fn chance(&mut self, percent: usize) -> bool {
        self.pick(100) + percent >= 100
    }
}

/// A token, and whether a line break may follow it (after a binary
/// operator, an opening bracket or a comma inside brackets).
struct Tok(String, bool);

fn tok(text: &str) -> Tok {
    Tok(text.to_string(), false)
}

fn brk(text: &str) -> Tok {
    Tok(text.to_string(), true)
}

const NAMES: &[&str] = &["a", "trade_id", "sys3_ack", "Book2", "status", "date", "region"];
const DURATIONS: &[&str] = &["5m", "90s", "2h", "1d", "1h30m", "250ms", "90000ms", "0s", "1d0h", "01m"];
const TIMES: &[&str] = &["08:00", "8:05", "17:30:15", "00:00:00", "23:59"];
const ZONES: &[&str] = &["Europe/London", "America/New_York", "UTC", "Etc/GMT+5"];
const TIMESTAMPS: &[&str] = &["2026-03-02T08:00:00Z", "2026-03-02T09:00:00.250+01:00", "2026-12-31t23:59:59z"];

/// Builds a random, valid program with a random layout.
struct Gen {
    tape: Tape,
    out: String,
}

impl Gen {
    fn expr(&mut self, depth: usize, toks: &mut Vec<Tok>) {
        let choice = if depth == 0 { 0 } else { self.tape.pick(7) };
        match choice {
            0 => toks.push(tok(self.tape.one(&[
                "a",
                "status",
                "ingested.notional",
                "42",
                "1_000",
                "3.25",
                "0.5",
                "1.0e21",
                "\"DAILY\"",
                r#""a \"q\" \\ \n \t \u{1F600}""#,
                "true",
                "5m",
                "90000ms",
                "08:00",
                "17:30:15",
                "2026-03-02",
                "2026-03-02T08:00:00Z",
                "ACK",
            ]))),
            1 | 2 => {
                self.expr(depth - 1, toks);
                let op = self
                    .tape
                    .one(&["==", "!=", "<", "<=", ">", ">=", "and", "or", "in", "not in", "+", "-", "*", "/", "??"]);
                toks.push(brk(op));
                self.expr(depth - 1, toks);
            }
            3 => {
                toks.push(tok(self.tape.one(&["not", "-"])));
                self.expr(depth - 1, toks);
            }
            4 => {
                toks.push(brk("("));
                self.expr(depth - 1, toks);
                toks.push(tok(")"));
            }
            5 => {
                toks.push(brk(self.tape.one(&["len(", "min(", "["])));
                let close = if toks.last().is_some_and(|t| t.0 == "[") { "]" } else { ")" };
                for i in 0..self.tape.pick(3) {
                    if i > 0 {
                        toks.push(brk(","));
                    }
                    self.expr(depth - 1, toks);
                }
                toks.push(tok(close));
            }
            _ => {
                toks.push(tok("not"));
                toks.push(brk("("));
                self.expr(depth - 1, toks);
                toks.push(tok(")"));
            }
        }
    }

    fn words(toks: &mut Vec<Tok>, text: &str) {
        toks.extend(text.split(' ').map(tok));
    }

    /// Pushes one step clause; returns whether it ends with a clock time
    /// and no zone, after which `notify` would be read as a zone.
    fn clause(&mut self, toks: &mut Vec<Tok>, after_bare_time: bool) -> bool {
        let d = self.tape.one(DURATIONS);
        let t = self.tape.one(TIMES);
        let z = self.tape.one(ZONES);
        let mut choice = self.tape.pick(17);
        if choice == 13 && after_bare_time {
            choice = 12;
        }
        let text = match choice {
            0 => format!("within {d}"),
            1 => format!("by {t}"),
            2 => format!("by {t} {z}"),
            3 => format!("by {t} +1d"),
            4 => format!("by {t} {z} +2d"),
            5 => format!("warn {d}"),
            6 => format!("warn at {t} {z}"),
            7 => format!("not before {d}"),
            8 => format!("not before {t}"),
            9 => "every mon , tue".to_string(),
            10 => "except uk_holidays".to_string(),
            11 => format!("open {t}"),
            12 => "severity high".to_string(),
            13 => "notify a , b when severity >= high".to_string(),
            14 => format!("renotify {d}"),
            15 => format!("escalate after {d} to pager"),
            _ => "after a | b".to_string(),
        };
        Self::words(toks, &text);
        matches!(choice, 1 | 8)
    }

    fn workflow_stmt(&mut self, toks: &mut Vec<Tok>) {
        let name = self.tape.one(NAMES);
        match self.tape.pick(14) {
            0..=5 => {
                match self.tape.pick(5) {
                    0 => Self::words(toks, &format!("expect {name}")),
                    1 => Self::words(toks, &format!("then {name} as n2")),
                    2 => Self::words(toks, &format!("then maybe {name}")),
                    3 => Self::words(toks, &format!("start s1 : {name}")),
                    _ => Self::words(toks, &format!("step s2 : {name}")),
                }
                if self.tape.chance(50) {
                    toks.push(tok("where"));
                    self.expr(3, toks);
                }
                let mut bare_time = false;
                for _ in 0..self.tape.pick(4) {
                    bare_time = self.clause(toks, bare_time);
                }
                if self.tape.chance(20) {
                    Self::words(toks, self.tape.one(&["-> success", "-> failure"]));
                }
            }
            6 => Self::words(toks, self.tape.one(&["key trade_id", "key a , b", "key t = x.trade_id , y.ref , b"])),
            7 => Self::words(toks, "group by region , book"),
            8 => {
                toks.push(tok("status"));
                toks.push(tok(self.tape.one(&["red", "amber"])));
                toks.push(tok("when"));
                self.expr(3, toks);
            }
            9 => Self::words(toks, self.tape.one(&["on duplicate drop", "depends on up", "cohort date", "open 6:00"])),
            10 => Self::words(toks, &format!("timezone {}", self.tape.one(ZONES))),
            11 => Self::words(toks, &format!("aging {} , {}", self.tape.one(DURATIONS), self.tape.one(DURATIONS))),
            12 => Self::words(toks, &format!("retain {}", self.tape.one(DURATIONS))),
            _ => Self::words(
                toks,
                self.tape.one(&["severity low", "runbook \"https://x/y\"", "grace 30s", "escalate after 1h to pager"]),
            ),
        }
    }

    /// A record literal; `multi_line` lets it span lines.
    fn record(&mut self, toks: &mut Vec<Tok>, depth: usize, multi_line: bool) {
        let expand = multi_line && self.tape.chance(40);
        let count = self.tape.pick(4);
        if expand {
            let mut text = String::from("{");
            let inner = "  ".repeat(depth + 1);
            for i in 0..count {
                let mut value = Vec::new();
                self.expr(2, &mut value);
                let sep = if i + 1 < count && self.tape.chance(50) { "," } else { "" };
                let comment = if self.tape.chance(20) { "  // r" } else { "" };
                text.push_str(&format!("\n{inner}k{i}: {}{sep}{comment}", self.join(&value, false, depth + 1)));
            }
            text.push_str(&format!("\n{}}}", "  ".repeat(depth)));
            toks.push(tok(&text));
        } else {
            toks.push(tok("{"));
            for i in 0..count {
                if i > 0 {
                    toks.push(tok(","));
                }
                toks.push(tok(&format!("k{i}")));
                toks.push(tok(":"));
                self.expr(2, toks);
            }
            toks.push(tok("}"));
        }
    }

    fn test_stmt(&mut self, toks: &mut Vec<Tok>, depth: usize, multi_line: bool) {
        let ts = self.tape.one(TIMESTAMPS);
        match self.tape.pick(9) {
            0 => Self::words(toks, &format!("at {ts}")),
            1 => Self::words(toks, &format!("advance to {ts}")),
            2 => Self::words(toks, &format!("advance by {}", self.tape.one(DURATIONS))),
            3 | 4 => {
                Self::words(toks, "event e");
                self.record(toks, depth, multi_line);
                if self.tape.chance(50) {
                    Self::words(toks, &format!("at {ts}"));
                }
                if self.tape.chance(30) {
                    Self::words(toks, "id \"x-1\"");
                }
            }
            5 => {
                Self::words(toks, "expect alert missing w.s");
                if self.tape.chance(50) {
                    toks.push(tok("for"));
                    self.record(toks, depth, multi_line);
                }
            }
            6 => {
                Self::words(toks, "expect stage w for");
                self.record(toks, depth, multi_line);
                toks.push(tok("s"));
            }
            7 => Self::words(toks, &format!("expect late w.s by {}", self.tape.one(DURATIONS))),
            _ => Self::words(
                toks,
                self.tape.one(&[
                    "expect no",
                    "expect no alert",
                    "expect status w red",
                    "expect count in_flight w == 0",
                ]),
            ),
        }
    }

    fn field(&mut self, toks: &mut Vec<Tok>, depth: usize, multi_line: bool) {
        toks.push(tok(self.tape.one(NAMES)));
        toks.push(tok(":"));
        if self.tape.chance(25) {
            if multi_line && self.tape.chance(50) {
                let inner = "  ".repeat(depth + 1);
                toks.push(tok(&format!("enum {{\n{inner}A,  // first\n{inner}B\n{}}}", "  ".repeat(depth))));
            } else {
                Self::words(toks, "enum { A , B }");
            }
        } else {
            toks.push(tok(self.tape.one(&["string", "int", "float", "date", "timestamp", "duration"])));
        }
        if self.tape.chance(20) {
            toks.push(tok("?"));
        }
        if self.tape.chance(15) {
            toks.push(tok("pii"));
        }
    }

    /// Joins tokens with random blanks and block comments; where a line
    /// break is allowed and `multi_line` is set, sometimes breaks the line.
    fn join(&mut self, toks: &[Tok], multi_line: bool, depth: usize) -> String {
        let mut text = String::new();
        for (i, Tok(word, _)) in toks.iter().enumerate() {
            if i > 0 {
                let previous_breaks = toks[i - 1].1;
                if previous_breaks && multi_line && self.tape.chance(20) {
                    if self.tape.chance(30) {
                        text.push_str(" // op");
                    }
                    text.push('\n');
                    text.push_str(&"  ".repeat(depth + 2));
                } else {
                    text.push_str(self.tape.one(&[" ", " ", " ", "  ", " /* c */ ", "\t"]));
                }
            }
            text.push_str(word);
        }
        text
    }

    fn comment_line(&mut self, depth: usize) -> Option<String> {
        if !self.tape.chance(15) {
            return None;
        }
        let text = self.tape.one(&["// note", "/// doc", "/* block */", "/* two\n   lines */", "//"]);
        Some(format!("{}{text}\n", "  ".repeat(depth)))
    }

    /// `head { children }` on one line or over several.
    fn braced(
        &mut self,
        head: &str,
        count: usize,
        sep: &str,
        child: &mut dyn FnMut(&mut Self, usize, bool) -> Vec<Tok>,
    ) {
        let multi_line = self.tape.chance(60);
        self.out.push_str(head);
        self.out.push_str(self.tape.one(&[" {", "{", " {  "]));
        if !multi_line {
            for i in 0..count {
                if i > 0 {
                    self.out.push_str(sep);
                }
                let toks = child(self, 1, false);
                let text = self.join(&toks, false, 1);
                self.out.push_str(&text);
            }
            self.out.push_str(" }");
            return;
        }
        if self.tape.chance(15) {
            self.out.push_str(" // header");
        }
        self.out.push('\n');
        for i in 0..count {
            if self.tape.chance(15) {
                self.out.push('\n');
            }
            if let Some(comment) = self.comment_line(1) {
                self.out.push_str(&comment);
            }
            self.out.push_str(self.tape.one(&["  ", "  ", "    ", "", "\t"]));
            let toks = child(self, 1, true);
            let text = self.join(&toks, true, 1);
            self.out.push_str(&text);
            if i + 1 < count && self.tape.chance(10) {
                // Two children on one line.
                self.out.push_str(sep);
                continue;
            }
            if self.tape.chance(15) {
                let end = self.tape.one(&["  // trailing", " /* t */", sep.trim()]);
                self.out.push_str(end);
            }
            self.out.push('\n');
        }
        if let Some(comment) = self.comment_line(1) {
            self.out.push_str(&comment);
        }
        self.out.push('}');
    }

    fn item(&mut self) {
        if self.tape.chance(20) {
            self.out.push_str("/// Documented.\n");
        }
        match self.tape.pick(7) {
            0 | 1 => {
                let count = self.tape.pick(4);
                let sep = self.tape.one(&[", ", "; ", ","]);
                self.braced("event e", count, sep, &mut |g, depth, multi_line| {
                    let mut toks = Vec::new();
                    g.field(&mut toks, depth, multi_line);
                    toks
                });
            }
            2 | 3 => {
                let count = self.tape.pick(6);
                self.braced("workflow w", count, "; ", &mut |g, _, _| {
                    let mut toks = Vec::new();
                    g.workflow_stmt(&mut toks);
                    toks
                });
            }
            4 => {
                let count = self.tape.pick(5);
                self.braced("test \"t\"", count, "; ", &mut |g, depth, multi_line| {
                    let mut toks = Vec::new();
                    g.test_stmt(&mut toks, depth, multi_line);
                    toks
                });
            }
            5 => {
                let count = self.tape.pick(4);
                self.braced("calendar c", count, ", ", &mut |g, _, _| {
                    vec![tok(g.tape.one(&["2026-12-25", "2027-01-01"]))]
                });
            }
            _ => {
                let text = self.tape.one(&[
                    "channel pager pagerduty secret ( \"K\" )",
                    "channel ops email \"a@x\" , \"b@x\"",
                    "maintenance m every sat 22:00 to sun 6:00 Europe/London for a , b",
                    "maintenance m every 1:00 to 02:00",
                    "maintenance m from 2026-03-02T08:00:00Z to 2026-03-02T09:00:00Z",
                    "event e from \"schemas/e.json\"",
                ]);
                let toks: Vec<Tok> = text.split(' ').map(tok).collect();
                let text = self.join(&toks, false, 0);
                self.out.push_str(&text);
            }
        }
        if self.tape.chance(15) {
            self.out.push_str(self.tape.one(&["  // after", " /* after */"]));
        }
        self.out.push('\n');
    }

    fn file(bytes: Vec<u8>) -> String {
        let mut g = Gen { tape: Tape { bytes, pos: 0 }, out: String::new() };
        let items = 1 + g.tape.pick(4);
        for _ in 0..items {
            if g.tape.chance(40) {
                g.out.push('\n');
            }
            if let Some(comment) = g.comment_line(0) {
                g.out.push_str(&comment);
            }
            g.item();
        }
        if let Some(comment) = g.comment_line(0) {
            g.out.push_str(&comment);
        }
        g.out
    }
}

/// Small edits that keep most programs valid: blank lines, comments,
/// indentation and blanks between tokens.
fn mutate(src: &str, tape: &mut Tape) -> String {
    let mut out = String::new();
    for line in src.lines() {
        let mut line = line.to_string();
        match tape.pick(12) {
            1 => out.push('\n'),
            2 => out.push_str("// own line\n"),
            3 => line.push_str(" // trailing"),
            4 => line = format!("{}{}", tape.one(&["", "      ", "\t"]), line.trim_start()),
            5 => {
                let spaces: Vec<usize> = line.match_indices(' ').map(|(i, _)| i).collect();
                if !spaces.is_empty() {
                    let at = spaces[tape.pick(spaces.len())];
                    line.replace_range(at..at + 1, tape.one(&["  ", " /* x */ ", "\t"]));
                }
            }
            6 => out.push_str("/* a\n   block */\n"),
            _ => {}
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

proptest! {
    // Failures print their program; a regressions file would land in the repo.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_programs_format_stably(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let src = Gen::file(bytes);
        let (_, errors) = parse(&src);
        prop_assert!(errors.is_empty(), "the generator made an invalid program: {errors:?}\n{src}");
        check("generated", &src);
    }

    #[test]
    fn edited_spec_programs_format_stably(which in any::<prop::sample::Index>(), bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut corpus: Vec<String> = spec_blocks().into_iter().map(|(_, b)| b).collect();
        corpus.extend(repo_mon_files().iter().filter_map(|p| std::fs::read_to_string(p).ok()));
        let src = mutate(which.get(&corpus).as_str(), &mut Tape { bytes, pos: 0 });
        // An edit can break a file (a comment inside a block comment, say);
        // the guarantees are about files that parse.
        if parse(&src).1.is_empty() {
            check("edited", &src);
        }
    }
}

#[test]
fn tricky_inputs_keep_the_guarantees() {
    for src in [
        "\u{FEFF}event a { x: int }\r\n\r\n\r\nworkflow w {\r\n  key x // k\r\n  expect a\r\n}\r\n",
        "event e {\n  /// The id.\n  id /* legacy */ : string\n  kind: enum { /* none yet */ A,\n    /// doc on a value\n    B }? pii // kinds\n}\n",
        "test \"t\" {\n  event e { a: 1,\n    b: 2 // two\n  } /* after */ at 2026-03-02T08:00:00Z\n  expect stage w for { /* k */ k: 1 } s\n}\n",
        "workflow w {\n  status red when a or /// not a doc\n    b\n}\n",
        "/* a block\nevent not_an_item { }\n*/\nevent a { x: int }\n",
        "/// doc\n\nevent a { x: int }\nevent b { /* inside */ y: int } // after b\n",
        "workflow w { /* a\n */ key x }\n",
        "calendar c { 2026-12-25, // Christmas\n  2026-12-26 }\n",
        "workflow w {\n  expect a where x in [1,\n    2, // two\n    3] within 5m\n}\n",
    ] {
        check("tricky", src);
    }
}

#[test]
fn crlf_files_keep_their_line_endings() {
    let src = "event a { x: string }\r\n/* two\r\nlines */\r\nworkflow w {\r\n  key x\r\n    expect a\r\n}\r\n";
    let out = mon_grammar::format(src).expect("formats");
    assert!(out.contains("\r\n") && !out.replace("\r\n", "").contains('\n'), "{out:?}");
    assert_eq!(mon_grammar::format(&out).expect("formats"), out, "idempotent");
}

/// `edited_spec_programs_format_stably` checks only the edits that still
/// parse; this makes sure that is not none of them. The same edits, from a
/// fixed tape, must leave a good share of files parsing, and those keep the
/// formatter's guarantees.
#[test]
fn edits_leave_enough_parsing_files_to_check() {
    let mut corpus: Vec<String> = spec_blocks().into_iter().map(|(_, b)| b).collect();
    corpus.extend(repo_mon_files().iter().filter_map(|p| std::fs::read_to_string(p).ok()));
    let mut state = 0x6d6f_6e5f_6564_6974_u64;
    let mut next = || {
        // A linear congruential step: any fixed spread of bytes will do.
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as u8
    };
    let (mut tried, mut checked) = (0, 0);
    for round in 0..400 {
        let src = &corpus[round % corpus.len()];
        let bytes: Vec<u8> = (0..120).map(|_| next()).collect();
        let edited = mutate(src, &mut Tape { bytes, pos: 0 });
        tried += 1;
        if parse(&edited).1.is_empty() {
            check("edited (fixed tape)", &edited);
            checked += 1;
        }
    }
    assert!(checked * 10 >= tried, "only {checked} of {tried} edited files parse: the property checks almost nothing");
}
