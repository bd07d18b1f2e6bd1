//! The engine: a pure, deterministic function of (program, state, input,
//! clock) — ARCHITECTURE.md rule 1.
//!
//! [`Engine::process`] takes one decoded event; [`Engine::advance`] moves
//! the clock and fires the timers that came due. Both append
//! [`Record`](crate::record::Record)s to
//! the caller's buffer and do nothing else: no I/O, no wall clock. The same
//! engine serves `mon test`, `mon simulate` and (later) the service.
//!
//! Per event: look up the (workflow, steps) routes of its type, keep the
//! workflows for which the event is relevant (the event-only part of a
//! step's `where` holds), find the instance by key, and classify the event
//! against the instance's current stage: a step it may take, a skipped step
//! to fill in, a duplicate, an out-of-order jump, or unexpected.
//!
//! Timers are not stored as such. An instance's pending deadlines follow
//! from its stage, the time it entered it and its flags, so the queue holds
//! only "look at instance S of workflow W at time T, generation G". Moving
//! an instance bumps its generation, which turns its queued entry stale:
//! cancelling is free, and stale entries are swept when they outnumber the
//! live ones. The queue is a hierarchical timing wheel (`wheel`), O(1)
//! amortised per timer, that pops in the order a binary heap would.
//!
//! This module holds the [`Engine`] and its [`State`]; `routing` is the
//! event path, `filter` the index of its routes by field values, `timers`
//! the clock, `wheel` the timer queue, `occurrences` the openings of
//! scheduled workflows, `records` the records of events that moved
//! nothing, `traces` the lifecycle traces, `keys` the instance keys,
//! `instances` the slab of one workflow's instances, `state` what an
//! instance keeps, and `activate` the switch to a new rules version that
//! keeps the state (and turning one workflow off and on).

mod activate;
mod conditions;
mod filter;
mod instances;
mod key_index;
mod keys;
mod occurrences;
mod recent;
mod records;
mod routing;
mod share;
mod state;
mod steps;
mod timers;
mod traces;
mod wheel;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use mon_compiler::ir::Program;
use mon_compiler::Functions;
use serde::{Deserialize, Serialize};

pub use activate::{switch_before_start, Carried, Migration, Superseded, LISTED};
pub use conditions::{default_on as jit_default_on, set_default as set_jit_default};
pub use instances::Instances;
pub use keys::{display, key_object, key_of};
pub use recent::RecentEntries;
pub use share::{for_keys_to_check, note_split_keys, owner, partition_for, Owners, Share, SplitKeys};
pub use state::{bit, Extra, Instance, TraceEntry, TraceWhat, NOT_TAKEN, NO_PARTITION};
pub use timers::{after, deadline};

use conditions::Conditions;
use filter::Filter;
pub use routing::{item_keys, PREFETCH_AHEAD};
use routing::{orders, routes, Routes};
// Public for the timer benchmark (`runtime/benches/timers.rs`).
pub use wheel::Wheel;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// Everything the engine knows; serialisable so that a run can stop and
/// resume (the split-and-resume property test relies on it).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub workflows: Vec<Instances>,
    /// Timer entries, in a timing wheel (see `wheel`).
    queue: Wheel,
    /// Per scheduled workflow: the next occurrence to open, (instant, date).
    /// Kept apart from the timers because an occurrence opening at `t`
    /// must exist for an event at `t`, while timers at `t` fire after it.
    opens: BTreeMap<u32, (i64, i32)>,
    /// Redelivery is recognized per item (LANGUAGE.md changelog v1.3): an
    /// event that took a step is remembered by its instance
    /// (`Instance::ids`); one that moved nothing (a stray, a duplicate, a
    /// dropped event) by a hash of its id and item here, since `seen_since`
    /// and in the window before, so memory stays bounded and the common
    /// case costs no lookup in a set of every id ever seen.
    #[serde(with = "sorted_set")]
    seen: FastSet<u128>,
    #[serde(with = "sorted_set")]
    seen_before: FastSet<u128>,
    seen_since: i64,
    /// When monitoring started: no occurrence before it is expected.
    pub start: i64,
    /// The latest instant the engine has seen.
    pub clock: i64,
    /// The latest event time fed to the engine (timers may have moved the
    /// clock further); a replay resumed from this state ends where it would have.
    pub last_event_time: Option<i64>,
    /// Interned group-by value lists.
    groups: Vec<Vec<String>>,
    #[serde(skip)]
    group_ids: FastMap<Vec<String>, u32>,
    /// Per workflow × stage × group counters.
    #[serde(with = "pairs")]
    pub counters: FastMap<(u32, u32, u32), Counters>,
    /// Per workflow: unexpected events that have no instance.
    pub strays: BTreeMap<u32, Counters>,
    /// Keys whose lifecycle is traced, and the trace lines of events that
    /// moved no instance.
    pub traced_keys: BTreeSet<String>,
    pub stray_trace: Vec<(u32, String, TraceEntry)>,
    /// Workflows switched off by name (`live::Input::SetEnabled`): they take
    /// no events, fire no timers and open no occurrences. By name, so the
    /// set survives an activation that renumbers workflows.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub disabled: BTreeSet<String>,
    /// Scheduled workflows that began to be watched after `start` (added
    /// or made scheduled by an activation): when, by name. No occurrence
    /// whose deadlines are all before that is expected of them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub watched_since: BTreeMap<String, i64>,
    /// Set when this engine is one of several, one per input partition
    /// (`share`): which one. Kept in the state so that a snapshot says
    /// which partition it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<Share>,
}

impl State {
    /// The next occurrence a scheduled workflow will open, as (instant,
    /// date): what a status view counts down to before the day's
    /// occurrence exists.
    pub fn next_opening(&self, workflow: u32) -> Option<(i64, i32)> {
        self.opens.get(&workflow).copied()
    }

    /// The group-by values of an interned group id.
    pub fn group(&self, id: u32) -> &[String] {
        self.groups.get(id as usize).map_or(&[], Vec::as_slice)
    }

    pub fn group_id(&self, values: &[String]) -> Option<u32> {
        self.group_ids.get(values).copied()
    }

    fn intern(&mut self, values: Vec<String>) -> u32 {
        if let Some(&id) = self.group_ids.get(&values) {
            return id;
        }
        let id = self.groups.len() as u32;
        self.groups.push(values.clone());
        self.group_ids.insert(values, id);
        id
    }
}

/// Event counts of one workflow × stage × group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub entered: u64,
    pub completed: u64,
    pub failed: u64,
    pub late: u64,
    pub duplicate: u64,
    pub out_of_order: u64,
    pub unexpected: u64,
    /// Time spent in the stage by items that left it, ms (a bounded sample).
    pub stay_ms: VecDeque<i64>,
    /// Entries in the last minute, for the entry rate.
    #[serde(default)]
    pub recent: RecentEntries,
    /// Written as an empty list, never read: a mon from before the
    /// entry rate was counted per second requires this field, and during
    /// a rolling upgrade of a fail-over group it may restore a snapshot
    /// written by this one.
    #[serde(rename = "recent_entries", default, skip_deserializing, serialize_with = "recent::empty_list")]
    pub legacy_recent_entries: (),
}

pub struct Engine<'p> {
    program: &'p Program,
    functions: &'p dyn Functions,
    routes: Routes,
    /// Per event type: the routes an event's field values can be relevant
    /// to (see `filter`).
    filter: Filter,
    /// Off only to measure what the filter index saves (`mon bench`).
    use_filter: bool,
    /// Off only to measure what [`Engine::prefetch`] saves (`mon bench`).
    use_prefetch: bool,
    /// Steps' relevance predicates and guards, native where compiled.
    conditions: Conditions,
    /// Whether `conditions` were compiled (see [`Engine::set_jit`]).
    use_jit: bool,
    /// Per workflow: its depth in the `depends on` graph (upstream first)
    /// in the high 16 bits, its id in the low 16.
    orders: Vec<u32>,
    /// How long the ids of strays are remembered (see `State::seen`).
    seen_window: u64,
    pub state: State,
    /// Reused per event, so routing allocates nothing.
    scratch: Vec<u32>,
    scratch_routes: Vec<u32>,
    /// Instances held, over all workflows (for sweeping the timer queue).
    live: usize,
    /// Per workflow id: in `state.disabled` (looked up per event and timer).
    disabled: Vec<bool>,
    /// Per workflow id: a scheduled workflow another partition's engine
    /// runs (see `share`); it takes no events here and opens nothing.
    elsewhere: Vec<bool>,
    /// The event being processed came from another partition than this
    /// engine's (see `share`): only its scheduled workflows take it.
    foreign: bool,
    /// The id hash of the event being processed.
    current_id: u128,
    /// Items whose `missing` or `at_risk` steps stopped being awaited, or
    /// that closed or were forgotten after an alert, since the driver last
    /// took them: what resolves alerts in the alert book. Rare by nature
    /// (only items with an alert), so always collected; the driver drains it.
    pub clearances: Vec<Clearance>,
    /// Per-minute movements for the service's trend rollups, kept only
    /// when the driver asks ([`keep_tally`](Self::keep_tally)) and drains
    /// them: `mon test` and `mon simulate` pay nothing for them.
    pub tally: Option<crate::aggregates::Tally>,
    /// The input partition of the event being processed (set by the driver
    /// before [`process`](Self::process); `None`: not from a partition).
    pub origin: Option<u16>,
    /// Events of an item that came from another partition than the one
    /// that started it: the kept ones until the driver takes them, the
    /// count over the engine's life in this process.
    pub split: SplitKeys,
}

/// How many [`SplitKey`]s wait for the driver at most: a producer that
/// does not key its messages splits nearly every item, and a driver that
/// never asks (`mon simulate`) must not keep them all.
pub const SPLIT_KEYS_KEPT: usize = 1024;

/// An event of an item that came from another input partition than the
/// one that started the item: its producer does not key messages by the
/// item (or keys them by something else), so the item's events are not
/// in one partition's order, and a process that owns only some
/// partitions would see only part of the item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitKey {
    pub workflow: u32,
    pub key: String,
    /// The partition that started the item (its owner).
    pub owner: u16,
    /// The partition this event came from.
    pub seen_on: u16,
    pub at: i64,
}

/// An item stopped waiting for steps it had an alert about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clearance {
    pub workflow: u32,
    pub key: String,
    pub at: i64,
    /// Bit per step: its `missing` or `at_risk` alert no longer applies.
    pub steps: u32,
    pub cause: ClearCause,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClearCause {
    /// This step happened; the awaited step itself, or an alternative of it.
    Taken(u32),
    /// The item closed: every alert about it is over.
    Closed,
    /// The item was forgotten `retain` after it last moved.
    Forgotten,
    /// A new rules version was activated in which the item's stage or
    /// workflow no longer exists (see `activate`).
    Superseded,
}

impl<'p> Engine<'p> {
    /// An engine that starts monitoring at `start` (ms since the epoch).
    pub fn new(program: &'p Program, functions: &'p dyn Functions, start: i64) -> Self {
        let mut state = State { start, clock: start, queue: Wheel::starting_at(start), ..State::default() };
        state.workflows = vec![Instances::default(); program.workflows.len()];
        state.intern(Vec::new());
        let mut engine = Engine::with_state(program, functions, state);
        for workflow in &program.workflows {
            if let Some(first) = engine.first_occurrence_date(workflow) {
                engine.queue_open(workflow, first);
            }
        }
        engine
    }

    /// Resumes from a saved state.
    pub fn restore(program: &'p Program, functions: &'p dyn Functions, mut state: State) -> Self {
        for instances in &mut state.workflows {
            instances.reindex();
        }
        state.group_ids = state.groups.iter().enumerate().map(|(i, g)| (g.clone(), i as u32)).collect();
        Engine::with_state(program, functions, state)
    }

    fn with_state(program: &'p Program, functions: &'p dyn Functions, state: State) -> Self {
        // Redelivery memory for strays lasts one to two of the longest
        // retention windows (at least a day).
        let seen_window = program.workflows.iter().map(|w| w.retain_ms).max().unwrap_or(0).max(86_400_000);
        let routes = routes(program);
        let live = state.workflows.iter().map(Instances::len).sum();
        let disabled = program.workflows.iter().map(|w| state.disabled.contains(&w.name)).collect();
        let elsewhere = share::elsewhere(program, state.share);
        Engine {
            program,
            functions,
            filter: Filter::new(program, &routes),
            use_filter: true,
            use_prefetch: true,
            conditions: if conditions::default_on() { Conditions::compile(program) } else { Conditions::interpreted() },
            use_jit: conditions::default_on(),
            routes,
            orders: orders(program),
            seen_window,
            state,
            scratch: Vec::new(),
            scratch_routes: Vec::new(),
            live,
            disabled,
            elsewhere,
            foreign: false,
            current_id: 0,
            clearances: Vec::new(),
            tally: None,
            origin: None,
            split: SplitKeys::default(),
        }
    }

    /// Starts counting movements per minute into [`tally`](Self::tally).
    pub fn keep_tally(&mut self) {
        self.tally.get_or_insert_with(Default::default);
    }

    /// Turns the filter index off or on; records are the same either
    /// way. Only for measuring what the index saves.
    #[doc(hidden)]
    pub fn set_filter_index(&mut self, on: bool) {
        self.use_filter = on;
    }

    /// Turns [`prefetch`](Self::prefetch) off or on; records are the same
    /// either way. Only for measuring what it saves.
    #[doc(hidden)]
    pub fn set_prefetch(&mut self, on: bool) {
        self.use_prefetch = on;
    }

    /// Turns native code for relevance predicates and guards on or off
    /// (the default is [`jit_default_on`]); records are the same either
    /// way. Turning it on compiles the program's conditions.
    pub fn set_jit(&mut self, on: bool) {
        if on != self.use_jit {
            self.conditions = if on { Conditions::compile(self.program) } else { Conditions::interpreted() };
            self.use_jit = on;
        }
    }

    /// Whether relevance predicates and guards may run as native code.
    pub fn jit_on(&self) -> bool {
        self.use_jit
    }

    /// How many relevance predicates and guards run as native code.
    pub fn native_conditions(&self) -> usize {
        self.conditions.native_count()
    }

    pub fn program(&self) -> &'p Program {
        self.program
    }

    /// Traces the lifecycle of items with this key (as `key_of` builds it:
    /// compound keys joined by U+001F, scheduled ones as the date).
    pub fn trace_key(&mut self, key: &str) {
        self.state.traced_keys.insert(key.to_string());
    }
}

/// A hash set saved sorted, so that equal states serialise equally.
mod sorted_set {
    use std::collections::HashSet;
    use std::hash::{BuildHasher, Hash};

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize + Ord, H, S: Serializer>(set: &HashSet<T, H>, s: S) -> Result<S::Ok, S::Error> {
        let mut items: Vec<&T> = set.iter().collect();
        items.sort();
        s.collect_seq(items)
    }

    pub fn deserialize<'de, T, H, D>(d: D) -> Result<HashSet<T, H>, D::Error>
    where
        T: Deserialize<'de> + Eq + Hash,
        H: BuildHasher + Default,
        D: Deserializer<'de>,
    {
        Ok(Vec::<T>::deserialize(d)?.into_iter().collect())
    }
}

/// JSON maps need string keys; the counters' keys are tuples, so they are
/// saved as a list of pairs.
mod pairs {
    use std::collections::HashMap;
    use std::hash::{BuildHasher, Hash};

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize + Ord, V: Serialize, H, S: Serializer>(
        map: &HashMap<K, V, H>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        // Sorted, so that equal states serialise equally.
        let mut pairs: Vec<(&K, &V)> = map.iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        s.collect_seq(pairs)
    }

    pub fn deserialize<'de, K, V, H, D>(d: D) -> Result<HashMap<K, V, H>, D::Error>
    where
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
        H: BuildHasher + Default,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}
