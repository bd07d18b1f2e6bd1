//! `mon compile PATH --emit ir|json|dot`: the compiled program.

use std::io::IsTerminal;
use std::path::PathBuf;

use mon_compiler::{compile, dot, ir, Renderer};

use crate::Outcome;
use mon_loader::{load_one, FsSchemas};

#[derive(clap::Args)]
pub struct Args {
    /// A rules directory or files (one program).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = Emit::Ir)]
    emit: Emit,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Emit {
    /// A readable listing of the state machines.
    Ir,
    /// The `Program` as JSON, with its hash.
    Json,
    /// A Graphviz digraph of each workflow.
    Dot,
}

pub fn run(args: Args) -> Outcome {
    let program = match load_one(&args.paths) {
        Ok(p) => p,
        Err(e) => return Outcome::Usage(e.to_string()),
    };
    let files = &program.files;
    let compilation = compile(files, mon_stdlib::registry(), &FsSchemas);
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    eprint!("{}", Renderer { sources: files }.human(&compilation.diagnostics, color));
    let Some(program) = compilation.program else {
        return Outcome::Problems;
    };
    match args.emit {
        Emit::Json => {
            let out = serde_json::json!({ "hash": program.hash(), "program": program });
            say!("{}", serde_json::to_string_pretty(&out).expect("programs serialise"));
        }
        Emit::Dot => say_raw!("{}", dot::render(&program)),
        Emit::Ir => say_raw!("{}", listing(&program)),
    }
    Outcome::Ok
}

fn clock(seconds: u32) -> String {
    format!("{:02}:{:02}", seconds / 3600, seconds / 60 % 60)
}

fn day_offset(days: u32) -> String {
    if days == 0 {
        String::new()
    } else {
        format!(" +{days}d")
    }
}

/// A readable listing of the program: what each workflow waits for, when.
fn listing(program: &ir::Program) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "program {} (ir v{})", program.hash(), program.ir_version);
    for event in &program.events {
        let fields: Vec<String> = event
            .fields
            .iter()
            .map(|f| {
                format!(
                    "{}:{}={:?}{}{}",
                    f.slot,
                    f.name,
                    f.ty,
                    if f.optional { "?" } else { "" },
                    if f.pii { " pii" } else { "" }
                )
            })
            .collect();
        let _ = writeln!(out, "event #{} {} [{}]", event.id, event.name, fields.join(", "));
    }
    for w in &program.workflows {
        let key = match &w.schedule {
            Some(s) => {
                let days: Vec<&str> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| s.weekdays & (1 << i) != 0)
                    .map(|(_, d)| *d)
                    .collect();
                format!("date (scheduled {}, open {})", days.join(","), clock(s.open_seconds))
            }
            None => w.key.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", "),
        };
        let _ = writeln!(
            out,
            "workflow #{} {} key {} zone {} severity {:?}",
            w.id, w.name, key, w.timezone, w.alerting.severity
        );
        for step in &w.steps {
            let event = program.events.get(step.event as usize).map_or("?", |e| e.name.as_str());
            let from: Vec<&str> = step.sources.iter().map(|&s| w.steps[s as usize].name.as_str()).collect();
            let from = if from.is_empty() { "start".to_string() } else { from.join(" | ") };
            let _ = writeln!(
                out,
                "  step #{} {} on {} from {}{}{}{}{}",
                step.id,
                step.name,
                event,
                from,
                if step.optional { " (optional)" } else { "" },
                step.timing
                    .within_ms
                    .map_or(String::new(), |ms| format!(" within {}", mon_grammar::format_duration(ms))),
                step.timing.by.as_ref().map_or(String::new(), |b| format!(
                    " by {} {}{}",
                    clock(b.seconds),
                    b.zone,
                    day_offset(b.day_offset)
                )),
                step.outcome.map_or(String::new(), |o| format!(" -> {o:?}")),
            );
        }
        for stage in &w.stages {
            let next: Vec<&str> = stage.outgoing.iter().map(|&s| w.steps[s as usize].name.as_str()).collect();
            let timers: Vec<&str> = stage.timers.iter().map(|&s| w.steps[s as usize].name.as_str()).collect();
            let _ = writeln!(
                out,
                "  stage {} -> [{}] timers [{}]{}",
                stage.name,
                next.join(", "),
                timers.join(", "),
                stage.closes.map_or(String::new(), |o| format!(" closes {o:?}"))
            );
        }
    }
    for (event, list) in program.candidates.iter().enumerate() {
        if !list.is_empty() {
            let steps: Vec<String> = list
                .iter()
                .map(|c| {
                    let w = &program.workflows[c.workflow as usize];
                    format!("{}.{}", w.name, w.steps[c.step as usize].name)
                })
                .collect();
            let _ = writeln!(out, "route {} -> {}", program.events[event].name, steps.join(", "));
        }
    }
    out
}
