//! Completion from the text before the cursor and the program's names.
//!
//! While typing, the line being written rarely parses, so the context is
//! read from the words before the cursor on its line and from which block
//! the cursor is in (by counting braces); the candidates come from the
//! syntax trees of the whole program.

use lsp_types::{CompletionItem, CompletionItemKind};
use mon_compiler::ir::{ChannelKind, Handling, Outcome, Severity};
use mon_grammar::ast::{EventBody, File, Item, StmtKind};

use crate::index::find_event;

const TOP_LEVEL: &[&str] = &["event", "workflow", "channel", "calendar", "maintenance", "test"];
const WORKFLOW_STATEMENTS: &[&str] = &[
    "key",
    "group by",
    "cohort",
    "timezone",
    "status",
    "on",
    "depends on",
    "retain",
    "aging",
    "open",
    "severity",
    "runbook",
    "notify",
    "renotify",
    "escalate after",
    "grace",
    "expect",
    "then",
    "then maybe",
    "start",
    "step",
];
const STEP_CLAUSES: &[&str] =
    &["where", "after", "within", "by", "warn", "not before", "every", "except", "open", "as"];
const TEST_STATEMENTS: &[&str] = &[
    "event",
    "at",
    "advance to",
    "advance by",
    "expect",
    "expect alert",
    "expect no",
    "expect status",
    "expect stage",
    "expect count",
];
/// What may follow `expect` in a test; the record kinds come from the IR's
/// vocabulary, so a new kind is offered without an edit here.
const EXPECTATIONS: &[&str] = &["alert", "no", "status", "stage", "count"];
const FIELD_TYPES: &[&str] = &["string", "int", "float", "bool", "date", "timestamp", "duration", "enum"];
const DAYS: &[&str] = &["day", "weekday", "weekend", "mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn items(words: impl IntoIterator<Item = impl Into<String>>, kind: CompletionItemKind) -> Vec<CompletionItem> {
    words
        .into_iter()
        .map(|w| CompletionItem { label: w.into(), kind: Some(kind), ..CompletionItem::default() })
        .collect()
}

fn names(files: &[File], pick: impl Fn(&Item) -> Option<&str>) -> Vec<String> {
    let mut out: Vec<String> =
        files.iter().flat_map(|f| f.items.iter().filter_map(&pick)).map(str::to_string).collect();
    out.sort();
    out.dedup();
    out
}

/// The keyword that opened the innermost unclosed `{` before `offset`
/// (`None` at top level). Braces in strings and comments are skipped.
fn enclosing_block(text: &str) -> Option<String> {
    let mut stack: Vec<String> = Vec::new();
    let mut line_start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\n' => line_start = i + 1,
            '"' => {
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' | '\n' => break,
                        _ => {}
                    }
                }
            }
            '/' if chars.peek().is_some_and(|(_, c)| *c == '/') => {
                for (j, c) in chars.by_ref() {
                    if c == '\n' {
                        line_start = j + 1;
                        break;
                    }
                }
            }
            '{' => {
                let line = text.get(line_start..i).unwrap_or("");
                let word = if line.contains("enum") { "enum" } else { line.split_whitespace().next().unwrap_or("") };
                stack.push(word.to_string());
            }
            '}' => {
                stack.pop();
            }
            _ => {}
        }
    }
    stack.pop()
}

/// The event named by a step written on `line`: `expect E`, `then [maybe] E`,
/// `start N: E`, `step N: E`.
fn step_event(line: &str) -> Option<&str> {
    let line = line.trim_start();
    let rest = if let Some(rest) = line.strip_prefix("expect ") {
        rest
    } else if let Some(rest) = line.strip_prefix("then ") {
        rest.trim_start().strip_prefix("maybe ").unwrap_or(rest)
    } else if line.starts_with("start ") || line.starts_with("step ") {
        line.split_once(':')?.1
    } else {
        return None;
    };
    rest.split_whitespace().next()
}

fn fields_of(files: &[File], event: &str) -> Vec<String> {
    match find_event(files, event) {
        Some((_, e)) => match &e.body {
            EventBody::Fields(fields) => fields.iter().map(|f| f.name.name.clone()).collect(),
            EventBody::Schema(_) => Vec::new(),
        },
        None => Vec::new(),
    }
}

/// The stage names of the workflow around `offset` in `file`, or of every
/// workflow of the file when the cursor's workflow did not parse.
fn stages(files: &[File], file: usize, offset: usize) -> Vec<String> {
    let Some(f) = files.get(file) else {
        return Vec::new();
    };
    let workflows: Vec<_> = f
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Workflow(w) => Some(w),
            _ => None,
        })
        .collect();
    let inside: Vec<_> = workflows.iter().filter(|w| w.span.start <= offset && offset <= w.span.end).collect();
    let chosen: Vec<_> = if inside.is_empty() { workflows.iter().collect() } else { inside };
    let mut out: Vec<String> = chosen
        .iter()
        .flat_map(|w| {
            w.stmts.iter().filter_map(|s| match &s.kind {
                StmtKind::Step(step) => Some(step.step_name().name.clone()),
                _ => None,
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

pub fn complete(files: &[File], file: usize, text: &str, offset: usize) -> Vec<CompletionItem> {
    let offset = crate::convert::floor_char_boundary(text, offset);
    let before = text.get(..offset).unwrap_or("");
    let line = before.rsplit('\n').next().unwrap_or("");
    // Drop the word being typed: the client filters by it.
    let typed_len = line
        .chars()
        .rev()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '/')
        .map(char::len_utf8)
        .sum::<usize>();
    let head = &line[..line.len() - typed_len];
    let words: Vec<&str> = head.split_whitespace().collect();
    let last = words.last().copied().unwrap_or("");
    let events = || names(files, |i| matches!(i, Item::Event(_)).then(|| i.name().0));

    // `step.` in a `where`: the fields of that step's event.
    if let Some(qualifier) = head.strip_suffix('.') {
        let stage: String = qualifier
            .chars()
            .rev()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let event = files.iter().find_map(|f| {
            f.items.iter().find_map(|i| match i {
                Item::Workflow(w) => w.stmts.iter().find_map(|s| match &s.kind {
                    StmtKind::Step(step) if step.step_name().name == stage => Some(step.event.name.clone()),
                    _ => None,
                }),
                _ => None,
            })
        });
        return event.map_or_else(Vec::new, |e| items(fields_of(files, &e), CompletionItemKind::FIELD));
    }
    let after_clause = words.iter().rposition(|w| *w == "after");
    match last {
        "expect" | "then" | "maybe" => {
            if enclosing_block(before).as_deref() == Some("test") {
                let kinds = mon_compiler::ir::RecordKind::IN_TESTS.iter().map(|(word, _)| *word);
                return items(EXPECTATIONS.iter().copied().chain(kinds), CompletionItemKind::KEYWORD);
            }
            return items(events(), CompletionItemKind::STRUCT);
        }
        // `escalate after ` takes a duration, not a stage.
        "after" if words.len() >= 2 && words[words.len() - 2] == "escalate" => return Vec::new(),
        "after" | "|" if after_clause.is_some() => {
            return items(stages(files, file, offset), CompletionItemKind::EVENT)
        }
        "event" if enclosing_block(before).as_deref() == Some("test") => {
            return items(events(), CompletionItemKind::STRUCT);
        }
        "timezone" => return zones(),
        "severity" | ">=" | ">" if last == "severity" || words.contains(&"severity") => {
            return items(Severity::ALL.iter().map(|(word, _)| *word), CompletionItemKind::ENUM_MEMBER);
        }
        // `escalate after 15m to ` → a channel.
        "notify" | "to" if last == "notify" || words.contains(&"escalate") => {
            return items(
                names(files, |i| matches!(i, Item::Channel(_)).then(|| i.name().0)),
                CompletionItemKind::INTERFACE,
            )
        }
        "except" => {
            return items(
                names(files, |i| matches!(i, Item::Calendar(_)).then(|| i.name().0)),
                CompletionItemKind::CONSTANT,
            )
        }
        "every" => return items(DAYS.iter().copied(), CompletionItemKind::ENUM_MEMBER),
        "->" => return items(Outcome::WRITTEN.iter().map(|(word, _)| *word), CompletionItemKind::ENUM_MEMBER),
        "on" if words.len() == 1 => {
            return items(["out_of_order", "duplicate", "unexpected"], CompletionItemKind::ENUM_MEMBER)
        }
        "out_of_order" | "duplicate" | "unexpected" => {
            return items(Handling::ALL.iter().map(|(word, _)| *word), CompletionItemKind::ENUM_MEMBER)
        }
        "for" if words.first() == Some(&"maintenance") || words.contains(&"to") => {
            return items(
                names(files, |i| matches!(i, Item::Workflow(_)).then(|| i.name().0)),
                CompletionItemKind::CLASS,
            );
        }
        _ => {}
    }
    if words.len() >= 2 && words[words.len() - 2] == "depends" {
        return items(names(files, |i| matches!(i, Item::Workflow(_)).then(|| i.name().0)), CompletionItemKind::CLASS);
    }
    if words.len() == 2 && words[0] == "channel" {
        return items(ChannelKind::ALL.iter().map(|(word, _)| *word), CompletionItemKind::ENUM_MEMBER);
    }
    // `by 08:00 ` → a zone.
    if words.len() >= 2 && words[words.len() - 2] == "by" && last.contains(':') {
        return zones();
    }
    match enclosing_block(before).as_deref() {
        None => items(TOP_LEVEL.iter().copied(), CompletionItemKind::KEYWORD),
        Some("event") if last.ends_with(':') => items(FIELD_TYPES.iter().copied(), CompletionItemKind::TYPE_PARAMETER),
        Some("workflow") if words.is_empty() => items(WORKFLOW_STATEMENTS.iter().copied(), CompletionItemKind::KEYWORD),
        Some("workflow") => {
            // Inside a step's line: fields of its event (for `where`), then clauses.
            let mut out = Vec::new();
            if words.contains(&"where") {
                if let Some(event) = step_event(head) {
                    out = items(fields_of(files, event), CompletionItemKind::FIELD);
                }
            }
            out.extend(items(STEP_CLAUSES.iter().copied(), CompletionItemKind::KEYWORD));
            out
        }
        Some("test") if words.is_empty() => items(TEST_STATEMENTS.iter().copied(), CompletionItemKind::KEYWORD),
        Some("test") => items(events(), CompletionItemKind::STRUCT),
        _ => Vec::new(),
    }
}

fn zones() -> Vec<CompletionItem> {
    items(chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()), CompletionItemKind::VALUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "channel ops email \"ops@example.com\"\nchannel pager pagerduty secret(\"KEY\")\n\
                        event a { k: string }\nworkflow w {\n  key k\n  expect a\n}\n";

    /// The labels offered at the end of `line`, written as the last line of
    /// workflow `w`.
    fn labels_after(line: &str) -> Vec<String> {
        let text = TEXT.replace("  expect a\n}\n", &format!("  expect a\n{line}"));
        let files = vec![mon_grammar::parse(TEXT).0];
        complete(&files, 0, &text, text.len()).into_iter().map(|i| i.label).collect()
    }

    #[test]
    fn escalate_is_a_workflow_statement_and_its_target_a_channel() {
        assert!(labels_after("  ").iter().any(|l| l == "escalate after"));
        assert_eq!(labels_after("  escalate after "), Vec::<String>::new(), "a duration, not a stage");
        assert_eq!(labels_after("  escalate after 15m to "), ["ops", "pager"]);
        assert_eq!(labels_after("  then a within 5m escalate after 1h to p"), ["ops", "pager"]);
        assert_eq!(labels_after("  notify "), ["ops", "pager"]);
    }
}
