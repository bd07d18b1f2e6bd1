//! `mon token create|list|revoke`: the API tokens of a state directory
//! (docs/service.md, "Authentication"). They live in `tokens.json` beside
//! the state, not in sled, so this works while `mon run` runs; the service
//! sees a change at its next request.

use std::path::PathBuf;

use clap::Subcommand;
use mon_service::auth::{self, Role, TokenEntry, TokenFile};
use mon_service::config::{Config, Overrides};

use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: TokenCommand,
}

/// Where the tokens are: the state directory, from the flag or the configuration.
#[derive(clap::Args)]
struct Place {
    /// The configuration file (TOML) of the service, for its `state_dir`.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The service's state directory (overrides the configuration's).
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token, print it once (only its SHA-256 is kept).
    Create {
        /// viewer, operator, editor or admin; each may do what the lower ones may.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// A name for people and for `mon token revoke` (unique).
        #[arg(long)]
        name: String,
        #[command(flatten)]
        place: Place,
    },
    /// The tokens: name, role, creation time (never the tokens).
    List {
        #[command(flatten)]
        place: Place,
    },
    /// Remove a token by name: it is refused from the service's next request.
    Revoke {
        name: String,
        #[command(flatten)]
        place: Place,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

fn state_dir(place: &Place) -> Result<PathBuf, String> {
    let overrides = Overrides { state_dir: place.state_dir.clone(), ..Default::default() };
    Config::load(place.config.as_deref(), std::env::vars(), &overrides).map(|c| c.state_dir).map_err(|e| e.to_string())
}

fn now_rfc3339() -> String {
    mon_stdlib::time::format_rfc3339(mon_service::clock::wall_now())
}

pub fn run(args: Args) -> Outcome {
    match execute(args.command) {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Usage(e),
    }
}

fn execute(command: TokenCommand) -> Result<Outcome, String> {
    match command {
        TokenCommand::Create { role, name, place } => {
            if name.trim().is_empty() || name.chars().any(char::is_control) {
                return Err("--name: give a name such as alice or ci-pipeline".into());
            }
            let dir = state_dir(&place)?;
            let token = auth::new_token()?;
            auth::update(&dir, |file| {
                if file.tokens.iter().any(|t| t.name == name) {
                    return Err(format!("a token named `{name}` exists; revoke it first or pick another name"));
                }
                let created_at = now_rfc3339();
                file.tokens.push(TokenEntry { name: name.clone(), role, created_at, sha256: auth::hash_token(&token) });
                Ok(())
            })?;
            println!("{token}");
            eprintln!(
                "token `{name}` ({role}) created in {}; it is shown only now: send it as `Authorization: Bearer <token>`",
                auth::tokens_path(&dir).display()
            );
            Ok(Outcome::Ok)
        }
        TokenCommand::List { place } => {
            let dir = state_dir(&place)?;
            let file = TokenFile::read(&auth::tokens_path(&dir))?;
            if file.tokens.is_empty() {
                eprintln!("no tokens in {}", auth::tokens_path(&dir).display());
            }
            let width = file.tokens.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
            if !file.tokens.is_empty() {
                println!("{:width$}  {:8}  created", "name", "role");
            }
            for t in &file.tokens {
                println!("{:width$}  {:8}  {}", t.name, t.role.as_str(), t.created_at);
            }
            Ok(Outcome::Ok)
        }
        TokenCommand::Revoke { name, place } => {
            let dir = state_dir(&place)?;
            let removed = auth::update(&dir, |file| {
                let before = file.tokens.len();
                file.tokens.retain(|t| t.name != name);
                Ok(before != file.tokens.len())
            })?;
            if removed {
                eprintln!("token `{name}` revoked");
                Ok(Outcome::Ok)
            } else {
                Err(format!("no token named `{name}`"))
            }
        }
    }
}
