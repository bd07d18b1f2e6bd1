//! `mon lsp`: the language server on stdin/stdout, for editors.

use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// Accepted for editors that always pass it; stdio is the only transport.
    #[arg(long)]
    stdio: bool,
}

pub fn run(_args: Args) -> Outcome {
    match mon_lsp::run_stdio() {
        Ok(mon_lsp::Ending::Clean) => Outcome::Ok,
        // `exit` without `shutdown`, or the editor went away: exit code 1,
        // as the protocol asks.
        Ok(mon_lsp::Ending::Abrupt) => Outcome::Problems,
        Err(e) => Outcome::Usage(format!("language server: {e}")),
    }
}
