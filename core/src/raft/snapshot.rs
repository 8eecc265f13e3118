//! Snapshots (Raft §7, Figure 13): the service's compaction of the log, the leader streaming
//! its snapshot in chunks to a follower that needs compacted entries, and the follower
//! assembling and installing it.
//!
//! Memory: the leader holds one snapshot; every chunk is a zero-copy slice of its bytes, so
//! neither a chunk nor a follower costs a copy. A follower holds one partial transfer; a new
//! transfer (offset 0) replaces it.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use bytes::Bytes;

use super::progress::Mode;
use super::Node;
use super::MAX_INDEX;
use crate::io::{Output, Role};
use crate::message::{Message, MessageBody};
use crate::planted::PlantedBug;
use crate::types::{Index, NodeId, Snapshot, SnapshotMeta, Term};

/// A snapshot being received from one leader in one term. Chunks that arrive ahead of a gap
/// (reordered by the network) wait in `ahead`, bounded by the chunk window of our own
/// configuration, so a reordering costs no resend; anything beyond is dropped and resent.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "explore", derive(Hash))]
pub(super) struct Incoming {
    meta: SnapshotMeta,
    /// Sender and term: two leaders' snapshots at one index hold the same state but not
    /// necessarily the same bytes, so their chunks never mix.
    from: NodeId,
    term: Term,
    /// Bytes `0..buf.len()` of the snapshot.
    buf: Vec<u8>,
    /// Chunks past a gap, by offset, with their done flag.
    ahead: BTreeMap<u64, (Bytes, bool)>,
    ahead_bytes: u64,
    /// The snapshot's length, once its final chunk was seen.
    total: Option<u64>,
}

impl Incoming {
    fn new(meta: SnapshotMeta, from: NodeId, term: Term) -> Incoming {
        Incoming { meta, from, term, buf: Vec::new(), ahead: BTreeMap::new(), ahead_bytes: 0, total: None }
    }

    fn have(&self) -> u64 {
        self.buf.len() as u64
    }

    /// Takes in one chunk (and whatever it unblocks), keeping at most `max_ahead` bytes
    /// waiting past a gap.
    fn accept(&mut self, offset: u64, data: Bytes, done: bool, max_ahead: u64) {
        let end = offset + data.len() as u64;
        if done {
            self.total = Some(end);
        }
        if offset > self.have() {
            if self.ahead_bytes + data.len() as u64 <= max_ahead && !self.ahead.contains_key(&offset) {
                self.ahead_bytes += data.len() as u64;
                self.ahead.insert(offset, (data, done));
            }
            return;
        }
        self.extend(offset, &data);
        // Chunks the gap held back, in order; drop those now covered.
        while let Some((&next, _)) = self.ahead.first_key_value() {
            if next > self.have() {
                break;
            }
            let (chunk, _) = self.ahead.remove(&next).expect("first key exists");
            self.ahead_bytes -= chunk.len() as u64;
            self.extend(next, &chunk);
        }
    }

    /// Appends the part of the chunk at `offset` (at or before our end) that is new.
    fn extend(&mut self, offset: u64, data: &[u8]) {
        let skip = (self.have() - offset) as usize;
        if skip < data.len() {
            self.buf.extend_from_slice(&data[skip..]);
        }
    }

    fn complete(&self) -> bool {
        self.total == Some(self.have())
    }
}

impl Node {
    /// The service snapshotted its state at `index`.
    pub(super) fn compact(&mut self, index: Index, data: Bytes) {
        if index <= self.log.snapshot_index() || index > self.log.applied() {
            self.ignored.bad_snapshot += 1;
            return;
        }
        let term = self.log.term_at(index).expect("applied entries above the snapshot are held");
        let (membership_index, membership) = self.log.membership_at(index);
        if membership.is_empty() {
            // A joining node that has not yet received its configuration: a snapshot must
            // name one.
            self.ignored.bad_snapshot += 1;
            return;
        }
        let meta = SnapshotMeta { index, term, membership: membership.clone(), membership_index };
        self.log.compact(meta, data);
        self.snapshot_unpersisted = true;
    }

    /// Leader: whether `to` needs entries we compacted away.
    pub(super) fn needs_snapshot(&self, to: NodeId) -> bool {
        self.progress
            .get(&to)
            .is_some_and(|pr| matches!(pr.mode, Mode::Snapshot { .. }) || pr.next <= self.log.snapshot_index())
    }

    /// Leader: sends `to` the next chunks of the snapshot it is being sent, as many as the
    /// window allows, or starts a transfer of our snapshot. A transfer goes on with its
    /// snapshot even when we took a newer one since: restarting at every new snapshot never
    /// finished when snapshots came faster than a transfer (seed 2001964); the follower gets
    /// the newer one next, if it still needs it.
    ///
    /// With our snapshot's bytes in storage only, a new transfer shares the copy another
    /// transfer of it holds, or waits for them: they are asked for
    /// ([`Output::LoadSnapshot`]) and the transfer starts once they are back.
    pub(super) fn send_snapshot(&mut self, to: NodeId, out: &mut Vec<Output>) {
        let chunk = self.cfg.snapshot_chunk_bytes();
        let window = chunk * self.cfg.max_inflight_snapshot_chunks();
        let Some(pr) = self.progress.get(&to) else { return };
        let held = match (pr.mode, &pr.streaming) {
            (Mode::Snapshot { index, .. }, Some(s)) if s.meta.index == index && pr.may_stream(index) => Some(s.clone()),
            _ => None,
        };
        // A new transfer's bytes: ours, or those another transfer of our snapshot holds.
        let ours = match (&held, self.log.snapshot(), self.log.snapshot_meta()) {
            (Some(_), _, _) | (None, None, None) => None,
            (None, Some(s), _) => Some(s.clone()),
            (None, None, Some(meta)) => {
                self.progress.values().filter_map(|p| p.streaming.as_ref()).find(|s| s.meta == *meta).cloned()
            }
        };
        let pr = self.progress.get_mut(&to).expect("looked up above");
        let Snapshot { meta, data } = match (held, self.log.snapshot_meta()) {
            (Some(s), _) => s,
            (None, Some(current)) if pr.may_stream(current.index) => match ours {
                Some(s) => {
                    pr.start_snapshot(s.clone());
                    s
                }
                None => {
                    let index = current.index;
                    self.load_snapshot(index, out);
                    return;
                }
            },
            (None, _) => return,
        };
        let total = data.len() as u64;
        // `sent` counts bytes out, and `total + 1` once the final (done) chunk is out, so an
        // empty snapshot is still one chunk.
        loop {
            let Mode::Snapshot { sent, acked, .. } = &mut pr.mode else { unreachable!() };
            if *sent > total || *sent >= *acked + window {
                return;
            }
            let end = (*sent + chunk).min(total);
            let done = end == total;
            let body = MessageBody::InstallSnapshot {
                meta: meta.clone(),
                offset: *sent,
                data: data.slice(*sent as usize..end as usize),
                done,
            };
            *sent = if done { total + 1 } else { end };
            out.push(Output::Send(Message { from: self.cfg.id(), to, term: self.term, body }));
        }
    }

    /// Leader: the snapshots being streamed to followers that are older than our own (each
    /// transfer finishes with the snapshot it began with). Every chunk sent is a slice of our
    /// snapshot or of one of these.
    /// (With our snapshot's bytes released, transfers of it too: they hold its only copy.)
    pub fn snapshots_in_transfer(&self) -> impl Iterator<Item = &Snapshot> + '_ {
        let own = self.log.snapshot().map(|s| s.meta.index);
        self.progress.values().filter_map(|p| p.streaming.as_ref()).filter(move |s| Some(s.meta.index) != own)
    }

    /// Asks the driver for our snapshot's bytes, unless already asked.
    fn load_snapshot(&mut self, index: Index, out: &mut Vec<Output>) {
        if !core::mem::replace(&mut self.snapshot_loading, true) {
            out.push(Output::LoadSnapshot { index });
        }
    }

    /// The driver read our snapshot back: transfers waiting for it start (each holds the
    /// bytes until it ends); our own copy goes again at the end of the step.
    pub(super) fn snapshot_loaded(&mut self, loaded: Option<Snapshot>, out: &mut Vec<Output>) {
        let asked = core::mem::replace(&mut self.snapshot_loading, false);
        let reloaded = match loaded {
            Some(s) if asked => self.log.reload_snapshot(s),
            _ => false,
        };
        if !reloaded {
            // Not the snapshot we hold (storage still writing ours, or a newer one came
            // since): the next heartbeat that finds a follower in need asks again.
            self.ignored.stale_snapshot_load += 1;
            return;
        }
        if self.role == Role::Leader {
            let waiting: Vec<NodeId> = self.progress.keys().copied().filter(|&p| self.needs_snapshot(p)).collect();
            for to in waiting {
                self.send_snapshot(to, out);
            }
        }
    }

    /// With `snapshots_in_storage`: drops our snapshot's bytes once storage has them and the
    /// service installed it (a transfer keeps its own reference).
    pub(super) fn maybe_release_snapshot(&mut self) {
        let early = self.cfg.has_bug(PlantedBug::ReleaseBeforeInstall);
        if !self.cfg.snapshots_in_storage()
            || self.log.snapshot().is_none()
            || self.snapshot_unpersisted
            || (!early && self.snapshot_apply_after.is_some())
            || (!early && self.snapshot_seq.is_some_and(|s| s > self.acked_seq))
        {
            return;
        }
        self.snapshot_seq = None;
        self.log.release_snapshot();
    }

    /// Follower: one chunk from the current leader.
    pub(super) fn handle_install_snapshot(&mut self, msg: Message, out: &mut Vec<Output>) {
        let (from, term) = (msg.from, msg.term);
        let MessageBody::InstallSnapshot { meta, offset, data, done } = msg.body else { unreachable!() };
        let index = meta.index;
        if meta.term > term || meta.membership_index > index || meta.membership.is_empty() || index > MAX_INDEX {
            // A leader's snapshot holds only entries of its term or earlier (taking one of a
            // later term would leave a log whose last term is above the current one), and a
            // configuration set at or before its index: forged.
            self.ignored.malformed += 1;
            return;
        }
        if index <= self.log.commit() {
            // Everything it covers is committed here already.
            self.incoming = None;
            let body = MessageBody::SnapshotResponse { index, next_offset: offset + data.len() as u64, done: true };
            self.send(from, body, out);
            return;
        }
        // A chunk of a newer transfer (a later term, or a later snapshot of the same leader)
        // replaces the partial one, whichever chunk arrives first; a late chunk of a transfer
        // the leader gave up is ignored.
        match &self.incoming {
            Some(inc) if inc.meta == meta && inc.term == term && inc.from == from => {}
            Some(inc) if inc.term == term && inc.meta.index >= index => {
                self.ignored.stale_chunk += 1;
                return;
            }
            _ => self.incoming = Some(Incoming::new(meta.clone(), from, term)),
        }
        if offset.saturating_add(data.len() as u64) > self.cfg.max_snapshot_bytes() {
            // Bigger than this node takes: the transfer is dropped, not buffered, and the
            // leader told, so that it stops sending it.
            self.incoming = None;
            self.ignored.too_large_snapshot += 1;
            let max_bytes = self.cfg.max_snapshot_bytes();
            self.send(from, MessageBody::SnapshotRefused { index, max_bytes }, out);
            return;
        }
        let max_ahead = self.cfg.snapshot_chunk_bytes() * self.cfg.max_inflight_snapshot_chunks();
        let inc = self.incoming.as_mut().expect("set above");
        inc.accept(offset, data, done, max_ahead);
        let have = inc.have();
        if !inc.complete() {
            self.send(from, MessageBody::SnapshotResponse { index, next_offset: have, done: false }, out);
            return;
        }
        let inc = self.incoming.take().expect("assembled above");
        let snapshot = Snapshot { meta: inc.meta, data: Bytes::from(inc.buf) };
        if self.log.install(snapshot) {
            self.truncate_from = Some(index.next());
        }
        self.unpersisted_from = None;
        self.snapshot_unpersisted = true;
        self.send(from, MessageBody::SnapshotResponse { index, next_offset: have, done: true }, out);
    }

    /// Leader: a follower's answer about a snapshot transfer.
    pub(super) fn handle_snapshot_response(
        &mut self,
        from: NodeId,
        index: Index,
        next_offset: u64,
        done: bool,
        out: &mut Vec<Output>,
    ) {
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.recent_active = true;
        if done {
            if index > self.log.last_index() {
                self.ignored.malformed += 1;
                return;
            }
            match pr.mode {
                Mode::Snapshot { index: current, .. } if index < current => {
                    // A late answer about a snapshot we have since replaced: it says how far
                    // the follower got, but the transfer of the current one goes on.
                    // (Restarting it on every such answer multiplies chunks into a storm.)
                    pr.match_index = pr.match_index.max(index);
                    return;
                }
                Mode::Snapshot { .. } => {}
                // A duplicate of the answer that ended the transfer: replication resumed.
                _ if index <= pr.match_index => return,
                _ => {}
            }
            pr.snapshot_done(index);
            self.maybe_commit(out);
            self.send_append(from, true, out);
            return;
        }
        match &mut pr.mode {
            Mode::Snapshot { index: current, sent, acked, .. } if *current == index => {
                // The latest answer says where the follower is (it goes back after a crash
                // lost its partial transfer). Answers never rewind `sent`: a lost chunk
                // stalls the window until the next heartbeat answer rewinds `sent` to
                // `acked`; rewinding on every late answer would resend the whole window once
                // per chunk in flight.
                *acked = next_offset;
                *sent = (*sent).max(*acked);
            }
            _ => return,
        }
        self.send_snapshot(from, out);
    }

    /// Leader: the follower will not take our snapshot at `index` (larger than its bound).
    /// Streaming it stops for a while (see `Progress::snapshot_refused`); heartbeats go on,
    /// so the follower stays in the cluster, and the next snapshot we take is offered at once
    /// (it may be smaller).
    pub(super) fn handle_snapshot_refused(&mut self, from: NodeId, index: Index, max_bytes: u64) {
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.recent_active = true;
        if matches!(pr.mode, Mode::Snapshot { index: current, .. } if current == index) {
            pr.snapshot_refused(index, max_bytes);
        }
    }
}
