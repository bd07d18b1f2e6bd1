//! Go to definition and find references, from the program's name index.

use lsp_types::Location;

use crate::convert::LineIndex;
use crate::index::{Index, Occurrence};
use crate::workspace::Analysis;

fn location(analysis: &Analysis, occurrence: &Occurrence) -> Option<Location> {
    let uri = analysis.uris.get(occurrence.file)?;
    let source = analysis.sources.get(occurrence.file)?;
    Some(Location::new(uri.clone(), LineIndex::new(&source.text).range(occurrence.span)))
}

pub fn definition(analysis: &Analysis, file: usize, offset: usize) -> Vec<Location> {
    let index = Index::build(&analysis.compilation.files);
    let Some(symbol) = index.at(file, offset).map(|o| o.symbol.clone()) else {
        return Vec::new();
    };
    index.declarations(&symbol).filter_map(|o| location(analysis, o)).collect()
}

pub fn references(analysis: &Analysis, file: usize, offset: usize, include_declaration: bool) -> Vec<Location> {
    let index = Index::build(&analysis.compilation.files);
    let Some(symbol) = index.at(file, offset).map(|o| o.symbol.clone()) else {
        return Vec::new();
    };
    let mut seen = std::collections::HashSet::new();
    index
        .references(&symbol)
        .filter(|o| include_declaration || !o.is_decl)
        // An unnamed step's event name is both a use of the event and the
        // stage's declaration: list the place once.
        .filter(|o| seen.insert((o.file, o.span)))
        .filter_map(|o| location(analysis, o))
        .collect()
}
