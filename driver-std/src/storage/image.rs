//! The state a storage holds, replayed record by record: hard state, the index the stored
//! snapshot covers, and the log after it. Both storages rebuild it the same way, so their
//! durability rules cannot drift apart.

use skiff_core::{Entry, HardState, Index, Term};

/// The stored Raft state besides the snapshot's data.
///
/// Invariant: `entries` are contiguous; when non-empty, the first is at or below
/// `snapshot_index + 1` (entries at or below `snapshot_index` are dropped as records arrive).
#[derive(Clone, Debug, Default)]
pub struct LogImage {
    pub hard_state: HardState,
    pub snapshot_index: Index,
    pub entries: Vec<Entry>,
    /// The term of the entry at `snapshot_index` as the records last wrote it (`None` if
    /// never written or cut since): recovery's install rule keeps the log after a snapshot
    /// only if the log holds the snapshot's own last entry.
    pub at_snapshot: Option<Term>,
}

impl LogImage {
    fn first_index(&self) -> Option<Index> {
        self.entries.first().map(|e| e.index)
    }

    /// The index of the last stored entry (or of the snapshot when the log is empty).
    pub fn last_index(&self) -> Index {
        self.entries.last().map_or(self.snapshot_index, |e| e.index)
    }

    /// Applies one record as `skiff_core::Persist` defines it: snapshot first (dropping the
    /// entries it covers), then the truncation, then the new entries, then the hard state.
    /// Returns a description of the inconsistency if the record does not fit the log.
    pub fn apply(
        &mut self,
        hard_state: Option<HardState>,
        snapshot_index: Option<Index>,
        truncate_from: Option<Index>,
        entries: &[Entry],
    ) -> Result<(), String> {
        if let Some(s) = snapshot_index {
            if s > self.snapshot_index {
                self.snapshot_index = s;
                self.at_snapshot = self.entries.iter().find(|e| e.index == s).map(|e| e.term);
                match self.first_index() {
                    Some(first) if first <= s => {
                        let drop = ((s.0 - first.0 + 1) as usize).min(self.entries.len());
                        self.entries.drain(..drop);
                    }
                    _ => {}
                }
            }
        }
        if let Some(t) = truncate_from {
            self.truncate_from(t);
        }
        if let Some(first) = entries.first() {
            self.truncate_from(first.index);
            let expected = self.last_index().next();
            let fits = if self.entries.is_empty() { first.index <= expected } else { first.index == expected };
            if !fits {
                return Err(format!("entries start at {} but the log ends at {}", first.index.0, self.last_index().0));
            }
            // Entries the snapshot already covers are not kept.
            let skip = entries.iter().take_while(|e| e.index <= self.snapshot_index).count();
            if let Some(e) = entries[..skip].last().filter(|e| e.index == self.snapshot_index) {
                self.at_snapshot = Some(e.term);
            }
            self.entries.extend(entries[skip..].iter().cloned());
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs;
        }
        Ok(())
    }

    /// Drops stored entries at `index` and after.
    fn truncate_from(&mut self, index: Index) {
        if index <= self.snapshot_index {
            self.at_snapshot = None;
        }
        if let Some(first) = self.first_index() {
            let keep = index.0.saturating_sub(first.0) as usize;
            self.entries.truncate(keep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use skiff_core::{EntryKind, Term};

    fn e(i: u64, t: u64) -> Entry {
        Entry { index: Index(i), term: Term(t), kind: EntryKind::Command, data: Bytes::new() }
    }

    fn indexes(img: &LogImage) -> Vec<(u64, u64)> {
        img.entries.iter().map(|e| (e.index.0, e.term.0)).collect()
    }

    #[test]
    fn records_replay_like_the_persist_contract() {
        let mut img = LogImage::default();
        img.apply(None, None, None, &[e(1, 1), e(2, 1), e(3, 1)]).unwrap();
        img.apply(None, None, None, &[e(3, 2), e(4, 2)]).unwrap();
        assert_eq!(indexes(&img), vec![(1, 1), (2, 1), (3, 2), (4, 2)]);
        img.apply(None, None, Some(Index(4)), &[]).unwrap();
        assert_eq!(img.last_index(), Index(3));
        img.apply(None, Some(Index(2)), None, &[]).unwrap();
        assert_eq!(indexes(&img), vec![(3, 2)]);
        // A snapshot past the log (an install that discarded it) leaves it empty, and the
        // log goes on after the snapshot.
        img.apply(None, Some(Index(9)), Some(Index(10)), &[]).unwrap();
        assert!(img.entries.is_empty());
        img.apply(None, None, None, &[e(10, 3)]).unwrap();
        assert_eq!(indexes(&img), vec![(10, 3)]);
        assert!(img.apply(None, None, None, &[e(12, 3)]).is_err(), "a gap is an inconsistency");
    }
}
