//! The processing thread's part in rule changes: an activation or a
//! workflow switched on or off arrives as a [`RulesRequest`](super::RulesRequest),
//! is journaled like an event, and is applied the same way live and in
//! replay ([`Processor::feed`]), so a restart switches programs at the same
//! input.

use std::sync::Arc;

use mon_compiler::ir::Program;
use mon_compiler::Functions;
use mon_runtime::engine::LISTED;
use mon_runtime::live::{Activation, Fed, Input, Migration};
use mon_runtime::record::Record;

use super::{Pending, Processor, RulesChange, RulesDone, RulesReply};
use crate::clock::wall_now;
use crate::rules::versions::{ActivationEntry, Versions};

/// Compiles a stored rule version, for as long as the process lives
/// (see `Processor::compiled`).
pub fn compile_version(
    versions: &Versions,
    version: u64,
    functions: &dyn Functions,
) -> Result<&'static Program, String> {
    let stored = versions
        .get(version)
        .map_err(|e| format!("cannot read rule version {version}: {e}"))?
        .ok_or_else(|| format!("no rule version {version}"))?;
    let program = stored
        .bundle
        .compile(functions)
        .compilation
        .program
        .ok_or_else(|| format!("rule version {version} does not compile"))?;
    Ok(Box::leak(Box::new(program)))
}

impl<'p> Processor<'p> {
    pub(super) fn rules_change(
        &mut self,
        change: RulesChange,
        by: String,
        batch: &mut Pending,
        records: &mut Vec<Record>,
        accepted_by_type: &mut Vec<u64>,
    ) -> RulesReply {
        match change {
            // Decided here, in journal order: of two changes to the same
            // version (each task of a restarted process publishes its
            // deployment), the second finds the first applied.
            RulesChange::Activate { version } if self.active == Some(version) => {
                Ok(RulesDone::AlreadyRunning { version })
            }
            RulesChange::Activate { version } => {
                let program = self.program_of(version)?;
                // Event type ids are the program's: what this batch counted
                // so far is counted under the names of the program it ran.
                self.count_accepted(accepted_by_type);
                let previous = self.active;
                self.activating_by = Some(by);
                // Every task switches in this batch: each journal says at
                // which of its inputs, so a replay switches there too.
                let mut migration: Option<Migration> = None;
                for task in 0..self.tasks.len() {
                    let input = Input::Activate(Activation { version, hash: program.hash() });
                    self.apply(task, input, batch, records);
                    let done = self.migrated.take().unwrap_or_else(|| Err("the activation did not apply".into()))?;
                    match &mut migration {
                        Some(all) => absorb(all, done),
                        None => migration = Some(done),
                    }
                }
                let migration = migration.ok_or_else(|| "no state to activate".to_string())?;
                accepted_by_type.clear();
                accepted_by_type.resize(self.program.events.len(), 0);
                let at = self.clock().unwrap_or_else(wall_now);
                Ok(RulesDone::Activated { migration, previous, at })
            }
            RulesChange::SetEnabled { workflow, enabled } => {
                let mut known = None;
                for task in 0..self.tasks.len() {
                    let input = Input::SetEnabled { workflow: workflow.clone(), enabled };
                    if let Fed::SetEnabled { known: this, .. } = self.apply(task, input, batch, records) {
                        known = Some(known.unwrap_or(false) || this);
                    }
                }
                known.map(|known| RulesDone::SetEnabled { known }).ok_or_else(|| "the change did not apply".into())
            }
            RulesChange::Skip => Ok(RulesDone::Skipped),
        }
    }

    /// Takes a scale-out group's rule change at `offset` of its topic into
    /// the batch: the batch's offsets move past it, so it is journaled
    /// with them and a restored state reads the topic on from there.
    /// False when the state or the batch is past it already.
    pub(super) fn take_group_offset(&mut self, offset: i64, batch: &mut Pending) -> bool {
        let Some(key) = self.group_rules_key.clone() else { return false };
        let next = batch.offsets.get(&key).or_else(|| self.stored_offsets.get(&key)).copied().unwrap_or(0);
        if offset < next {
            return false;
        }
        batch.offsets.insert(key, offset + 1);
        self.group_offset_moved = true;
        true
    }

    /// The compiled program of a stored version.
    fn program_of(&mut self, version: u64) -> Result<&'p Program, String> {
        if let Some(program) = self.compiled.get(&version) {
            return Ok(program);
        }
        let program = compile_version(&self.versions, version, self.functions)?;
        self.compiled.insert(version, program);
        Ok(program)
    }

    /// Feeds one input to the engine. An activation is resolved here, the
    /// same way live and in replay: the version's program replaces the
    /// running one, and what the migration did waits in `migrated`.
    pub(super) fn feed(&mut self, task: usize, input: &Input, records: &mut Vec<Record>) -> Fed {
        let fed = self.tasks[task].live.apply(input, records);
        if let (Fed::Activate { version }, Input::Activate(activation)) = (&fed, input) {
            let version = *version;
            self.migrated =
                Some(self.program_of(version).map(|program| self.switch(task, version, program, activation, records)));
            if let Some(Err(why)) = &self.migrated {
                tracing::error!(version, "cannot activate: {why}");
            }
        }
        fed
    }

    /// Moves `task`'s engine to `program`, and with the first task to
    /// switch, the shared views and the active pointer.
    fn switch(
        &mut self,
        task: usize,
        version: u64,
        program: &'p Program,
        activation: &Activation,
        records: &mut Vec<Record>,
    ) -> Migration {
        // The tally so far is keyed by the old program's ids: the one its
        // engine ran.
        let live = &mut self.tasks[task].live;
        let tally = live.take_tally();
        if let Some(state) = live.state() {
            self.rollups_before_activation.extend(crate::rollups::rows(live.program(), state, tally));
        }
        let migration = live.activate(program, records);
        // The other tasks of the same batch: the process has switched.
        if self.active == Some(version) && std::ptr::eq(self.program, program) {
            return migration;
        }
        if program.hash() != activation.hash {
            tracing::warn!(version, "rule version {version} compiles to another program than when it was activated (another mon release?); running what it compiles to now");
        }
        self.program = program;
        if let Some(handing) = &mut self.handing {
            handing.program(program);
        }
        // Event type ids and scheduled workflows are the new program's.
        if self.per_partition() {
            self.owners = mon_runtime::engine::Owners::new(program, self.tasks.len() as u16);
        }
        if let Ok(mut running) = self.intake_program.lock() {
            *running = program;
        }
        if let Ok(mut shared) = self.shared_program.write() {
            *shared = Arc::new(program.clone());
        }
        let previous = self.active.replace(version);
        let entry = ActivationEntry {
            version,
            previous,
            at: mon_stdlib::time::format_rfc3339(self.clock().unwrap_or_else(wall_now)),
            // Who asked is known live; a replay finds the entry already there.
            by: self.activating_by.take().unwrap_or_default(),
        };
        if let Err(e) = self.versions.activated(&entry) {
            tracing::error!(error = %e, "cannot record the active rule version");
        }
        tracing::info!(
            version,
            carried = migration.carried_count,
            superseded = migration.superseded.len(),
            "rule version activated"
        );
        migration
    }
}

/// Adds another task's migration to the activation's, listing at most as
/// many items as one engine does (`LISTED`).
fn absorb(all: &mut Migration, task: Migration) {
    all.carried.extend(task.carried);
    all.carried_count += task.carried_count;
    all.superseded.extend(task.superseded);
    all.superseded_count += task.superseded_count;
    all.truncated |= task.truncated || all.carried.len() > LISTED || all.superseded.len() > LISTED;
    all.carried.truncate(LISTED);
    all.superseded.truncate(LISTED);
}
