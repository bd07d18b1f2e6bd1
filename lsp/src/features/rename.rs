//! Rename an event type, a workflow, a stage (within its workflow), a
//! calendar or a channel in every file of the program, from the name index.
//!
//! A step without a name (`then E`, `expect E`) takes its event's name as
//! its stage's: renaming the stage adds `as NEW` after the event, and
//! renaming the event keeps the stage's old name with `NEW as E`, so the
//! `after E` and `expect stage w.E` elsewhere still resolve.

use std::collections::{HashMap, HashSet};

use lsp_types::{PrepareRenameResponse, TextEdit, Uri, WorkspaceEdit};
use mon_grammar::ast::Span;

use crate::convert::LineIndex;
use crate::index::{Index, Occurrence, Symbol};
use crate::workspace::Analysis;

/// Words that start a declaration: not reserved by the grammar, but a
/// name spelled like one in column 0 would read as a new declaration.
const DECLARATION_WORDS: &[&str] = &["event", "workflow", "channel", "calendar", "maintenance", "test"];

fn kind(symbol: &Symbol) -> Result<(&'static str, &str), String> {
    match symbol {
        Symbol::Event(name) => Ok(("event", name)),
        Symbol::Workflow(name) => Ok(("workflow", name)),
        Symbol::Stage { stage, .. } => Ok(("stage", stage)),
        Symbol::Calendar(name) => Ok(("calendar", name)),
        Symbol::Channel(name) => Ok(("channel", name)),
        Symbol::Field { .. } => Err(
            "renaming fields is not supported: only events, workflows, stages, calendars and channels can be renamed"
                .into(),
        ),
        Symbol::Zone(_) => Err("a time zone is not a name of this program and cannot be renamed".into()),
    }
}

/// The renamable symbol under `offset`, or why there is none.
fn symbol_at(index: &Index, file: usize, offset: usize) -> Result<&Occurrence, String> {
    let occurrence = index
        .at(file, offset)
        .ok_or_else(|| "there is no event, workflow, stage, calendar or channel name here to rename".to_string())?;
    kind(&occurrence.symbol)?;
    Ok(occurrence)
}

pub fn prepare(analysis: &Analysis, file: usize, offset: usize) -> Result<PrepareRenameResponse, String> {
    let index = Index::build(&analysis.compilation.files);
    let occurrence = symbol_at(&index, file, offset)?;
    let (_, name) = kind(&occurrence.symbol)?;
    let text = analysis.sources.get(file).map_or("", |s| s.text.as_str());
    Ok(PrepareRenameResponse::RangeWithPlaceholder {
        range: LineIndex::new(text).range(occurrence.span),
        placeholder: name.to_string(),
    })
}

/// Why `name` cannot be a name, if it cannot.
pub fn invalid_name(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Some(format!(
            "`{name}` is not a valid name: a name is a letter or `_` followed by letters, digits or `_`"
        ));
    }
    if mon_grammar::reserved_words().contains(&name) {
        return Some(format!("`{name}` is a reserved word and cannot be used as a name"));
    }
    if DECLARATION_WORDS.contains(&name) {
        return Some(format!("`{name}` is a keyword that starts a declaration and cannot be used as a name"));
    }
    None
}

pub fn rename(analysis: &Analysis, file: usize, offset: usize, new_name: &str) -> Result<WorkspaceEdit, String> {
    if let Some(why) = invalid_name(new_name) {
        return Err(why);
    }
    let index = Index::build(&analysis.compilation.files);
    let occurrence = symbol_at(&index, file, offset)?;
    let symbol = occurrence.symbol.clone();
    let (what, old) = kind(&symbol)?;
    let old = old.to_string();
    if old == new_name {
        return Ok(WorkspaceEdit::default());
    }
    let renamed = match &symbol {
        Symbol::Event(_) => Symbol::Event(new_name.into()),
        Symbol::Workflow(_) => Symbol::Workflow(new_name.into()),
        Symbol::Stage { workflow, .. } => Symbol::Stage { workflow: workflow.clone(), stage: new_name.into() },
        Symbol::Calendar(_) => Symbol::Calendar(new_name.into()),
        Symbol::Channel(_) => Symbol::Channel(new_name.into()),
        Symbol::Field { .. } | Symbol::Zone(_) => return Err(format!("cannot rename `{old}`")),
    };
    if index.declarations(&renamed).next().is_some() {
        let article = if what == "event" { "an" } else { "a" };
        return Err(format!("there is already {article} {what} named `{new_name}`"));
    }
    // Spans where a step without a name declares its stage with its event's name.
    let unnamed_steps: HashSet<(usize, Span)> = index
        .occurrences
        .iter()
        .filter(|o| o.is_decl && matches!(o.symbol, Symbol::Stage { .. }))
        .filter(|o| {
            index
                .occurrences
                .iter()
                .any(|e| matches!(e.symbol, Symbol::Event(_)) && e.file == o.file && e.span == o.span)
        })
        .map(|o| (o.file, o.span))
        .collect();
    let mut seen = HashSet::new();
    let mut changes: HashMap<Uri, Vec<TextEdit>> = HashMap::new();
    for o in index.references(&symbol) {
        if !seen.insert((o.file, o.span)) {
            continue;
        }
        let (Some(uri), Some(source)) = (analysis.uris.get(o.file), analysis.sources.get(o.file)) else {
            continue;
        };
        let lines = LineIndex::new(&source.text);
        let unnamed = unnamed_steps.contains(&(o.file, o.span));
        let edit = match &symbol {
            // `then E` becomes `then E as NEW`.
            Symbol::Stage { .. } if unnamed => {
                let end = lines.position(o.span.end);
                TextEdit::new(lsp_types::Range::new(end, end), format!(" as {new_name}"))
            }
            // `then E` becomes `then NEW as E`: the stage keeps its name.
            Symbol::Event(_) if unnamed => TextEdit::new(lines.range(o.span), format!("{new_name} as {old}")),
            _ => TextEdit::new(lines.range(o.span), new_name.to_string()),
        };
        changes.entry(uri.clone()).or_default().push(edit);
    }
    for edits in changes.values_mut() {
        edits.sort_by_key(|e| (e.range.start.line, e.range.start.character));
    }
    Ok(WorkspaceEdit { changes: Some(changes), ..WorkspaceEdit::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(invalid_name("trade_done").is_none());
        assert!(invalid_name("_x1").is_none());
        assert!(invalid_name("1x").is_some());
        assert!(invalid_name("a-b").is_some());
        assert!(invalid_name("").is_some());
        assert!(invalid_name("where").is_some_and(|m| m.contains("reserved")));
        assert!(invalid_name("workflow").is_some());
    }
}
