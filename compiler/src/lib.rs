//! The mon compiler: from the `.mon` files of a rules directory to a typed,
//! checked [`ir::Program`] and the diagnostics that explain what is wrong.
//!
//! It resolves names across all files, checks types and workflow structure,
//! imports JSON Schemas through a caller-supplied [`SchemaLoader`], and
//! lowers workflows to state machines. It must not do I/O, read the clock
//! or know about the runtime: the CLI, the service and the language server
//! all call [`compile`] with text and get data back. Built-in function
//! signatures come from the caller (`mon-stdlib` sits below this crate).

pub mod builtins;
mod check;
pub mod codes;
pub mod diagnostics;
pub mod dot;
mod expr;
pub mod ir;
pub mod schema;
pub mod suggest;
pub mod time;
pub mod types;

pub use builtins::{Function, Functions, NoFunctions};
pub use diagnostics::{Diagnostic, DiagnosticKind, Level, Renderer, SourceFile};
pub use schema::{NoSchemas, SchemaLoader};

/// The result of compiling a set of files.
pub struct Compilation {
    /// `None` when any error was found; warnings alone keep the program.
    pub program: Option<ir::Program>,
    /// Every problem, sorted by file path and position.
    pub diagnostics: Vec<Diagnostic>,
    /// The checked `test` blocks (empty when there are errors).
    pub tests: Vec<ir::TestCase>,
    /// The syntax trees, for tools that want them (formatter, LSP).
    pub files: Vec<mon_grammar::ast::File>,
}

impl Compilation {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.kind.level() == Level::Error)
    }
}

/// Compiles the given files as one program.
pub fn compile(sources: &[SourceFile], functions: &dyn Functions, schemas: &dyn SchemaLoader) -> Compilation {
    let mut diagnostics = Vec::new();
    let files: Vec<mon_grammar::ast::File> = sources
        .iter()
        .enumerate()
        .map(|(i, source)| {
            let (file, errors) = mon_grammar::parse(&source.text);
            diagnostics.extend(errors.into_iter().map(|e| Diagnostic {
                kind: DiagnosticKind::Syntax(e.kind),
                file: i,
                span: e.span,
                related: Vec::new(),
            }));
            file
        })
        .collect();
    let (program, tests, mut found) = check::Checker::new(sources, &files, functions, schemas).run();
    diagnostics.append(&mut found);
    diagnostics.sort_by(|a, b| {
        (&sources[a.file].path, a.span.start, a.kind.code()).cmp(&(&sources[b.file].path, b.span.start, b.kind.code()))
    });
    diagnostics.dedup();
    let clean = !diagnostics.iter().any(|d| d.kind.level() == Level::Error);
    let program = clean.then_some(program);
    let tests = if clean { tests } else { Vec::new() };
    Compilation { program, diagnostics, tests, files }
}
