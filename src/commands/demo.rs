//! `mon demo`: the embedded default for a newcomer. No Kafka, no
//! configuration: the examples run as one program on the wall clock, a
//! generator posts realistic events (some late, missing, out of order)
//! through the HTTP ingest path, and a summary is printed every few seconds,
//! and once more in one line when it stops (Ctrl-C, or `--seconds`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mon_runtime::aggregates::Status;
use mon_runtime::alerts::Notification;
use mon_service::config::{AuthConfig, Config, HttpConfig, LogConfig};
use mon_service::delivery::{Deliver, Delivery};
use mon_service::processor::StatusView;

use crate::commands::run::start_rules;
use crate::demo::{planted, Generator};
use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// The rules to run (default: the repository's examples/).
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Keep the state here (default: a temporary directory, removed at exit).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// HTTP address (default 127.0.0.1:8080, or a free port if that is taken).
    #[arg(long)]
    listen: Option<String>,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    seconds: Option<u64>,
    /// Seed of the event generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds between summaries.
    #[arg(long, default_value_t = 5)]
    every: u64,
}

/// The examples and the planted file, in a temporary directory removed at
/// exit.
fn plant(start_ms: i64) -> Result<tempfile::TempDir, String> {
    let dir = tempfile::Builder::new()
        .prefix("mon-demo-rules-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary rules directory: {e}"))?;
    planted::write(&examples_dir(), dir.path(), start_ms)
        .map_err(|e| format!("cannot copy the examples into {}: {e}", dir.path().display()))?;
    Ok(dir)
}

fn examples_dir() -> PathBuf {
    let here = Path::new("examples");
    if here.is_dir() {
        return here.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

pub fn run(args: Args) -> Outcome {
    // With the examples, the demo adds a file SLA of its own that fails a
    // minute after the start, so that trouble shows on any day
    // (demo/planted.rs); a rules directory of the user's own is run as it is.
    let planted_start = mon_service::clock::wall_now();
    let planted_dir = match &args.rules {
        Some(_) => None,
        None => match plant(planted_start) {
            Ok(dir) => Some(dir),
            Err(e) => return Outcome::Usage(e),
        },
    };
    let rules = match (&args.rules, &planted_dir) {
        (Some(rules), _) => rules.clone(),
        (None, Some(dir)) => dir.path().to_path_buf(),
        (None, None) => examples_dir(),
    };
    let start = match start_rules(&rules) {
        Ok(Some(p)) => p,
        Ok(None) => return Outcome::Problems,
        Err(e) => return Outcome::Usage(e),
    };
    let temporary = match &args.state_dir {
        Some(_) => None,
        None => match tempfile::Builder::new().prefix("mon-demo-").tempdir() {
            Ok(dir) => Some(dir),
            Err(e) => return Outcome::Usage(format!("cannot make a temporary state directory: {e}")),
        },
    };
    let state_dir = args.state_dir.clone().or_else(|| temporary.as_ref().map(|t| t.path().to_path_buf()));
    let listen = args.listen.clone().unwrap_or_else(|| {
        let preferred = "127.0.0.1:8080";
        match std::net::TcpListener::bind(preferred) {
            Ok(_) => preferred.to_string(),
            Err(_) => "127.0.0.1:0".to_string(),
        }
    });
    let defaults = Config::default();
    let config = Config {
        state_dir: state_dir.unwrap_or_else(|| PathBuf::from("mon-demo-state")),
        http: HttpConfig { listen, ..defaults.http.clone() },
        // The demo's own summary is the output; the service logs only problems.
        log: LogConfig { level: "warn".into(), ..LogConfig::default() },
        // A demo is open: no token to make before trying the API.
        auth: AuthConfig::default(),
        ..defaults
    };
    mon_service::init_logging(&config.log);

    let stop = Arc::new(AtomicBool::new(false));
    let workflows: Vec<String> = start.program.workflows.iter().map(|w| w.name.clone()).collect();
    // The copy in a temporary directory is an implementation detail: name
    // where the rules come from.
    let rules_shown = match &planted_dir {
        Some(_) => format!("{} and {}", examples_dir().display(), planted::FILE),
        None => rules.display().to_string(),
    };
    let state_shown = config.state_dir.display().to_string();
    let (seed, every, seconds) = (args.seed, args.every.max(1), args.seconds);
    let feeder_stop = stop.clone();
    let posted = Arc::new(AtomicUsize::new(0));
    let feeder_posted = posted.clone();
    let feeder = Arc::new(Mutex::new(None));
    let feeder_slot = feeder.clone();
    let started = Instant::now();
    let planted_due = planted_dir.is_some().then(|| planted::deadline(planted_start));
    let console = Arc::new(ConsoleDeliverer);
    let listening = move |address: std::net::SocketAddr| {
        // The command center first: it is what a newcomer should open.
        say!("mon demo: open the command center at http://{address}/");
        say!("mon demo: {} workflows from {rules_shown} ({})", workflows.len(), workflows.join(", "));
        say!("  events in:  POST http://{address}/api/v1/events (NDJSON or a JSON array)");
        say!("  status:     http://{address}/api/v1/status");
        say!("  records:    http://{address}/api/v1/records?limit=20");
        say!("  metrics:    http://{address}/metrics");
        say!("  alerts:     http://{address}/api/v1/alerts (notifications are printed here, grouped)");
        say!("  state:      {state_shown}");
        say!("  auth:       off (a demo: every endpoint is open; see `[auth]` in docs/service.md)");
        if let Some(due) = planted_due {
            say!(
                "  planted:    {}: a file due {} that never comes (red from then on, any day)",
                planted::WORKFLOW,
                mon_stdlib::time::format_rfc3339(due)
            );
        }
        say!("Feeding generated events (the last 25 minutes first, as a backlog); Ctrl-C stops.\n");
        let handle =
            std::thread::spawn(move || feed_and_report(address, seed, every, seconds, feeder_stop, feeder_posted));
        if let Ok(mut slot) = feeder_slot.lock() {
            *slot = Some(handle);
        }
    };
    let outcome = mon_service::run_with(config, &start, mon_stdlib::registry(), stop.clone(), listening, console);
    // The feeder notices `stop` within half a second; after it, nothing
    // else is printed.
    if let Some(handle) = feeder.lock().ok().and_then(|mut slot| slot.take()) {
        let _ = handle.join();
    }
    drop(temporary);
    drop(planted_dir);
    match outcome {
        Ok(last) => {
            say!("{}", summary(&last, posted.load(Ordering::Relaxed), started.elapsed()));
            Outcome::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Outcome::Problems
        }
    }
}

/// The demo's channel: every notification is printed on the console, one
/// line each, instead of being sent (the examples' receivers are at
/// example.com). The alert book has already grouped them: a stalled book
/// is one line, then updates.
struct ConsoleDeliverer;

impl Deliver for ConsoleDeliverer {
    fn deliver<'a>(&'a self, n: &'a Notification) -> Delivery<'a> {
        let at = mon_stdlib::time::format_rfc3339(n.at);
        say!("{at}  notify {:<16} {}", n.channel, n.summary);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Posts generated events every half second and prints a summary every
/// `every` seconds, until `stop` (or `seconds` have passed).
fn feed_and_report(
    address: std::net::SocketAddr,
    seed: u64,
    every: u64,
    seconds: Option<u64>,
    stop: Arc<AtomicBool>,
    posted_total: Arc<AtomicUsize>,
) {
    let started = Instant::now();
    let mut generator = Generator::new(seed, mon_service::clock::wall_now());
    let mut last_report = Instant::now();
    let events_url = format!("http://{address}/api/v1/events");
    let status_url = format!("http://{address}/api/v1/status");
    let mut posted = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let lines = generator.until(mon_service::clock::wall_now());
        if !lines.is_empty() {
            let body = lines.join("\n");
            match ureq::post(&events_url).header("content-type", "application/x-ndjson").send(body.as_str()) {
                Ok(_) => {
                    posted += lines.len();
                    posted_total.store(posted, Ordering::Relaxed);
                }
                // Stopping: the service may have stopped taking events.
                Err(_) if stop.load(Ordering::Relaxed) => break,
                Err(e) => eprintln!("demo: posting events failed: {e}"),
            }
        }
        if last_report.elapsed() >= Duration::from_secs(every) {
            report(&status_url, posted);
            last_report = Instant::now();
        }
        if seconds.is_some_and(|s| started.elapsed() >= Duration::from_secs(s)) {
            report(&status_url, posted);
            stop.store(true, Ordering::Relaxed);
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The last line: how long it ran, what went in, what came out, and how
/// the workflows stand, worst first.
fn summary(last: &StatusView, posted: usize, ran: Duration) -> String {
    let records = if last.records.is_empty() {
        "none".to_string()
    } else {
        last.records.iter().map(|(kind, n)| format!("{kind} {n}")).collect::<Vec<_>>().join(", ")
    };
    let statuses: Vec<String> = Status::ALL
        .iter()
        .rev()
        .map(|(word, _)| format!("{} {word}", last.workflows.iter().filter(|w| w.status == *word).count()))
        .collect();
    // The periodic report's layout (two spaces between parts), so one
    // reader of the output reads both.
    format!(
        "mon demo stopped after {} s  events posted {posted}  records: {records}  workflows: {}",
        ran.as_secs(),
        statuses.join(", ")
    )
}

fn report(status_url: &str, posted: usize) {
    let Ok(mut response) = ureq::get(status_url).call() else { return };
    let Ok(text) = response.body_mut().read_to_string() else { return };
    let Ok(status) = serde_json::from_str::<serde_json::Value>(&text) else { return };
    let clock = status["clock"].as_str().unwrap_or("-");
    let records = status["records"]
        .as_object()
        .map_or_else(String::new, |r| r.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "));
    say!("{clock}  events posted {posted}  records: {}", if records.is_empty() { "none yet" } else { &records });
    for workflow in status["workflows"].as_array().into_iter().flatten() {
        let m = &workflow["metrics"];
        say!(
            "  {:<22} {:<5}  in flight {:>4}  completed {:>5}  late {:>3}  missing {:>3}  at risk {:>3}  failed {:>3}",
            workflow["name"].as_str().unwrap_or("?"),
            workflow["status"].as_str().unwrap_or("?").to_uppercase(),
            m["in_flight"],
            m["completed"],
            m["late"],
            m["missing"],
            m["at_risk"],
            m["failed"],
        );
    }
}
