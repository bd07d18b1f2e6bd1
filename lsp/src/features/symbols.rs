//! Document symbols (the outline) and workspace symbols.

use lsp_types::{DocumentSymbol, Location, SymbolInformation, SymbolKind};
use mon_grammar::ast::{EventBody, File, Item, StmtKind};

use crate::convert::LineIndex;
use crate::workspace::Analysis;

#[allow(deprecated)] // `deprecated` is a required field of the struct, itself deprecated.
fn symbol(
    index: &LineIndex,
    name: &str,
    detail: Option<String>,
    kind: SymbolKind,
    span: mon_grammar::ast::Span,
    name_span: mon_grammar::ast::Span,
    children: Vec<DocumentSymbol>,
) -> DocumentSymbol {
    // The selection range must lie inside the range; a recovered node may
    // not guarantee that, so fall back to the whole span.
    let inside = span.start <= name_span.start && name_span.end <= span.end;
    DocumentSymbol {
        name: if name.is_empty() { "?".into() } else { name.to_string() },
        detail,
        kind,
        tags: None,
        deprecated: None,
        range: index.range(span),
        selection_range: index.range(if inside { name_span } else { span }),
        children: (!children.is_empty()).then_some(children),
    }
}

fn kind_of(item: &Item) -> (SymbolKind, &'static str) {
    match item {
        Item::Event(_) => (SymbolKind::STRUCT, "event"),
        Item::Workflow(_) => (SymbolKind::CLASS, "workflow"),
        Item::Channel(_) => (SymbolKind::INTERFACE, "channel"),
        Item::Calendar(_) => (SymbolKind::CONSTANT, "calendar"),
        Item::Maintenance(_) => (SymbolKind::OBJECT, "maintenance"),
        Item::Test(_) => (SymbolKind::MODULE, "test"),
    }
}

pub fn document(file: &File, text: &str) -> Vec<DocumentSymbol> {
    let index = LineIndex::new(text);
    file.items
        .iter()
        .map(|item| {
            let children = match item {
                Item::Event(e) => match &e.body {
                    EventBody::Fields(fields) => fields
                        .iter()
                        .map(|f| {
                            let ty = text.get(f.ty.span.start..f.ty.span.end).map(str::to_string);
                            symbol(&index, &f.name.name, ty, SymbolKind::FIELD, f.span, f.name.span, Vec::new())
                        })
                        .collect(),
                    EventBody::Schema(_) => Vec::new(),
                },
                Item::Workflow(w) => w
                    .stmts
                    .iter()
                    .filter_map(|s| match &s.kind {
                        StmtKind::Step(step) => {
                            let name = step.step_name();
                            let detail = Some(step.event.name.clone());
                            Some(symbol(&index, &name.name, detail, SymbolKind::EVENT, s.span, name.span, Vec::new()))
                        }
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let (kind, word) = kind_of(item);
            let (name, name_span) = item.name();
            symbol(&index, name, Some(word.into()), kind, item.span(), name_span, children)
        })
        .collect()
}

/// Declarations whose name contains `query` (case-insensitive).
#[allow(deprecated)]
pub fn workspace(analyses: &[&Analysis], query: &str) -> Vec<SymbolInformation> {
    let query = query.to_lowercase();
    let mut out = Vec::new();
    for analysis in analyses {
        for (i, file) in analysis.compilation.files.iter().enumerate() {
            let (Some(uri), Some(source)) = (analysis.uris.get(i), analysis.sources.get(i)) else {
                continue;
            };
            let index = LineIndex::new(&source.text);
            for item in &file.items {
                let (name, span) = item.name();
                if !name.to_lowercase().contains(&query) {
                    continue;
                }
                out.push(SymbolInformation {
                    name: name.to_string(),
                    kind: kind_of(item).0,
                    tags: None,
                    deprecated: None,
                    location: Location::new(uri.clone(), index.range(span)),
                    container_name: None,
                });
            }
        }
    }
    out
}
