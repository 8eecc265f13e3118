//! The in-memory Raft log with its snapshot, commit, apply and durability marks.
//!
//! Invariants (checked by `assert_invariants`):
//! - entries are contiguous after the snapshot: `entries[k].index == snapshot_index + 1 + k`;
//! - terms never decrease along the log, and none is below the snapshot's term;
//! - `snapshot_index <= commit`, `applied <= commit` and `applied <= durable <= last_index`;
//! - nothing at or below `commit` is ever truncated; commit and applied never move back;
//! - `configs` holds exactly the configurations of the `Config` entries after the snapshot,
//!   and at its base the snapshot's (see [`ConfigHistory`]).

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::configs::ConfigHistory;
use crate::membership::Membership;
use crate::types::{Entry, EntryKind, Index, Snapshot, SnapshotMeta, Term};

/// Most entries one `Output::Apply` carries (the rest follow in the next steps).
pub const MAX_APPLY_ENTRIES: usize = 16 * 1024;
/// Most bytes of entry data one `Output::Apply` carries, unless its first entry alone is
/// larger.
pub const MAX_APPLY_BYTES: usize = 8 << 20;

/// The log of one node, in memory. Storage holds the durable copy; `durable` says how much of
/// this log is known to match it.
#[derive(Clone, Debug)]
pub struct RaftLog {
    /// The snapshot that replaces every entry up to its index, if any. Its `data` is empty
    /// while `released`.
    snapshot: Option<Snapshot>,
    /// The snapshot's bytes were dropped: storage holds them (`snapshots_in_storage`).
    released: bool,
    entries: Vec<Entry>,
    /// Highest index known committed (may exceed `durable` on a follower).
    commit: Index,
    /// Highest index handed to the service (as entries or as a snapshot).
    applied: Index,
    /// Highest index whose entry, as now in memory, is on stable storage.
    durable: Index,
    /// Persists issued but not acknowledged: `(seq, last index of the log when issued)`.
    /// Invariant: seqs increase; each `last` is clamped below any later truncation.
    unacked: VecDeque<(u64, Index)>,
    /// Entries compacted away, no longer part of the log, freed a bounded number per tick
    /// ([`RaftLog::free_garbage`]): dropping a million entries at once would hold the node
    /// up for a hundred milliseconds.
    garbage: Garbage,
    /// The configurations of the snapshot and of the `Config` entries.
    configs: ConfigHistory,
    /// `PlantedBug::NoConfigRollback`.
    pub(crate) no_rollback: bool,
}

/// The configuration a `Config` entry holds, if it holds a valid one with at least one voter.
pub(crate) fn decode_config(entry: &Entry) -> Option<Membership> {
    if entry.kind != EntryKind::Config {
        return None;
    }
    postcard::from_bytes::<Membership>(&entry.data).ok().filter(|m| !m.is_empty())
}

/// Compacted entries waiting to be freed, and an empty buffer kept from the last batch
/// freed: the next compaction moves the log's remaining entries into it, so the log does not
/// grow its buffer again from nothing (`Debug` shows how many wait, not each one).
#[derive(Clone, Default)]
struct Garbage {
    waiting: Vec<Entry>,
    spare: Vec<Entry>,
}

impl Garbage {
    /// Frees the last `n` entries waiting; keeps the buffer once empty.
    fn free(&mut self, n: usize) {
        let keep = self.waiting.len().saturating_sub(n);
        self.waiting.truncate(keep);
        if keep == 0 && self.waiting.capacity() > self.spare.capacity() {
            self.spare = core::mem::take(&mut self.waiting);
        }
    }
}

impl core::fmt::Debug for Garbage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} compacted entries", self.waiting.len())
    }
}

impl RaftLog {
    /// A log restored from storage: an optional snapshot and the entries after it, all
    /// durable. The service restores its own state from the snapshot, so `applied` starts at
    /// the snapshot's index. The configuration is the snapshot's, or `bootstrap` without
    /// one, followed by those of the `Config` entries. Returns the index of a `Config` entry
    /// that holds no valid configuration, if one does.
    pub(crate) fn restored(
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
        commit: Index,
        bootstrap: &Membership,
    ) -> Result<RaftLog, Index> {
        let base = snapshot.as_ref().map_or(Index(0), |s| s.meta.index);
        let last = entries.last().map_or(base, |e| e.index);
        let mut configs = ConfigHistory::new(match &snapshot {
            Some(s) => (s.meta.membership_index, s.meta.membership.clone()),
            None => (Index(0), bootstrap.clone()),
        });
        for e in entries.iter().filter(|e| e.kind == EntryKind::Config) {
            configs.push(e.index, decode_config(e).ok_or(e.index)?);
        }
        Ok(RaftLog {
            snapshot,
            released: false,
            entries,
            commit: commit.min(last).max(base),
            applied: base,
            durable: last,
            unacked: VecDeque::new(),
            garbage: Garbage::default(),
            configs,
            no_rollback: false,
        })
    }

    /// The configuration this node acts on: the latest in its log, committed or not.
    pub fn membership(&self) -> &Membership {
        self.configs.latest().1
    }
    /// The index of the entry that set [`RaftLog::membership`] (0: the bootstrap one).
    pub fn membership_index(&self) -> Index {
        self.configs.latest().0
    }
    /// The configuration in force at `index` and the index of the entry that set it.
    pub(crate) fn membership_at(&self, index: Index) -> (Index, &Membership) {
        self.configs.at(index)
    }
    /// Changes whenever [`RaftLog::membership`] may have changed.
    pub(crate) fn config_version(&self) -> u64 {
        self.configs.version()
    }

    /// The index the snapshot covers (0 without one).
    pub fn snapshot_index(&self) -> Index {
        self.snapshot.as_ref().map_or(Index(0), |s| s.meta.index)
    }
    /// The term of the entry at `snapshot_index` (0 without one).
    pub fn snapshot_term(&self) -> Term {
        self.snapshot.as_ref().map_or(Term(0), |s| s.meta.term)
    }
    /// The snapshot with its bytes, unless they were released to storage (then `None`:
    /// [`RaftLog::snapshot_meta`] still describes it).
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref().filter(|_| !self.released)
    }
    /// What the snapshot covers, whether or not its bytes are held.
    pub fn snapshot_meta(&self) -> Option<&SnapshotMeta> {
        self.snapshot.as_ref().map(|s| &s.meta)
    }
    /// Drops the snapshot's bytes (storage holds them).
    pub(crate) fn release_snapshot(&mut self) {
        if let Some(s) = &mut self.snapshot {
            s.data = bytes::Bytes::new();
            self.released = true;
        }
    }
    /// Takes back the bytes of the released snapshot; `false` (and nothing changes) when
    /// `loaded` is not that snapshot or nothing was released.
    pub(crate) fn reload_snapshot(&mut self, loaded: Snapshot) -> bool {
        match &mut self.snapshot {
            Some(s) if self.released && s.meta == loaded.meta => {
                s.data = loaded.data;
                self.released = false;
                true
            }
            _ => false,
        }
    }
    pub fn last_index(&self) -> Index {
        self.entries.last().map_or(self.snapshot_index(), |e| e.index)
    }
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot_term(), |e| e.term)
    }
    pub fn commit(&self) -> Index {
        self.commit
    }
    pub fn applied(&self) -> Index {
        self.applied
    }
    pub fn durable(&self) -> Index {
        self.durable
    }
    /// Entries held in memory (after the snapshot).
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn pos(&self, index: Index) -> Option<usize> {
        let base = self.snapshot_index();
        if index <= base || index > self.last_index() {
            None
        } else {
            Some((index.0 - base.0 - 1) as usize)
        }
    }

    /// The entry at `index`, if held (compacted entries are not).
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        self.pos(index).map(|p| &self.entries[p])
    }

    /// The term at `index`: known for index 0, the snapshot's index and held entries; `None`
    /// beyond the log or inside the snapshot.
    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index.0 == 0 {
            return Some(Term(0));
        }
        if index == self.snapshot_index() {
            return Some(self.snapshot_term());
        }
        self.entry(index).map(|e| e.term)
    }

    /// Whether this log holds an entry at `index` with `term` (index 0 always matches).
    pub fn matches(&self, index: Index, term: Term) -> bool {
        self.term_at(index) == Some(term)
    }

    /// Raft §5.4.1: a candidate's log is at least as up to date as ours.
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// The entries in `[from, to]`, inclusive; empty if `from > to`. `from` must not lie in
    /// the snapshot.
    pub fn range(&self, from: Index, to: Index) -> &[Entry] {
        let to = to.min(self.last_index());
        if from > to {
            return &[];
        }
        let (Some(a), Some(b)) = (self.pos(from), self.pos(to)) else {
            panic!("range {}..={} reaches into the snapshot at {}", from.0, to.0, self.snapshot_index().0);
        };
        &self.entries[a..=b]
    }

    /// Up to `max_count` entries from `from`, stopping before `max_bytes` would be exceeded
    /// (one entry is always included when any exists).
    pub fn batch_from(&self, from: Index, max_count: usize, max_bytes: u64) -> (Vec<Entry>, u64) {
        let avail = self.range(from, self.last_index());
        let mut bytes = 0;
        let mut n = 0;
        for e in avail.iter().take(max_count) {
            let s = e.size();
            if n > 0 && bytes + s > max_bytes {
                break;
            }
            bytes += s;
            n += 1;
        }
        (avail[..n].to_vec(), bytes)
    }

    /// First index holding an entry of `term`, or the first index of the next higher term
    /// present, if `term` is absent (terms are sorted, so this is a binary search).
    pub fn first_index_of_term(&self, term: Term) -> Index {
        let p = self.entries.partition_point(|e| e.term < term);
        Index(self.snapshot_index().0 + p as u64 + 1)
    }

    /// Last index holding an entry of `term`, if any.
    pub fn last_index_of_term(&self, term: Term) -> Option<Index> {
        let p = self.entries.partition_point(|e| e.term <= term);
        if p == 0 || self.entries[p - 1].term != term {
            None
        } else {
            Some(self.entries[p - 1].index)
        }
    }

    /// Append an entry that extends the log exactly. A `Config` entry must hold a valid
    /// configuration (the leader built it, or the follower checked the message it came in).
    pub(crate) fn append(&mut self, entry: Entry) {
        assert_eq!(entry.index, self.last_index().next(), "append out of place");
        assert!(entry.term >= self.last_term(), "append with a lower term");
        if entry.kind == EntryKind::Config {
            let m = decode_config(&entry).expect("a Config entry holds a valid configuration");
            self.configs.push(entry.index, m);
        }
        self.entries.push(entry);
        // As many compacted entries freed as appended: the backlog stays bounded by what one
        // compaction leaves, however rarely the driver ticks.
        self.garbage.free(1);
    }

    /// Follower path: merge `entries` (which follow an entry already checked to match, at or
    /// after the snapshot). Entries already held with the same term are skipped; at the first
    /// conflict, the suffix from there is truncated. Returns `(truncated_from,
    /// first_appended)`: what storage must do.
    ///
    /// A conflict at or below the commit index (which Raft rules out from a real leader) is
    /// refused with `Err(index of the conflict)`, changing nothing.
    pub(crate) fn merge(&mut self, entries: Vec<Entry>) -> Result<(Option<Index>, Option<Index>), Index> {
        let k = entries.iter().take_while(|e| self.matches(e.index, e.term)).count();
        let Some(first) = entries.get(k).map(|e| e.index) else {
            return Ok((None, None));
        };
        let mut truncated = None;
        if first <= self.last_index() {
            if first <= self.commit {
                return Err(first);
            }
            self.truncate_from(first);
            truncated = Some(first);
        }
        for e in entries.into_iter().skip(k) {
            self.append(e);
        }
        Ok((truncated, Some(first)))
    }

    fn truncate_from(&mut self, from: Index) {
        let keep = from.prev();
        if let Some(p) = self.pos(from) {
            self.entries.truncate(p);
        }
        if !self.no_rollback {
            self.configs.truncate_from(from);
        }
        self.durable = self.durable.min(keep);
        for (_, last) in self.unacked.iter_mut() {
            *last = (*last).min(keep);
        }
    }

    /// The service's snapshot of its state at `index` (which it has applied): drops every
    /// entry up to `index`. The caller checked `snapshot_index < index <= applied`.
    pub(crate) fn compact(&mut self, meta: SnapshotMeta, data: bytes::Bytes) {
        let index = meta.index;
        assert!(index > self.snapshot_index() && index <= self.applied, "compaction at {} out of range", index.0);
        debug_assert_eq!(self.configs.at(index), (meta.membership_index, &meta.membership), "snapshot configuration");
        let drop = (index.0 - self.snapshot_index().0) as usize;
        self.discard_front(drop);
        self.configs.compact_to(index);
        self.snapshot = Some(Snapshot { meta, data });
        self.released = false;
    }

    /// Takes the first `n` entries out of the log into `garbage`, copying only the entries
    /// that stay (into the spare buffer, when nothing else waits).
    fn discard_front(&mut self, n: usize) {
        let n = n.min(self.entries.len());
        if self.garbage.waiting.is_empty() {
            let mut rest = core::mem::take(&mut self.garbage.spare);
            // A spare from a spike of the log's length is not kept past twice the length the
            // log reached this time: memory follows the log's recent size.
            if rest.capacity() > 2 * self.entries.len().max(4096) {
                rest = Vec::new();
            }
            rest.extend(self.entries.drain(n..));
            self.garbage.waiting = core::mem::replace(&mut self.entries, rest);
        } else {
            self.garbage.waiting.extend(self.entries.drain(..n));
        }
    }

    /// Frees `n` compacted entries, or a sixteenth of those waiting if that is more: a
    /// bounded cost per call, and a backlog that shrinks geometrically however fast entries
    /// are compacted.
    pub(crate) fn free_garbage(&mut self, n: usize) {
        let waiting = self.garbage.waiting.len();
        self.garbage.free(n.max(waiting / 16));
    }

    /// Capacity held by the log's entries and its compacted-entry buffers.
    #[cfg(test)]
    pub(crate) fn buffers_capacity(&self) -> usize {
        self.entries.capacity() + self.garbage.waiting.capacity() + self.garbage.spare.capacity()
    }

    #[cfg(test)]
    pub(crate) fn garbage_len(&self) -> usize {
        self.garbage.waiting.len()
    }

    /// Whether compacted entries wait to be freed.
    pub(crate) fn has_garbage(&self) -> bool {
        !self.garbage.waiting.is_empty()
    }

    /// A snapshot received from the leader, not yet covered by our commit index. When we
    /// hold its last entry (same index and term) the suffix after it is kept (Figure 13,
    /// rule 6); otherwise the whole log is discarded. Returns whether the log was discarded.
    /// `applied` moves only when the service installs it (see `Node`).
    pub(crate) fn install(&mut self, snapshot: Snapshot) -> bool {
        let meta = &snapshot.meta;
        assert!(meta.index > self.commit, "install at {} below commit {}", meta.index.0, self.commit.0);
        let keep = self.matches(meta.index, meta.term);
        if keep {
            let drop = (meta.index.0 - self.snapshot_index().0) as usize;
            self.discard_front(drop);
        } else {
            // Entries up to our commit agree with the snapshot; nothing after it survives.
            let old_commit = self.commit;
            self.discard_front(self.entries.len());
            self.durable = self.durable.min(old_commit);
            for (_, last) in self.unacked.iter_mut() {
                *last = (*last).min(old_commit);
            }
        }
        // The snapshot's configuration is the one in force at its index, whatever our log
        // said there; configurations of a kept suffix stay.
        let base = (meta.membership_index, meta.membership.clone());
        if keep {
            self.configs.rebase(meta.index, base);
        } else {
            self.configs.reset(base);
        }
        self.commit = meta.index;
        self.snapshot = Some(snapshot);
        self.released = false;
        !keep
    }

    /// The service replaced its state with the snapshot.
    pub(crate) fn snapshot_applied(&mut self) {
        self.applied = self.applied.max(self.snapshot_index());
    }

    /// Records that a persist `seq` was issued covering the log as it is now.
    pub(crate) fn note_persist(&mut self, seq: u64) {
        let last = self.last_index();
        self.unacked.push_back((seq, last));
    }

    /// Storage acknowledged every persist up to `seq`. Returns whether `durable` moved.
    pub(crate) fn persisted(&mut self, up_to: u64) -> bool {
        let before = self.durable;
        while let Some(&(seq, last)) = self.unacked.front() {
            if seq > up_to {
                break;
            }
            self.durable = self.durable.max(last);
            self.unacked.pop_front();
        }
        self.durable != before
    }

    /// Raises the commit index (never lowers it). Returns whether it moved.
    pub(crate) fn commit_to(&mut self, index: Index) -> bool {
        let index = index.min(self.last_index());
        if index > self.commit {
            self.commit = index;
            true
        } else {
            false
        }
    }

    /// Takes the entries ready to apply: committed and durable, not yet applied, at most
    /// [`MAX_APPLY_ENTRIES`] or (past the first) [`MAX_APPLY_BYTES`] of them, so that a
    /// restart with a long log, or a follower catching up, spreads its applying over steps
    /// instead of holding its driver up in one. Nothing while a received snapshot waits to
    /// be installed by the service.
    pub(crate) fn take_applicable(&mut self) -> Option<Vec<Entry>> {
        let to = self.commit.min(self.durable);
        if to <= self.applied || self.applied < self.snapshot_index() {
            return None;
        }
        let ready = self.range(self.applied.next(), to);
        let mut bytes = 0;
        let n = ready
            .iter()
            .take(MAX_APPLY_ENTRIES)
            .take_while(|e| {
                bytes += e.data.len();
                bytes <= MAX_APPLY_BYTES
            })
            .count()
            .max(1);
        let out = ready[..n].to_vec();
        self.applied = out.last().expect("one at least").index;
        Some(out)
    }

    /// Hashes what decides this log's future behaviour: the snapshot, the entries, the
    /// commit, applied and durable marks, the configuration history (which a planted bug may
    /// put out of step with the entries), and the unacknowledged persists with their
    /// sequence numbers taken relative to `acked_seq` (so two logs that differ only in how
    /// many persists they ever issued hash alike). Compacted garbage is left out.
    #[cfg(feature = "explore")]
    pub(crate) fn fingerprint<H: core::hash::Hasher>(&self, h: &mut H, acked_seq: u64) {
        use core::hash::Hash;
        (&self.snapshot, self.released).hash(h);
        self.entries.hash(h);
        (self.commit, self.applied, self.durable).hash(h);
        self.configs.base().hash(h);
        self.configs.later().hash(h);
        for (seq, last) in &self.unacked {
            (seq.wrapping_sub(acked_seq), last).hash(h);
        }
    }

    /// Checks the invariants in the module doc; panics with context when one is broken.
    #[cfg(test)]
    pub(crate) fn assert_invariants(&self) {
        let base = self.snapshot_index();
        for (k, e) in self.entries.iter().enumerate() {
            assert_eq!(e.index.0, base.0 + k as u64 + 1, "log not contiguous");
            let prev = if k == 0 { self.snapshot_term() } else { self.entries[k - 1].term };
            assert!(e.term >= prev, "terms decrease at {}", e.index.0);
        }
        assert!(base <= self.commit, "snapshot above commit");
        assert!(self.applied <= self.commit, "applied above commit");
        assert!(self.applied <= self.durable.max(base), "applied above durable");
        assert!(self.durable <= self.last_index(), "durable above last");
        let in_log: Vec<(Index, Membership)> = self
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::Config)
            .map(|e| (e.index, decode_config(e).expect("valid configuration")))
            .collect();
        assert_eq!(self.configs.later(), &in_log[..], "configuration history out of step with the log");
        if let Some(s) = &self.snapshot {
            assert_eq!(self.configs.base(), (s.meta.membership_index, &s.meta.membership), "base is the snapshot's");
        }
    }
}
