//! The engine as the service drives it: a sequence of [`Input`]s on one of
//! two clocks, replayable exactly.
//!
//! The service journals every input before it acts on its outputs, so the
//! state after a crash is rebuilt by replaying the journal since the last
//! snapshot through this same code (ARCHITECTURE.md rule 1: the engine is a
//! pure function of program, state, input and clock; the wall clock is
//! made an input by [`Input::Tick`]). Nothing here does I/O.
//!
//! ## Activating a new version
//!
//! A new rules version is activated while events flow, as a journaled
//! input too, so a replay switches at the same point: [`Input::Activate`]
//! names the version (and its program hash); [`Live::apply`] only reports
//! it ([`Fed::Activate`]), because compiling rules is the driver's business
//! and this crate never sees source text. The driver resolves the version
//! to its compiled `Program` and calls [`Live::activate`], which moves the
//! engine (and the alert book) to it at the engine's clock, keeping the
//! state: items in flight carry over by workflow, stage and step names,
//! their timers follow the new timing rules, and an item whose stage or
//! workflow is gone closes as `superseded` with a record saying why (the
//! rules in full: `engine/activate.rs`). The [`Migration`] it returns lists
//! what was carried and what superseded. A snapshot taken afterwards is
//! resumed with the new program. [`Input::SetEnabled`] switches one
//! workflow off or on, under the same journal discipline.

use std::collections::BTreeSet;

use mon_compiler::ir::Program;
use mon_compiler::Functions;
use serde::{Deserialize, Serialize};

use crate::alerts::{Alert, AlertBook, BookConfig, BookState, Command, CommandError, Notification};
pub use crate::engine::{Carried, Migration, Superseded};
use crate::engine::{Engine, Share, SplitKey, State};
use crate::event::{Decoded, Decoder, Event};
use crate::record::{Kind, Record};
use crate::simulate::Simulation;

/// Which clock moves the timers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockMode {
    /// Live: timers fire when the wall clock passes them.
    #[default]
    Wall,
    /// The virtual clock of `mon simulate`, moved by event times, so a
    /// recorded stream gives the same records live as in a replay.
    Event,
}

/// One input to the engine, as journaled.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// The wall clock reached this instant (ms); only in [`ClockMode::Wall`].
    Tick(i64),
    /// A structured CloudEvents line.
    Line(String),
    /// A message that could not be read as an envelope at all, and why.
    Unreadable(String),
    /// A person's command to the alert book.
    Command(Command),
    /// Activate this rules version. [`Live::apply`] changes nothing and
    /// returns [`Fed::Activate`]: the driver resolves the version to its
    /// compiled `Program` and calls [`Live::activate`] with it, so that a
    /// replay of the journal switches at the same input.
    Activate(Activation),
    /// Switch one workflow off (`enabled: false`) or back on, by name:
    /// off, it takes no events, fires no timers and opens no occurrences;
    /// on again, its items' timers are derived afresh, so a deadline that
    /// passed while it was off fires at the next tick.
    SetEnabled { workflow: String, enabled: bool },
    /// The lines that follow came from this input partition (`None`: not
    /// from Kafka, e.g. over HTTP). Journaled where the partition changes
    /// and at the start of every batch, so each journal entry says where
    /// its events came from without the entries before it: the item's
    /// owning partition ([`Instance::partition`](crate::engine::Instance))
    /// is rebuilt exactly by a replay.
    Partition(Option<u16>),
    /// With state per partition (the service's `processor::tasks`, whose
    /// one journal holds every partition's inputs): the inputs that follow
    /// are this partition's engine's. The driver reads it; an engine given
    /// it changes nothing.
    Task(u16),
    /// On the event clock, an engine that has not started starts at this
    /// instant, as if an event of that time had come: the engines of
    /// several partitions start together, at the first event any of them
    /// sees, as one engine would (`crate::partitioned`). Nothing on the
    /// wall clock, where the first tick starts them all.
    Start(i64),
}

/// A rules version to activate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    pub version: u64,
    /// The version's program hash (`Program::hash`), so a replay can tell
    /// that the version it resolves is the one that was activated.
    pub hash: String,
}

/// What one input did, for the service's counters.
#[derive(Clone, Debug, PartialEq)]
pub enum Fed {
    Tick,
    Event {
        event_type: u32,
    },
    Ignored {
        type_name: String,
    },
    Rejected {
        reason: String,
    },
    /// The alert as the command left it, or why it did nothing.
    Command(Result<Box<Alert>, CommandError>),
    /// Nothing changed yet: call [`Live::activate`] with this version's program.
    Activate {
        version: u64,
    },
    /// A workflow switched off or on; `known: false` when the program has
    /// no such workflow, and nothing changed.
    SetEnabled {
        workflow: String,
        enabled: bool,
        known: bool,
    },
    /// The lines that follow came from this partition.
    Partition,
}

pub struct Live<'p> {
    mode: ClockMode,
    program: &'p Program,
    functions: &'p dyn Functions,
    decoder: Decoder<'p>,
    /// Event clock: the replay driver does all the work.
    simulation: Option<Simulation<'p>>,
    /// Wall clock: the engine, created at the first tick.
    engine: Option<Engine<'p>>,
    /// Wall clock: the latest tick.
    now: Option<i64>,
    /// Event clock: when monitoring starts, if given.
    from: Option<i64>,
    /// Wall clock, with alerting: the alert book (on the event clock the
    /// simulation holds it).
    book: Option<AlertBook<'p>>,
    /// What the book decided to send since the caller last took them.
    notifications: Vec<Notification>,
    /// Wall clock: workflows switched off before the engine started.
    disabled: BTreeSet<String>,
    /// The version the last [`Input::Activate`] named, for the reasons of
    /// the `superseded` records [`activate`](Self::activate) makes.
    activating: Option<u64>,
    /// Engines count movements per minute (see [`with_tally`](Self::with_tally)).
    tally: bool,
    /// The input partition the lines come from ([`Input::Partition`]).
    partition: Option<u16>,
    /// This engine's partition, when it is one of several (`Engine::share`).
    share: Option<Share>,
    /// With [`keep_events`](Self::keep_events): the events accepted since
    /// the caller last took them (the service's event store).
    accepted: Option<Vec<Event>>,
}

/// What a snapshot holds: enough to resume exactly.
#[derive(Serialize, Deserialize)]
pub struct Snapshot {
    pub mode: ClockMode,
    pub now: Option<i64>,
    /// The event clock's `from`, needed while no event has started the engine.
    #[serde(default)]
    pub from: Option<i64>,
    pub state: Option<State>,
    /// The alert book, when alerting is on.
    #[serde(default)]
    pub book: Option<BookState>,
    /// Workflows switched off before the engine started (afterwards they
    /// are in `state`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub disabled: BTreeSet<String>,
    /// This engine's partition of several (`Engine::share`), also before
    /// the engine has started (afterwards it is in `state` too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<Share>,
}

impl<'p> Live<'p> {
    /// `from`: with the event clock, when monitoring starts (default: the
    /// first event), as `mon simulate --from`.
    pub fn new(program: &'p Program, functions: &'p dyn Functions, mode: ClockMode, from: Option<i64>) -> Self {
        let simulation = (mode == ClockMode::Event).then(|| Simulation::new(program, functions, from, None));
        Live {
            mode,
            program,
            functions,
            decoder: Decoder::new(program),
            simulation,
            engine: None,
            now: None,
            from,
            book: None,
            notifications: Vec::new(),
            accepted: None,
            disabled: BTreeSet::new(),
            activating: None,
            tally: false,
            partition: None,
            share: None,
        }
    }

    /// Makes this the engine of one input partition of several
    /// (`Engine::share`): it runs every keyed workflow for the events of
    /// its partition, and the scheduled workflows it owns for the events
    /// of any. Call it before the first input; a state resumed from a
    /// snapshot keeps the share it was made with ([`share_of`](Self::share_of)).
    pub fn share(mut self, share: Share) -> Self {
        self.share = Some(share);
        if let Some(simulation) = &mut self.simulation {
            simulation.share(share);
        }
        if let Some(book) = self.book.take() {
            self.book = Some(book.of_partition(Some(share)));
        }
        if let Some(engine) = &mut self.engine {
            engine.share(share);
        }
        self
    }

    /// The partition this engine's state belongs to, if it is one of
    /// several: from the state once the engine has started.
    pub fn share_of(&self) -> Option<Share> {
        self.state().and_then(|state| state.share).or(self.share)
    }

    /// Counts entries, completions, late and missing per minute, workflow,
    /// stage and group, for the service's trend rollups; the driver takes
    /// them after each batch with [`take_tally`](Self::take_tally).
    pub fn with_tally(mut self) -> Self {
        self.tally = true;
        match &mut self.simulation {
            Some(simulation) => simulation.keep_tally(),
            None => {
                if let Some(engine) = &mut self.engine {
                    engine.keep_tally();
                }
            }
        }
        self
    }

    /// The per-minute movements since the last call.
    pub fn take_tally(&mut self) -> crate::aggregates::Tally {
        match &mut self.simulation {
            Some(simulation) => simulation.take_tally(),
            None => self.engine.as_mut().and_then(|e| e.tally.as_mut()).map(std::mem::take).unwrap_or_default(),
        }
    }

    /// Keeps a copy of every accepted event for
    /// [`take_accepted`](Self::take_accepted), or stops keeping them.
    pub fn keep_events(mut self, on: bool) -> Self {
        self.accepted = on.then(Vec::new);
        self
    }

    /// The events accepted since the last call, decoded (`pii` values
    /// already hashed), in the order they were applied.
    pub fn take_accepted(&mut self) -> Vec<Event> {
        self.accepted.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Turns alerting on: records feed an alert book (the snapshot's, when
    /// resumed from one that had it), whose notifications
    /// [`take_notifications`](Self::take_notifications) hands out.
    pub fn with_alerts(mut self, config: BookConfig) -> Self {
        match self.simulation.take() {
            Some(simulation) => self.simulation = Some(simulation.with_alerts(config)),
            None => {
                let state = self.book.take().map(|b| b.into_state()).unwrap_or_default();
                self.book = Some(AlertBook::restore(self.program, config, state).of_partition(self.share));
            }
        }
        self
    }

    /// Turns alerting off, dropping a book a snapshot brought back.
    pub fn without_alerts(mut self) -> Self {
        self.book = None;
        if let Some(simulation) = self.simulation.take() {
            self.simulation = Some(simulation.without_alerts());
        }
        self
    }

    /// The alert book, when alerting is on.
    pub fn book(&self) -> Option<&AlertBook<'p>> {
        match &self.simulation {
            Some(simulation) => simulation.book(),
            None => self.book.as_ref(),
        }
    }

    /// The notifications decided since the last call, in order.
    pub fn take_notifications(&mut self) -> Vec<Notification> {
        match &mut self.simulation {
            Some(simulation) => std::mem::take(&mut simulation.notifications),
            None => std::mem::take(&mut self.notifications),
        }
    }

    /// Resumes from a snapshot taken by [`snapshot`](Self::snapshot).
    pub fn resume(program: &'p Program, functions: &'p dyn Functions, snapshot: Snapshot) -> Self {
        let mut live = Live::new(program, functions, snapshot.mode, snapshot.from);
        live.now = snapshot.now;
        live.share = snapshot.share;
        if let Some(state) = snapshot.state {
            match snapshot.mode {
                ClockMode::Event => live.simulation = Some(Simulation::resume(program, functions, state, None)),
                ClockMode::Wall => live.engine = Some(Engine::restore(program, functions, state)),
            }
        }
        for workflow in &snapshot.disabled {
            live.set_enabled(workflow, false);
        }
        if let Some(book) = snapshot.book {
            match &mut live.simulation {
                Some(simulation) => simulation.restore_book(book),
                None => {
                    let share = live.share_of();
                    live.book = Some(AlertBook::restore(program, BookConfig::default(), book).of_partition(share))
                }
            }
        }
        live
    }

    /// The snapshot, encoded (without copying the state first).
    pub fn snapshot_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        #[derive(Serialize)]
        struct SnapshotRef<'a> {
            mode: ClockMode,
            now: Option<i64>,
            from: Option<i64>,
            state: Option<&'a State>,
            book: Option<&'a BookState>,
            #[serde(skip_serializing_if = "BTreeSet::is_empty")]
            disabled: &'a BTreeSet<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            share: Option<Share>,
        }
        let book = self.book().map(|b| b.state());
        let disabled = match &self.simulation {
            Some(simulation) => simulation.disabled_before_start(),
            None => &self.disabled,
        };
        let (mode, now, from, state, share) = (self.mode, self.now, self.from, self.state(), self.share_of());
        serde_json::to_vec(&SnapshotRef { mode, now, from, state, book, disabled, share })
    }

    /// Resumes from [`snapshot_bytes`](Self::snapshot_bytes).
    pub fn resume_bytes(program: &'p Program, functions: &'p dyn Functions, bytes: &[u8]) -> Result<Self, String> {
        let snapshot: Snapshot = serde_json::from_slice(bytes).map_err(|e| format!("the snapshot is damaged: {e}"))?;
        Ok(Live::resume(program, functions, snapshot))
    }

    pub fn mode(&self) -> ClockMode {
        self.mode
    }

    pub fn engine(&self) -> Option<&Engine<'p>> {
        match &self.simulation {
            Some(simulation) => simulation.engine(),
            None => self.engine.as_ref(),
        }
    }

    pub fn state(&self) -> Option<&State> {
        self.engine().map(|e| &e.state)
    }

    /// The instant the engine's timers have reached, for status and aging.
    pub fn clock(&self) -> Option<i64> {
        self.state().map(|s| s.clock)
    }

    /// On the wall clock, the instant of the next timer (it fires at the
    /// first tick after it); `None` on the event clock.
    pub fn next_due(&self) -> Option<i64> {
        match (self.mode, &self.engine) {
            (ClockMode::Wall, Some(engine)) => engine.next_due(),
            _ => None,
        }
    }

    /// Whether a [`Input::Tick`] at `now` could fire something: a live
    /// service journals a tick only then, not every few milliseconds.
    pub fn tick_due(&self, now: i64) -> bool {
        match (self.mode, &self.engine) {
            (ClockMode::Event, _) => false,
            (ClockMode::Wall, None) => true,
            (ClockMode::Wall, Some(engine)) => {
                let book = self.book.as_ref().and_then(AlertBook::next_due);
                engine.next_due().into_iter().chain(book).any(|due| due < now)
            }
        }
    }

    /// Applies one input, appending the records it made.
    pub fn apply(&mut self, input: &Input, out: &mut Vec<Record>) -> Fed {
        match input {
            Input::Tick(now) => {
                self.tick(*now, out);
                Fed::Tick
            }
            Input::Line(line) => self.line(line, out),
            Input::Unreadable(reason) => {
                match &mut self.simulation {
                    Some(simulation) => simulation.reject(reason, None, out),
                    None => {
                        let at = self.now.unwrap_or(0);
                        let mut r = Record::new(Kind::Rejected, at);
                        r.reason = Some(reason.clone());
                        out.push(r.with_id());
                    }
                }
                Fed::Rejected { reason: reason.clone() }
            }
            Input::Command(command) => Fed::Command(self.command(command)),
            Input::Activate(activation) => {
                self.activating = Some(activation.version);
                Fed::Activate { version: activation.version }
            }
            Input::SetEnabled { workflow, enabled } => {
                let known = self.set_enabled(workflow, *enabled);
                Fed::SetEnabled { workflow: workflow.clone(), enabled: *enabled, known }
            }
            Input::Partition(partition) => {
                self.partition = *partition;
                Fed::Partition
            }
            Input::Task(_) => Fed::Partition,
            Input::Start(at) => {
                if let Some(simulation) = &mut self.simulation {
                    simulation.start(*at);
                }
                Fed::Partition
            }
        }
    }

    /// The events since the last call that came from another partition
    /// than the one that started their item (at most
    /// [`SPLIT_KEYS_KEPT`](crate::engine::SPLIT_KEYS_KEPT)), and how many
    /// there have been in all.
    pub fn take_split_keys(&mut self) -> (Vec<SplitKey>, u64) {
        let engine = match &mut self.simulation {
            Some(simulation) => simulation.engine_mut(),
            None => self.engine.as_mut(),
        };
        engine.map(|e| (std::mem::take(&mut e.split.kept), e.split.events)).unwrap_or_default()
    }

    /// Moves to another rules version, keeping the state (the rules of
    /// what carries over: `engine/activate.rs`), at the engine's clock; the
    /// alert book follows. Call it after [`apply`](Self::apply) returned
    /// [`Fed::Activate`], with that version's program: the `superseded`
    /// records name the version. Activating the program already running
    /// changes nothing.
    pub fn activate(&mut self, program: &'p Program, out: &mut Vec<Record>) -> Migration {
        let rules = match self.activating.take() {
            Some(version) => format!("rules version {version}"),
            None => "new rules".to_string(),
        };
        self.program = program;
        self.decoder = Decoder::new(program);
        if let Some(simulation) = &mut self.simulation {
            return simulation.activate(program, &rules, out);
        }
        self.disabled.retain(|name| program.workflow(name).is_some());
        let (migration, clearances) = match &mut self.engine {
            Some(engine) => engine.activate(program, &rules, out),
            None => Default::default(),
        };
        if let Some(book) = &mut self.book {
            let now = self.engine.as_ref().map_or(book.state().clock, |e| e.state.clock);
            book.switch_program(program, &clearances, now, &mut self.notifications);
        }
        migration
    }

    /// The program running now (the last activated).
    pub fn program(&self) -> &'p Program {
        self.program
    }

    fn set_enabled(&mut self, workflow: &str, enabled: bool) -> bool {
        if let Some(simulation) = &mut self.simulation {
            return simulation.set_enabled(workflow, enabled);
        }
        if let Some(engine) = &mut self.engine {
            return engine.set_enabled(workflow, enabled);
        }
        crate::engine::switch_before_start(self.program, &mut self.disabled, workflow, enabled)
    }

    /// The wall-clock engine, started at `start` if it has not yet (with
    /// the workflows switched off before it started).
    fn wall_engine(&mut self, start: i64) -> &mut Engine<'p> {
        let (program, functions, disabled, tally) = (self.program, self.functions, &mut self.disabled, self.tally);
        let share = self.share;
        self.engine.get_or_insert_with(|| {
            let mut engine = Engine::new(program, functions, start);
            if let Some(share) = share {
                engine.share(share);
            }
            for workflow in std::mem::take(disabled) {
                engine.set_enabled(&workflow, false);
            }
            if tally {
                engine.keep_tally();
            }
            engine
        })
    }

    fn command(&mut self, command: &Command) -> Result<Box<Alert>, CommandError> {
        let result = match (&mut self.simulation, &mut self.book) {
            (Some(simulation), _) => simulation.command(command),
            (None, Some(book)) => book.command(command, &mut self.notifications),
            (None, None) => Err(CommandError::NotFound(command.alert.clone())),
        };
        result.map(|alert| Box::new(alert.clone()))
    }

    /// Hands what the wall-clock engine just made to the alert book.
    fn alert(&mut self, start: usize, out: &[Record]) {
        let (Some(engine), now) = (self.engine.as_mut(), self.now.unwrap_or(0)) else { return };
        crate::alerts::follow(self.book.as_mut(), &out[start..], engine, now, &mut self.notifications);
    }

    fn tick(&mut self, now: i64, out: &mut Vec<Record>) {
        if self.mode == ClockMode::Event {
            return;
        }
        // The wall clock never runs backwards for the engine, even if the
        // host's clock is stepped back.
        let now = self.now.map_or(now, |n| n.max(now));
        self.now = Some(now);
        let start = out.len();
        self.wall_engine(now).advance(now, false, out);
        self.alert(start, out);
    }

    fn line(&mut self, line: &str, out: &mut Vec<Record>) -> Fed {
        let decoded = self.decoder.decode(line);
        self.apply_decoded(&decoded, out)
    }

    /// Applies an [`Input::Line`] that another thread has already decoded
    /// with a [`Decoder`] of the program running now: the same as
    /// [`apply`](Self::apply) with the line, which the caller journals.
    /// Decoding is pure, so a replay of the journal, which decodes the
    /// line here, makes the same records.
    pub fn apply_decoded(&mut self, decoded: &Decoded, out: &mut Vec<Record>) -> Fed {
        // An event of another partition, handed to this engine for the
        // scheduled workflows it owns, is that partition's to keep.
        let foreign = matches!((self.share, self.partition), (Some(share), Some(from)) if from != share.partition);
        let fed = match decoded {
            Decoded::Event(event) => {
                if let (Some(accepted), false) = (&mut self.accepted, foreign) {
                    accepted.push(event.clone());
                }
                Fed::Event { event_type: event.event_type }
            }
            Decoded::Ignored { type_name, .. } => Fed::Ignored { type_name: type_name.clone() },
            Decoded::Rejected(rejection) => Fed::Rejected { reason: rejection.reason.clone() },
        };
        if let Some(simulation) = &mut self.simulation {
            simulation.origin = self.partition;
            simulation.feed_decoded(decoded, None, out);
            return fed;
        }
        let now = self.now.unwrap_or(0);
        match decoded {
            Decoded::Event(event) => {
                let start = out.len();
                let partition = self.partition;
                let engine = self.wall_engine(now.max(event.time));
                engine.origin = partition;
                engine.process(event, out);
                self.alert(start, out);
            }
            Decoded::Ignored { .. } => {}
            Decoded::Rejected(rejection) => {
                let mut r = Record::new(Kind::Rejected, rejection.time.unwrap_or(now));
                r.event_id = rejection.id.clone();
                r.reason = Some(rejection.reason.clone());
                out.push(r.with_id());
            }
        }
        fed
    }
}

// ---------------------------------------------------------------- journal

const TICK: u8 = 0;
const LINE: u8 = 1;
const UNREADABLE: u8 = 2;
const COMMAND: u8 = 3;
const ACTIVATE: u8 = 4;
const SET_ENABLED: u8 = 5;
const PARTITION: u8 = 6;
const TASK: u8 = 7;
const START: u8 = 8;
/// [`Input::Partition`]`(None)` in the journal.
const NO_PARTITION: u16 = u16::MAX;

/// Encodes a batch of inputs for the journal: a tag byte, then an i64
/// instant or a u32 length and the UTF-8 bytes (a command as JSON); an
/// activation is its u64 version then its hash as text, a switch one byte
/// (1: on) then the workflow's name as text, a partition a u16 (`u16::MAX`:
/// none). Tags are never renumbered, so
/// older journals still decode.
/// Hand-rolled because the journal sees every event and JSON would escape
/// every line again.
pub fn encode_inputs(inputs: &[Input]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(inputs.iter().map(encoded_size).sum());
    for input in inputs {
        let text = |tag: u8, s: &str, bytes: &mut Vec<u8>| {
            bytes.push(tag);
            text_only(s, bytes);
        };
        match input {
            Input::Tick(at) => {
                bytes.push(TICK);
                bytes.extend_from_slice(&at.to_le_bytes());
            }
            Input::Line(s) => text(LINE, s, &mut bytes),
            Input::Unreadable(s) => text(UNREADABLE, s, &mut bytes),
            Input::Command(command) => text(COMMAND, &command_json(command), &mut bytes),
            Input::Activate(Activation { version, hash }) => {
                bytes.push(ACTIVATE);
                bytes.extend_from_slice(&version.to_le_bytes());
                text_only(hash, &mut bytes);
            }
            Input::SetEnabled { workflow, enabled } => {
                bytes.push(SET_ENABLED);
                bytes.push(u8::from(*enabled));
                text_only(workflow, &mut bytes);
            }
            Input::Partition(partition) => {
                bytes.push(PARTITION);
                bytes.extend_from_slice(&partition.unwrap_or(NO_PARTITION).to_le_bytes());
            }
            Input::Task(partition) => {
                bytes.push(TASK);
                bytes.extend_from_slice(&partition.to_le_bytes());
            }
            Input::Start(at) => {
                bytes.push(START);
                bytes.extend_from_slice(&at.to_le_bytes());
            }
        }
    }
    bytes
}

/// A u32 length and the UTF-8 bytes.
fn text_only(s: &str, bytes: &mut Vec<u8>) {
    bytes.extend_from_slice(&(s.len() as u32).to_le_bytes());
    bytes.extend_from_slice(s.as_bytes());
}

/// Reads what [`text_only`] wrote.
fn read_text(bytes: &[u8]) -> Option<(String, &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    let text = std::str::from_utf8(rest.get(..len)?).ok()?.to_string();
    Some((text, &rest[len..]))
}

fn encoded_size(input: &Input) -> usize {
    match input {
        Input::Tick(_) | Input::Start(_) => 9,
        Input::Line(s) | Input::Unreadable(s) => 5 + s.len(),
        Input::Command(_) => 256,
        Input::Activate(a) => 13 + a.hash.len(),
        Input::SetEnabled { workflow, .. } => 6 + workflow.len(),
        Input::Partition(_) | Input::Task(_) => 3,
    }
}

fn command_json(command: &Command) -> String {
    // A command is plain data (strings and integers): it always serialises.
    serde_json::to_string(command).unwrap_or_default()
}

/// Decodes what [`encode_inputs`] wrote; `None` if the bytes are damaged.
pub fn decode_inputs(mut bytes: &[u8]) -> Option<Vec<Input>> {
    let mut inputs = Vec::new();
    while let Some((&tag, rest)) = bytes.split_first() {
        match tag {
            TICK => {
                let (at, rest) = rest.split_first_chunk::<8>()?;
                inputs.push(Input::Tick(i64::from_le_bytes(*at)));
                bytes = rest;
            }
            LINE | UNREADABLE | COMMAND => {
                let (text, rest) = read_text(rest)?;
                inputs.push(match tag {
                    LINE => Input::Line(text),
                    UNREADABLE => Input::Unreadable(text),
                    _ => Input::Command(serde_json::from_str(&text).ok()?),
                });
                bytes = rest;
            }
            ACTIVATE => {
                let (version, rest) = rest.split_first_chunk::<8>()?;
                let (hash, rest) = read_text(rest)?;
                inputs.push(Input::Activate(Activation { version: u64::from_le_bytes(*version), hash }));
                bytes = rest;
            }
            SET_ENABLED => {
                let (&enabled, rest) = rest.split_first()?;
                let enabled = match enabled {
                    0 => false,
                    1 => true,
                    _ => return None,
                };
                let (workflow, rest) = read_text(rest)?;
                inputs.push(Input::SetEnabled { workflow, enabled });
                bytes = rest;
            }
            PARTITION => {
                let (partition, rest) = rest.split_first_chunk::<2>()?;
                let partition = u16::from_le_bytes(*partition);
                inputs.push(Input::Partition((partition != NO_PARTITION).then_some(partition)));
                bytes = rest;
            }
            TASK => {
                let (partition, rest) = rest.split_first_chunk::<2>()?;
                inputs.push(Input::Task(u16::from_le_bytes(*partition)));
                bytes = rest;
            }
            START => {
                let (at, rest) = rest.split_first_chunk::<8>()?;
                inputs.push(Input::Start(i64::from_le_bytes(*at)));
                bytes = rest;
            }
            _ => return None,
        }
    }
    Some(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregates::{minute_of, Movement};

    const JOBS: &str = "event job_started { job: string }\nevent job_done { job: string }\n\
        workflow jobs {\n  key job\n  start started: job_started\n  step done: job_done after started within 1m -> success\n}\n";

    fn line(kind: &str, job: &str, time: &str) -> Input {
        Input::Line(format!(
            r#"{{"specversion":"1.0","id":"{kind}-{job}","source":"t","type":"{kind}","time":"2026-03-02T{time}Z","data":{{"job":"{job}"}}}}"#
        ))
    }

    /// The tally counts per minute what the counters count in total, and
    /// a `missing` in the minute its deadline fired, in the stage the item
    /// waits in; it is off unless asked for, on either clock.
    #[test]
    fn the_tally_counts_movements_per_minute_only_when_asked() {
        let sources = vec![mon_compiler::SourceFile { path: "jobs.mon".into(), text: JOBS.into() }];
        let program =
            mon_compiler::compile(&sources, mon_stdlib::registry(), &mon_compiler::NoSchemas).program.unwrap();
        let inputs = [
            line("job_started", "J1", "10:00:10"),
            line("job_done", "J1", "10:00:40"),
            line("job_started", "J2", "10:00:50"),
            line("job_started", "J3", "10:03:00"),
            line("job_done", "J2", "10:03:30"),
        ];
        for mode in [ClockMode::Event, ClockMode::Wall] {
            let mut records = Vec::new();
            let mut plain = Live::new(&program, mon_stdlib::registry(), mode, None);
            let mut live = Live::new(&program, mon_stdlib::registry(), mode, None).with_tally();
            for input in &inputs {
                if mode == ClockMode::Wall {
                    // On the wall clock, time enters as ticks.
                    let Input::Line(text) = input else { continue };
                    let at = text.split("\"time\":\"").nth(1).and_then(|t| t.get(..20)).unwrap();
                    let tick = Input::Tick(mon_stdlib::time::parse_rfc3339(at).unwrap());
                    live.apply(&tick, &mut records);
                    plain.apply(&tick, &mut Vec::new());
                }
                live.apply(input, &mut records);
                plain.apply(input, &mut Vec::new());
            }
            assert!(plain.take_tally().is_empty(), "{mode:?}: no tally unless asked");
            let tally = live.take_tally();
            assert!(live.take_tally().is_empty(), "taken once");
            let at = |time: &str| minute_of(mon_stdlib::time::parse_rfc3339(&format!("2026-03-02T{time}Z")).unwrap());
            let missing = records.iter().find(|r| r.kind == crate::record::Kind::Missing).expect("J2 went missing");
            let expected = [
                ((at("10:00:00"), 0, 0, 0), Movement { entered: 2, ..Movement::default() }),
                ((at("10:00:00"), 0, 1, 0), Movement { entered: 1, completed: 1, ..Movement::default() }),
                ((minute_of(missing.at), 0, 0, 0), Movement { missing: 1, ..Movement::default() }),
                ((at("10:03:00"), 0, 0, 0), Movement { entered: 1, ..Movement::default() }),
                ((at("10:03:00"), 0, 1, 0), Movement { entered: 1, completed: 1, late: 1, missing: 0 }),
            ];
            let mut want = crate::aggregates::Tally::new();
            for (key, movement) in expected {
                want.entry(key).or_default().add(&movement);
            }
            assert_eq!(tally, want, "{mode:?}");
        }
    }

    /// An item's events from another partition than the one that started
    /// it are reported, on either clock, once per event; the partition an
    /// item belongs to survives a snapshot and is rebuilt by a replay.
    #[test]
    fn events_of_one_item_on_two_partitions_are_reported() {
        let sources = vec![mon_compiler::SourceFile { path: "jobs.mon".into(), text: JOBS.into() }];
        let program =
            mon_compiler::compile(&sources, mon_stdlib::registry(), &mon_compiler::NoSchemas).program.unwrap();
        let inputs = vec![
            Input::Partition(Some(0)),
            line("job_started", "J1", "10:00:10"),
            Input::Partition(Some(3)),
            line("job_started", "J2", "10:00:20"),
            Input::Partition(None),
            line("job_started", "J3", "10:00:25"),
            // J1 finishes on partition 3: split. J2 on its own: not.
            Input::Partition(Some(3)),
            line("job_done", "J1", "10:00:30"),
            line("job_done", "J2", "10:00:35"),
            // An item started over HTTP belongs to no partition: not split.
            line("job_done", "J3", "10:00:40"),
        ];
        for mode in [ClockMode::Event, ClockMode::Wall] {
            let mut live = Live::new(&program, mon_stdlib::registry(), mode, None);
            let mut records = Vec::new();
            for input in &inputs {
                if let (ClockMode::Wall, Input::Line(text)) = (mode, input) {
                    let at = text.split("\"time\":\"").nth(1).and_then(|t| t.get(..20)).unwrap();
                    live.apply(&Input::Tick(mon_stdlib::time::parse_rfc3339(at).unwrap()), &mut records);
                }
                live.apply(input, &mut records);
            }
            let (split, total) = live.take_split_keys();
            assert_eq!(total, 1, "{mode:?}");
            assert_eq!(split.len(), 1, "{mode:?}");
            assert_eq!((split[0].key.as_str(), split[0].owner, split[0].seen_on), ("J1", 0, 3), "{mode:?}");
            assert!(live.take_split_keys().0.is_empty(), "{mode:?}: taken once");

            let partitions = |live: &Live| {
                let instances = &live.state().unwrap().workflows[0];
                ["J1", "J2", "J3"].map(|k| instances.get(instances.find(k).unwrap()).unwrap().partition)
            };
            let none = crate::engine::NO_PARTITION;
            assert_eq!(partitions(&live), [0, 3, none], "{mode:?}");
            let resumed =
                Live::resume_bytes(&program, mon_stdlib::registry(), &live.snapshot_bytes().unwrap()).unwrap();
            assert_eq!(partitions(&resumed), [0, 3, none], "{mode:?}: kept by a snapshot");
            let mut replayed = Live::new(&program, mon_stdlib::registry(), mode, None);
            let journaled = decode_inputs(&encode_inputs(&inputs)).unwrap();
            for input in &journaled {
                if let (ClockMode::Wall, Input::Line(text)) = (mode, input) {
                    let at = text.split("\"time\":\"").nth(1).and_then(|t| t.get(..20)).unwrap();
                    replayed.apply(&Input::Tick(mon_stdlib::time::parse_rfc3339(at).unwrap()), &mut Vec::new());
                }
                replayed.apply(input, &mut Vec::new());
            }
            assert_eq!(partitions(&replayed), [0, 3, none], "{mode:?}: rebuilt by a replay");
        }
    }

    #[test]
    fn journal_encoding_round_trips_and_refuses_damage() {
        let inputs = vec![
            Input::Tick(-5),
            Input::Line("{\"a\":\"é\"}".into()),
            Input::Unreadable("not UTF-8".into()),
            Input::Tick(i64::MAX),
            Input::Partition(Some(7)),
            Input::Task(2),
            Input::Start(-3),
            Input::Partition(None),
            Input::Partition(Some(0)),
            Input::Command(Command {
                alert: "a1".into(),
                action: crate::alerts::Action::Suppress { until: Some(7) },
                by: "ops \"night\"".into(),
                reason: None,
                at: 5,
            }),
        ];
        let bytes = encode_inputs(&inputs);
        assert_eq!(decode_inputs(&bytes), Some(inputs));
        assert_eq!(decode_inputs(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode_inputs(&[9]), None);
        assert_eq!(decode_inputs(&[]), Some(vec![]));
    }

    #[test]
    fn journals_written_before_activation_existed_still_decode() {
        // A tick at 5 and the line "x", byte for byte as the first journal
        // format wrote them: new tags must never renumber the old ones.
        let old = [0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, b'x'];
        assert_eq!(decode_inputs(&old), Some(vec![Input::Tick(5), Input::Line("x".into())]));
        // A switch whose flag byte is neither 0 nor 1 is damage.
        assert_eq!(decode_inputs(&[5, 2, 0, 0, 0, 0]), None);
    }

    /// A partition's engine that has seen no event yet (the event clock
    /// starts it at its first) still says, once resumed from a snapshot,
    /// whose partition it is.
    #[test]
    fn a_snapshot_keeps_the_share_before_the_engine_starts() {
        let sources = vec![mon_compiler::SourceFile { path: "jobs.mon".into(), text: JOBS.into() }];
        let program =
            mon_compiler::compile(&sources, mon_stdlib::registry(), &mon_compiler::NoSchemas).program.unwrap();
        let share = Share { partition: 2, partitions: 3 };
        for mode in [ClockMode::Event, ClockMode::Wall] {
            let live = Live::new(&program, mon_stdlib::registry(), mode, None).share(share);
            assert!(live.state().is_none(), "{mode:?}: not started");
            let resumed =
                Live::resume_bytes(&program, mon_stdlib::registry(), &live.snapshot_bytes().unwrap()).unwrap();
            assert_eq!(resumed.share_of(), Some(share), "{mode:?}");
        }
    }
}
