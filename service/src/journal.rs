//! The journal of inputs and the snapshot of the engine, as plain files
//! next to sled.
//!
//! Every batch's inputs (and the Kafka offsets it moved) are appended to
//! `journal.log` and fsynced *before* the batch's outputs and offsets are
//! written to sled. Each sled batch names the journal entry it belongs to
//! (`applied`), so after a crash recovery knows which entries still need
//! their outputs written: it replays the journal through the deterministic
//! engine and writes them then. An entry whose bytes are incomplete (the
//! crash came mid-append) is cut off: nothing of it was acknowledged, so
//! its events are consumed again.
//!
//! Why files and not sled for these two: sled rewrites a whole leaf page
//! when it consolidates it, so bulk appends of event bytes and a snapshot
//! of tens of megabytes are copied again and again. Measured on the trade
//! lifecycle stream (600k events, 120k in flight): with the journal in
//! sled the service ran at 48k events/s and a snapshot took 17 s; see
//! docs/notes/durability.md.
//!
//! Entry layout: u32 length, u32 CRC-32 of the body, body = u64 batch
//! sequence, u32 offset count, offsets (u16 topic length, topic, i32
//! partition, i64 next offset), then the inputs as `live::encode_inputs`.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::error::{Domain, Error};
use super::store::Offsets;
use mon_runtime::live::{decode_inputs, encode_inputs, Input};

pub struct Journal {
    dir: PathBuf,
    file: File,
    /// The sequence number the next entry gets.
    pub next_seq: u64,
}

/// A journal entry read back.
#[derive(Debug, PartialEq)]
pub struct Entry {
    pub seq: u64,
    pub offsets: Offsets,
    pub inputs: Vec<Input>,
}

/// What recovery starts from.
pub struct Recovered {
    /// The snapshot and the first sequence it does not cover.
    pub snapshot: Option<(u64, Vec<u8>)>,
    /// Entries after the snapshot, in order.
    pub entries: Vec<Entry>,
}

fn io(doing: &str, path: &Path, e: std::io::Error) -> Error {
    Error::io(Domain::Journal, doing, path, e)
}

const JOURNAL: &str = "journal.log";
const SNAPSHOT: &str = "snapshot.bin";

impl Journal {
    /// Opens the journal in `dir`, reads what it holds, and cuts off an
    /// incomplete last entry.
    pub fn open(dir: &Path) -> Result<(Journal, Recovered), Error> {
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
        let snapshot = read_snapshot(dir)?;
        let covered = snapshot.as_ref().map_or(0, |(c, _)| *c);
        let path = dir.join(JOURNAL);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io("cannot open", &path, e))?;
        let (entries, valid_len) = read_entries(&file, &path)?;
        let length = file.metadata().map_err(|e| io("cannot stat", &path, e))?.len();
        if valid_len < length {
            tracing::warn!(bytes = length - valid_len, "cutting off an incomplete journal entry left by a crash");
            file.set_len(valid_len).map_err(|e| io("cannot truncate", &path, e))?;
            file.sync_all().map_err(|e| io("cannot sync", &path, e))?;
        }
        file.seek(SeekFrom::End(0)).map_err(|e| io("cannot seek", &path, e))?;
        let next_seq = entries.last().map_or(covered, |e| e.seq + 1).max(covered);
        let entries = entries.into_iter().filter(|e| e.seq >= covered).collect();
        Ok((Journal { dir: dir.to_path_buf(), file, next_seq }, Recovered { snapshot, entries }))
    }

    /// The sequence the next entry gets; a snapshot taken now covers every
    /// entry below it.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Moves the next entry's sequence up to `seq`: with state per
    /// partition the snapshots are the tasks' (`processor::tasks`), and
    /// the journal, emptied after them, must go on above what they cover.
    pub fn advance_to(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq);
    }

    /// Appends one batch and fsyncs it; returns its sequence number.
    pub fn append(&mut self, inputs: &[Input], offsets: &Offsets) -> Result<u64, Error> {
        self.append_framed(inputs, offsets).map(|(seq, _)| seq)
    }

    /// [`append`](Self::append), also returning the entry's bytes exactly
    /// as they were written (the changelog sends the same frame).
    pub fn append_framed(&mut self, inputs: &[Input], offsets: &Offsets) -> Result<(u64, Vec<u8>), Error> {
        let seq = self.next_seq;
        let frame = encode_frame(seq, inputs, offsets);
        let path = self.dir.join(JOURNAL);
        self.file.write_all(&frame).map_err(|e| io("cannot append to", &path, e))?;
        self.file.sync_data().map_err(|e| io("cannot sync", &path, e))?;
        self.next_seq += 1;
        Ok((seq, frame))
    }

    /// Saves a snapshot of the state after every entry so far, then empties
    /// the journal. The snapshot is written to a new file and renamed over
    /// the old one, so a crash leaves either snapshot whole; one between
    /// the rename and the truncation leaves entries that recovery skips.
    /// (The service writes each task's snapshot, then truncates: this is
    /// the two in one, for tests of one state.)
    #[cfg(test)]
    pub fn snapshot(&mut self, snapshot: &[u8]) -> Result<(), Error> {
        write_snapshot(&self.dir, self.next_seq, snapshot)?;
        self.truncate()
    }

    /// Empties the journal, once every state it fed has a snapshot that
    /// covers its entries (with state per partition, one per task:
    /// [`write_snapshot`] in each task's directory first).
    pub fn truncate(&mut self) -> Result<(), Error> {
        let journal = self.dir.join(JOURNAL);
        self.file.set_len(0).map_err(|e| io("cannot truncate", &journal, e))?;
        self.file.sync_all().map_err(|e| io("cannot sync", &journal, e))?;
        Ok(())
    }
}

/// Writes `snapshot`, covering the entries below `covered`, as `dir`'s
/// snapshot: to a new file renamed over the old one, so that a crash
/// leaves either snapshot whole.
pub fn write_snapshot(dir: &Path, covered: u64, snapshot: &[u8]) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
    let path = dir.join(SNAPSHOT);
    let temporary = dir.join("snapshot.tmp");
    let mut file = File::create(&temporary).map_err(|e| io("cannot create", &temporary, e))?;
    file.write_all(&covered.to_le_bytes()).map_err(|e| io("cannot write", &temporary, e))?;
    file.write_all(snapshot).map_err(|e| io("cannot write", &temporary, e))?;
    file.sync_all().map_err(|e| io("cannot sync", &temporary, e))?;
    std::fs::rename(&temporary, &path).map_err(|e| io("cannot rename to", &path, e))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("cannot sync", dir, e))?;
    Ok(())
}

/// `dir`'s snapshot, with the first sequence it does not cover.
pub fn read_snapshot(dir: &Path) -> Result<Option<(u64, Vec<u8>)>, Error> {
    let path = dir.join(SNAPSHOT);
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() >= 8 => {
            let covered = u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default());
            Ok(Some((covered, bytes[8..].to_vec())))
        }
        Ok(_) => Err(Error::damaged(Domain::Journal, format!("{} is damaged", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("cannot read", &path, e)),
    }
}

/// One entry as it is written to the file: u32 length, u32 CRC-32 of
/// the body, the body. The same inputs and offsets always give the same
/// bytes (offsets are ordered), so an entry read back frames as it was.
pub fn encode_frame(seq: u64, inputs: &[Input], offsets: &Offsets) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 + inputs.len() * 256);
    body.extend_from_slice(&seq.to_le_bytes());
    body.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
    for ((topic, partition), next) in offsets {
        body.extend_from_slice(&(topic.len() as u16).to_le_bytes());
        body.extend_from_slice(topic.as_bytes());
        body.extend_from_slice(&partition.to_le_bytes());
        body.extend_from_slice(&next.to_le_bytes());
    }
    body.extend_from_slice(&encode_inputs(inputs));
    let mut frame = Vec::with_capacity(body.len() + 8);
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Reads one whole frame (as [`encode_frame`] makes it); `None` if its
/// length, checksum or body is wrong.
pub fn decode_frame(frame: &[u8]) -> Option<Entry> {
    let (length, rest) = frame.split_first_chunk::<4>()?;
    let (crc, body) = rest.split_first_chunk::<4>()?;
    if body.len() != u32::from_le_bytes(*length) as usize || crc32fast::hash(body) != u32::from_le_bytes(*crc) {
        return None;
    }
    decode_entry(body)
}

/// Where the snapshot of the task of input partition `partition` is kept,
/// with state per partition (`processor/tasks.rs`).
pub fn task_dir(state_dir: &Path, partition: u16) -> PathBuf {
    state_dir.join("tasks").join(partition.to_string())
}

/// A snapshot directory, and the snapshot [`install`] puts there: the
/// sequence it covers up to and its bytes (`None`: no snapshot).
pub type SnapshotFile<'a> = (PathBuf, Option<(u64, &'a [u8])>);

/// Replaces the journal of `dir` with `frames` (whole entries), and each
/// snapshot directory's snapshot with its own (the state before entry
/// `covered`; `None`: no snapshot): how a state rebuilt from the changelog
/// (`changelog.rs`) becomes the files that [`Journal::open`] and the
/// ordinary recovery read. Each file is written new, fsynced and renamed,
/// in an order that keeps every crash in between safe: the journal is
/// emptied first, then the snapshots replaced, then the entries written.
/// Why: a crash then leaves old snapshots or new ones (or, with several, a
/// mix whose oldest is behind) with no entries, behind the changelog (the
/// next start restores again) or equal to it (its state is the
/// changelog's). Writing the entries first could leave them over an old
/// snapshot with nothing in between, and equal to the changelog in number,
/// so no restore would follow.
pub fn install(dir: &Path, snapshots: &[SnapshotFile<'_>], frames: &[Vec<u8>]) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
    let write = |dir: &Path, name: &str, parts: &[&[u8]]| -> Result<(), Error> {
        let temporary = dir.join(format!("{name}.restore"));
        let mut file = File::create(&temporary).map_err(|e| io("cannot create", &temporary, e))?;
        for part in parts {
            file.write_all(part).map_err(|e| io("cannot write", &temporary, e))?;
        }
        file.sync_all().map_err(|e| io("cannot sync", &temporary, e))?;
        let path = dir.join(name);
        std::fs::rename(&temporary, &path).map_err(|e| io("cannot rename to", &path, e))
    };
    let frames: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    write(dir, JOURNAL, &[])?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("cannot sync", dir, e))?;
    for (snapshot_dir, snapshot) in snapshots {
        if !snapshot_dir.exists() {
            std::fs::create_dir_all(snapshot_dir).map_err(|e| io("cannot create", snapshot_dir, e))?;
            // A new directory's entry must outlive a power loss, as the
            // journal written after the snapshot in it does.
            for made in snapshot_dir.ancestors().skip(1).take_while(|d| d.starts_with(dir)) {
                File::open(made).and_then(|d| d.sync_all()).map_err(|e| io("cannot sync", made, e))?;
            }
        }
        match snapshot {
            Some((covered, bytes)) => write(snapshot_dir, SNAPSHOT, &[&covered.to_le_bytes(), bytes])?,
            None => match std::fs::remove_file(snapshot_dir.join(SNAPSHOT)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("cannot remove", &snapshot_dir.join(SNAPSHOT), e)),
            },
        }
        File::open(snapshot_dir).and_then(|d| d.sync_all()).map_err(|e| io("cannot sync", snapshot_dir, e))?;
    }
    write(dir, JOURNAL, &frames)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("cannot sync", dir, e))
}

/// The complete entries of the file and the length they span.
fn read_entries(file: &File, path: &Path) -> Result<(Vec<Entry>, u64), Error> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    reader.seek(SeekFrom::Start(0)).map_err(|e| io("cannot read", path, e))?;
    let mut entries = Vec::new();
    let mut valid = 0u64;
    loop {
        let mut header = [0u8; 8];
        if reader.read_exact(&mut header).is_err() {
            break;
        }
        let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() || crc32fast::hash(&body) != crc {
            break;
        }
        let Some(entry) = decode_entry(&body) else { break };
        entries.push(entry);
        valid += 8 + length as u64;
    }
    Ok((entries, valid))
}

fn decode_entry(body: &[u8]) -> Option<Entry> {
    let (seq, mut rest) = body.split_first_chunk::<8>()?;
    let (count, r) = rest.split_first_chunk::<4>()?;
    rest = r;
    let mut offsets = Offsets::new();
    for _ in 0..u32::from_le_bytes(*count) {
        let (len, r) = rest.split_first_chunk::<2>()?;
        let len = u16::from_le_bytes(*len) as usize;
        let topic = std::str::from_utf8(r.get(..len)?).ok()?.to_string();
        let (partition, r) = r[len..].split_first_chunk::<4>()?;
        let (next, r) = r.split_first_chunk::<8>()?;
        offsets.insert((topic, i32::from_le_bytes(*partition)), i64::from_le_bytes(*next));
        rest = r;
    }
    Some(Entry { seq: u64::from_le_bytes(*seq), offsets, inputs: decode_inputs(rest)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopening_and_a_torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut offsets = Offsets::new();
        offsets.insert(("events".into(), 2), 41);
        {
            let (mut journal, recovered) = Journal::open(dir.path()).unwrap();
            assert!(recovered.entries.is_empty() && recovered.snapshot.is_none());
            assert_eq!(journal.append(&[Input::Tick(1), Input::Line("{}".into())], &offsets).unwrap(), 0);
            assert_eq!(journal.append(&[Input::Tick(2)], &Offsets::new()).unwrap(), 1);
        }
        // A crash in the middle of a third append.
        let path = dir.path().join(JOURNAL);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 9, 9]).unwrap();
        drop(file);
        let (mut journal, recovered) = Journal::open(dir.path()).unwrap();
        assert_eq!(recovered.entries.len(), 2);
        assert_eq!(recovered.entries[0].offsets, offsets);
        assert_eq!(recovered.entries[0].inputs, vec![Input::Tick(1), Input::Line("{}".into())]);
        assert_eq!(journal.next_seq, 2);
        assert_eq!(journal.append(&[Input::Tick(3)], &Offsets::new()).unwrap(), 2);
        let (_, recovered) = Journal::open(dir.path()).unwrap();
        assert_eq!(recovered.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn a_snapshot_covers_the_entries_before_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut journal, _) = Journal::open(dir.path()).unwrap();
            journal.append(&[Input::Tick(1)], &Offsets::new()).unwrap();
            journal.snapshot(b"state").unwrap();
            journal.append(&[Input::Tick(2)], &Offsets::new()).unwrap();
        }
        let (journal, recovered) = Journal::open(dir.path()).unwrap();
        assert_eq!(recovered.snapshot, Some((1, b"state".to_vec())));
        assert_eq!(recovered.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1]);
        assert_eq!(journal.next_seq, 2);
    }

    #[test]
    fn install_puts_each_tasks_snapshot_in_its_directory_and_removes_one_it_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let (zero, one) = (task_dir(dir.path(), 0), task_dir(dir.path(), 1));
        // An older state's snapshot of task 1, which the restored one lacks.
        write_snapshot(&one, 2, b"old").unwrap();
        let frames = vec![encode_frame(4, &[Input::Task(0), Input::Tick(4)], &Offsets::new())];
        install(dir.path(), &[(zero.clone(), Some((4, &b"zero"[..]))), (one.clone(), None)], &frames).unwrap();
        assert_eq!(read_snapshot(&zero).unwrap(), Some((4, b"zero".to_vec())));
        assert_eq!(read_snapshot(&one).unwrap(), None);
        let (_, recovered) = Journal::open(dir.path()).unwrap();
        assert_eq!(recovered.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4]);
    }

    #[test]
    fn installed_files_are_what_open_reads_and_frames_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut offsets = Offsets::new();
        offsets.insert(("events".into(), 0), 9);
        let frames =
            vec![encode_frame(4, &[Input::Tick(4)], &offsets), encode_frame(5, &[Input::Tick(5)], &Offsets::new())];
        assert_eq!(decode_frame(&frames[0]).unwrap().offsets, offsets);
        assert!(decode_frame(&frames[0][..frames[0].len() - 1]).is_none(), "a short frame is refused");
        // Over an older state, which the installed one replaces whole.
        {
            let (mut journal, _) = Journal::open(dir.path()).unwrap();
            journal.append(&[Input::Tick(1)], &Offsets::new()).unwrap();
        }
        install(dir.path(), &[(dir.path().to_path_buf(), Some((4, &b"state"[..])))], &frames).unwrap();
        let (journal, recovered) = Journal::open(dir.path()).unwrap();
        assert_eq!(recovered.snapshot, Some((4, b"state".to_vec())));
        assert_eq!(recovered.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(recovered.entries[0].offsets, offsets);
        assert_eq!(journal.next_seq, 6);
        // Frames re-encoded from what was read are the bytes written.
        let again: Vec<Vec<u8>> =
            recovered.entries.iter().map(|e| encode_frame(e.seq, &e.inputs, &e.offsets)).collect();
        assert_eq!(again, frames);
    }
}
