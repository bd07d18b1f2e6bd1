//! The event store's files: append-only segments under
//! `<state_dir>/events/`, each with an index, and the search walk over them.
//!
//! A segment `<first seq>.seg` (the arrival sequence of its first event,
//! 20 digits, so names sort in order) is a run of frames, one per batch:
//! `[u32 body length][u32 CRC-32 of the body][body]`, the body being
//! `[u64 journal sequence][u32 count]` then `count` event records
//! `[u32 length][u64 arrival sequence][i64 event time][the StoredEvent as
//! compact JSON]` (all little-endian). A frame is a whole batch or, after a
//! crash mid-write, a torn tail that the start cuts (its batch is still in
//! the journal, and the replay appends it again: `Processor::replay`).
//!
//! The open segment's index lives in memory and is rebuilt at start by
//! scanning its file. A segment is closed when it holds
//! [`SEGMENT_EVENTS`] events, [`SEGMENT_BYTES`] bytes, or when a batch's
//! first event is in a later hour than the segment's first one (so that
//! retention can drop whole segments); its index is then written beside it
//! as `<first seq>.idx` (see [`Closed`]) and both are fsynced.
//!
//! An index entry is a position (event time, arrival sequence) and the
//! record's offset in its segment; every list is sorted by position, so a
//! search walks each segment's narrowest list backwards from its cursor
//! and merges the segments newest first, reading only the records it
//! shows or must check. Items are indexed by a 64-bit hash of (workflow,
//! key); a collision is resolved by comparing the record's items exactly.
//!
//! This module must not decide what an event means (that is `mod.rs` and
//! the runtime) nor fsync per batch: durability comes from the journal.

use std::collections::{BinaryHeap, HashMap};
use std::fs::{File, OpenOptions};
use std::hash::Hasher;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::StoredEvent;
use crate::error::{Domain, Error};

/// Events per segment, at most.
pub const SEGMENT_EVENTS: u64 = 1_000_000;
/// Bytes per segment before it is closed; offsets are u32.
pub const SEGMENT_BYTES: u64 = 1 << 30;
const HOUR_MS: i64 = 3_600_000;
const FRAME_HEADER: u64 = 8;
const BODY_HEADER: u64 = 12;
const RECORD_HEADER: usize = 20;
const INDEX_MAGIC: &[u8; 8] = b"MONEVIX1";
/// time, seq, offset.
const ENTRY: u64 = 20;
/// hash, then an entry.
const HASH_ENTRY: u64 = 28;

/// Where an event is: its position in the time order and its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub time: i64,
    pub seq: u64,
    pub offset: u32,
}

impl Entry {
    fn position(&self) -> (i64, u64) {
        (self.time, self.seq)
    }
}

/// The index hash of one item.
pub fn item_hash(workflow: &str, key: &str) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    // Lengths first: ("ab", "c") and ("a", "bc") hash apart.
    hasher.write(&(workflow.len() as u64).to_le_bytes());
    hasher.write(workflow.as_bytes());
    hasher.write(&(key.len() as u64).to_le_bytes());
    hasher.write(key.as_bytes());
    hasher.finish()
}

fn io(doing: &str, path: &Path, error: std::io::Error) -> Error {
    Error::io(Domain::Store, doing, path, error)
}

fn damaged(path: &Path, what: &str) -> Error {
    Error::damaged(Domain::Store, format!("{}: {what}", path.display()))
}

/// Keeps `list` sorted when `entry` is (nearly always) the newest.
fn insert_sorted(list: &mut Vec<Entry>, entry: Entry) {
    match list.last() {
        Some(last) if *last > entry => {
            let at = list.partition_point(|e| *e < entry);
            list.insert(at, entry);
        }
        _ => list.push(entry),
    }
}

/// The open segment's index, in memory.
#[derive(Default)]
struct MemoryIndex {
    all: Vec<Entry>,
    rejected: Vec<Entry>,
    types: HashMap<String, Vec<Entry>>,
    items: HashMap<u64, Vec<Entry>>,
    min_time: i64,
    max_time: i64,
}

impl MemoryIndex {
    fn add(&mut self, event: &StoredEvent, entry: Entry) {
        if self.all.is_empty() {
            (self.min_time, self.max_time) = (entry.time, entry.time);
        }
        self.min_time = self.min_time.min(entry.time);
        self.max_time = self.max_time.max(entry.time);
        insert_sorted(&mut self.all, entry);
        if event.rejected.is_some() {
            insert_sorted(&mut self.rejected, entry);
        }
        match self.types.get_mut(&event.type_name) {
            Some(list) => insert_sorted(list, entry),
            None if event.type_name.is_empty() => {}
            None => {
                self.types.insert(event.type_name.clone(), vec![entry]);
            }
        }
        for (workflow, key) in &event.items {
            let list = self.items.entry(item_hash(workflow, key)).or_default();
            // An event naming one item twice is listed once.
            if list.last() != Some(&entry) {
                insert_sorted(list, entry);
            }
        }
    }
}

/// A segment still written to.
struct Open {
    first_seq: u64,
    path: PathBuf,
    /// Appends; reads go through `reader`, so a search needs no `&mut`.
    file: File,
    reader: File,
    len: u64,
    index: MemoryIndex,
    /// The hour of its first event: a batch in a later hour closes it.
    first_hour: Option<i64>,
    last_journal: Option<u64>,
}

/// A closed segment: its index file's header in memory, its lists read
/// with positioned reads. The index file is
/// `MONEVIX1`, then u64 first seq, next seq, last journal sequence + 1
/// (0: none), i64 min and max time, u64 counts of the all, rejected,
/// typed and item lists, u32 number of types, then per type u16 name
/// length, name, u64 start in the typed list and count; then the lists:
/// all, rejected, typed (each `[i64 time][u64 seq][u32 offset]`, by
/// position) and items (`[u64 hash]` + an entry, by hash then position).
struct Closed {
    first_seq: u64,
    next_seq: u64,
    last_journal: Option<u64>,
    min_time: i64,
    max_time: i64,
    seg_path: PathBuf,
    idx_path: PathBuf,
    segment: File,
    index: File,
    all: (u64, u64),
    rejected: (u64, u64),
    types: HashMap<String, (u64, u64)>,
    items: (u64, u64),
}

/// A list of entries, sorted by position, in memory or in an index file.
#[derive(Clone, Copy)]
enum List<'a> {
    Memory(&'a [Entry]),
    /// `start` bytes into `file`, `len` entries of `stride` bytes, each
    /// entry `skip` bytes into its stride.
    File {
        file: &'a File,
        path: &'a Path,
        start: u64,
        len: u64,
        stride: u64,
        skip: u64,
    },
}

impl List<'_> {
    fn len(&self) -> u64 {
        match self {
            List::Memory(list) => list.len() as u64,
            List::File { len, .. } => *len,
        }
    }

    fn get(&self, i: u64) -> Result<Entry, Error> {
        match self {
            List::Memory(list) => list
                .get(i as usize)
                .copied()
                .ok_or_else(|| Error::damaged(Domain::Store, "an event index entry is out of range")),
            List::File { file, path, start, stride, skip, .. } => {
                let mut bytes = [0u8; ENTRY as usize];
                file.read_exact_at(&mut bytes, start + i * stride + skip)
                    .map_err(|e| io("cannot read the event index", path, e))?;
                Ok(decode_entry(&bytes))
            }
        }
    }

    /// The number of leading entries for which `before` holds (it must be
    /// true, then false, along the list).
    fn partition_point(&self, before: impl Fn(&Entry) -> bool) -> Result<u64, Error> {
        if let List::Memory(list) = self {
            return Ok(list.partition_point(before) as u64);
        }
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = low + (high - low) / 2;
            if before(&self.get(middle)?) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        Ok(low)
    }
}

fn encode_entry(out: &mut Vec<u8>, entry: &Entry) {
    out.extend_from_slice(&entry.time.to_le_bytes());
    out.extend_from_slice(&entry.seq.to_le_bytes());
    out.extend_from_slice(&entry.offset.to_le_bytes());
}

fn decode_entry(bytes: &[u8; ENTRY as usize]) -> Entry {
    let word = |at: usize| -> [u8; 8] { bytes[at..at + 8].try_into().unwrap_or_default() };
    Entry {
        time: i64::from_le_bytes(word(0)),
        seq: u64::from_le_bytes(word(8)),
        offset: u32::from_le_bytes(bytes[16..20].try_into().unwrap_or_default()),
    }
}

/// Reads the event record at `offset` of a segment.
fn read_record(file: &File, path: &Path, offset: u32) -> Result<StoredEvent, Error> {
    let mut length = [0u8; 4];
    file.read_exact_at(&mut length, u64::from(offset)).map_err(|e| io("cannot read an event from", path, e))?;
    let length = u32::from_le_bytes(length) as usize;
    if length < RECORD_HEADER - 4 {
        return Err(damaged(path, "an event record is too short"));
    }
    let mut record = vec![0u8; length];
    file.read_exact_at(&mut record, u64::from(offset) + 4).map_err(|e| io("cannot read an event from", path, e))?;
    decode_event(path, &record[RECORD_HEADER - 4..])
}

fn decode_event(path: &Path, json: &[u8]) -> Result<StoredEvent, Error> {
    serde_json::from_slice(json).map_err(|e| damaged(path, "a stored event is damaged").caused_by(e))
}

fn segment_path(dir: &Path, first_seq: u64, extension: &str) -> PathBuf {
    dir.join(format!("{first_seq:020}.{extension}"))
}

/// Every segment, oldest first, and the writer's counters.
pub struct Segments {
    dir: PathBuf,
    closed: Vec<Closed>,
    open: Option<Open>,
    next_seq: u64,
    /// The last journal entry whose events are all in the segments.
    last_journal: Option<u64>,
}

/// Which list of a segment a search walks.
#[derive(Clone, Debug)]
pub enum Narrowest {
    Item(u64),
    Type(String),
    Rejected,
    All,
}

impl Segments {
    /// Opens the segments in `dir`: reads the closed ones' index headers,
    /// scans the open one (cutting a torn tail), and closes any segment
    /// that lost its index.
    pub fn open(dir: &Path) -> Result<Segments, Error> {
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
        let mut firsts = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io("cannot list", dir, e))? {
            let path = entry.map_err(|e| io("cannot list", dir, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if let Some(first) = name.strip_suffix(".seg").and_then(|n| n.parse::<u64>().ok()) {
                firsts.push(first);
            } else if name.ends_with(".idx.tmp") {
                // A close the crash interrupted; the segment is rescanned.
                let _ = std::fs::remove_file(&path);
            }
        }
        firsts.sort_unstable();
        let mut segments =
            Segments { dir: dir.to_path_buf(), closed: Vec::new(), open: None, next_seq: 0, last_journal: None };
        for (i, first) in firsts.iter().enumerate() {
            let idx_path = segment_path(dir, *first, "idx");
            if idx_path.exists() {
                let closed = Closed::open(segment_path(dir, *first, "seg"), idx_path)?;
                segments.next_seq = closed.next_seq;
                segments.last_journal = closed.last_journal.or(segments.last_journal);
                segments.closed.push(closed);
                continue;
            }
            let open = Open::scan(dir, *first)?;
            segments.next_seq = segments.next_seq.max(open.first_seq + open.index.all.len() as u64);
            if let Some(j) = open.last_journal {
                segments.last_journal = Some(j);
            }
            segments.open = Some(open);
            if i + 1 < firsts.len() {
                segments.close()?;
            }
        }
        Ok(segments)
    }

    /// The last journal entry whose events are all stored: the replay
    /// appends the events of those after it.
    pub fn last_journal(&self) -> Option<u64> {
        self.last_journal
    }

    /// Appends the events of journal entry `journal` as one frame (not
    /// fsynced); does nothing for an entry already stored.
    pub fn append(&mut self, journal: u64, events: &[StoredEvent]) -> Result<(), Error> {
        if self.last_journal.is_some_and(|done| journal <= done) {
            return Ok(());
        }
        self.append_refilled(journal, events)
    }

    /// Whether no event is stored (nor any frame written since the start).
    pub fn is_empty(&self) -> bool {
        self.closed.is_empty() && self.open.as_ref().is_none_or(|open| open.index.all.is_empty())
    }

    /// Numbers the events appended from now on from `first` at least, so
    /// that segments numbered below it can be adopted later
    /// ([`Segments::adopt`]) and still sort before them.
    pub fn number_from(&mut self, first: u64) -> Result<(), Error> {
        // An open segment without events (a crash cut its only frame) is
        // named by the number it would have started at: made again.
        if let Some(open) = self.open.take_if(|open| open.index.all.is_empty()) {
            std::fs::remove_file(&open.path).map_err(|e| io("cannot delete", &open.path, e))?;
        }
        if self.open.is_none() {
            self.next_seq = self.next_seq.max(first);
        }
        Ok(())
    }

    /// Closes the open segment: a refill's last step before it is adopted.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.close()
    }

    /// Takes over `other`'s closed segments (a finished refill, numbered
    /// below every event here): their files move into this directory and
    /// they sort first. Their journal entry is not this store's
    /// `last_journal`: it is at most the entry the refill was filed under,
    /// which the entries appended here since follow.
    pub fn adopt(&mut self, other: Segments) -> Result<u64, Error> {
        let first_here = self.closed.first().map(|c| c.first_seq).or(self.open.as_ref().map(|o| o.first_seq));
        let mut adopted = Vec::with_capacity(other.closed.len());
        let mut count = 0;
        for mut closed in other.closed {
            if first_here.is_some_and(|first| closed.next_seq > first) {
                return Err(Error::damaged(
                    Domain::Store,
                    format!(
                        "refilled event segment {} overlaps the events stored since (from {first_here:?})",
                        closed.first_seq
                    ),
                ));
            }
            // A start after a crash in between deletes what was moved
            // (`refill::clear_interrupted`) and refills again.
            let seg_path = segment_path(&self.dir, closed.first_seq, "seg");
            let idx_path = segment_path(&self.dir, closed.first_seq, "idx");
            std::fs::rename(&closed.seg_path, &seg_path).map_err(|e| io("cannot move", &closed.seg_path, e))?;
            std::fs::rename(&closed.idx_path, &idx_path).map_err(|e| io("cannot move", &closed.idx_path, e))?;
            (closed.seg_path, closed.idx_path) = (seg_path, idx_path);
            count += closed.next_seq - closed.first_seq;
            adopted.push(closed);
        }
        if self.closed.is_empty() && self.open.is_none() {
            self.next_seq = self.next_seq.max(adopted.last().map_or(0, |c| c.next_seq));
        }
        adopted.append(&mut self.closed);
        self.closed = adopted;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| io("cannot sync", &self.dir, e))?;
        Ok(count)
    }

    /// Deletes the segments numbered below `first`: those of a refill
    /// that a stop interrupted while they were adopted. Returns how many
    /// events went.
    pub fn drop_numbered_below(&mut self, first: u64) -> Result<u64, Error> {
        if self.open.as_ref().is_some_and(|open| open.first_seq < first) {
            self.close()?;
        }
        let mut dropped = 0;
        for closed in self.closed.extract_if(.., |closed| closed.first_seq < first).collect::<Vec<_>>() {
            dropped += closed.next_seq - closed.first_seq;
            for path in [&closed.idx_path, &closed.seg_path] {
                std::fs::remove_file(path).map_err(|e| io("cannot delete", path, e))?;
            }
        }
        let open_journal = self.open.as_ref().and_then(|open| open.last_journal);
        self.last_journal = open_journal.or(self.closed.iter().rev().find_map(|closed| closed.last_journal));
        Ok(dropped)
    }

    /// Appends `events` as one frame of journal entry `journal`, even when
    /// an earlier frame was of the same entry: a refill (`refill.rs`) files
    /// everything it reads under the one entry the restored snapshot ends
    /// at, a chunk at a time.
    pub fn append_refilled(&mut self, journal: u64, events: &[StoredEvent]) -> Result<(), Error> {
        let Some(first) = events.first() else {
            self.last_journal = Some(journal);
            return Ok(());
        };
        let hour = first.time.div_euclid(HOUR_MS);
        let full = self.open.as_ref().is_some_and(|open| {
            open.index.all.len() as u64 >= SEGMENT_EVENTS
                || open.len >= SEGMENT_BYTES
                || open.first_hour.is_some_and(|h| hour > h)
        });
        if full {
            self.close()?;
        }
        if self.open.is_none() {
            self.open = Some(Open::create(&self.dir, self.next_seq)?);
        }
        let Some(open) = self.open.as_mut() else { return Ok(()) };
        let mut body = Vec::with_capacity(events.len() * 256);
        body.extend_from_slice(&journal.to_le_bytes());
        body.extend_from_slice(&(events.len() as u32).to_le_bytes());
        let mut entries = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let json = serde_json::to_vec(event)
                .map_err(|e| Error::damaged(Domain::Store, "cannot encode an event").caused_by(e))?;
            let offset = open.len + FRAME_HEADER + body.len() as u64;
            let seq = self.next_seq + i as u64;
            body.extend_from_slice(&((RECORD_HEADER - 4 + json.len()) as u32).to_le_bytes());
            body.extend_from_slice(&seq.to_le_bytes());
            body.extend_from_slice(&event.time.to_le_bytes());
            body.extend_from_slice(&json);
            entries.push(Entry { time: event.time, seq, offset: offset as u32 });
        }
        let mut frame = Vec::with_capacity(body.len() + FRAME_HEADER as usize);
        frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        frame.extend_from_slice(&body);
        open.file.write_all(&frame).map_err(|e| io("cannot append to", &open.path, e))?;
        open.len += frame.len() as u64;
        for (event, entry) in events.iter().zip(entries) {
            open.index.add(event, entry);
        }
        open.first_hour.get_or_insert(hour);
        open.last_journal = Some(journal);
        self.next_seq += events.len() as u64;
        self.last_journal = Some(journal);
        Ok(())
    }

    /// Fsyncs the open segment: before the journal forgets the entries
    /// whose events it holds.
    pub fn sync(&self) -> Result<(), Error> {
        match &self.open {
            Some(open) => open.file.sync_data().map_err(|e| io("cannot sync", &open.path, e)),
            None => Ok(()),
        }
    }

    /// Writes the open segment's index beside it and fsyncs both.
    fn close(&mut self) -> Result<(), Error> {
        let Some(open) = self.open.take() else { return Ok(()) };
        let closed = open.close(&self.dir)?;
        self.closed.push(closed);
        Ok(())
    }

    /// Deletes the closed segments whose newest event is older than
    /// `cutoff`; returns how many events went.
    pub fn drop_older_than(&mut self, cutoff: i64) -> Result<u64, Error> {
        let mut dropped = 0;
        for closed in self.closed.extract_if(.., |closed| closed.max_time < cutoff).collect::<Vec<_>>() {
            dropped += closed.next_seq - closed.first_seq;
            // The index first: a segment without one is rescanned, never lost.
            for path in [&closed.idx_path, &closed.seg_path] {
                if let Err(e) = std::fs::remove_file(path) {
                    tracing::warn!(error = %e, path = %path.display(), "cannot delete an old event segment");
                }
            }
        }
        Ok(dropped)
    }

    /// Walks the segments newest first (by position) through the
    /// `narrowest` list, within `low..=high`, reading each candidate's
    /// record and passing it to `visit` until it returns false.
    pub fn walk(
        &self,
        narrowest: &Narrowest,
        low: (i64, u64),
        high: (i64, u64),
        mut visit: impl FnMut((i64, u64), StoredEvent) -> bool,
    ) -> Result<(), Error> {
        struct Cursor<'a> {
            list: List<'a>,
            file: &'a File,
            path: &'a Path,
            /// Entries below this one are still to visit.
            next: u64,
            low: u64,
        }
        let mut cursors = Vec::new();
        let mut sources: Vec<(Option<List>, &File, &Path)> = Vec::new();
        for closed in &self.closed {
            if closed.max_time < low.0 || closed.min_time > high.0 {
                continue;
            }
            sources.push((closed.list(narrowest)?, &closed.segment, &closed.seg_path));
        }
        if let Some(open) = &self.open {
            if !open.index.all.is_empty() && open.index.max_time >= low.0 && open.index.min_time <= high.0 {
                sources.push((open.list(narrowest), &open.reader, &open.path));
            }
        }
        let mut heap = BinaryHeap::new();
        for (list, file, path) in sources {
            let Some(list) = list else { continue };
            let start = list.partition_point(|e| e.position() < low)?;
            let end = list.partition_point(|e| e.position() <= high)?;
            if end > start {
                let head = list.get(end - 1)?;
                heap.push((head.position(), head.offset, cursors.len()));
                cursors.push(Cursor { list, file, path, next: end - 1, low: start });
            }
        }
        while let Some((position, offset, i)) = heap.pop() {
            let Some(cursor) = cursors.get_mut(i) else { continue };
            match read_record(cursor.file, cursor.path, offset) {
                Ok(event) => {
                    if !visit(position, event) {
                        return Ok(());
                    }
                }
                // A damaged record cannot be shown, and must not hide the others.
                Err(e) => tracing::warn!(error = %e, "skipping a damaged stored event"),
            }
            if cursor.next > cursor.low {
                cursor.next -= 1;
                let head = cursor.list.get(cursor.next)?;
                heap.push((head.position(), head.offset, i));
            }
        }
        Ok(())
    }
}

impl Open {
    fn create(dir: &Path, first_seq: u64) -> Result<Open, Error> {
        let path = segment_path(dir, first_seq, "seg");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io("cannot create the event segment", &path, e))?;
        let reader = File::open(&path).map_err(|e| io("cannot open", &path, e))?;
        Ok(Open {
            first_seq,
            path,
            file,
            reader,
            len: 0,
            index: MemoryIndex::default(),
            first_hour: None,
            last_journal: None,
        })
    }

    /// Opens a segment left open and rebuilds its index from its frames;
    /// a torn last frame (short, or failing its CRC) is cut.
    fn scan(dir: &Path, first_seq: u64) -> Result<Open, Error> {
        let mut open = Open::create(dir, first_seq)?;
        let bytes = std::fs::read(&open.path).map_err(|e| io("cannot read", &open.path, e))?;
        let mut at = 0usize;
        while let Some(frame) = read_frame(&bytes, at) {
            let Ok(events) = frame_events(&open.path, &bytes, frame) else { break };
            for (entry, event) in &events {
                open.index.add(event, *entry);
                open.first_hour.get_or_insert(event.time.div_euclid(HOUR_MS));
            }
            open.last_journal = Some(frame.journal);
            at = frame.end;
        }
        if at < bytes.len() {
            tracing::warn!(
                segment = %open.path.display(),
                kept = at,
                cut = bytes.len() - at,
                "cutting a torn tail off the event segment (its batch is replayed from the journal)"
            );
            open.file.set_len(at as u64).map_err(|e| io("cannot cut the torn tail of", &open.path, e))?;
            open.file.sync_data().map_err(|e| io("cannot sync", &open.path, e))?;
        }
        open.len = at as u64;
        Ok(open)
    }

    fn list<'a>(&'a self, narrowest: &Narrowest) -> Option<List<'a>> {
        let list = match narrowest {
            Narrowest::Item(hash) => self.index.items.get(hash)?,
            Narrowest::Type(name) => self.index.types.get(name)?,
            Narrowest::Rejected => &self.index.rejected,
            Narrowest::All => &self.index.all,
        };
        Some(List::Memory(list))
    }

    /// Writes the index file (through a temporary name, so a crash leaves
    /// either none or a whole one) and fsyncs the segment and the index.
    fn close(self, dir: &Path) -> Result<Closed, Error> {
        let index = &self.index;
        let next_seq = self.first_seq + index.all.len() as u64;
        let mut types: Vec<(&String, &Vec<Entry>)> = index.types.iter().collect();
        types.sort_by(|a, b| a.0.cmp(b.0));
        let typed: u64 = types.iter().map(|(_, l)| l.len() as u64).sum();
        let mut items: Vec<(u64, Entry)> =
            index.items.iter().flat_map(|(hash, list)| list.iter().map(|e| (*hash, *e))).collect();
        items.sort_unstable();
        let mut out = Vec::with_capacity((index.all.len() * 2 + items.len()) * HASH_ENTRY as usize + 256);
        out.extend_from_slice(INDEX_MAGIC);
        for word in [self.first_seq, next_seq, self.last_journal.map_or(0, |j| j + 1)] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&index.min_time.to_le_bytes());
        out.extend_from_slice(&index.max_time.to_le_bytes());
        for count in [index.all.len() as u64, index.rejected.len() as u64, typed, items.len() as u64] {
            out.extend_from_slice(&count.to_le_bytes());
        }
        out.extend_from_slice(&(types.len() as u32).to_le_bytes());
        let mut start = 0u64;
        for (name, list) in &types {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&start.to_le_bytes());
            out.extend_from_slice(&(list.len() as u64).to_le_bytes());
            start += list.len() as u64;
        }
        for entry in index.all.iter().chain(&index.rejected).chain(types.iter().flat_map(|(_, l)| l.iter())) {
            encode_entry(&mut out, entry);
        }
        for (hash, entry) in &items {
            out.extend_from_slice(&hash.to_le_bytes());
            encode_entry(&mut out, entry);
        }
        let idx_path = segment_path(dir, self.first_seq, "idx");
        let tmp_path = segment_path(dir, self.first_seq, "idx.tmp");
        let mut tmp = File::create(&tmp_path).map_err(|e| io("cannot create", &tmp_path, e))?;
        tmp.write_all(&out).map_err(|e| io("cannot write", &tmp_path, e))?;
        tmp.sync_data().map_err(|e| io("cannot sync", &tmp_path, e))?;
        self.file.sync_data().map_err(|e| io("cannot sync", &self.path, e))?;
        std::fs::rename(&tmp_path, &idx_path).map_err(|e| io("cannot rename", &tmp_path, e))?;
        Closed::open(self.path, idx_path)
    }
}

impl Closed {
    fn open(seg_path: PathBuf, idx_path: PathBuf) -> Result<Closed, Error> {
        let segment = File::open(&seg_path).map_err(|e| io("cannot open", &seg_path, e))?;
        let index = File::open(&idx_path).map_err(|e| io("cannot open", &idx_path, e))?;
        let mut header = [0u8; 8 + 8 * 9 + 4];
        index.read_exact_at(&mut header, 0).map_err(|e| io("cannot read", &idx_path, e))?;
        if &header[..8] != INDEX_MAGIC {
            return Err(damaged(&idx_path, "not an event index"));
        }
        let word = |i: usize| -> u64 {
            header.get(8 + i * 8..16 + i * 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes)
        };
        let type_count = header.get(80..84).and_then(|b| b.try_into().ok()).map_or(0, u32::from_le_bytes);
        let mut at = header.len() as u64;
        let mut types = HashMap::new();
        for _ in 0..type_count {
            let mut length = [0u8; 2];
            index.read_exact_at(&mut length, at).map_err(|e| io("cannot read", &idx_path, e))?;
            let mut rest = vec![0u8; u16::from_le_bytes(length) as usize + 16];
            index.read_exact_at(&mut rest, at + 2).map_err(|e| io("cannot read", &idx_path, e))?;
            let split = rest.len() - 16;
            let name = String::from_utf8(rest[..split].to_vec()).map_err(|_| damaged(&idx_path, "a type name"))?;
            let start = rest[split..split + 8].try_into().map_or(0, u64::from_le_bytes);
            let count = rest[split + 8..].try_into().map_or(0, u64::from_le_bytes);
            types.insert(name, (start, count));
            at += 2 + rest.len() as u64;
        }
        let (all, rejected, typed, items) = (word(5), word(6), word(7), word(8));
        let all_start = at;
        let rejected_start = all_start + all * ENTRY;
        let typed_start = rejected_start + rejected * ENTRY;
        let items_start = typed_start + typed * ENTRY;
        let types =
            types.into_iter().map(|(name, (start, count))| (name, (typed_start + start * ENTRY, count))).collect();
        Ok(Closed {
            first_seq: word(0),
            next_seq: word(1),
            last_journal: word(2).checked_sub(1),
            min_time: word(3) as i64,
            max_time: word(4) as i64,
            seg_path,
            idx_path,
            segment,
            index,
            all: (all_start, all),
            rejected: (rejected_start, rejected),
            types,
            items: (items_start, items),
        })
    }

    fn list(&self, narrowest: &Narrowest) -> Result<Option<List<'_>>, Error> {
        let plain = |(start, len): (u64, u64)| List::File {
            file: &self.index,
            path: &self.idx_path,
            start,
            len,
            stride: ENTRY,
            skip: 0,
        };
        Ok(Some(match narrowest {
            Narrowest::All => plain(self.all),
            Narrowest::Rejected => plain(self.rejected),
            Narrowest::Type(name) => match self.types.get(name) {
                Some(range) => plain(*range),
                None => return Ok(None),
            },
            Narrowest::Item(hash) => {
                let (start, len) = self.items;
                let hash_at = |i: u64| -> Result<u64, Error> {
                    let mut bytes = [0u8; 8];
                    self.index
                        .read_exact_at(&mut bytes, start + i * HASH_ENTRY)
                        .map_err(|e| io("cannot read the event index", &self.idx_path, e))?;
                    Ok(u64::from_le_bytes(bytes))
                };
                let (mut first, mut high) = (0, len);
                while first < high {
                    let middle = first + (high - first) / 2;
                    if hash_at(middle)? < *hash {
                        first = middle + 1;
                    } else {
                        high = middle;
                    }
                }
                // An item has few entries in a segment: a step past them
                // costs less than a second binary search.
                let mut end = first;
                while end < len && hash_at(end)? == *hash {
                    end += 1;
                }
                if first == end {
                    return Ok(None);
                }
                List::File {
                    file: &self.index,
                    path: &self.idx_path,
                    start: start + first * HASH_ENTRY,
                    len: end - first,
                    stride: HASH_ENTRY,
                    skip: 8,
                }
            }
        }))
    }
}

#[derive(Clone, Copy)]
struct Frame {
    journal: u64,
    count: u32,
    body: usize,
    end: usize,
}

/// The whole frame at `at`, or `None` at the end or at a torn tail.
fn read_frame(bytes: &[u8], at: usize) -> Option<Frame> {
    let header = bytes.get(at..at + FRAME_HEADER as usize)?;
    let length = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    let body_at = at + FRAME_HEADER as usize;
    let body = bytes.get(body_at..body_at + length)?;
    if crc32fast::hash(body) != crc || body.len() < BODY_HEADER as usize {
        return None;
    }
    Some(Frame {
        journal: u64::from_le_bytes(body[..8].try_into().ok()?),
        count: u32::from_le_bytes(body[8..12].try_into().ok()?),
        body: body_at,
        end: body_at + length,
    })
}

/// The events of a frame whose CRC held, with their index entries.
fn frame_events(path: &Path, bytes: &[u8], frame: Frame) -> Result<Vec<(Entry, StoredEvent)>, Error> {
    let mut events = Vec::with_capacity(frame.count as usize);
    let mut at = frame.body + BODY_HEADER as usize;
    for _ in 0..frame.count {
        let short = || damaged(path, "an event record runs past its frame");
        let header = bytes.get(at..at + RECORD_HEADER).filter(|_| at + RECORD_HEADER <= frame.end).ok_or_else(short)?;
        let length = header[..4].try_into().map_or(0, u32::from_le_bytes) as usize;
        let seq = header[4..12].try_into().map_or(0, u64::from_le_bytes);
        let time = header[12..20].try_into().map_or(0, i64::from_le_bytes);
        let end = at + 4 + length;
        let json = bytes.get(at + RECORD_HEADER..end).filter(|_| end <= frame.end).ok_or_else(short)?;
        events.push((Entry { time, seq, offset: at as u32 }, decode_event(path, json)?));
        at = end;
    }
    Ok(events)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A `placed` event of item `key` in `orders` (also the store's tests').
    pub(in crate::events) fn event(id: &str, key: &str, time: i64) -> StoredEvent {
        StoredEvent {
            id: id.into(),
            type_name: "placed".into(),
            time,
            received: time,
            data: Vec::new(),
            items: vec![("orders".into(), key.into())],
            rejected: None,
        }
    }

    fn ids(segments: &Segments, narrowest: Narrowest) -> Vec<String> {
        let mut found = Vec::new();
        segments
            .walk(&narrowest, (i64::MIN, 0), (i64::MAX, u64::MAX), |_, e| {
                found.push(e.id);
                true
            })
            .unwrap();
        found
    }

    #[test]
    fn a_torn_tail_is_cut_at_start_and_the_whole_frames_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mut segments = Segments::open(dir.path()).unwrap();
        segments.append(1, &[event("a", "K1", 10), event("b", "K2", 20)]).unwrap();
        segments.append(2, &[event("c", "K1", 30)]).unwrap();
        let path = segment_path(dir.path(), 0, "seg");
        let whole = std::fs::metadata(&path).unwrap().len();
        drop(segments);
        // A crash in the middle of the third batch's frame.
        let mut bytes = std::fs::read(&path).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let mut alone = Segments::open(elsewhere.path()).unwrap();
        alone.append(3, &[event("d", "K1", 40)]).unwrap();
        let third = std::fs::read(segment_path(elsewhere.path(), 0, "seg")).unwrap();
        bytes.extend_from_slice(&third[..third.len() - 5]);
        std::fs::write(&path, &bytes).unwrap();

        let mut segments = Segments::open(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole, "the torn frame is cut");
        assert_eq!(segments.last_journal(), Some(2));
        assert_eq!(ids(&segments, Narrowest::Item(item_hash("orders", "K1"))), ["c", "a"]);
        // The replay appends the lost batch again, after the whole ones.
        segments.append(3, &[event("d", "K1", 40)]).unwrap();
        segments.append(2, &[event("c", "K1", 30)]).unwrap();
        assert_eq!(ids(&segments, Narrowest::All), ["d", "c", "b", "a"]);
        let reopened = Segments::open(dir.path()).unwrap();
        assert_eq!(ids(&reopened, Narrowest::All), ["d", "c", "b", "a"]);
    }

    #[test]
    fn a_search_merges_a_closed_and_the_open_segment_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut segments = Segments::open(dir.path()).unwrap();
        // Hour 0, then hour 1 closes the first segment; a late event of
        // hour 0 then goes into the open one.
        segments.append(1, &[event("a", "K1", 1_000), event("b", "K2", 2_000)]).unwrap();
        segments.append(2, &[event("c", "K1", HOUR_MS + 1), event("late", "K1", 3_000)]).unwrap();
        assert_eq!(segments.closed.len(), 1);
        assert!(segment_path(dir.path(), 0, "idx").exists());
        for segments in [segments, Segments::open(dir.path()).unwrap()] {
            assert_eq!(ids(&segments, Narrowest::Item(item_hash("orders", "K1"))), ["c", "late", "a"]);
            assert_eq!(ids(&segments, Narrowest::Item(item_hash("orders", "K2"))), ["b"]);
            assert_eq!(ids(&segments, Narrowest::Type("placed".into())), ["c", "late", "b", "a"]);
            assert!(ids(&segments, Narrowest::Type("shipped".into())).is_empty());
            let mut window = Vec::new();
            segments
                .walk(&Narrowest::All, (1_500, 0), (3_000, u64::MAX), |_, e| {
                    window.push(e.id);
                    true
                })
                .unwrap();
            assert_eq!(window, ["late", "b"]);
        }
        let mut segments = Segments::open(dir.path()).unwrap();
        assert_eq!(segments.drop_older_than(HOUR_MS).unwrap(), 2);
        assert_eq!(ids(&segments, Narrowest::All), ["c", "late"]);
    }
}
