//! Hover: an event's schema and doc comment, a field's type, a step's
//! timing in words, a workflow's summary, a time zone's current offset.

use lsp_types::{Hover, HoverContents, MarkupContent, MarkupKind};
use mon_grammar::ast::{EventBody, Item, StmtKind};

use crate::convert::LineIndex;
use crate::features::words;
use crate::index::{find_event, find_workflow, Index, Symbol};
use crate::workspace::Analysis;

pub fn hover(analysis: &Analysis, file: usize, offset: usize) -> Option<Hover> {
    let files = &analysis.compilation.files;
    let index = Index::build(files);
    let (text, span) = match index.at(file, offset) {
        Some(occurrence) => (describe(analysis, &occurrence.symbol)?, occurrence.span),
        // Not on a name: on a step's keywords or clauses, show its timing.
        None => {
            let (workflow, step) = files.get(file)?.items.iter().find_map(|item| match item {
                Item::Workflow(w) if w.span.start <= offset && offset <= w.span.end => {
                    w.stmts.iter().find_map(|s| match &s.kind {
                        StmtKind::Step(step) if s.span.start <= offset && offset <= s.span.end => Some((w, step)),
                        _ => None,
                    })
                }
                _ => None,
            })?;
            let name = &step.step_name().name;
            (format!("**step `{name}`**\n\n{}", words::step_timing(workflow, step)), step.span)
        }
    };
    let source = analysis.sources.get(file)?;
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent { kind: MarkupKind::Markdown, value: text }),
        range: Some(LineIndex::new(&source.text).range(span)),
    })
}

fn describe(analysis: &Analysis, symbol: &Symbol) -> Option<String> {
    let files = &analysis.compilation.files;
    let slice = |file: usize, span: mon_grammar::ast::Span| -> Option<String> {
        Some(analysis.sources.get(file)?.text.get(span.start..span.end)?.to_string())
    };
    let with_doc = |head: String, doc: &Option<String>| match doc {
        Some(doc) => format!("{head}\n\n---\n\n{}", doc.trim()),
        None => head,
    };
    match symbol {
        Symbol::Event(name) => {
            let (file, event) = find_event(files, name)?;
            let body = match &event.body {
                EventBody::Fields(fields) => {
                    let lines: Vec<String> = fields
                        .iter()
                        .filter_map(|f| {
                            let ty = slice(file, f.ty.span)?;
                            Some(format!("  {}: {ty}{}", f.name.name, if f.pii { " pii" } else { "" }))
                        })
                        .collect();
                    format!("{{\n{}\n}}", lines.join("\n"))
                }
                EventBody::Schema(path) => format!("from \"{}\"", path.value),
            };
            Some(with_doc(format!("```mon\nevent {name} {body}\n```"), &event.doc))
        }
        Symbol::Field { event, field } => {
            let (file, decl) = find_event(files, event)?;
            let EventBody::Fields(fields) = &decl.body else {
                return None;
            };
            let f = fields.iter().find(|f| &f.name.name == field)?;
            let ty = slice(file, f.ty.span)?;
            let pii = if f.pii { " pii" } else { "" };
            Some(with_doc(format!("```mon\n{field}: {ty}{pii}\n```\nfield of event `{event}`"), &f.doc))
        }
        Symbol::Stage { workflow, stage } => {
            let w = find_workflow(files, workflow)?;
            let step = w.stmts.iter().find_map(|s| match &s.kind {
                StmtKind::Step(step) if &step.step_name().name == stage => Some(step),
                _ => None,
            })?;
            Some(format!(
                "**stage `{stage}`** of workflow `{workflow}` (event `{}`)\n\n{}",
                step.event.name,
                words::step_timing(w, step)
            ))
        }
        Symbol::Workflow(name) => {
            let w = find_workflow(files, name)?;
            let steps = w.stmts.iter().filter(|s| matches!(s.kind, StmtKind::Step(_))).count();
            Some(with_doc(format!("```mon\nworkflow {name}\n```\n{steps} steps"), &w.doc))
        }
        Symbol::Calendar(name) => files.iter().enumerate().find_map(|(i, f)| {
            f.items.iter().find_map(|item| match item {
                Item::Calendar(c) if &c.name.name == name => {
                    Some(with_doc(format!("```mon\n{}\n```", slice(i, c.span)?), &c.doc))
                }
                _ => None,
            })
        }),
        Symbol::Channel(name) => files.iter().enumerate().find_map(|(i, f)| {
            f.items.iter().find_map(|item| match item {
                Item::Channel(c) if &c.name.name == name => {
                    Some(with_doc(format!("```mon\n{}\n```", slice(i, c.span)?), &c.doc))
                }
                _ => None,
            })
        }),
        Symbol::Zone(name) => Some(zone(name)),
    }
}

/// A time zone's offset now (the language server may read the clock; the
/// compiler may not).
fn zone(name: &str) -> String {
    match name.parse::<chrono_tz::Tz>() {
        Ok(tz) => {
            let now = chrono::Utc::now().with_timezone(&tz);
            format!("**{name}**: now UTC{} ({})", now.format("%:z"), now.format("%Z"))
        }
        Err(_) => format!("`{name}` is not an IANA time zone"),
    }
}
