//! One module per LSP feature; each takes an analysed program and a
//! position and returns protocol types.

pub mod completion;
pub mod diagnostics;
pub mod folding;
pub mod formatting;
pub mod hover;
pub mod navigation;
pub mod rename;
pub mod semantic;
pub mod symbols;
pub mod words;
