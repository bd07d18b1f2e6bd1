//! `mon rules push|validate|diff|dry-run|activate|rollback|log`: rule
//! versions on a running service, through its HTTP API (docs/service.md,
//! "Rule versions"), for CI pipelines and run teams.
//!
//! Each subcommand is one or two API calls and prints the answer for a
//! person (or, with `--json`, as the API gave it). Exit codes: 0 done, 1
//! the service refused (the rules do not compile, no such version...), 2
//! the call could not be made (no service at `--server`, a bad flag).

use std::io::Write as _;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{json, Value};

use crate::Outcome;
use mon_service::rules::Bundle;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: RulesCommand,
    #[command(flatten)]
    server: Server,
}

/// Where the service is and how to call it.
#[derive(clap::Args)]
struct Server {
    /// The service's address.
    #[arg(long, global = true, env = "MON_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// An API token (needs the editor role to change rules).
    #[arg(long, global = true, env = "MON_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the API's JSON answer instead of a summary.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Store a rules directory as a new version (nothing runs it until it is activated).
    Push {
        dir: PathBuf,
        /// Why: kept with the version and in the audit log.
        #[arg(long, short, default_value = "")]
        message: String,
        /// Activate it once stored.
        #[arg(long)]
        activate: bool,
    },
    /// Compile a rules directory on the service and print its diagnostics.
    Validate { dir: PathBuf },
    /// What changed from one version to another (default: the active one).
    Diff {
        version: u64,
        #[arg(long)]
        against: Option<u64>,
    },
    /// Replay NDJSON events through a stored version, as `mon simulate` does.
    DryRun {
        version: u64,
        #[arg(long)]
        events: PathBuf,
        /// Also list the records that differ from this version's.
        #[arg(long)]
        against: Option<u64>,
    },
    /// Make a stored version the one the service runs.
    Activate {
        version: u64,
        #[arg(long, short, default_value = "")]
        message: String,
    },
    /// Run again the version that ran before the active one.
    Rollback {
        #[arg(long, short, default_value = "")]
        message: String,
    },
    /// The stored versions, newest first, and the activations.
    Log {
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

pub fn run(args: Args) -> Outcome {
    let api = Client::new(args.server);
    match args.command {
        RulesCommand::Push { dir, message, activate } => push(&api, &dir, &message, activate),
        RulesCommand::Validate { dir } => validate(&api, &dir),
        RulesCommand::Diff { version, against } => {
            let query = against.map(|a| format!("?against={a}")).unwrap_or_default();
            api.call("GET", &format!("/api/v1/rules/versions/{version}/diff{query}"), None, print_diff)
        }
        RulesCommand::DryRun { version, events, against } => {
            let text = match std::fs::read_to_string(&events) {
                Ok(t) => t,
                Err(e) => return Outcome::Usage(format!("cannot read {}: {e}", events.display())),
            };
            let body = json!({ "events": text, "notifications": true, "against": against });
            api.call("POST", &format!("/api/v1/rules/versions/{version}/dry-run"), Some(body), print_dry_run)
        }
        RulesCommand::Activate { version, message } => api.call(
            "POST",
            &format!("/api/v1/rules/versions/{version}/activate"),
            Some(json!({ "message": message })),
            print_activation,
        ),
        RulesCommand::Rollback { message } => {
            api.call("POST", "/api/v1/rules/rollback", Some(json!({ "message": message })), print_activation)
        }
        RulesCommand::Log { limit } => log(&api, limit),
    }
}

fn bundle_of(dir: &std::path::Path) -> Result<Bundle, Outcome> {
    Bundle::from_dir(dir, mon_stdlib::registry()).map_err(Outcome::Usage)
}

fn push(api: &Client, dir: &std::path::Path, message: &str, activate: bool) -> Outcome {
    let bundle = match bundle_of(dir) {
        Ok(b) => b,
        Err(outcome) => return outcome,
    };
    let body = json!({ "files": bundle, "message": message });
    let mut stored = None;
    let outcome = api.call("POST", "/api/v1/rules/versions", Some(body), |answer| {
        let version = &answer["version"];
        let created = answer["created"].as_bool().unwrap_or(false);
        stored = version["version"].as_u64();
        if created {
            println!("stored version {} ({} files, program {})", version["version"], files(version), short(version));
        } else {
            println!("unchanged: these rules are version {} already", version["version"]);
        }
    });
    match (outcome, stored, activate) {
        (Outcome::Ok, Some(version), true) => api.call(
            "POST",
            &format!("/api/v1/rules/versions/{version}/activate"),
            Some(json!({ "message": message })),
            print_activation,
        ),
        (outcome, _, _) => outcome,
    }
}

fn files(version: &Value) -> usize {
    version["files"].as_array().map_or(0, Vec::len)
}

fn short(version: &Value) -> String {
    version["hash"].as_str().unwrap_or_default().chars().take(12).collect()
}

fn validate(api: &Client, dir: &std::path::Path) -> Outcome {
    let bundle = match bundle_of(dir) {
        Ok(b) => b,
        Err(outcome) => return outcome,
    };
    let mut ok = true;
    let outcome = api.call("POST", "/api/v1/rules/validate", Some(json!({ "files": bundle })), |answer| {
        ok = answer["ok"].as_bool().unwrap_or(false);
        for d in answer["diagnostics"].as_array().into_iter().flatten() {
            println!(
                "{}:{}:{}: {} {}: {}",
                d["file"].as_str().unwrap_or("?"),
                d["line"],
                d["column"],
                d["severity"].as_str().or(d["level"].as_str()).unwrap_or("error"),
                d["code"].as_str().unwrap_or(""),
                d["message"].as_str().unwrap_or("")
            );
        }
        println!("{} error(s), {} warning(s)", answer["errors"], answer["warnings"]);
    });
    match outcome {
        Outcome::Ok if !ok => Outcome::Problems,
        other => other,
    }
}

fn print_diff(answer: &Value) {
    println!("version {} against {}", answer["to"], answer["from"]);
    let program = &answer["program"];
    for w in program["workflows_added"].as_array().into_iter().flatten() {
        println!("+ workflow {}", w.as_str().unwrap_or_default());
    }
    for w in program["workflows_removed"].as_array().into_iter().flatten() {
        println!("- workflow {}", w.as_str().unwrap_or_default());
    }
    for w in program["workflows_changed"].as_array().into_iter().flatten() {
        println!("~ workflow {}", w["workflow"].as_str().unwrap_or_default());
        for s in w["steps_added"].as_array().into_iter().flatten() {
            println!("    + step {}", s.as_str().unwrap_or_default());
        }
        for s in w["steps_removed"].as_array().into_iter().flatten() {
            println!("    - step {}", s.as_str().unwrap_or_default());
        }
        for s in w["steps_changed"].as_array().into_iter().flatten() {
            for c in s["changes"].as_array().into_iter().flatten() {
                println!(
                    "    ~ step {} {}: {} -> {}",
                    s["step"].as_str().unwrap_or_default(),
                    c["what"].as_str().unwrap_or_default(),
                    c["before"],
                    c["after"]
                );
            }
        }
        for c in w["changes"].as_array().into_iter().flatten() {
            println!("    ~ {}: {} -> {}", c["what"].as_str().unwrap_or_default(), c["before"], c["after"]);
        }
    }
    for file in answer["source"].as_array().into_iter().flatten() {
        print!("{}", file["diff"].as_str().unwrap_or_default());
    }
}

fn print_dry_run(answer: &Value) {
    let mut out = std::io::stdout().lock();
    for part in ["records", "notifications", "summary"] {
        for line in answer[part].as_array().into_iter().flatten() {
            let _ = writeln!(out, "{line}");
        }
    }
    if let Some(compared) = answer.get("compared").filter(|c| !c.is_null()) {
        let count = |k: &str| compared[k].as_array().map_or(0, Vec::len);
        eprintln!(
            "against version {}: {} records only here, {} only there, {} the same",
            compared["against"],
            count("only_in_version"),
            count("only_in_against"),
            compared["same"]
        );
    }
    eprintln!(
        "read {} lines: {} rejected, {} of types no rule uses",
        answer["lines"], answer["rejected"], answer["ignored"]
    );
}

fn print_activation(answer: &Value) {
    if answer["version"].is_null() {
        // A scale-out task that published the change and has not applied
        // it yet (a 202).
        println!("{}", answer["message"].as_str().unwrap_or("accepted; not applied yet"));
        return;
    }
    let migration = &answer["migration"];
    println!(
        "version {} runs (was {}), from {}: {} items carried over, {} superseded",
        answer["version"],
        answer["previous"],
        answer["at"].as_str().unwrap_or_default(),
        migration["carried_count"],
        migration["superseded"].as_array().map_or(0, Vec::len)
    );
    for s in migration["superseded"].as_array().into_iter().flatten().take(20) {
        println!(
            "  superseded {} {}: {}",
            s["workflow"].as_str().unwrap_or_default(),
            s["key"].as_str().unwrap_or_default(),
            s["reason"].as_str().unwrap_or_default()
        );
    }
    print_group(answer);
}

/// A scale-out group's change: how many tasks applied it, and which not yet.
fn print_group(answer: &Value) {
    let group = &answer["group"];
    if group.is_null() {
        return;
    }
    let tasks = group["tasks"].as_array().cloned().unwrap_or_default();
    let total = |field: &str| -> u64 { tasks.iter().filter_map(|t| t["outcome"]["migration"][field].as_u64()).sum() };
    println!(
        "applied by {} task(s) of the group ({} at offset {}): {} items carried over, {} superseded in all",
        tasks.len(),
        group["topic"],
        group["offset"],
        total("carried_count"),
        total("superseded_count")
    );
    let pending: Vec<String> = group["pending"].as_array().into_iter().flatten().map(ToString::to_string).collect();
    if !pending.is_empty() {
        println!(
            "not yet by the tasks of partitions {}: the change is in the topic, and they will",
            pending.join(", ")
        );
    }
}

fn log(api: &Client, limit: usize) -> Outcome {
    let limit = limit.clamp(1, 1000);
    api.call("GET", &format!("/api/v1/rules/versions?limit={limit}"), None, |answer| {
        let active = answer["active"].as_u64();
        for v in answer["versions"].as_array().into_iter().flatten() {
            let marker = if v["version"].as_u64() == active { "*" } else { " " };
            println!(
                "{marker} {:>4}  {}  {:<12} {:<12} {}",
                v["version"].as_u64().unwrap_or(0),
                v["created_at"].as_str().unwrap_or_default(),
                v["author"].as_str().unwrap_or_default(),
                short(v),
                v["message"].as_str().unwrap_or_default()
            );
        }
    })
}

/// The HTTP client: one agent that hands 4xx and 5xx answers back as
/// answers, since their body says what was wrong.
struct Client {
    agent: ureq::Agent,
    server: Server,
}

impl Client {
    fn new(server: Server) -> Client {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Client { agent, server }
    }

    /// Calls the API and hands a 2xx answer to `show` (or prints it with `--json`).
    fn call(&self, method: &str, path: &str, body: Option<Value>, show: impl FnOnce(&Value)) -> Outcome {
        let url = format!("{}{path}", self.server.server.trim_end_matches('/'));
        let auth = self.server.token.as_ref().map(|t| format!("Bearer {t}"));
        let result = match method {
            "GET" => {
                let mut request = self.agent.get(&url);
                if let Some(auth) = &auth {
                    request = request.header("authorization", auth);
                }
                request.call()
            }
            _ => {
                let mut request = self.agent.post(&url).header("content-type", "application/json");
                if let Some(auth) = &auth {
                    request = request.header("authorization", auth);
                }
                request.send(body.unwrap_or(Value::Null).to_string())
            }
        };
        let mut response = match result {
            Ok(r) => r,
            Err(e) => return Outcome::Usage(format!("cannot reach the service at {}: {e}", self.server.server)),
        };
        let status = response.status();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            if self.server.json {
                println!("{answer}");
            } else {
                show(&answer);
            }
            return Outcome::Ok;
        }
        let error = &answer["error"];
        eprintln!("error: {} ({status})", error["message"].as_str().unwrap_or("the service refused"));
        for d in error["details"]["diagnostics"].as_array().into_iter().flatten() {
            eprintln!(
                "  {}:{}:{}: {}",
                d["file"].as_str().unwrap_or("?"),
                d["line"],
                d["column"],
                d["message"].as_str().unwrap_or("")
            );
        }
        match status.as_u16() {
            401 | 403 => {
                Outcome::Usage("not allowed: pass an API token with the editor role (--token or MON_TOKEN)".into())
            }
            _ => Outcome::Problems,
        }
    }
}
