//! Replaying a stream of envelopes on a virtual clock (LANGUAGE.md §7).
//!
//! Before an event with time `t`, every timer due strictly before `t` fires;
//! at the end the clock moves to `until` (default: the last event's time)
//! and every timer due at or before it fires. Monitoring starts at `from`,
//! or at the first well-formed event. Lines are fed one at a time, so the
//! caller chooses the I/O (a file, stdin, a Kafka topic).
//!
//! A line without a readable `time` cannot move the clock, so its
//! rejection is made at the clock's instant: the latest event's time, or
//! `from` (LANGUAGE.md changelog v1.4). A caller that reads a file passes
//! the line's number, and the `rejected` record names it.
//!
//! Reading a file is split in two halves at the point where a line becomes
//! a [`Decoded`]: [`NumberedLine::decode`] needs only the program, never the
//! simulation's clock or state, so `mon simulate` may run it on another
//! thread ahead of the engine; [`Simulation::feed_numbered`] takes the lines
//! in file order and is where the clock, and so every rejection's instant,
//! is decided. Both halves are the same code however they are scheduled,
//! which is what keeps the results identical.

use std::collections::BTreeSet;

use mon_compiler::ir::Program;
use mon_compiler::Functions;

use crate::alerts::{Alert, AlertBook, BookConfig, BookState, Command, CommandError, Notification};
use crate::engine::{Engine, Migration, Share, State};
use crate::event::{Decoded, Decoder, Rejection};
use crate::record::{Kind, Record};

/// Why a line that is not valid UTF-8 is rejected.
pub const NOT_TEXT: &str = "type unknown: the line is not valid UTF-8";

/// A line of a replayed file after its decoding half: everything the
/// engine half needs, and nothing that depends on the simulation's state.
#[derive(Debug)]
pub enum NumberedLine {
    /// A line of text, decoded; `number` counts from 1 in the file.
    Text { number: u64, decoded: Decoded },
    /// A line that is not valid UTF-8: rejected like a malformed event.
    NotText { number: u64 },
}

impl NumberedLine {
    /// Decodes line `number` of a file as `mon simulate` reads it: a
    /// leading byte-order mark is dropped, and a blank line is `None`
    /// (skipped, and not counted as a line read).
    pub fn decode(decoder: &Decoder, bytes: &[u8], number: u64) -> Option<NumberedLine> {
        match std::str::from_utf8(bytes).map(|line| line.trim_start_matches('\u{feff}')) {
            Ok(line) if line.trim().is_empty() => None,
            Ok(line) => Some(NumberedLine::Text { number, decoded: decoder.decode(line) }),
            Err(_) => Some(NumberedLine::NotText { number }),
        }
    }
}

pub struct Simulation<'p> {
    decoder: Decoder<'p>,
    program: &'p Program,
    functions: &'p dyn Functions,
    engine: Option<Engine<'p>>,
    from: Option<i64>,
    until: Option<i64>,
    last_time: Option<i64>,
    traced: Vec<String>,
    /// Workflows switched off before the engine started.
    disabled: BTreeSet<String>,
    /// Engines count movements per minute (see [`keep_tally`](Self::keep_tally)).
    tally: bool,
    /// With [`with_alerts`](Self::with_alerts): the alert book the records feed.
    book: Option<AlertBook<'p>>,
    /// What the book decided to send, in order; the caller takes them.
    pub notifications: Vec<Notification>,
    /// The input partition of the next event (see `Engine::origin`).
    pub origin: Option<u16>,
    /// This engine's partition, when it is one of several (`Engine::share`).
    share: Option<Share>,
    pub lines: u64,
    pub rejected: u64,
    pub ignored: u64,
}

impl<'p> Simulation<'p> {
    pub fn new(program: &'p Program, functions: &'p dyn Functions, from: Option<i64>, until: Option<i64>) -> Self {
        let mut simulation = Simulation {
            decoder: Decoder::new(program),
            program,
            functions,
            engine: None,
            from,
            until,
            last_time: None,
            traced: Vec::new(),
            disabled: BTreeSet::new(),
            tally: false,
            book: None,
            notifications: Vec::new(),
            origin: None,
            share: None,
            lines: 0,
            rejected: 0,
            ignored: 0,
        };
        if let Some(from) = from {
            simulation.engine = Some(Engine::new(program, functions, from));
        }
        simulation
    }

    /// Resumes from an engine state saved by [`state`](Self::state).
    pub fn resume(program: &'p Program, functions: &'p dyn Functions, state: State, until: Option<i64>) -> Self {
        let mut simulation = Simulation::new(program, functions, None, until);
        simulation.last_time = state.last_event_time;
        simulation.from = Some(state.start);
        simulation.engine = Some(Engine::restore(program, functions, state));
        simulation
    }

    /// Feeds the records to an alert book, which collects what it would
    /// send in [`notifications`](Self::notifications). A book restored with
    /// [`restore_book`](Self::restore_book) keeps its state and takes this
    /// configuration.
    pub fn with_alerts(mut self, config: BookConfig) -> Self {
        let state = self.book.take().map(|book| book.into_state()).unwrap_or_default();
        self.book = Some(AlertBook::restore(self.program, config, state).of_partition(self.share));
        self
    }

    /// Stops feeding an alert book.
    pub fn without_alerts(mut self) -> Self {
        self.book = None;
        self
    }

    /// Restores the alert book saved with the engine's state.
    pub fn restore_book(&mut self, state: BookState) {
        let config = self.book.as_ref().map(|b| b.config()).unwrap_or_default();
        self.book = Some(AlertBook::restore(self.program, config, state).of_partition(self.share));
    }

    pub fn book(&self) -> Option<&AlertBook<'p>> {
        self.book.as_ref()
    }

    /// Applies a person's command to the alert book, at the virtual clock's
    /// instant (the command's own instant is wall time, which this clock
    /// does not follow).
    pub fn command(&mut self, command: &Command) -> Result<&Alert, CommandError> {
        let Some(book) = self.book.as_mut() else { return Err(CommandError::NotFound(command.alert.clone())) };
        let at = self.engine.as_ref().map_or(book.state().clock, |e| e.state.clock);
        book.command(&Command { at, ..command.clone() }, &mut self.notifications)
    }

    pub fn program(&self) -> &'p Program {
        self.program
    }

    pub fn state(&self) -> Option<&State> {
        self.engine.as_ref().map(|e| &e.state)
    }

    pub fn engine(&self) -> Option<&Engine<'p>> {
        self.engine.as_ref()
    }

    pub(crate) fn engine_mut(&mut self) -> Option<&mut Engine<'p>> {
        self.engine.as_mut()
    }

    /// Traces items with this key (values joined by U+001F for compound keys).
    pub fn trace_key(&mut self, key: &str) {
        self.traced.push(key.to_string());
        if let Some(engine) = &mut self.engine {
            engine.trace_key(key);
        }
    }

    /// Counts movements per minute in the engine's `tally` (the service's
    /// trend rollups), from now on and in any engine made later.
    pub fn keep_tally(&mut self) {
        self.tally = true;
        if let Some(engine) = &mut self.engine {
            engine.keep_tally();
        }
    }

    /// The per-minute movements since the last call.
    pub fn take_tally(&mut self) -> crate::aggregates::Tally {
        self.engine.as_mut().and_then(|e| e.tally.as_mut()).map(std::mem::take).unwrap_or_default()
    }

    /// Makes this the engine of one partition of several (see
    /// `Engine::share`); call it before the first input.
    pub fn share(&mut self, share: Share) {
        self.share = Some(share);
        if let Some(book) = self.book.take() {
            self.book = Some(book.of_partition(Some(share)));
        }
        if let Some(engine) = &mut self.engine {
            engine.share(share);
        }
    }

    /// Starts the engine at `at` if it has not started: several engines of
    /// one program (`partitioned`) start together, at the first event any
    /// of them sees, as one engine would.
    pub fn start(&mut self, at: i64) {
        self.engine_at(at);
    }

    fn engine_at(&mut self, time: i64) -> &mut Engine<'p> {
        let (program, functions, share) = (self.program, self.functions, self.share);
        let (traced, disabled, tally) = (&self.traced, &mut self.disabled, self.tally);
        self.engine.get_or_insert_with(|| {
            let mut engine = Engine::new(program, functions, time);
            if let Some(share) = share {
                engine.share(share);
            }
            for key in traced {
                engine.trace_key(key);
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

    /// Switches a workflow off or on (`Engine::set_enabled`), also before
    /// the engine has started; `false` when there is no such workflow.
    pub fn set_enabled(&mut self, workflow: &str, enabled: bool) -> bool {
        if let Some(engine) = &mut self.engine {
            return engine.set_enabled(workflow, enabled);
        }
        crate::engine::switch_before_start(self.program, &mut self.disabled, workflow, enabled)
    }

    /// The workflows switched off before the engine started (afterwards
    /// they are in its state).
    pub fn disabled_before_start(&self) -> &BTreeSet<String> {
        &self.disabled
    }

    /// Moves to another rules version keeping the state
    /// (`Engine::activate`); the alert book, if any, follows.
    pub fn activate(&mut self, program: &'p Program, rules: &str, out: &mut Vec<Record>) -> Migration {
        self.program = program;
        self.decoder = Decoder::new(program);
        self.disabled.retain(|name| program.workflow(name).is_some());
        let (migration, clearances) = match &mut self.engine {
            Some(engine) => engine.activate(program, rules, out),
            None => Default::default(),
        };
        if let Some(book) = &mut self.book {
            let now = self.engine.as_ref().map_or(book.state().clock, |e| e.state.clock);
            book.switch_program(program, &clearances, now, &mut self.notifications);
        }
        migration
    }

    /// Records a line that could not even be read as text; `line` is its
    /// number in the file being replayed, if there is one.
    pub fn reject(&mut self, reason: &str, line: Option<u64>, out: &mut Vec<Record>) {
        let at = self.last_time.or(self.from).unwrap_or(0);
        self.feed_rejected(&Rejection::of(reason), line, at, out);
    }

    /// Feeds a line decoded by [`NumberedLine::decode`], in file order.
    /// Returns the event's type when no rule declares it, for a report.
    pub fn feed_numbered(&mut self, line: &NumberedLine, out: &mut Vec<Record>) -> Option<String> {
        match line {
            NumberedLine::Text { number, decoded } => {
                let undeclared = match decoded {
                    Decoded::Ignored { type_name, .. } => Some(type_name.clone()),
                    _ => None,
                };
                self.feed_decoded(decoded, Some(*number), out);
                undeclared
            }
            NumberedLine::NotText { number } => {
                self.reject(NOT_TEXT, Some(*number), out);
                None
            }
        }
    }

    /// Readies the cache for the lines that follow the one about to be
    /// fed (see [`Engine::prefetch_ahead`]); changes nothing.
    pub fn prefetch_ahead(&self, upcoming: &[NumberedLine]) {
        if let Some(engine) = &self.engine {
            engine.prefetch_ahead(upcoming, |line| match line {
                NumberedLine::Text { decoded: Decoded::Event(event), .. } => Some(event),
                _ => None,
            });
        }
    }

    /// Feeds one line of NDJSON.
    pub fn feed(&mut self, line: &str, out: &mut Vec<Record>) {
        if line.trim().is_empty() {
            return;
        }
        let decoded = self.decoder.decode(line);
        self.feed_decoded(&decoded, None, out);
    }

    /// Feeds a line the caller has decoded (the service and `mon simulate`
    /// decode once to count events by type); `line` is its number in the
    /// file being replayed, if there is one.
    pub fn feed_decoded(&mut self, decoded: &Decoded, line: Option<u64>, out: &mut Vec<Record>) {
        match decoded {
            Decoded::Rejected(rejection) => {
                let at = rejection.time.or(self.last_time).or(self.from).unwrap_or(0);
                self.feed_rejected(rejection, line, at, out);
            }
            &Decoded::Ignored { time, .. } => {
                self.lines += 1;
                self.ignored += 1;
                if self.until.is_some_and(|u| time > u) {
                    return;
                }
                self.last_time = Some(self.last_time.map_or(time, |l| l.max(time)));
                let last = self.last_time;
                let start = out.len();
                let engine = self.engine_at(time);
                engine.state.last_event_time = last;
                engine.advance(time, false, out);
                self.alert(&out[start..], time);
            }
            Decoded::Event(event) => {
                self.lines += 1;
                if self.until.is_some_and(|u| event.time > u) {
                    return;
                }
                self.last_time = Some(self.last_time.map_or(event.time, |l| l.max(event.time)));
                let last = self.last_time;
                let start = out.len();
                let origin = self.origin;
                let engine = self.engine_at(event.time);
                engine.state.last_event_time = last;
                engine.advance(event.time, false, out);
                engine.origin = origin;
                engine.process(event, out);
                self.alert(&out[start..], event.time);
            }
        }
    }

    /// Records a rejected line at `at` when it carries no time of its own:
    /// where several engines run one stream (`partitioned`), the stream's
    /// last time rather than this engine's.
    pub fn feed_rejected(&mut self, rejection: &Rejection, line: Option<u64>, at: i64, out: &mut Vec<Record>) {
        self.lines += 1;
        self.rejected += 1;
        let mut r = Record::new(Kind::Rejected, rejection.time.unwrap_or(at));
        r.event_id = rejection.id.clone();
        r.reason = Some(rejection.reason.clone());
        r.line = line;
        out.push(r.with_id());
    }

    /// Hands what the engine just made to the alert book, and moves the
    /// book's clock to `now`. Without a book, the engine's clearances are
    /// dropped so they cannot pile up.
    fn alert(&mut self, records: &[Record], now: i64) {
        let Some(engine) = self.engine.as_mut() else { return };
        crate::alerts::follow(self.book.as_mut(), records, engine, now, &mut self.notifications);
    }

    /// Moves the clock to `until` (or the last event's time) and fires
    /// every timer due at or before it.
    pub fn finish(&mut self, out: &mut Vec<Record>) -> Option<i64> {
        let end = self.until.or(self.last_time)?;
        self.finish_at(end, out);
        Some(end)
    }

    /// [`finish`](Self::finish) at `end`: where several engines of one
    /// program end together (`partitioned`).
    pub fn finish_at(&mut self, end: i64, out: &mut Vec<Record>) {
        let start = out.len();
        let engine = self.engine_at(end);
        engine.advance(end, true, out);
        self.alert(&out[start..], end);
    }
}
