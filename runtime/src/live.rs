//! The engine as the service drives it: a sequence of [`Input`]s on one of
//! two clocks, replayable exactly.
//!
//! The service journals every input before it acts on its outputs, so the
//! state after a crash is rebuilt by replaying the journal since the last
//! snapshot through this same code (ARCHITECTURE.md rule 1: the engine is a
//! pure function of program, state, input and clock; the wall clock is
//! made an input by [`Input::Tick`]). Nothing here does I/O.

use mon_compiler::ir::Program;
use mon_compiler::Functions;
use serde::{Deserialize, Serialize};

use crate::alerts::{Alert, AlertBook, BookConfig, BookState, Command, CommandError, Notification};
use crate::engine::{Engine, State};
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
                self.book = Some(AlertBook::restore(self.program, config, state));
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
        if let Some(state) = snapshot.state {
            match snapshot.mode {
                ClockMode::Event => live.simulation = Some(Simulation::resume(program, functions, state, None)),
                ClockMode::Wall => live.engine = Some(Engine::restore(program, functions, state)),
            }
        }
        if let Some(book) = snapshot.book {
            match &mut live.simulation {
                Some(simulation) => simulation.restore_book(book),
                None => live.book = Some(AlertBook::restore(program, BookConfig::default(), book)),
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
        }
        let book = self.book().map(|b| b.state());
        serde_json::to_vec(&SnapshotRef { mode: self.mode, now: self.now, from: self.from, state: self.state(), book })
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
        }
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
        let (program, functions) = (self.program, self.functions);
        let engine = self.engine.get_or_insert_with(|| Engine::new(program, functions, now));
        let start = out.len();
        engine.advance(now, false, out);
        self.alert(start, out);
    }

    fn line(&mut self, line: &str, out: &mut Vec<Record>) -> Fed {
        let decoded = self.decoder.decode(line);
        let fed = match &decoded {
            Decoded::Event(event) => {
                if let Some(accepted) = &mut self.accepted {
                    accepted.push(event.clone());
                }
                Fed::Event { event_type: event.event_type }
            }
            Decoded::Ignored { type_name, .. } => Fed::Ignored { type_name: type_name.clone() },
            Decoded::Rejected(rejection) => Fed::Rejected { reason: rejection.reason.clone() },
        };
        if let Some(simulation) = &mut self.simulation {
            simulation.feed_decoded(decoded, None, out);
            return fed;
        }
        let now = self.now.unwrap_or(0);
        let (program, functions) = (self.program, self.functions);
        match decoded {
            Decoded::Event(event) => {
                let engine = self.engine.get_or_insert_with(|| Engine::new(program, functions, now.max(event.time)));
                let start = out.len();
                engine.process(&event, out);
                self.alert(start, out);
            }
            Decoded::Ignored { .. } => {}
            Decoded::Rejected(rejection) => {
                let mut r = Record::new(Kind::Rejected, rejection.time.unwrap_or(now));
                r.event_id = rejection.id;
                r.reason = Some(rejection.reason);
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

/// Encodes a batch of inputs for the journal: a tag byte, then an i64
/// instant or a u32 length and the UTF-8 bytes (a command as JSON).
/// Hand-rolled because the journal sees every event and JSON would escape
/// every line again.
pub fn encode_inputs(inputs: &[Input]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(inputs.iter().map(encoded_size).sum());
    for input in inputs {
        let text = |tag: u8, s: &str, bytes: &mut Vec<u8>| {
            bytes.push(tag);
            bytes.extend_from_slice(&(s.len() as u32).to_le_bytes());
            bytes.extend_from_slice(s.as_bytes());
        };
        match input {
            Input::Tick(at) => {
                bytes.push(TICK);
                bytes.extend_from_slice(&at.to_le_bytes());
            }
            Input::Line(s) => text(LINE, s, &mut bytes),
            Input::Unreadable(s) => text(UNREADABLE, s, &mut bytes),
            Input::Command(command) => text(COMMAND, &command_json(command), &mut bytes),
        }
    }
    bytes
}

fn encoded_size(input: &Input) -> usize {
    match input {
        Input::Tick(_) => 9,
        Input::Line(s) | Input::Unreadable(s) => 5 + s.len(),
        Input::Command(_) => 256,
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
                let (len, rest) = rest.split_first_chunk::<4>()?;
                let len = u32::from_le_bytes(*len) as usize;
                let text = std::str::from_utf8(rest.get(..len)?).ok()?.to_string();
                inputs.push(match tag {
                    LINE => Input::Line(text),
                    UNREADABLE => Input::Unreadable(text),
                    _ => Input::Command(serde_json::from_str(&text).ok()?),
                });
                bytes = &rest[len..];
            }
            _ => return None,
        }
    }
    Some(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_encoding_round_trips_and_refuses_damage() {
        let inputs = vec![
            Input::Tick(-5),
            Input::Line("{\"a\":\"é\"}".into()),
            Input::Unreadable("not UTF-8".into()),
            Input::Tick(i64::MAX),
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
}
