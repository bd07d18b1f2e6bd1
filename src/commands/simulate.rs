//! `mon simulate RULES --events FILE|-`: replay recorded events and print
//! what mon would have recorded (LANGUAGE.md §7).
//!
//! Bad input is named, never only counted: a rejected line by `FILE:LINE`
//! (in its record's `line`, and on stderr unless the human records already
//! show it), and the event types no rule declares by name and count, with
//! a "did you mean" for a likely typo. `--strict` makes either fail the
//! run, for CI.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use mon_compiler::{compile, ir, Renderer};
use mon_runtime::aggregates::{self, Slice};
use mon_runtime::alerts::{BookConfig, Notification};
use mon_runtime::dry_run::{notification_json, summary_json};
use mon_runtime::engine::{display, partition_for, SplitKeys};
use mon_runtime::lifecycle::Trace;
use mon_runtime::partitioned::Partitioned;
use mon_runtime::simulate::{NumberedLine, Simulation};
use mon_runtime::{Decoded, Decoder, Kind, Record, State};
use mon_stdlib::time::{format_rfc3339, parse_rfc3339};

use crate::Outcome;
use mon_loader::{load_one, FsSchemas};
use pipeline::Batch;

pub(crate) mod pipeline;

#[derive(clap::Args)]
pub struct Args {
    /// The rules directory (one program).
    rules: PathBuf,
    /// NDJSON envelopes, one per line; `-` reads standard input.
    #[arg(long)]
    events: PathBuf,
    /// Monitoring starts here (RFC 3339); default: the first event's time.
    #[arg(long)]
    from: Option<String>,
    /// Stop here (RFC 3339): later events are not read; timers up to it fire.
    #[arg(long)]
    until: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    format: Format,
    /// Print the lifecycle of the item with this key (compound keys: `A,B`;
    /// scheduled workflows: the date).
    #[arg(long)]
    trace: Option<String>,
    /// Exit with 1 if any line is rejected or has an event type no rule
    /// declares (for CI: a mistyped type would otherwise go unmonitored).
    #[arg(long)]
    strict: bool,
    /// After the records, print the notifications the alert book would have
    /// sent (after dedup, grouping, maintenance and routing), with their
    /// times: a rule change's paging impact, visible in CI.
    #[arg(long)]
    notifications: bool,
    /// With --notifications: how long a new alert group gathers alerts
    /// before its first message, as the service's `[alerts] group_wait`.
    #[arg(long, default_value = "30s", value_parser = duration_flag)]
    group_wait: u64,
    /// With --notifications: the shortest time between two messages of a
    /// group about changes, as the service's `[alerts] group_interval`.
    #[arg(long, default_value = "5m", value_parser = duration_flag)]
    group_interval: u64,
    /// 1: decode and run the engine on one thread; 2: decode on a second
    /// thread, ahead of the engine (the output is the same). Default: 2
    /// when the machine has more than one core and the input is a pipe or
    /// a file of at least 1 MiB.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2))]
    threads: Option<u8>,
    /// Run one engine per input partition, as `mon run` keeps its state
    /// per partition (docs/notes/scaling.md): each event goes to the
    /// partition its `--partition-key` value hashes to, a scheduled
    /// workflow runs on one of them, and events of one item that land on
    /// two partitions are reported. On events in time order the records
    /// are those of one engine; where they differ, a producer's keys would
    /// split items. With --notifications, each engine has its own alert
    /// book, as each partition's task in the service does, so an alert
    /// group gathers one partition's alerts; they are printed partition by
    /// partition, each in time order.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=4096), requires = "partition_key",
          conflicts_with_all = ["trace"])]
    partitions: Option<u16>,
    /// With --partitions: the event field producers key their messages by
    /// (`trade_id`), or several, the first an event has (`trade_id,ref`);
    /// an event with none goes by its id, as an unkeyed message goes to
    /// any partition.
    #[arg(long, requires = "partitions")]
    partition_key: Option<String>,
    /// Off only to measure what the engine's prefetching saves; the output
    /// is the same either way.
    #[arg(long, hide = true, default_value_t = true, action = clap::ArgAction::Set)]
    prefetch: bool,
}

/// Below this size a second thread costs more to start than it saves.
const TWO_THREADS_FROM_BYTES: u64 = 1 << 20;

/// Two threads where they can help: more than one core, and an input that
/// is large (a file of at least 1 MiB) or of unknown size (standard input
/// that is not a terminal, where a person would type one line at a time).
fn default_threads(file_size: Option<u64>) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let large = match file_size {
        Some(bytes) => bytes >= TWO_THREADS_FROM_BYTES,
        None => !std::io::stdin().is_terminal(),
    };
    if cores > 1 && large {
        2
    } else {
        1
    }
}

fn duration_flag(text: &str) -> Result<u64, String> {
    mon_grammar::parse_duration(text).ok_or_else(|| format!("{text:?} is not a duration such as 30s, 5m or 1h30m"))
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// One JSON record per line, then one `summary` line per workflow.
    Ndjson,
    /// One readable line per record.
    Human,
    /// Only the end-of-run table of aggregates and statuses.
    Summary,
    /// With `--trace`: the lifecycle as one JSON document (the structure
    /// the service's `GET /api/v1/workflows/{workflow}/items/{key}` answers
    /// for each of its items).
    Json,
}

pub fn run(args: Args) -> Outcome {
    let rules = match load_one(std::slice::from_ref(&args.rules)) {
        Ok(p) => p,
        Err(e) => return Outcome::Usage(e.to_string()),
    };
    let files = &rules.files;
    let compilation = compile(files, mon_stdlib::registry(), &FsSchemas);
    if !compilation.diagnostics.is_empty() {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        eprint!("{}", Renderer { sources: files }.human(&compilation.diagnostics, color));
    }
    let Some(program) = compilation.program else { return Outcome::Problems };
    if args.format == Format::Json && args.trace.is_none() {
        return Outcome::Usage("--format json prints a lifecycle: give --trace KEY too".into());
    }
    let parse_time = |flag: &str, text: &Option<String>| -> Result<Option<i64>, String> {
        text.as_ref()
            .map(|t| parse_rfc3339(t).ok_or_else(|| format!("--{flag} {t:?} is not an RFC 3339 timestamp")))
            .transpose()
    };
    let (from, until) = match (parse_time("from", &args.from), parse_time("until", &args.until)) {
        (Ok(f), Ok(u)) => (f, u),
        (Err(e), _) | (_, Err(e)) => return Outcome::Usage(e),
    };
    if args.events.is_dir() {
        return Outcome::Usage(format!("{} is a directory, not a file of events", args.events.display()));
    }
    let (reader, size): (Box<dyn Read + Send>, Option<u64>) = if args.events.as_os_str() == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        match std::fs::File::open(&args.events) {
            Ok(f) => {
                let size = f.metadata().ok().map(|m| m.len());
                (Box::new(f), size)
            }
            Err(e) => return Outcome::Usage(format!("cannot read {}: {e}", args.events.display())),
        }
    };
    // How a rejected line is named: `FILE:LINE`.
    let source = if args.events.as_os_str() == "-" { "stdin".to_string() } else { args.events.display().to_string() };
    let functions = mon_stdlib::registry();
    let decoder = Decoder::new(&program);
    let mut bad = BadInput::default();
    let book = BookConfig { group_wait_ms: args.group_wait, group_interval_ms: args.group_interval };
    let mut split = match args.partitions {
        Some(partitions) => {
            let keys = args.partition_key.as_deref().unwrap_or_default();
            match Partitioner::new(&program, keys, partitions) {
                Ok(partitioner) => {
                    let mut run = Partitioned::new(&program, functions, partitions, from, until);
                    if args.notifications {
                        run = run.with_alerts(book);
                    }
                    Some((run, partitioner))
                }
                Err(e) => return Outcome::Usage(e),
            }
        }
        None => None,
    };
    let mut simulation = Simulation::new(&program, functions, from, until);
    if args.notifications {
        simulation = simulation.with_alerts(book);
    }
    let trace_key = args.trace.as_ref().map(|k| k.split(',').map(str::trim).collect::<Vec<_>>().join("\u{1f}"));
    if let Some(key) = &trace_key {
        simulation.trace_key(key);
    }
    let progress = progress_bar(size);
    let threads = args.threads.map_or_else(|| default_threads(size), usize::from);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut records: Vec<Record> = Vec::new();
    let printing = args.format != Format::Summary && args.trace.is_none();
    let mut failed: Option<std::io::Error> = None;
    // The engine's half: the same for one thread or two (see `pipeline`).
    let mut take = |batch: &mut Batch| -> bool {
        let mut lines = batch.lines.iter();
        while let Some(line) = lines.next() {
            let undeclared = match &mut split {
                Some((run, partitioner)) => run.feed_numbered(line, partitioner.partition(line), &mut records),
                None => {
                    if args.prefetch {
                        simulation.prefetch_ahead(lines.as_slice());
                    }
                    simulation.feed_numbered(line, &mut records)
                }
            };
            if let Some(type_name) = undeclared {
                *bad.undeclared.entry(type_name).or_default() += 1;
            }
            bad.note_rejections(&records);
            if printing {
                write_records(&mut out, &records, args.format, &source);
            }
            records.clear();
        }
        if let Some(bar) = &progress {
            bar.set_position(batch.read);
        }
        failed = batch.failed.take();
        failed.is_none()
    };
    if threads > 1 {
        pipeline::decode_ahead(reader, &decoder, &mut take);
    } else {
        pipeline::decode_input(reader, &decoder, |mut batch| take(&mut batch));
    }
    if let Some(e) = failed {
        let _ = out.flush();
        eprintln!("error: reading events: {e}");
        return Outcome::Problems;
    }
    let end = match &mut split {
        Some((run, _)) => run.finish(&mut records),
        None => simulation.finish(&mut records),
    };
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if args.format != Format::Summary && args.trace.is_none() {
        write_records(&mut out, &records, args.format, &source);
    }
    if args.notifications {
        match &split {
            Some((run, _)) => write_notifications(&mut out, run.notifications(), args.format),
            None => write_notifications(&mut out, &simulation.notifications, args.format),
        }
    }
    let now = end.unwrap_or(0);
    match (&trace_key, simulation.engine()) {
        (Some(key), Some(engine)) => {
            let trace = Trace::of(engine, key);
            let _ = match args.format {
                Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&trace).expect("a trace serialises")),
                _ => write!(out, "{}", trace.render()),
            };
        }
        (Some(key), None) if args.format == Format::Json => {
            let trace = Trace { key: key.replace('\u{1f}', ","), items: Vec::new() };
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&trace).expect("a trace serialises"));
        }
        (Some(_), None) => {
            let _ = writeln!(out, "no events were read");
        }
        (None, _) if args.format != Format::Human => {
            let states: Vec<&State> = match &split {
                Some((run, _)) => run.states().collect(),
                None => simulation.state().into_iter().collect(),
            };
            if !states.is_empty() {
                write_summary(&mut out, &program, &states, now, args.format)
            }
        }
        _ => {}
    }
    let _ = out.flush();
    let (lines, rejected, ignored) = match &split {
        Some((run, _)) => (run.lines, run.rejected, run.ignored),
        None => (simulation.lines, simulation.rejected, simulation.ignored),
    };
    eprintln!(
        "read {} line{}: {} rejected, {} of types no rule uses{}",
        lines,
        plural(lines),
        rejected,
        ignored,
        end.map(|e| format!("; clock at {}", format_rfc3339(e))).unwrap_or_default()
    );
    if let Some((run, _)) = &split {
        eprint!("{}", split_report(&program, run));
    }
    // The human records already show each rejected line where it happened.
    let listed = args.format == Format::Human && args.trace.is_none();
    eprint!("{}", bad.report(&source, rejected, !listed, &program));
    if args.strict && (rejected > 0 || ignored > 0) {
        eprintln!(
            "error: --strict: {} rejected line{} and {} event{} of types no rule uses",
            rejected,
            plural(rejected),
            ignored,
            plural(ignored)
        );
        return Outcome::Problems;
    }
    Outcome::Ok
}

/// Which partition a line goes to with `--partitions`: by the value of the
/// key field where the event has one, else by the event's id (or, for a
/// line that is no event, its number).
struct Partitioner {
    /// Per event type: the key field, if the type has one.
    key: Vec<Option<ir::Field>>,
    partitions: u16,
}

impl Partitioner {
    /// `keys`: field names, comma-separated; an error when no event type
    /// has any of them (a typo would spread every item over all partitions).
    fn new(program: &ir::Program, keys: &str, partitions: u16) -> Result<Partitioner, String> {
        let keys: Vec<&str> = keys.split(',').map(str::trim).filter(|k| !k.is_empty()).collect();
        let key: Vec<Option<ir::Field>> = program
            .events
            .iter()
            .map(|e| keys.iter().find_map(|key| e.fields.iter().find(|f| f.name == *key).cloned()))
            .collect();
        if key.iter().all(Option::is_none) {
            return Err(format!("--partition-key {}: no event type has such a field", keys.join(",")));
        }
        Ok(Partitioner { key, partitions })
    }

    fn partition(&self, line: &NumberedLine) -> u16 {
        let (number, decoded) = match line {
            NumberedLine::Text { number, decoded } => (*number, decoded),
            NumberedLine::NotText { number } => return (*number % u64::from(self.partitions)) as u16,
        };
        let Decoded::Event(event) = decoded else { return (number % u64::from(self.partitions)) as u16 };
        let field = self.key.get(event.event_type as usize).and_then(Option::as_ref);
        let value = field.and_then(|f| Some((event.fields.get(f.slot as usize)?, &f.ty)));
        match value {
            // As the producer would key it: the value as text.
            Some((ir::Value::String(text), _)) => partition_for(text, self.partitions),
            Some((value, ty)) if !matches!(value, ir::Value::Null) => {
                partition_for(&display(value, ty), self.partitions)
            }
            _ => partition_for(&event.id, self.partitions),
        }
    }
}

/// The events of items split over two partitions, if any, for stderr.
fn split_report(program: &ir::Program, run: &Partitioned) -> String {
    let SplitKeys { kept, events } = run.split_keys();
    let events = *events;
    if events == 0 {
        return String::new();
    }
    let mut text = format!(
        "warning: {events} event{} on another partition than the item's first: their messages are keyed by another \
         field than the item's key, and each makes a second item there\n",
        plural(events)
    );
    for split in kept.iter().take(LISTED) {
        let workflow = program.workflows.get(split.workflow as usize).map_or("?", |w| w.name.as_str());
        text.push_str(&format!(
            "  {workflow} {}: started on partition {}, an event at {} on partition {}\n",
            split.key.replace('\u{1f}', ","),
            split.owner,
            format_rfc3339(split.at),
            split.seen_on
        ));
    }
    text
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// What the end-of-run report says about bad input.
#[derive(Default)]
struct BadInput {
    /// The first rejected lines, as (line, reason); the rest are counted.
    rejected: Vec<(u64, String)>,
    /// Events of types no rule declares, by type.
    undeclared: HashMap<String, u64>,
}

/// How many rejected lines and undeclared types the report names: enough
/// to act on; the records hold every rejected line.
const LISTED: usize = 10;

impl BadInput {
    fn note_rejections(&mut self, records: &[Record]) {
        for r in records.iter().filter(|r| r.kind == Kind::Rejected) {
            if let (Some(line), Some(reason), true) = (r.line, &r.reason, self.rejected.len() < LISTED) {
                self.rejected.push((line, reason.clone()));
            }
        }
    }

    /// `FILE:LINE: rejected: REASON` lines (when `list_rejected`), then one
    /// line naming the undeclared types, most frequent first.
    fn report(&self, source: &str, rejected: u64, list_rejected: bool, program: &ir::Program) -> String {
        let mut text = String::new();
        if list_rejected {
            for (line, reason) in &self.rejected {
                text.push_str(&format!("{source}:{line}: rejected: {reason}\n"));
            }
            let more = rejected.saturating_sub(self.rejected.len() as u64);
            if more > 0 {
                text.push_str(&format!("... and {more} more rejected line{}\n", plural(more)));
            }
        }
        if self.undeclared.is_empty() {
            return text;
        }
        let mut types: Vec<(&String, &u64)> = self.undeclared.iter().collect();
        types.sort_by(|(a, m), (b, n)| n.cmp(m).then(a.cmp(b)));
        let declared = || program.events.iter().map(|e| e.name.as_str());
        let mut named: Vec<String> = types
            .iter()
            .take(LISTED)
            .map(|(name, n)| match mon_compiler::suggest::did_you_mean(name, declared()) {
                Some(near) => format!("{name} ×{n} (did you mean {near}?)"),
                None => format!("{name} ×{n}"),
            })
            .collect();
        if types.len() > LISTED {
            let more = (types.len() - LISTED) as u64;
            named.push(format!("and {more} more type{}", plural(more)));
        }
        let events: u64 = self.undeclared.values().sum();
        let kinds = if types.len() == 1 { "a type" } else { "types" };
        text.push_str(&format!("{events} event{} of {kinds} no rule uses: {}\n", plural(events), named.join(", ")));
        text
    }
}

fn progress_bar(size: Option<u64>) -> Option<indicatif::ProgressBar> {
    // Only worth it for a large file on an interactive terminal.
    let size = size.filter(|s| *s > 8 << 20)?;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}").ok()?,
    );
    Some(bar)
}

fn write_records(out: &mut impl Write, records: &[Record], format: Format, source: &str) {
    for r in records {
        let _ = match format {
            Format::Ndjson => writeln!(out, "{}", serde_json::to_string(r).expect("records serialise")),
            _ => writeln!(out, "{}", human(r, source)),
        };
    }
}

/// The notifications after the records: NDJSON lines of `kind`
/// `notification` (instants in RFC 3339), or one readable line each.
fn write_notifications<'n>(
    out: &mut impl Write,
    notifications: impl IntoIterator<Item = &'n Notification>,
    format: Format,
) {
    for n in notifications {
        let _ = match format {
            Format::Ndjson => writeln!(out, "{}", notification_json(n)),
            _ => writeln!(out, "{}  notify {:<16} {}", format_rfc3339(n.at), n.channel, n.summary),
        };
    }
}

/// One record as a line; a rejected line is named `FILE:LINE`.
fn human(r: &Record, source: &str) -> String {
    let target = match (&r.workflow, &r.step, r.line) {
        (Some(w), Some(s), _) => format!("{w}.{s}"),
        (Some(w), None, _) => w.clone(),
        (None, _, Some(line)) => format!("{source}:{line}"),
        _ => "-".into(),
    };
    let key = r
        .key
        .as_ref()
        .map(|k| k.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let mut line = format!("{}  {:<12} {target:<36} {key}", format_rfc3339(r.at), r.kind.name());
    if let Some(d) = r.deadline {
        line.push_str(&format!("  deadline {}", format_rfc3339(d)));
    }
    if let Some(ms) = r.delay_ms {
        line.push_str(&format!("  late by {}", mon_grammar::format_duration(ms.max(0) as u64)));
    }
    if let Some(s) = r.severity {
        line.push_str(&format!(
            "  [{}]",
            serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
        ));
    }
    if let Some(c) = &r.caused_by {
        line.push_str(&format!("  caused by {c}"));
    }
    if let Some(reason) = &r.reason {
        line.push_str(&format!("  {reason}"));
    }
    if r.suppressed {
        line.push_str("  (maintenance: not sent)");
    }
    line
}

fn write_summary(out: &mut impl Write, program: &ir::Program, states: &[&State], now: i64, format: Format) {
    if format == Format::Ndjson {
        for line in summary_json(program, states, now) {
            let _ = writeln!(out, "{line}");
        }
        return;
    }
    for workflow in &program.workflows {
        let whole = Slice::default();
        let m = aggregates::metrics_over(states, workflow, &whole, now);
        let status = aggregates::status_over(states, workflow, &whole, now);
        let _ = writeln!(out, "{} [{}]", workflow.name, status.name());
        let _ = writeln!(
            out,
            "  {:<24} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>8} {:>8}",
            "stage / group", "flight", "entered", "done", "failed", "late", "missing", "risk", "status", "p50", "p95"
        );
        let mut groups: Vec<Vec<String>> = states
            .iter()
            .flat_map(|state| state.workflows[workflow.id as usize].iter().map(|(_, i)| state.group(i.group).to_vec()))
            .collect();
        groups.sort();
        groups.dedup();
        for stage in &workflow.stages {
            let slice = Slice { stage: Some(stage.id), group: None };
            row(out, states, workflow, &stage.name, &slice, now);
        }
        if !workflow.group_by.is_empty() {
            for group in groups.iter().filter(|g| !g.is_empty()) {
                let slice = Slice { stage: None, group: Some(group) };
                row(out, states, workflow, &group.join("/"), &slice, now);
            }
        }
        let _ = writeln!(
            out,
            "  total: {} in flight, {} completed, {} failed, {} late, {} missing, {} duplicate, {} out of order, {} unexpected",
            m.in_flight, m.completed, m.failed, m.late, m.missing, m.duplicate, m.out_of_order, m.unexpected
        );
        let buckets: Vec<String> = workflow
            .aging_ms
            .iter()
            .zip(&m.aging)
            .map(|(b, n)| format!(">={}: {n}", mon_grammar::format_duration(*b)))
            .collect();
        let _ = writeln!(out, "  aging: {}", buckets.join(", "));
    }
}

fn row(out: &mut impl Write, states: &[&State], workflow: &ir::Workflow, label: &str, slice: &Slice, now: i64) {
    let m = aggregates::metrics_over(states, workflow, slice, now);
    let status = aggregates::status_over(states, workflow, slice, now);
    // Whole seconds are precise enough for a table of stays.
    let ms = |v: Option<i64>| {
        v.map_or("-".into(), |v| {
            let v = v.max(0) as u64;
            mon_grammar::format_duration(if v >= 1000 { v / 1000 * 1000 } else { v })
        })
    };
    let _ = writeln!(
        out,
        "  {:<24} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>8} {:>8}",
        label,
        m.in_flight,
        m.entered,
        m.completed,
        m.failed,
        m.late,
        m.missing,
        m.at_risk,
        status.name(),
        ms(m.stay_p50_ms),
        ms(m.stay_p95_ms)
    );
}
