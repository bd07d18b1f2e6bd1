//! `mon check PATH...`: diagnostics for every program found.

use std::io::IsTerminal;
use std::path::PathBuf;

use mon_compiler::{compile, Level, Renderer};

use crate::Outcome;
use mon_loader::{load, FsSchemas};

#[derive(clap::Args)]
pub struct Args {
    /// Rule files or directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// `human` (rendered, on stderr) or `json` (one object per line, on stdout).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Human,
    Json,
}

pub fn run(args: Args) -> Outcome {
    let programs = match load(&args.paths) {
        Ok(p) => p,
        Err(e) => return Outcome::Usage(e.to_string()),
    };
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let (mut errors, mut warnings, mut files) = (0, 0, 0);
    for program in &programs {
        files += program.files.len();
        let compilation = compile(&program.files, mon_stdlib::registry(), &FsSchemas);
        let renderer = Renderer { sources: &program.files };
        for d in &compilation.diagnostics {
            match d.kind.level() {
                Level::Error => errors += 1,
                Level::Warning => warnings += 1,
            }
        }
        match args.format {
            Format::Human => eprint!("{}", renderer.human(&compilation.diagnostics, color)),
            Format::Json => {
                for d in &compilation.diagnostics {
                    say!("{}", serde_json::to_string(&renderer.json(d)).expect("diagnostics serialise"));
                }
            }
        }
    }
    if matches!(args.format, Format::Human) {
        let programs_word = if programs.len() == 1 { "program" } else { "programs" };
        eprintln!(
            "checked {files} file{} in {} {programs_word}: {errors} error{}, {warnings} warning{}",
            plural(files),
            programs.len(),
            plural(errors),
            plural(warnings)
        );
    }
    if errors > 0 {
        Outcome::Problems
    } else {
        Outcome::Ok
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
