//! The compiler's diagnostics as LSP diagnostics, and their quick fixes.
//!
//! Words come from `mon_compiler::diagnostics` (message, label, help), so
//! the editor says exactly what `mon check` says.

use std::collections::HashMap;

use lsp_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, Diagnostic, DiagnosticRelatedInformation, DiagnosticSeverity,
    DiagnosticTag, Location, NumberOrString, Range, TextEdit, Uri, WorkspaceEdit,
};
use mon_compiler::{DiagnosticKind, Level};
use mon_grammar::ast::Span;
use mon_grammar::SyntaxErrorKind;

use crate::convert::LineIndex;
use crate::workspace::Analysis;

/// The diagnostics of every file of the program, by URI (files without
/// any are present with an empty list, so stale ones get cleared).
pub fn by_file(analysis: &Analysis) -> HashMap<Uri, Vec<Diagnostic>> {
    let indexes: Vec<LineIndex> = analysis.sources.iter().map(|s| LineIndex::new(&s.text)).collect();
    let mut out: HashMap<Uri, Vec<Diagnostic>> = analysis.uris.iter().map(|u| (u.clone(), Vec::new())).collect();
    for d in &analysis.compilation.diagnostics {
        let (Some(uri), Some(index)) = (analysis.uris.get(d.file), indexes.get(d.file)) else {
            continue;
        };
        let related: Vec<DiagnosticRelatedInformation> = d
            .related
            .iter()
            .filter_map(|r| {
                Some(DiagnosticRelatedInformation {
                    location: Location::new(analysis.uris.get(r.file)?.clone(), indexes.get(r.file)?.range(r.span)),
                    message: r.label.clone(),
                })
            })
            .collect();
        let mut message = d.kind.message();
        let label = d.kind.label();
        if label != "here" {
            message.push_str(&format!(" ({label})"));
        }
        if let Some(help) = d.kind.help() {
            message.push_str(&format!("\nhelp: {help}"));
        }
        let tags = matches!(d.kind, DiagnosticKind::UnreachableStage { .. }).then(|| vec![DiagnosticTag::UNNECESSARY]);
        let diagnostic = Diagnostic {
            range: index.range(d.span),
            severity: Some(match d.kind.level() {
                Level::Error => DiagnosticSeverity::ERROR,
                Level::Warning => DiagnosticSeverity::WARNING,
            }),
            code: Some(NumberOrString::String(d.kind.code().id.to_string())),
            source: Some("mon".into()),
            message,
            related_information: (!related.is_empty()).then_some(related),
            tags,
            ..Diagnostic::default()
        };
        if let Some(list) = out.get_mut(uri) {
            list.push(diagnostic);
        }
    }
    out
}

/// For a "did you mean" diagnostic: the wrong word and its replacement.
fn suggestion(kind: &DiagnosticKind) -> Option<(String, String)> {
    use DiagnosticKind::*;
    let (wrong, right) = match kind {
        UnknownEvent { name, suggestion: Some(s) }
        | UnknownStage { name, suggestion: Some(s), .. }
        | UnknownCalendar { name, suggestion: Some(s) }
        | UnknownChannel { name, suggestion: Some(s) }
        | UnknownTimeZone { name, suggestion: Some(s) }
        | UnknownWorkflow { name, suggestion: Some(s) }
        | UnknownType { name, suggestion: Some(s) }
        | UnknownFunction { name, suggestion: Some(s) } => (name, s),
        UnknownField { field, suggestion: Some(s), .. } | GroupFieldMissing { field, suggestion: Some(s) } => {
            (field, s)
        }
        UnknownEnumValue { value, suggestion: Some(s), .. } => (value, s),
        InvalidChoice { found, suggestion: Some(s), .. } => (found, s),
        Syntax(SyntaxErrorKind::InvalidDuration { written, suggestion: Some(s) }) => (written, s),
        // A misspelled keyword: the compiler's help names the keyword.
        Syntax(SyntaxErrorKind::Unexpected { found, .. }) => {
            let help = kind.help()?;
            let keyword = help.strip_prefix("did you mean `")?.strip_suffix("`?")?.to_string();
            return Some((found.trim_matches('`').to_string(), keyword));
        }
        _ => return None,
    };
    Some((wrong.clone(), right.clone()))
}

/// The part of `span` that holds `wrong`: the span itself when it is just
/// the word, else the word's last occurrence inside it (a span may cover
/// `step.field` when only `field` is misspelled).
fn word_span(text: &str, span: Span, wrong: &str) -> Option<Span> {
    let covered = text.get(span.start..span.end)?;
    if covered == wrong {
        return Some(span);
    }
    let at = covered.rfind(wrong)?;
    Some(Span::new(span.start + at, span.start + at + wrong.len()))
}

/// Quick fixes for the diagnostics of file `uri` that touch `range`.
pub fn code_actions(analysis: &Analysis, uri: &Uri, range: Range) -> Vec<CodeActionOrCommand> {
    let Some(file) = analysis.file_index(uri) else {
        return Vec::new();
    };
    let Some(source) = analysis.sources.get(file) else {
        return Vec::new();
    };
    let index = LineIndex::new(&source.text);
    let (start, end) = (index.offset(range.start), index.offset(range.end));
    let lsp = by_file(analysis).remove(uri).unwrap_or_default();
    let mut actions = Vec::new();
    let ours = analysis.compilation.diagnostics.iter().filter(|d| d.file == file);
    for d in ours {
        if d.span.end < start || d.span.start > end {
            continue;
        }
        let Some((wrong, right)) = suggestion(&d.kind) else {
            continue;
        };
        let Some(target) = word_span(&source.text, d.span, &wrong) else {
            continue;
        };
        let edit = TextEdit::new(index.range(target), right.clone());
        let code = d.kind.code().id;
        let diagnostic = lsp
            .iter()
            .find(|l| l.range == index.range(d.span) && l.code == Some(NumberOrString::String(code.to_string())));
        actions.push(CodeActionOrCommand::CodeAction(CodeAction {
            title: format!("Change to `{right}`"),
            kind: Some(CodeActionKind::QUICKFIX),
            diagnostics: diagnostic.map(|d| vec![d.clone()]),
            edit: Some(WorkspaceEdit::new(HashMap::from([(uri.clone(), vec![edit])]))),
            is_preferred: Some(true),
            ..CodeAction::default()
        }));
    }
    actions
}
