//! Whose writes to the changelog count, decided by the log itself.
//!
//! Each process that opens the changelog to write it first claims it: it
//! picks the epoch after the newest claim it read, writes the claim record
//! (`w/<epoch>`), and reads on to that record, so its state holds every
//! record written before its claim. Each record it writes carries its
//! epoch in a header. A reader skips a record from an older epoch that
//! comes after a newer claim (`records::Contents::add`): its writer had
//! lost the changelog and did not know yet.
//!
//! Why the log and not only the lease: a process learns that the group
//! coordinator gave its lease away only from a heartbeat answered after
//! it resumes, and the test broker answered a resumed process's stale
//! join first and took seconds to say more (docs/notes/durability.md,
//! "A paused process"). Meanwhile it wrote. The log's order needs no
//! such answer.
//!
//! How a writer finds out: every record it writes gets an offset in the
//! acknowledgement. Its own records, in offset order, leave no gap unless
//! another process wrote in between. A gap is read back; a record in it
//! from a newer epoch (or a claim of this epoch before this process's
//! own) means this process was overtaken, and the write that found it
//! fails. With fail-over that stops the process before its batch's
//! outputs leave; without, the process goes on without the changelog
//! (`Changelog::append`). So a process that lost the changelog writes at
//! most one group of records after the newer claim (one journal entry,
//! or one step of a snapshot), plus delivery marks already on their way,
//! and readers skip those.
//!
//! What it must not do: count a gap as this process's own without
//! reading it. The delivery marks come from another producer of the same
//! process and may be acknowledged after a later journal entry; the
//! gap's read finds them with this process's epoch.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::{Domain, Error, Retry};

fn poisoned() -> Error {
    Error::new(Domain::Process, Retry::Never, "the changelog fence's lock was poisoned (a thread panicked)")
}

/// This process's epoch and what it has seen of the partition since its
/// claim.
pub struct Fence {
    epoch: AtomicU64,
    /// Where this epoch's claim is: a claim of the same epoch before it
    /// is another process's, which came first and holds the epoch.
    claim_offset: AtomicI64,
    /// The newest epoch found in a gap.
    newest: AtomicU64,
    seen: Mutex<Seen>,
    overtaken: AtomicBool,
    /// An older writer's records were found after this one's claim; a
    /// snapshot soon puts later records over their keys (compaction keeps
    /// a key's last record).
    stale_found: AtomicBool,
}

struct Seen {
    /// Every offset up to this one is known to count for this epoch.
    checked: i64,
    /// Offsets of this process's records acknowledged beyond `checked`.
    acked: BTreeSet<i64>,
}

/// A record found in a gap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Written {
    pub offset: i64,
    /// Its writer's epoch (`u64::MAX` when unreadable: counted as newer).
    pub writer: u64,
    /// A claim (`w/<epoch>`).
    pub claim: bool,
}

impl Fence {
    /// After the claim of `epoch` was acknowledged at `claim_offset`.
    pub fn new(epoch: u64, claim_offset: i64) -> Fence {
        Fence {
            epoch: AtomicU64::new(epoch),
            claim_offset: AtomicI64::new(claim_offset),
            newest: AtomicU64::new(epoch),
            seen: Mutex::new(Seen { checked: claim_offset, acked: BTreeSet::new() }),
            overtaken: AtomicBool::new(false),
            stale_found: AtomicBool::new(false),
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Takes the epoch after the newest one seen, for a claim made again
    /// by a process without a lease once it is alone in its group
    /// (`Changelog::snapshot`). Never with fail-over: a lost lease is
    /// final.
    ///
    /// `None` when no epoch is left (an unreadable one counted as the
    /// largest). The claim's write then checks, as every write does,
    /// that no other process claimed first ([`check`](Self::check)).
    pub fn reclaim(&self) -> Option<u64> {
        let epoch = self.epoch().max(self.newest.load(Ordering::SeqCst)).checked_add(1)?;
        self.epoch.store(epoch, Ordering::SeqCst);
        self.newest.store(epoch, Ordering::SeqCst);
        // Until the claim is acknowledged: no claim of this epoch before it
        // is anyone's but another process's.
        self.claim_offset.store(i64::MAX, Ordering::SeqCst);
        self.overtaken.store(false, Ordering::SeqCst);
        Some(epoch)
    }

    /// The claim made by [`reclaim`](Self::reclaim) was acknowledged here.
    pub fn claimed_at(&self, offset: i64) {
        self.claim_offset.store(offset, Ordering::SeqCst);
    }

    /// True after a gap held an older writer's records, until
    /// [`snapshot_written`](Self::snapshot_written).
    pub fn stale_found(&self) -> bool {
        self.stale_found.load(Ordering::SeqCst)
    }

    /// A snapshot came after every stale record found so far.
    pub fn snapshot_written(&self) {
        self.stale_found.store(false, Ordering::SeqCst);
    }

    /// True once a newer epoch (or an earlier claim of this one) was
    /// found, until [`reclaim`](Self::reclaim).
    pub fn overtaken(&self) -> bool {
        self.overtaken.load(Ordering::SeqCst)
    }

    /// Another partition of the same state was overtaken: a newer process
    /// writes that state, so this partition is not this process's either.
    pub fn overtake(&self) {
        self.overtaken.store(true, Ordering::SeqCst);
    }

    /// One of this process's records was acknowledged at `offset`.
    pub fn acked(&self, offset: i64) {
        if let Ok(mut seen) = self.seen.lock() {
            if offset > seen.checked {
                seen.acked.insert(offset);
            }
        }
    }

    /// Checks every offset up to `through` (the last of a write just
    /// acknowledged): returns false when a newer epoch wrote there, or
    /// another process claimed this epoch before this one's claim.
    /// `read(from, through)` reads the records of a gap from the log.
    pub fn check(
        &self,
        through: i64,
        read: impl FnOnce(i64, i64) -> Result<Vec<Written>, Error>,
    ) -> Result<bool, Error> {
        if self.overtaken() {
            return Ok(false);
        }
        let gap = {
            let mut seen = self.seen.lock().map_err(|_| poisoned())?;
            let Seen { checked, acked } = &mut *seen;
            while acked.first() == Some(&(*checked + 1)) {
                acked.pop_first();
                *checked += 1;
            }
            if *checked >= through {
                return Ok(true);
            }
            (*checked + 1, through)
        };
        let written = read(gap.0, gap.1)?;
        let epoch = self.epoch();
        let claim_offset = self.claim_offset.load(Ordering::SeqCst);
        if let Some(newest) = written.iter().map(|w| w.writer).max() {
            self.newest.fetch_max(newest, Ordering::SeqCst);
        }
        // A newer epoch, or this epoch claimed by another process first.
        let overtaking =
            written.iter().find(|w| w.writer > epoch || (w.claim && w.writer == epoch && w.offset < claim_offset));
        if let Some(newer) = overtaking {
            self.overtaken.store(true, Ordering::SeqCst);
            tracing::error!(
                epoch,
                newer = newer.writer,
                offset = newer.offset,
                "changelog: another process claimed the changelog after this one; this one writes nothing more to it"
            );
            return Ok(false);
        }
        let stale = written.iter().filter(|w| w.writer < epoch).count();
        if stale > 0 {
            self.stale_found.store(true, Ordering::SeqCst);
            tracing::warn!(
                epoch,
                stale,
                from = gap.0,
                through = gap.1,
                "changelog: records of an older process after this one's claim (it had not found out yet); readers \
                 skip them"
            );
        }
        let mut seen = self.seen.lock().map_err(|_| poisoned())?;
        seen.checked = seen.checked.max(gap.1);
        let checked = seen.checked;
        seen.acked.retain(|offset| *offset > checked);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn its_own_records_in_a_row_need_no_read_and_a_gap_is_read_once() {
        let fence = Fence::new(2, 10);
        let reads = Cell::new(0);
        let w = |offset, writer| Written { offset, writer, claim: false };
        let never = |_, _| -> Result<Vec<Written>, Error> {
            reads.set(reads.get() + 1);
            Ok(vec![])
        };
        for offset in 11..=13 {
            fence.acked(offset);
        }
        assert!(fence.check(13, never).unwrap());
        assert_eq!(reads.get(), 0, "no gap, no read");

        // 14 is a delivery mark not yet counted, 15 an older process's
        // record: both fine, read once.
        fence.acked(16);
        let gap = Cell::new((0, 0));
        let read = |from, through| -> Result<Vec<Written>, Error> {
            gap.set((from, through));
            Ok(vec![w(14, 2), w(15, 1), w(16, 2)])
        };
        assert!(fence.check(16, read).unwrap());
        assert_eq!(gap.get(), (14, 16));
        assert!(fence.stale_found(), "an older writer's record: a snapshot is wanted");
        fence.snapshot_written();
        assert!(!fence.stale_found());
        fence.acked(14);
        fence.acked(17);
        assert!(fence.check(17, never).unwrap(), "a late acknowledgement below the checked offset is forgotten");
        assert_eq!(reads.get(), 0);
    }

    #[test]
    fn a_newer_epoch_in_a_gap_overtakes_it_for_good() {
        let w = |offset, writer| Written { offset, writer, claim: false };
        let claim = |offset, writer| Written { offset, writer, claim: true };
        let fence = Fence::new(1, 5);
        fence.acked(8);
        let read = |_, _| -> Result<Vec<Written>, Error> { Ok(vec![claim(6, 2), w(7, 2), w(8, 1)]) };
        assert!(!fence.check(8, read).unwrap());
        assert!(fence.overtaken());
        fence.acked(9);
        assert!(!fence.check(9, |_, _| Ok(vec![])).unwrap(), "still overtaken");

        // Alone again (no lease): it claims the epoch after the newest
        // seen, and the newer writer's records before that are older now.
        assert_eq!(fence.reclaim(), Some(3));
        fence.acked(12);
        fence.claimed_at(12);
        assert!(fence.check(12, |_, _| Ok(vec![w(10, 2), w(11, 2), claim(12, 3)])).unwrap());

        // Another process claimed epoch 4 first: this one's claim of 4,
        // after it, does not count, and the other one holds the epoch.
        assert_eq!(fence.reclaim(), Some(4));
        fence.acked(15);
        fence.claimed_at(15);
        assert!(!fence.check(15, |_, _| Ok(vec![claim(13, 4), w(14, 4), claim(15, 4)])).unwrap());

        // An unreadable epoch counts as the largest: none is left after it.
        let fence = Fence::new(1, 0);
        fence.acked(2);
        assert!(!fence.check(2, |_, _| Ok(vec![w(1, u64::MAX), w(2, 1)])).unwrap());
        assert_eq!(fence.reclaim(), None);
    }
}
