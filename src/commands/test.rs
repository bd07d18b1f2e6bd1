//! `mon test PATH...`: run the `test` blocks of each program.

use std::io::IsTerminal;
use std::path::PathBuf;

use mon_compiler::diagnostics::line_col;
use mon_compiler::{compile, Renderer};
use mon_runtime::testing::run_test;

use crate::Outcome;
use mon_loader::{load, FsSchemas};

#[derive(clap::Args)]
pub struct Args {
    /// Rule files or directories (grouped into programs as for `mon check`).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

pub fn run(args: Args) -> Outcome {
    let programs = match load(&args.paths) {
        Ok(p) => p,
        Err(e) => return Outcome::Usage(e.to_string()),
    };
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let (mut passed, mut failed, mut broken) = (0, 0, 0);
    for program_files in &programs {
        let files = &program_files.files;
        let compilation = compile(files, mon_stdlib::registry(), &FsSchemas);
        if !compilation.diagnostics.is_empty() {
            eprint!("{}", Renderer { sources: files }.human(&compilation.diagnostics, color));
        }
        let Some(program) = compilation.program else {
            broken += 1;
            continue;
        };
        for test in &compilation.tests {
            let file = &files[test.file];
            match run_test(&program, mon_stdlib::registry(), test) {
                Ok(()) => {
                    passed += 1;
                    say!("ok    {} :: {}", file.path, test.name);
                }
                Err(failures) => {
                    failed += 1;
                    say!("FAIL  {} :: {}", file.path, test.name);
                    for f in failures {
                        let (line, column) = line_col(&file.text, f.span.0);
                        let source = file.text[f.span.0..f.span.1].trim();
                        say!("      at {}:{line}:{column}: {source}", file.path);
                        say!("        expected {}", f.expected);
                        say!("        found    {}", f.found);
                    }
                }
            }
        }
    }
    let broken_note = if broken > 0 { format!(", {broken} programs did not compile") } else { String::new() };
    say!("{passed} passed, {failed} failed{broken_note}");
    if failed > 0 || broken > 0 {
        Outcome::Problems
    } else {
        Outcome::Ok
    }
}
