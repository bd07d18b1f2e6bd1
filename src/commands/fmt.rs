//! `mon fmt [--check] PATH...`: canonical formatting.

use std::path::PathBuf;

use mon_compiler::{Diagnostic, DiagnosticKind, Renderer, SourceFile};

use crate::Outcome;
use mon_loader::{rule_files, LoadError};

#[derive(clap::Args)]
pub struct Args {
    /// Rule files or directories (searched for `.mon` files).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Change nothing; list the files that are not formatted and exit 1 if any.
    #[arg(long)]
    check: bool,
}

pub fn run(args: Args) -> Outcome {
    let mut files = Vec::new();
    for path in &args.paths {
        if path.is_dir() {
            match rule_files(path, usize::MAX) {
                Ok(found) => files.extend(found),
                Err(e) => return Outcome::Usage(e.to_string()),
            }
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Outcome::Usage(LoadError::Missing(path.clone()).to_string());
        }
    }
    if files.is_empty() {
        return Outcome::Usage(LoadError::NoRules.to_string());
    }
    let mut problems = false;
    for path in files {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => return Outcome::Usage(format!("cannot read {}: {e}", path.display())),
        };
        match mon_grammar::format(&text) {
            Err(errors) => {
                problems = true;
                let source = SourceFile { path: path.display().to_string(), text };
                let diagnostics: Vec<Diagnostic> = errors
                    .into_iter()
                    .map(|e| Diagnostic {
                        kind: DiagnosticKind::Syntax(e.kind),
                        file: 0,
                        span: e.span,
                        related: Vec::new(),
                    })
                    .collect();
                eprint!("{}", Renderer { sources: std::slice::from_ref(&source) }.human(&diagnostics, false));
            }
            Ok(formatted) if formatted == text => {}
            Ok(formatted) => {
                if args.check {
                    problems = true;
                    say!("{}", path.display());
                } else if let Err(e) = std::fs::write(&path, formatted) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    problems = true;
                }
            }
        }
    }
    if problems {
        Outcome::Problems
    } else {
        Outcome::Ok
    }
}
