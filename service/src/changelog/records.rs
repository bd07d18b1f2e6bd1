//! The changelog's records as bytes, with no I/O: the keys, the values
//! of journal entries, snapshot chunks, headers and delivery marks, which
//! keys a snapshot deletes, and the checks that turn what was read back
//! into a state to restore ([`Contents::restore`]). Kept apart from the
//! producing and reading (`mod.rs`) so that every encoding decision is
//! tested without a broker.
//!
//! What it must not do: accept a record it does not fully understand. An
//! unknown key or format is [`Damaged`], with its offset.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::journal;
use crate::store::{Offsets, Settled};

/// The most bytes in one record's value: well below Kafka's default
/// `message.max.bytes` (about 1 MB), with room for the key and headers.
pub const CHUNK_BYTES: usize = 512 * 1024;

/// The version of the encodings below; a reader refuses any other.
pub const FORMAT: u8 = 1;

/// The version of a snapshot's payload ([`encode_snapshot`]). 2 added
/// sections, which a reader skips when it does not know their tag; a
/// reader still takes format 1 (no sections). A release before 2 refuses
/// a payload of 2: a changelog written by this release is not restored by
/// an earlier one.
pub const SNAPSHOT_FORMAT: u8 = 2;

/// A payload section's tag: the trend rollup rows (`rollups.rs`).
const ROLLUPS_SECTION: u8 = 1;

pub const HEADER_KEY: &str = "s";

/// The Kafka header that carries a record's writer epoch (decimal ASCII):
/// the epoch its process claimed when it opened the changelog
/// (`fence.rs`). A record without it is from epoch 0.
pub const WRITER_HEADER: &str = "mon-writer";

/// The key of epoch `epoch`'s claim on the changelog. Why a key per epoch
/// and not one key: compaction keeps only the last record of a key, and a
/// reader needs every claim in place to tell which older writer's records
/// came after a newer one claimed.
pub fn claim_key(epoch: u64) -> String {
    format!("{CLAIM_PREFIX}{epoch:020}")
}

/// What every claim's key starts with.
pub const CLAIM_PREFIX: &str = "w/";

/// A claim's value (JSON, for a person reading the topic).
pub fn claim_value(epoch: u64) -> Vec<u8> {
    serde_json::json!({ "v": FORMAT, "epoch": epoch }).to_string().into_bytes()
}

/// A writer epoch as the header carries it.
pub fn writer_value(epoch: u64) -> String {
    epoch.to_string()
}

/// The epoch a record's header names: 0 without one, `None` if unreadable.
pub fn read_writer(header: Option<&[u8]>) -> Option<u64> {
    match header {
        None => Some(0),
        Some(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
    }
}

/// The key of part `part` of journal entry `seq`.
pub fn entry_key(seq: u64, part: u16) -> String {
    match part {
        0 => format!("j/{seq:020}"),
        _ => format!("j/{seq:020}/{part}"),
    }
}

/// The key of chunk `n` of the snapshot that covers entries below `covered`.
pub fn chunk_key(covered: u64, n: u32) -> String {
    format!("s/{covered:020}/{n}")
}

pub fn mark_key(notification: &str) -> String {
    format!("n/{notification}")
}

/// The key of part `part` of the rules store's entry `tree_key`
/// (`rules/versions.rs`: a version, an activation, a pointer), in hex.
pub fn rules_key(tree_key: &[u8], part: u16) -> String {
    let hex: String = tree_key.iter().map(|b| format!("{b:02x}")).collect();
    match part {
        0 => format!("r/{hex}"),
        _ => format!("r/{hex}/{part}"),
    }
}

/// The records of one rules store entry, in parts as a journal entry's.
pub fn rules_records(tree_key: &[u8], value: &[u8]) -> Vec<(String, Vec<u8>)> {
    in_parts(value, |part| rules_key(tree_key, part))
}

/// The records of one journal entry: each value is the format byte, the
/// part number and the part count (u16, big-endian), then that part of the
/// frame.
pub fn entry_records(seq: u64, frame: &[u8]) -> Vec<(String, Vec<u8>)> {
    in_parts(frame, |part| entry_key(seq, part))
}

/// `bytes` in parts of at most [`CHUNK_BYTES`], each keyed by `key(part)`.
fn in_parts(bytes: &[u8], key: impl Fn(u16) -> String) -> Vec<(String, Vec<u8>)> {
    let parts: Vec<&[u8]> = if bytes.is_empty() { vec![bytes] } else { bytes.chunks(CHUNK_BYTES).collect() };
    let count = parts.len() as u16;
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let mut value = Vec::with_capacity(part.len() + 5);
            value.push(FORMAT);
            value.extend_from_slice(&(i as u16).to_be_bytes());
            value.extend_from_slice(&count.to_be_bytes());
            value.extend_from_slice(part);
            (key(i as u16), value)
        })
        .collect()
}

/// A part's (index, count, bytes), or `None` if its prefix is not ours.
fn read_part(value: &[u8]) -> Option<(u16, u16, &[u8])> {
    let (&format, rest) = value.split_first()?;
    let (part, rest) = rest.split_first_chunk::<2>()?;
    let (count, rest) = rest.split_first_chunk::<2>()?;
    let (part, count) = (u16::from_be_bytes(*part), u16::from_be_bytes(*count));
    (format == FORMAT && part < count).then_some((part, count, rest))
}

/// The header record of a snapshot (JSON, so a person can read it with
/// any Kafka client).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    pub v: u8,
    /// The first journal sequence the snapshot does not cover.
    pub covered: u64,
    pub chunks: u32,
    pub bytes: u64,
    pub crc32: u32,
    /// With state per partition, how many tasks the state was split into
    /// (each writes its own partition); absent with one state. A start
    /// with another split refuses the changelog rather than mix them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<u16>,
}

/// What a snapshot in the changelog holds besides the engine's state.
#[derive(Debug, Default, PartialEq)]
pub struct SnapshotPayload {
    /// The stored Kafka offsets when it was taken.
    pub offsets: Offsets,
    /// Outbox items, as `store.rs` stores them.
    pub outbox: Vec<Vec<u8>>,
    /// Pending notifications, as `store.rs` stores them.
    pub notifications: Vec<Vec<u8>>,
    /// The trend rollup rows, (key, value) as `rollups.rs` stores them:
    /// made by the engine's counts, not in the input, so a state rebuilt
    /// elsewhere has its trends and their baselines only from here. `None`
    /// in a payload of format 1, which did not carry them.
    pub rollups: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    /// `Live::snapshot_bytes`.
    pub engine: Vec<u8>,
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn take<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    let value = rest.get(..len)?;
    *bytes = &rest[len..];
    Some(value)
}

fn take_u32(bytes: &mut &[u8]) -> Option<u32> {
    let (n, rest) = bytes.split_first_chunk::<4>()?;
    *bytes = rest;
    Some(u32::from_le_bytes(*n))
}

/// Format byte ([`SNAPSHOT_FORMAT`]); offsets (count, then topic,
/// partition, next offset); the outbox items and notifications (count,
/// then each length-prefixed); sections (count, then each a tag byte and
/// length-prefixed bytes: the rollup rows as a count of length-prefixed
/// key and value pairs); the engine's bytes to the end.
///
/// `rollups` is `None` for format 1 (no sections), for a group whose
/// processes of an earlier release must still read it (`[kafka]
/// snapshot_format`).
pub fn encode_snapshot(
    offsets: &Offsets,
    outbox: &[Vec<u8>],
    notifications: &[Vec<u8>],
    rollups: Option<&[(Vec<u8>, Vec<u8>)]>,
    engine: &[u8],
) -> Vec<u8> {
    let extra: usize = outbox.iter().chain(notifications).map(|b| b.len() + 4).sum();
    let rows: usize = rollups.unwrap_or_default().iter().map(|(k, v)| k.len() + v.len() + 8).sum();
    let mut out = Vec::with_capacity(engine.len() + extra + rows + 64);
    out.push(if rollups.is_some() { SNAPSHOT_FORMAT } else { 1 });
    out.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
    for ((topic, partition), next) in offsets {
        put(&mut out, topic.as_bytes());
        out.extend_from_slice(&partition.to_le_bytes());
        out.extend_from_slice(&next.to_le_bytes());
    }
    for list in [outbox, notifications] {
        out.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for item in list {
            put(&mut out, item);
        }
    }
    if let Some(rollups) = rollups {
        let mut section = Vec::with_capacity(rows + 4);
        section.extend_from_slice(&(rollups.len() as u32).to_le_bytes());
        for (key, value) in rollups {
            put(&mut section, key);
            put(&mut section, value);
        }
        out.extend_from_slice(&1u32.to_le_bytes());
        out.push(ROLLUPS_SECTION);
        put(&mut out, &section);
    }
    out.extend_from_slice(engine);
    out
}

pub fn decode_snapshot(bytes: &[u8]) -> Option<SnapshotPayload> {
    let (&format, mut rest) = bytes.split_first()?;
    if format != 1 && format != SNAPSHOT_FORMAT {
        return None;
    }
    let mut payload = SnapshotPayload::default();
    for _ in 0..take_u32(&mut rest)? {
        let topic = std::str::from_utf8(take(&mut rest)?).ok()?.to_string();
        let (partition, r) = rest.split_first_chunk::<4>()?;
        let (next, r) = r.split_first_chunk::<8>()?;
        payload.offsets.insert((topic, i32::from_le_bytes(*partition)), i64::from_le_bytes(*next));
        rest = r;
    }
    for list in [&mut payload.outbox, &mut payload.notifications] {
        for _ in 0..take_u32(&mut rest)? {
            list.push(take(&mut rest)?.to_vec());
        }
    }
    if format >= 2 {
        let rollups = payload.rollups.get_or_insert_with(Vec::new);
        for _ in 0..take_u32(&mut rest)? {
            let (&tag, r) = rest.split_first()?;
            rest = r;
            let mut section = take(&mut rest)?;
            // A section of a later release: its state is not this one's to keep.
            if tag != ROLLUPS_SECTION {
                continue;
            }
            for _ in 0..take_u32(&mut section)? {
                let key = take(&mut section)?.to_vec();
                rollups.push((key, take(&mut section)?.to_vec()));
            }
        }
    }
    payload.engine = rest.to_vec();
    Some(payload)
}

/// The chunk records and the header of a snapshot of `bytes` covering the
/// entries below `covered`.
pub fn snapshot_records(covered: u64, bytes: &[u8], tasks: Option<u16>) -> (Vec<(String, Vec<u8>)>, SnapshotHeader) {
    let chunks: Vec<(String, Vec<u8>)> = bytes
        .chunks(CHUNK_BYTES)
        .enumerate()
        .map(|(n, chunk)| (chunk_key(covered, n as u32), chunk.to_vec()))
        .collect();
    let header = SnapshotHeader {
        v: FORMAT,
        covered,
        chunks: chunks.len() as u32,
        bytes: bytes.len() as u64,
        crc32: crc32fast::hash(bytes),
        tasks,
    };
    (chunks, header)
}

/// The keys to delete once snapshot `new`'s header is acknowledged: the
/// parts of every entry it covers and the chunks of the snapshot it
/// replaces (unless that one had the same keys, being of the same point).
pub fn tombstones_after_snapshot(
    entries: &BTreeMap<u64, u16>,
    previous: Option<&SnapshotHeader>,
    new: &SnapshotHeader,
) -> Vec<String> {
    let mut keys: Vec<String> = entries
        .range(..new.covered)
        .flat_map(|(seq, parts)| (0..*parts).map(move |part| entry_key(*seq, part)))
        .collect();
    if let Some(previous) = previous {
        let first_stale = if previous.covered == new.covered { new.chunks } else { 0 };
        keys.extend((first_stale..previous.chunks).map(|n| chunk_key(previous.covered, n)));
    }
    keys
}

/// A delivery mark's value.
#[derive(Debug, Serialize, Deserialize)]
struct Mark {
    v: u8,
    sent: bool,
    at: i64,
}

/// The value of notification `id`'s delivery mark (JSON).
pub fn mark_value(settled: Settled) -> Vec<u8> {
    serde_json::to_vec(&Mark { v: FORMAT, sent: settled.sent, at: settled.at }).unwrap_or_default()
}

/// Whether the local state must be rebuilt from the changelog: only when
/// the changelog holds entries the local journal does not. A local state
/// ahead of it or equal to it is kept (and the changelog is caught up).
pub fn must_restore(local_next: u64, changelog_next: u64) -> bool {
    changelog_next > local_next
}

/// One part of a rules store entry as read back: (index, count, bytes, offset).
type RulesPart = (u16, u16, Vec<u8>, i64);

/// One part of a journal entry as read back.
struct Part {
    index: u16,
    count: u16,
    offset: i64,
    bytes: Vec<u8>,
}

/// The changelog as read back: the latest value of each key, among the
/// records that count (a record from an epoch older than a claim before
/// it does not: its writer had lost the changelog, `fence.rs`).
#[derive(Debug, Default)]
pub struct Contents {
    /// Key → (offset, value); a tombstone removes its key.
    values: BTreeMap<String, (i64, Vec<u8>)>,
    pub bytes: u64,
    /// The newest epoch that claimed the changelog so far, and the offset
    /// of its first claim (a later claim of the same epoch is another
    /// process's, which lost: it writes nothing as that epoch).
    pub epoch: u64,
    pub claimed_at: i64,
    /// Records skipped because an older epoch wrote them after a newer
    /// one's claim.
    pub stale: u64,
}

/// What a changelog record's problem is, where it is.
#[derive(Debug, PartialEq)]
pub struct Damaged {
    pub offset: i64,
    pub why: String,
}

fn damaged(offset: i64, why: impl Into<String>) -> Damaged {
    Damaged { offset, why: why.into() }
}

/// The state the changelog holds, checked and in order.
#[derive(Debug, Default)]
pub struct Restored {
    /// The latest complete snapshot.
    pub snapshot: Option<(SnapshotHeader, SnapshotPayload)>,
    /// Whole frames of the entries from the snapshot on, in order.
    pub frames: Vec<Vec<u8>>,
    /// Delivery marks by notification id.
    pub marks: HashMap<String, Settled>,
    /// Every entry still in the topic and its part count (tombstones to come).
    pub entries: BTreeMap<u64, u16>,
    /// The rules store's entries (`rules/versions.rs`), whole, by their
    /// key in that store, with their part counts in the topic.
    pub rules: BTreeMap<Vec<u8>, (Vec<u8>, u16)>,
    /// The last entry, found torn (some of its parts only) and left out.
    pub torn: Option<u64>,
}

impl Restored {
    /// The first entry the snapshot does not cover (0 without one).
    pub fn covered(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |(h, _)| h.covered)
    }

    /// The sequence the next entry gets after this state.
    pub fn next_seq(&self) -> u64 {
        self.covered() + self.frames.len() as u64
    }
}

impl Contents {
    /// Takes one record (in offset order) written by epoch `writer`;
    /// `None` is a tombstone.
    pub fn add(&mut self, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>, writer: u64) -> Result<(), Damaged> {
        let key = key.ok_or_else(|| damaged(offset, "a record without a key"))?;
        let key = std::str::from_utf8(key).map_err(|_| damaged(offset, "a key that is not UTF-8"))?;
        if writer < self.epoch {
            self.stale += 1;
            return Ok(());
        }
        if let Some(epoch) = key.strip_prefix(CLAIM_PREFIX) {
            let epoch: u64 = epoch.parse().map_err(|_| damaged(offset, format!("an unknown key `{key}`")))?;
            if epoch != writer {
                return Err(damaged(offset, format!("the claim of epoch {epoch} written by epoch {writer}")));
            }
            if epoch > self.epoch {
                self.epoch = epoch;
                self.claimed_at = offset;
            }
            return Ok(());
        }
        match value {
            Some(value) => {
                self.bytes += value.len() as u64;
                self.values.insert(key.to_string(), (offset, value.to_vec()));
            }
            None => {
                self.values.remove(key);
            }
        }
        Ok(())
    }

    /// Checks every record and puts the state together.
    pub fn restore(self) -> Result<Restored, Damaged> {
        let mut restored = Restored::default();
        let mut parts: BTreeMap<u64, Vec<Part>> = BTreeMap::new();
        let mut header: Option<(i64, SnapshotHeader)> = None;
        let mut chunks: HashMap<(u64, u32), (i64, Vec<u8>)> = HashMap::new();
        let mut rules: BTreeMap<Vec<u8>, Vec<RulesPart>> = BTreeMap::new();
        for (key, (offset, value)) in self.values {
            if let Some(rest) = key.strip_prefix("j/") {
                let (seq, part) = match rest.split_once('/') {
                    Some((seq, part)) => (seq, Some(part)),
                    None => (rest, None),
                };
                let seq: u64 = seq.parse().map_err(|_| damaged(offset, format!("an unknown key `{key}`")))?;
                let key_part: u16 =
                    part.map_or(Ok(0), str::parse).map_err(|_| damaged(offset, format!("an unknown key `{key}`")))?;
                let (&format, rest) = value.split_first().ok_or_else(|| damaged(offset, "an empty journal entry"))?;
                let (part, rest) =
                    rest.split_first_chunk::<2>().ok_or_else(|| damaged(offset, "a short journal entry"))?;
                let (count, rest) =
                    rest.split_first_chunk::<2>().ok_or_else(|| damaged(offset, "a short journal entry"))?;
                let (part, count) = (u16::from_be_bytes(*part), u16::from_be_bytes(*count));
                if format != FORMAT || part != key_part || part >= count {
                    return Err(damaged(
                        offset,
                        format!("journal entry {seq}: format {format}, part {part} of {count}"),
                    ));
                }
                parts.entry(seq).or_default().push(Part { index: part, count, offset, bytes: rest.to_vec() });
            } else if key == HEADER_KEY {
                let parsed: SnapshotHeader = serde_json::from_slice(&value)
                    .map_err(|e| damaged(offset, format!("the snapshot header is not readable: {e}")))?;
                if parsed.v != FORMAT {
                    return Err(damaged(offset, format!("a snapshot header of format {}", parsed.v)));
                }
                header = Some((offset, parsed));
            } else if let Some(rest) = key.strip_prefix("s/") {
                let unknown = || damaged(offset, format!("an unknown key `{key}`"));
                let (covered, n) = rest.split_once('/').ok_or_else(unknown)?;
                let covered: u64 = covered.parse().map_err(|_| unknown())?;
                let n: u32 = n.parse().map_err(|_| unknown())?;
                chunks.insert((covered, n), (offset, value));
            } else if let Some(rest) = key.strip_prefix("r/") {
                let unknown = || damaged(offset, format!("an unknown key `{key}`"));
                let (hex, key_part) = match rest.split_once('/') {
                    Some((hex, part)) => (hex, part.parse::<u16>().map_err(|_| unknown())?),
                    None => (rest, 0),
                };
                let tree_key = from_hex(hex).ok_or_else(unknown)?;
                let (part, count, bytes) = read_part(&value)
                    .filter(|(part, ..)| *part == key_part)
                    .ok_or_else(|| damaged(offset, format!("rules entry `{key}`: not a part mon wrote")))?;
                rules.entry(tree_key).or_default().push((part, count, bytes.to_vec(), offset));
            } else if let Some(id) = key.strip_prefix("n/") {
                let mark: Mark = serde_json::from_slice(&value)
                    .map_err(|e| damaged(offset, format!("delivery mark of {id} is not readable: {e}")))?;
                restored.marks.insert(id.to_string(), Settled { sent: mark.sent, at: mark.at });
            } else {
                return Err(damaged(offset, format!("an unknown key `{key}`")));
            }
        }
        let covered = match header {
            Some((offset, header)) => {
                let mut bytes = Vec::with_capacity(header.bytes as usize);
                for n in 0..header.chunks {
                    let (_, chunk) = chunks.remove(&(header.covered, n)).ok_or_else(|| {
                        damaged(
                            offset,
                            format!("snapshot {}: chunk {n} of {} is missing", header.covered, header.chunks),
                        )
                    })?;
                    bytes.extend_from_slice(&chunk);
                }
                if bytes.len() as u64 != header.bytes || crc32fast::hash(&bytes) != header.crc32 {
                    return Err(damaged(
                        offset,
                        format!("snapshot {}: its chunks do not match its header", header.covered),
                    ));
                }
                let payload = decode_snapshot(&bytes)
                    .ok_or_else(|| damaged(offset, format!("snapshot {}: not readable", header.covered)))?;
                let covered = header.covered;
                restored.snapshot = Some((header, payload));
                covered
            }
            None => 0,
        };
        for (tree_key, mut pieces) in rules {
            pieces.sort_by_key(|(part, ..)| *part);
            let (count, offset) = (pieces[0].1, pieces[0].3);
            // A store entry written in more parts than now leaves parts
            // beyond its count until their tombstones land: not damage.
            pieces.retain(|(part, c, ..)| *c == count && *part < count);
            if pieces.len() != count as usize {
                let key = rules_key(&tree_key, 0);
                return Err(damaged(offset, format!("rules entry `{key}`: {} of its {count} parts", pieces.len())));
            }
            let value = pieces.into_iter().flat_map(|(_, _, bytes, _)| bytes).collect();
            restored.rules.insert(tree_key, (value, count));
        }
        let last = parts.keys().next_back().copied();
        for (seq, mut pieces) in parts {
            // The entry as last written: one written again under the same
            // number (a batch a restore left to be read again) in fewer
            // parts leaves the older one's further parts until their
            // tombstones land. Every part counts for the tombstones.
            let count = pieces.iter().max_by_key(|p| p.offset).map_or(0, |p| p.count);
            let most = pieces.iter().map(|p| p.count).max().unwrap_or(count);
            restored.entries.insert(seq, most);
            if seq < covered {
                continue;
            }
            let offset = pieces[0].offset;
            let expected = covered + restored.frames.len() as u64;
            if seq != expected {
                return Err(damaged(offset, format!("journal entry {expected} is missing (the next one is {seq})")));
            }
            pieces.retain(|p| p.count == count && p.index < count);
            pieces.sort_by_key(|p| p.index);
            if pieces.len() != count as usize {
                // The last entry torn: its process died while producing
                // its parts, before the broker acknowledged them all, so
                // its batch's outputs never left. It was never written;
                // the next writer's entry takes its number (and its parts
                // are deleted with what lies past the restored state).
                if Some(seq) == last {
                    restored.torn = Some(seq);
                    break;
                }
                return Err(damaged(offset, format!("journal entry {seq}: {} of its {count} parts", pieces.len())));
            }
            let frame: Vec<u8> = pieces.into_iter().flat_map(|p| p.bytes).collect();
            if journal::decode_frame(&frame).is_none_or(|entry| entry.seq != seq) {
                return Err(damaged(offset, format!("journal entry {seq} is damaged (length, CRC or sequence)")));
            }
            restored.frames.push(frame);
        }
        Ok(restored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mon_runtime::live::Input;

    fn frame(seq: u64, lines: usize) -> Vec<u8> {
        let inputs: Vec<Input> = (0..lines).map(|i| Input::Line(format!("{{\"n\":{i}}}"))).collect();
        journal::encode_frame(seq, &inputs, &Offsets::new())
    }

    fn contents(records: &[(String, Option<Vec<u8>>)]) -> Contents {
        let mut contents = Contents::default();
        for (offset, (key, value)) in records.iter().enumerate() {
            contents.add(offset as i64, Some(key.as_bytes()), value.as_deref(), 0).unwrap();
        }
        contents
    }

    fn produced(records: Vec<(String, Vec<u8>)>) -> Vec<(String, Option<Vec<u8>>)> {
        records.into_iter().map(|(k, v)| (k, Some(v))).collect()
    }

    #[test]
    fn a_large_entry_goes_in_parts_and_comes_back_whole() {
        let big = frame(1, 100_000);
        assert!(big.len() > 2 * CHUNK_BYTES, "{} bytes", big.len());
        let records = entry_records(1, &big);
        assert_eq!(records.len(), big.len().div_ceil(CHUNK_BYTES));
        assert_eq!(records[0].0, "j/00000000000000000001");
        assert_eq!(records[1].0, "j/00000000000000000001/1");
        assert!(records.iter().all(|(_, v)| v.len() <= CHUNK_BYTES + 5));
        let mut all = produced(entry_records(0, &frame(0, 2)));
        all.extend(produced(records.clone()));
        let restored = contents(&all).restore().unwrap();
        assert_eq!(restored.frames, vec![frame(0, 2), big]);
        assert_eq!(restored.next_seq(), 2);
        assert_eq!(restored.entries.get(&1), Some(&(records.len() as u16)));
    }

    /// A crash while the parts of the last entry were produced: that
    /// batch never left the process, so the state ends before it. A torn
    /// entry with one after it is damage.
    #[test]
    fn a_torn_last_entry_is_left_out_and_a_torn_entry_before_another_is_damage() {
        let big = frame(1, CHUNK_BYTES / 8);
        let mut records = produced(entry_records(0, &frame(0, 2)));
        let parts = produced(entry_records(1, &big));
        assert!(parts.len() >= 2, "the frame goes in parts");
        records.push(parts[0].clone());
        let restored = contents(&records).restore().unwrap();
        assert_eq!((restored.frames.len(), restored.next_seq(), restored.torn), (1, 1, Some(1)));
        assert_eq!(restored.entries.get(&1), Some(&(parts.len() as u16)), "its parts are deleted with what is past");

        records.extend(produced(entry_records(2, &frame(2, 2))));
        let why = contents(&records).restore().unwrap_err().why;
        assert!(why.contains("journal entry 1: 1 of its"), "{why}");
    }

    #[test]
    fn an_entry_written_again_in_fewer_parts_is_read_as_last_written() {
        // A restore left batch 1 to be read again; the batch that took its
        // number is smaller, and the older one's further parts are still
        // in the topic (their tombstones not yet landed).
        let big = entry_records(1, &frame(1, 100_000));
        let mut all = produced(entry_records(0, &frame(0, 2)));
        all.extend(produced(big.clone()));
        all.extend(produced(entry_records(1, &frame(1, 3))));
        let restored = contents(&all).restore().unwrap();
        assert_eq!(restored.frames, vec![frame(0, 2), frame(1, 3)]);
        assert_eq!(restored.entries.get(&1), Some(&(big.len() as u16)), "every part is deleted at the next snapshot");
    }

    /// The payload carries the rollup rows in a section; a payload of
    /// format 1 (before sections) is still read, and a section of a later
    /// release is skipped, not taken for the engine's bytes.
    #[test]
    fn a_snapshot_payload_carries_rollups_and_reads_format_one_and_unknown_sections() {
        let offsets: Offsets = [(("events".to_string(), 2), 7)].into_iter().collect();
        let rows = vec![(b"umtrades\0k".to_vec(), vec![0u8; 32]), (b"uhtrades\0k".to_vec(), vec![1u8; 32])];
        let payload = encode_snapshot(&offsets, &[b"o".to_vec()], &[], Some(&rows), b"engine");
        let read = decode_snapshot(&payload).unwrap();
        assert_eq!((read.rollups, read.engine.as_slice(), read.offsets), (Some(rows), &b"engine"[..], offsets.clone()));
        // Format 1 on demand: what a release before sections reads.
        let old = encode_snapshot(&offsets, &[b"o".to_vec()], &[], None, b"engine");
        assert_eq!(old[0], 1);
        assert_eq!(decode_snapshot(&old).unwrap().rollups, None, "no rows carried: the local ones stay");

        // Format 1: offsets, the two lists, the engine.
        let mut one = vec![1u8];
        one.extend_from_slice(&0u32.to_le_bytes());
        one.extend_from_slice(&0u32.to_le_bytes());
        one.extend_from_slice(&1u32.to_le_bytes());
        put(&mut one, b"{}");
        one.extend_from_slice(b"engine");
        let read = decode_snapshot(&one).unwrap();
        assert_eq!((read.notifications, read.rollups, read.engine), (vec![b"{}".to_vec()], None, b"engine".to_vec()));

        // A section tagged 9, then the rollups.
        let mut later = vec![SNAPSHOT_FORMAT];
        later.extend_from_slice(&[0; 12]);
        later.extend_from_slice(&2u32.to_le_bytes());
        later.push(9);
        put(&mut later, b"a later release's");
        later.push(ROLLUPS_SECTION);
        let mut section = 1u32.to_le_bytes().to_vec();
        put(&mut section, b"umk");
        put(&mut section, b"v");
        put(&mut later, &section);
        later.extend_from_slice(b"engine");
        let read = decode_snapshot(&later).unwrap();
        assert_eq!((read.rollups, read.engine), (Some(vec![(b"umk".to_vec(), b"v".to_vec())]), b"engine".to_vec()));
        assert_eq!(decode_snapshot(&[3, 0, 0, 0, 0]), None, "a later format is refused");
    }

    #[test]
    fn a_snapshot_is_chunked_named_by_its_header_and_replaces_what_it_covers() {
        let offsets: Offsets = [(("events".to_string(), 0), 42)].into_iter().collect();
        let engine: Vec<u8> = (0..1_300_000u32).map(|i| (i % 251) as u8).collect();
        let payload = encode_snapshot(&offsets, &[b"outbox item".to_vec()], &[b"{}".to_vec()], Some(&[]), &engine);
        let (chunks, header) = snapshot_records(3, &payload, None);
        assert_eq!(header.chunks, 3, "1.3 MB in 512 KB chunks");
        assert_eq!(chunks[2].0, "s/00000000000000000003/2");
        assert_eq!(header.crc32, crc32fast::hash(&payload));

        // Entries 0..3 and an older snapshot of 2 chunks are in the topic.
        let entries: BTreeMap<u64, u16> = [(1, 1), (2, 2), (3, 1)].into_iter().collect();
        let previous = SnapshotHeader { v: FORMAT, covered: 1, chunks: 2, bytes: 10, crc32: 0, tasks: None };
        let tombstones = tombstones_after_snapshot(&entries, Some(&previous), &header);
        assert_eq!(
            tombstones,
            vec![
                "j/00000000000000000001",
                "j/00000000000000000002",
                "j/00000000000000000002/1",
                "s/00000000000000000001/0",
                "s/00000000000000000001/1"
            ]
        );
        // A snapshot again at the same point keeps the keys it rewrote.
        let again = SnapshotHeader { chunks: 1, ..header.clone() };
        assert_eq!(
            tombstones_after_snapshot(&BTreeMap::new(), Some(&header), &again),
            vec!["s/00000000000000000003/1", "s/00000000000000000003/2"]
        );

        // Read back in the order they were produced: the header after its
        // chunks, then tombstones; entry 3 stays.
        let mut log = produced(entry_records(2, &frame(2, 1)));
        log.extend(produced(chunks));
        log.push((HEADER_KEY.into(), Some(serde_json::to_vec(&header).unwrap())));
        log.extend(produced(entry_records(3, &frame(3, 1))));
        log.extend(tombstones.into_iter().map(|k| (k, None)));
        log.push((mark_key("n-1"), Some(br#"{"v":1,"sent":true,"at":5}"#.to_vec())));
        let restored = contents(&log).restore().unwrap();
        let (got_header, got) = restored.snapshot.as_ref().unwrap();
        assert_eq!(got_header, &header);
        assert_eq!(got.engine, engine);
        assert_eq!(got.offsets, offsets);
        assert_eq!(got.outbox, vec![b"outbox item".to_vec()]);
        assert_eq!(restored.frames, vec![frame(3, 1)]);
        assert_eq!(restored.next_seq(), 4);
        assert_eq!(restored.marks.get("n-1"), Some(&Settled { sent: true, at: 5 }));
    }

    #[test]
    fn a_damaged_or_unknown_record_is_an_error_at_its_offset() {
        let mut log = produced(entry_records(0, &frame(0, 1)));
        let mut bad = entry_records(1, &frame(1, 1));
        let last = bad[0].1.len() - 1;
        bad[0].1[last] ^= 0xff;
        log.extend(produced(bad));
        assert_eq!(contents(&log).restore().unwrap_err().offset, 1);

        let log = vec![("x/1".to_string(), Some(b"?".to_vec()))];
        let error = contents(&log).restore().unwrap_err();
        assert!(error.why.contains("unknown key `x/1`"), "{error:?}");

        // A gap after the snapshot: entry 1 never arrived.
        let mut log = produced(entry_records(0, &frame(0, 1)));
        log.extend(produced(entry_records(2, &frame(2, 1))));
        let error = contents(&log).restore().unwrap_err();
        assert!(error.why.contains("journal entry 1 is missing"), "{error:?}");

        // A header whose chunk was lost.
        let (_, header) = snapshot_records(1, b"state", None);
        let log = vec![(HEADER_KEY.to_string(), Some(serde_json::to_vec(&header).unwrap()))];
        assert!(contents(&log).restore().unwrap_err().why.contains("chunk 0 of 1 is missing"));
    }

    #[test]
    fn records_an_older_epoch_wrote_after_a_newer_claim_do_not_count() {
        // Epoch 1 writes entries 0 and 1; epoch 2 claims, then writes its
        // own entry 2 and a snapshot. Epoch 1 (paused, it missed the
        // claim) writes its entry 2 and a tombstone after the claim: both
        // are skipped, and entry 2 is epoch 2's whatever the order.
        let epoch_2_entry = frame(2, 3);
        let epoch_1_entry = frame(2, 1);
        let mut log: Vec<(String, Option<Vec<u8>>, u64)> = Vec::new();
        let mut write = |records: Vec<(String, Vec<u8>)>, writer: u64| {
            log.extend(records.into_iter().map(|(k, v)| (k, Some(v), writer)));
        };
        write(vec![(claim_key(1), claim_value(1))], 1);
        write(entry_records(0, &frame(0, 1)), 1);
        write(entry_records(1, &frame(1, 1)), 1);
        write(vec![(claim_key(2), claim_value(2))], 2);
        write(entry_records(2, &epoch_2_entry), 2);
        write(entry_records(2, &epoch_1_entry), 1);
        log.push((entry_key(0, 0), None, 1));
        let mut contents = Contents::default();
        for (offset, (key, value, writer)) in log.iter().enumerate() {
            contents.add(offset as i64, Some(key.as_bytes()), value.as_deref(), *writer).unwrap();
        }
        assert_eq!((contents.epoch, contents.stale), (2, 2));
        let restored = contents.restore().unwrap();
        assert_eq!(
            restored.frames,
            vec![frame(0, 1), frame(1, 1), epoch_2_entry],
            "epoch 1's entries before the claim count"
        );

        // A second claim of an epoch does not count: the first holds it.
        let mut contents = Contents::default();
        contents.add(4, Some(claim_key(1).as_bytes()), Some(&claim_value(1)), 1).unwrap();
        contents.add(9, Some(claim_key(1).as_bytes()), Some(&claim_value(1)), 1).unwrap();
        assert_eq!((contents.epoch, contents.claimed_at), (1, 4));

        // A claim must be written by the epoch it claims.
        let mut contents = Contents::default();
        let error = contents.add(0, Some(claim_key(3).as_bytes()), Some(&claim_value(3)), 2).unwrap_err();
        assert!(error.why.contains("claim of epoch 3 written by epoch 2"), "{error:?}");
        assert_eq!(read_writer(None), Some(0));
        assert_eq!(read_writer(Some(writer_value(7).as_bytes())), Some(7));
        assert_eq!(read_writer(Some(b"x")), None);
    }

    #[test]
    fn a_local_state_ahead_of_or_equal_to_the_changelog_is_kept() {
        assert!(!must_restore(10, 10));
        assert!(!must_restore(11, 10));
        assert!(!must_restore(0, 0), "an empty changelog restores nothing");
        assert!(must_restore(0, 1), "an empty state directory");
        assert!(must_restore(9, 10), "a stale one");
        // The changelog's position is the snapshot's plus the entries after it.
        let mut log = produced(snapshot_records(5, &encode_snapshot(&Offsets::new(), &[], &[], None, b"s"), None).0);
        let (_, header) = snapshot_records(5, &encode_snapshot(&Offsets::new(), &[], &[], None, b"s"), None);
        log.push((HEADER_KEY.into(), Some(serde_json::to_vec(&header).unwrap())));
        log.extend(produced(entry_records(5, &frame(5, 1))));
        assert_eq!(contents(&log).restore().unwrap().next_seq(), 6);
    }

    /// The rules store's entries come back whole by their store keys,
    /// however many parts they took, and a value that shrank keeps no part
    /// of its longer past.
    #[test]
    fn the_rules_store_comes_back_whole_by_its_own_keys() {
        let version_key = [b'v', 0, 0, 0, 0, 0, 0, 0, 2];
        let big = vec![b'x'; 2 * CHUNK_BYTES + 7];
        let mut log = produced(rules_records(&version_key, &big));
        log.extend(produced(rules_records(b"m/active", &2u64.to_be_bytes())));
        assert_eq!(log[0].0, "r/760000000000000002");
        assert_eq!(log[1].0, "r/760000000000000002/1");
        let restored = contents(&log).restore().unwrap();
        assert_eq!(restored.rules.get(&version_key[..]), Some(&(big, 3)));
        assert_eq!(restored.rules.get(&b"m/active"[..]), Some(&(2u64.to_be_bytes().to_vec(), 1)));
        // Written again in one part: the old parts 1 and 2 are left over
        // until their tombstones; the value is the new one.
        log.extend(produced(rules_records(&version_key, b"small")));
        let restored = contents(&log).restore().unwrap();
        assert_eq!(restored.rules.get(&version_key[..]), Some(&(b"small".to_vec(), 1)));
        // A missing part is damage, not a shorter version.
        let mut torn = produced(rules_records(&version_key, &vec![b'y'; CHUNK_BYTES + 1]));
        torn.truncate(1);
        assert!(contents(&torn).restore().unwrap_err().why.contains("1 of its 2 parts"));
        // A key that is not hex is not ours.
        let odd = vec![("r/zz".to_string(), Some(vec![FORMAT, 0, 0, 0, 1]))];
        assert!(contents(&odd).restore().unwrap_err().why.contains("unknown key"));
    }
}
