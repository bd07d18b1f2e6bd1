//! The `mon` command line: check, format and compile rules; run their tests,
//! replay recorded events through them, run the service (`mon run`, and
//! `mon demo` on the examples), and measure the engine.
//!
//! Each subcommand lives in `commands/`, and the event generator behind
//! `mon demo` in `demo/`; this file only parses arguments and maps outcomes
//! to exit codes: 0 success, 1 the rules (or the files) have problems, 2 the
//! command itself was wrong (bad flag, missing path).

/// `println!` that does not panic when stdout is closed (`mon test | head`):
/// output nobody reads is not an error worth a crash.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` with the same courtesy.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

mod commands;
mod demo;
mod rng;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "mon", version, about = "Monitor business event flows: rules that say what must happen, by when")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and type-check rules; print every problem found.
    ///
    /// A directory that directly holds `.mon` files is one program (with
    /// the `.mon` files of its subdirectories); a directory without any is
    /// searched for such program directories, so `mon check examples/`
    /// checks each example on its own. Files named together form one program.
    Check(commands::check::Args),
    /// Compile rules and print the program: `ir` (readable), `json`, or `dot` (Graphviz).
    Compile(commands::compile::Args),
    /// Format rule files in place, or with `--check` list those that are not formatted.
    Fmt(commands::fmt::Args),
    /// Run the `test` blocks of the rules on a virtual clock.
    Test(commands::test::Args),
    /// Replay recorded events and print the records mon would have made.
    Simulate(commands::simulate::Args),
    /// Run the service: consume events (Kafka or HTTP), keep state in sled, publish records.
    Run(commands::run::Args),
    /// Run the examples as a live demo: no Kafka, no configuration.
    Demo(commands::demo::Args),
    /// Measure the engine on a synthetic trade lifecycle stream.
    Bench(commands::bench::Args),
    /// Run the language server on stdin/stdout (for editors).
    Lsp(commands::lsp::Args),
    /// Create, list and revoke the HTTP API's tokens (`[auth] enabled`).
    Token(commands::token::Args),
    /// Rule versions on a running service: push, validate, diff, dry-run, activate, rollback, log.
    Rules(commands::rules::Args),
}

/// How a command ended; `Usage` maps to exit code 2.
pub enum Outcome {
    Ok,
    Problems,
    Usage(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `MON_JIT=off`: every engine this process makes interprets its
    // conditions (records are the same; docs/notes/performance.md).
    match std::env::var("MON_JIT").as_deref() {
        Ok("off") => mon_runtime::engine::set_jit_default(false),
        Ok("on") | Err(_) => {}
        Ok(other) => {
            eprintln!("error: MON_JIT is `{other}`; expected `on` or `off`");
            return ExitCode::from(2);
        }
    }
    // The parser, checker and interpreter recurse over expressions. The
    // parser refuses nesting past 128 levels (E111), which needs about
    // 1 MiB in a debug build; 64 MiB leaves room for every command's own
    // frames (tests/cli_limits.rs runs the binary on 100k-deep input).
    let worker = std::thread::Builder::new().stack_size(64 << 20).spawn(move || run(cli));
    let outcome = match worker.map(|w| w.join()) {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => return ExitCode::from(101),
        Err(e) => Outcome::Usage(format!("cannot start: {e}")),
    };
    match outcome {
        Outcome::Ok => ExitCode::SUCCESS,
        Outcome::Problems => ExitCode::from(1),
        Outcome::Usage(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Outcome {
    match cli.command {
        Command::Check(args) => commands::check::run(args),
        Command::Compile(args) => commands::compile::run(args),
        Command::Fmt(args) => commands::fmt::run(args),
        Command::Test(args) => commands::test::run(args),
        Command::Simulate(args) => commands::simulate::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Demo(args) => commands::demo::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Lsp(args) => commands::lsp::run(args),
        Command::Token(args) => commands::token::run(args),
        Command::Rules(args) => commands::rules::run(args),
    }
}
