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
//! from a newer epoch means this process was overtaken, and the write
//! that found it lets no output of its batch leave the process. So a
//! process that lost the changelog writes at most one group of records
//! after the newer claim (one journal entry, or one step of a snapshot),
//! and readers skip those.
//!
//! What it must not do: count a gap as this process's own without
//! reading it. The delivery marks come from another producer of the same
//! process and may be acknowledged after a later journal entry; the
//! gap's read finds them with this process's epoch.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::{Domain, Error, Retry};

fn poisoned() -> Error {
    Error::new(Domain::Process, Retry::Never, "the changelog fence's lock was poisoned (a thread panicked)")
}

/// This process's epoch and what it has seen of the partition since its
/// claim.
pub struct Fence {
    epoch: AtomicU64,
    /// The newest epoch found in a gap.
    newest: AtomicU64,
    seen: Mutex<Seen>,
    overtaken: AtomicBool,
}

struct Seen {
    /// Every offset up to this one is known to count for this epoch.
    checked: i64,
    /// Offsets of this process's records acknowledged beyond `checked`.
    acked: BTreeSet<i64>,
}

/// A record found in a gap: its offset and its writer's epoch.
pub type Written = (i64, u64);

impl Fence {
    /// After the claim of `epoch` was acknowledged at `claim_offset`.
    pub fn new(epoch: u64, claim_offset: i64) -> Fence {
        Fence {
            epoch: AtomicU64::new(epoch),
            newest: AtomicU64::new(epoch),
            seen: Mutex::new(Seen { checked: claim_offset, acked: BTreeSet::new() }),
            overtaken: AtomicBool::new(false),
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Takes the epoch after the newest one seen, for a claim made again
    /// by a process without a lease once it is alone in its group
    /// (`Changelog::snapshot`). Never with fail-over: a lost lease is
    /// final.
    pub fn reclaim(&self) -> u64 {
        let epoch = self.epoch().max(self.newest.load(Ordering::SeqCst)) + 1;
        self.epoch.store(epoch, Ordering::SeqCst);
        self.newest.store(epoch, Ordering::SeqCst);
        self.overtaken.store(false, Ordering::SeqCst);
        epoch
    }

    /// True once a newer epoch was found: for good.
    pub fn overtaken(&self) -> bool {
        self.overtaken.load(Ordering::SeqCst)
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
    /// acknowledged): returns false when a newer epoch wrote there.
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
        if let Some(&(offset, newer)) = written.iter().filter(|(_, writer)| *writer > epoch).max_by_key(|(_, w)| *w) {
            self.newest.fetch_max(newer, Ordering::SeqCst);
            self.overtaken.store(true, Ordering::SeqCst);
            tracing::error!(
                epoch,
                newer,
                offset,
                "changelog: a newer process claimed the changelog; this one writes nothing more and lets no output \
                 of the batch out"
            );
            return Ok(false);
        }
        let stale = written.iter().filter(|(_, writer)| *writer < epoch).count();
        if stale > 0 {
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
            Ok(vec![(14, 2), (15, 1), (16, 2)])
        };
        assert!(fence.check(16, read).unwrap());
        assert_eq!(gap.get(), (14, 16));
        fence.acked(14);
        fence.acked(17);
        assert!(fence.check(17, never).unwrap(), "a late acknowledgement below the checked offset is forgotten");
        assert_eq!(reads.get(), 0);
    }

    #[test]
    fn a_newer_epoch_in_a_gap_overtakes_it_for_good() {
        let fence = Fence::new(1, 5);
        fence.acked(8);
        let read = |_, _| -> Result<Vec<Written>, Error> { Ok(vec![(6, 2), (7, 2), (8, 1)]) };
        assert!(!fence.check(8, read).unwrap());
        assert!(fence.overtaken());
        fence.acked(9);
        assert!(!fence.check(9, |_, _| Ok(vec![])).unwrap(), "still overtaken");

        // Alone again (no lease): it claims the epoch after the newest
        // seen, and the newer writer's records before that are older now.
        assert_eq!(fence.reclaim(), 3);
        fence.acked(12);
        assert!(fence.check(12, |_, _| Ok(vec![(10, 2), (11, 2), (12, 3)])).unwrap());
    }
}
