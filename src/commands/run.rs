//! `mon run [--config mon.toml] RULES_DIR`: the long-running service.
//!
//! Every `.mon` file under RULES_DIR is one program. Configuration comes
//! from built-in defaults, the file, `MON_*` variables and these flags, in
//! that order (see docs/service.md).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use mon_compiler::{ir, Renderer};
use mon_runtime::live::ClockMode;
use mon_service::config::{
    Config, CreateTopicsOverrides, HttpOverrides, KafkaOverrides, LogFormat, LogOverrides, Overrides,
};
use mon_service::rules::{Bundle, StartRules};

use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// The rules: every `.mon` file under this directory, as one program.
    rules: PathBuf,
    /// The configuration file (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers, HOST:PORT[,HOST:PORT]; without Kafka, events come over HTTP only.
    #[arg(long)]
    brokers: Option<String>,
    /// Topics to consume, comma-separated.
    #[arg(long, value_delimiter = ',')]
    topics: Option<Vec<String>>,
    /// Kafka consumer group.
    #[arg(long)]
    group: Option<String>,
    /// Topic the records are published to (default mon.records).
    #[arg(long)]
    records_topic: Option<String>,
    /// Topic rejected messages go to (default mon.dead-letter).
    #[arg(long)]
    dead_letter_topic: Option<String>,
    /// Create the input, records and dead-letter topics that are missing, before subscribing
    /// (partitions and replication from `[kafka.create_topics]`).
    #[arg(long)]
    create_topics: bool,
    /// Run as one of several processes of the group that take over from each other: the one holding
    /// the group's lease runs, the others wait as standbys (`[kafka] failover`, docs/service.md).
    #[arg(long)]
    failover: bool,
    /// Where the state is kept (created if missing).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// `wall` (live) or `event` (the virtual clock of `mon simulate`).
    #[arg(long, value_enum)]
    clock: Option<Clock>,
    /// With `--clock event`: monitoring starts here (RFC 3339), as `mon simulate --from`.
    #[arg(long)]
    from: Option<String>,
    /// HTTP address, ADDR:PORT (port 0 picks a free one).
    #[arg(long)]
    listen: Option<String>,
    #[arg(long, value_enum)]
    log_format: Option<Log>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Clock {
    Wall,
    Event,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Log {
    Json,
    Pretty,
}

impl Args {
    fn overrides(&self) -> Overrides {
        let kafka_flags = self.brokers.is_some()
            || self.topics.is_some()
            || self.group.is_some()
            || self.records_topic.is_some()
            || self.dead_letter_topic.is_some()
            || self.create_topics
            || self.failover;
        Overrides {
            state_dir: self.state_dir.clone(),
            clock: self.clock.map(|c| match c {
                Clock::Wall => ClockMode::Wall,
                Clock::Event => ClockMode::Event,
            }),
            from: self.from.clone(),
            kafka: kafka_flags.then(|| KafkaOverrides {
                brokers: self.brokers.clone(),
                topics: self.topics.clone(),
                group: self.group.clone(),
                records_topic: self.records_topic.clone(),
                dead_letter_topic: self.dead_letter_topic.clone(),
                create_topics: self.create_topics.then_some(CreateTopicsOverrides { enabled: Some(true) }),
                failover: self.failover.then_some(true),
            }),
            http: self.listen.clone().map(|listen| HttpOverrides { listen: Some(listen) }),
            log: self.log_format.map(|f| LogOverrides {
                format: Some(match f {
                    Log::Json => LogFormat::Json,
                    Log::Pretty => LogFormat::Pretty,
                }),
            }),
        }
    }
}

/// Compiles the rules under `dir`, printing diagnostics; `None` on errors.
pub fn compile_tree(dir: &std::path::Path) -> Result<Option<ir::Program>, String> {
    let rules = mon_service::rules::load(dir, mon_stdlib::registry()).map_err(|e| e.to_string())?;
    let diagnostics = &rules.compilation.diagnostics;
    if !diagnostics.is_empty() {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        eprint!("{}", Renderer { sources: &rules.files.files }.human(diagnostics, color));
    }
    Ok(rules.compilation.program)
}

/// The rules directory as `mon run` starts with it: compiled (diagnostics
/// printed; `None` on errors) and read as a bundle for the version store.
pub fn start_rules(dir: &std::path::Path) -> Result<Option<StartRules>, String> {
    let Some(program) = compile_tree(dir)? else { return Ok(None) };
    let bundle = Bundle::from_dir(dir, mon_stdlib::registry())?;
    Ok(Some(StartRules { dir: dir.to_path_buf(), bundle, program }))
}

pub fn run(args: Args) -> Outcome {
    let config = match Config::load(args.config.as_deref(), std::env::vars(), &args.overrides()) {
        Ok(c) => c,
        Err(e) => return Outcome::Usage(e.to_string()),
    };
    let rules = match start_rules(&args.rules) {
        Ok(Some(rules)) => rules,
        Ok(None) => return Outcome::Problems,
        Err(e) => return Outcome::Usage(e),
    };
    mon_service::init_logging(&config.log);
    mon_service::log_start(&args.rules, &rules.program, &config);
    let stop = Arc::new(AtomicBool::new(false));
    match mon_service::run(config, &rules, mon_stdlib::registry(), stop, |_| {}) {
        Ok(_) => Outcome::Ok,
        // A setting that cannot work (a state directory made on another
        // clock, say) is the caller's to fix, like a bad flag.
        Err(e) if e.domain == mon_service::error::Domain::Config => Outcome::Usage(e.to_string()),
        Err(e) => {
            eprintln!("error: {e}");
            Outcome::Problems
        }
    }
}
