//! [`LocalKv`]: the KV state machine inside the event loop, and the requests waiting on it.
//! No I/O and no locks: the loop hands it requests and the core's outputs, and takes back
//! the answers.
//!
//! Guarantees (the same as skiff-std's `KvService`): a write is answered `Ok` only once the
//! entry at its (index, term) holding this very (client, seq) was applied here, and
//! `WrongLeader` if another entry took that index; a read is served only after this node
//! confirmed its leadership at a read index (ReadIndex) and applied up to it. Anything
//! uncertain is `Timeout`, which clerks retry with the same sequence number.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::Token;
use skiff_core::kv::{self, Applied, Command, KvState, Op, Reply};
use skiff_core::{DropReason, Entry, EntryKind, Index, NodeId, Proposal, Snapshot, Term};
use skiff_std::kv::validate_op;

/// Who waits for a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Waiter {
    /// Request `id` of a native client connection.
    Native { token: Token, id: u64 },
    /// The operation `seq` of a RESP connection's session.
    Resp { token: Token, seq: u64 },
}

/// What the loop does with a request.
#[derive(Debug)]
pub(crate) enum Request {
    /// Give the core this proposal (several may go in one batch).
    Propose(Proposal),
    /// Give the core `Input::Read { id }`.
    Read(u64),
    /// Answered already (see [`LocalKv::take_done`]).
    Answered,
}

#[derive(Debug)]
struct Write {
    waiter: Waiter,
    client: u64,
    seq: u64,
    deadline: Instant,
}

#[derive(Debug)]
struct Read {
    waiter: Waiter,
    key: String,
    deadline: Instant,
}

/// The state machine and the requests in progress.
#[derive(Debug)]
pub(crate) struct LocalKv {
    state: KvState,
    max_key: usize,
    max_value: usize,
    timeout: Duration,
    /// Node ids in clerk server order (a hint names a position here).
    servers: Vec<NodeId>,
    next_id: u64,
    /// Writes proposed and not yet placed (the core answers within the same step).
    proposed: HashMap<u64, Write>,
    /// Writes placed in the log, by index, with the term they were placed in.
    placed: BTreeMap<Index, Vec<(Term, Write)>>,
    /// Reads waiting for the leader's confirmation.
    confirming: HashMap<u64, Read>,
    /// Reads confirmed at an index, waiting for it to be applied.
    ready: BTreeMap<Index, Vec<Read>>,
    done: Vec<(Waiter, Reply)>,
    last_snapshot: Index,
    /// Snapshots installed from a leader.
    pub(crate) installed: u64,
}

impl LocalKv {
    /// Starts from `snapshot` (what the node restored), if any; one that does not decode is
    /// an error (starting empty would diverge from the log).
    pub(crate) fn new(
        snapshot: Option<&Snapshot>,
        limits: (usize, usize),
        timeout: Duration,
        servers: Vec<NodeId>,
    ) -> Result<LocalKv, String> {
        let state = match snapshot {
            Some(s) => KvState::restore(&s.data)
                .map_err(|e| format!("the stored snapshot at index {}: {e}", s.meta.index.0))?,
            None => KvState::default(),
        };
        Ok(LocalKv {
            last_snapshot: state.applied(),
            state,
            max_key: limits.0,
            max_value: limits.1,
            timeout,
            servers,
            next_id: 0,
            proposed: HashMap::new(),
            placed: BTreeMap::new(),
            confirming: HashMap::new(),
            ready: BTreeMap::new(),
            done: Vec::new(),
            installed: 0,
        })
    }

    /// Clerk server number of node `id`.
    pub(crate) fn server_of(&self, id: NodeId) -> Option<u64> {
        self.servers.iter().position(|s| *s == id).map(|p| p as u64)
    }

    fn wrong_leader(&self, hint: Option<NodeId>) -> Reply {
        Reply::WrongLeader { hint: hint.and_then(|h| self.server_of(h)) }
    }

    /// Takes one client request.
    pub(crate) fn request(&mut self, command: Command, waiter: Waiter, now: Instant) -> Request {
        if let Err(reason) = validate_op(&command.op, self.max_key, self.max_value) {
            self.done.push((waiter, Reply::Invalid { reason }));
            return Request::Answered;
        }
        self.next_id += 1;
        let id = self.next_id;
        let deadline = now + self.timeout;
        if let Op::Get { key } = command.op {
            self.confirming.insert(id, Read { waiter, key, deadline });
            return Request::Read(id);
        }
        let data = Bytes::from(kv::encode(&command));
        self.proposed.insert(id, Write { waiter, client: command.client, seq: command.seq, deadline });
        Request::Propose(Proposal { id, data })
    }

    /// The core placed proposal `id` at `index` in `term`.
    pub(crate) fn accepted(&mut self, id: u64, index: Index, term: Term) {
        if let Some(w) = self.proposed.remove(&id) {
            self.placed.entry(index).or_default().push((term, w));
        }
    }

    /// The core refused proposal `id`.
    pub(crate) fn proposal_dropped(&mut self, id: u64, reason: &DropReason) {
        if let Some(w) = self.proposed.remove(&id) {
            let reply = self.wrong_leader(drop_hint(reason));
            self.done.push((w.waiter, reply));
        }
    }

    /// The leader confirmed read `id` at `index`.
    pub(crate) fn read_ready(&mut self, id: u64, index: Index) {
        if let Some(r) = self.confirming.remove(&id) {
            self.ready.entry(index).or_default().push(r);
            self.serve_reads();
        }
    }

    pub(crate) fn read_dropped(&mut self, id: u64, reason: &DropReason) {
        if let Some(r) = self.confirming.remove(&id) {
            let reply = self.wrong_leader(drop_hint(reason));
            self.done.push((r.waiter, reply));
        }
    }

    /// Applies committed entries, answering the writes placed at their indexes.
    pub(crate) fn apply(&mut self, entries: Vec<Entry>) {
        for e in entries {
            if e.index <= self.state.applied() {
                continue; // below a snapshot already installed
            }
            let data: &[u8] = if e.kind == EntryKind::Command { &e.data } else { b"" };
            let outcome = self.state.apply(e.index, data);
            let Some(waiting) = self.placed.remove(&e.index) else { continue };
            for (term, w) in waiting {
                let reply = match &outcome {
                    Applied::Reply { client, seq, reply } if term == e.term && *client == w.client && *seq == w.seq => {
                        Reply::Ok(reply.clone())
                    }
                    // Another entry took the index: leadership was lost before ours committed.
                    _ => Reply::WrongLeader { hint: None },
                };
                self.done.push((w.waiter, reply));
            }
        }
        self.serve_reads();
    }

    /// Replaces the state with a snapshot from the leader. One that does not decode is an
    /// error: keeping the old state would diverge from the log.
    pub(crate) fn install(&mut self, snapshot: &Snapshot) -> Result<(), String> {
        let state = KvState::restore(&snapshot.data)
            .map_err(|e| format!("the snapshot installed at index {}: {e}", snapshot.meta.index.0))?;
        self.state = state;
        self.installed += 1;
        self.last_snapshot = self.state.applied();
        // Writes the snapshot covers: their outcome is in the sessions; the retry learns it.
        let applied = self.state.applied();
        while let Some(entry) = self.placed.first_entry() {
            if *entry.key() > applied {
                break;
            }
            for (_, w) in entry.remove() {
                self.done.push((w.waiter, Reply::Timeout));
            }
        }
        self.serve_reads();
        Ok(())
    }

    fn serve_reads(&mut self) {
        let applied = self.state.applied();
        while let Some(entry) = self.ready.first_entry() {
            if *entry.key() > applied {
                break;
            }
            for r in entry.remove() {
                let value = self.state.get(&r.key);
                self.done.push((r.waiter, Reply::Ok(value)));
            }
        }
    }

    /// Answers `Timeout` to every request past its deadline.
    pub(crate) fn expire(&mut self, now: Instant) {
        let done = &mut self.done;
        let mut late = |deadline: Instant, waiter: Waiter| {
            let past = deadline <= now;
            if past {
                done.push((waiter, Reply::Timeout));
            }
            !past
        };
        self.placed.retain(|_, ws| {
            ws.retain(|(_, w)| late(w.deadline, w.waiter));
            !ws.is_empty()
        });
        self.ready.retain(|_, rs| {
            rs.retain(|r| late(r.deadline, r.waiter));
            !rs.is_empty()
        });
        self.confirming.retain(|_, r| late(r.deadline, r.waiter));
    }

    /// Answers produced since the last call.
    pub(crate) fn take_done(&mut self) -> Vec<(Waiter, Reply)> {
        std::mem::take(&mut self.done)
    }

    /// A snapshot to hand the core, when the persisted Raft state (`raft_bytes`) passed the
    /// bound and something was applied since the last one.
    pub(crate) fn snapshot_due(&mut self, raft_bytes: u64, max: Option<u64>) -> Option<(Index, Vec<u8>)> {
        let at = self.state.applied();
        if at <= self.last_snapshot || !KvState::should_snapshot(raft_bytes, max) {
            return None;
        }
        self.last_snapshot = at;
        Some((at, self.state.snapshot()))
    }

    /// Whether no request is in progress (constant time: the loop asks on every wakeup).
    pub(crate) fn idle(&self) -> bool {
        self.proposed.is_empty() && self.placed.is_empty() && self.confirming.is_empty() && self.ready.is_empty()
    }

    /// Requests in progress (for `INFO`; walks the waiting lists).
    pub(crate) fn in_progress(&self) -> usize {
        self.proposed.len()
            + self.placed.values().map(Vec::len).sum::<usize>()
            + self.confirming.len()
            + self.ready.values().map(Vec::len).sum::<usize>()
    }

    /// Keys held.
    pub(crate) fn keys(&self) -> usize {
        self.state.len()
    }
}

fn drop_hint(reason: &DropReason) -> Option<NodeId> {
    match reason {
        DropReason::NotLeader { hint } => *hint,
        DropReason::Transferring { to } => Some(*to),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(seq: u64) -> Command {
        Command { client: 7, seq, op: Op::Put { key: "k".into(), value: "v".into() } }
    }

    fn entry(index: u64, term: u64, cmd: &Command) -> Entry {
        Entry { index: Index(index), term: Term(term), kind: EntryKind::Command, data: Bytes::from(kv::encode(cmd)) }
    }

    fn kv() -> LocalKv {
        LocalKv::new(None, (16, 16), Duration::from_secs(1), vec![NodeId(1), NodeId(2), NodeId(3)]).unwrap()
    }

    const W: Waiter = Waiter::Native { token: Token(9), id: 1 };

    #[test]
    fn a_write_is_answered_only_by_its_own_entry() {
        let mut kv = kv();
        let now = Instant::now();
        let Request::Propose(p) = kv.request(put(1), W, now) else { panic!("a write is proposed") };
        kv.accepted(p.id, Index(1), Term(2));
        // Another leader's entry took index 1: not ours.
        kv.apply(vec![entry(1, 3, &put(5))]);
        assert_eq!(kv.take_done(), vec![(W, Reply::WrongLeader { hint: None })]);
        let Request::Propose(p) = kv.request(put(6), W, now) else { panic!() };
        kv.accepted(p.id, Index(2), Term(3));
        kv.apply(vec![entry(2, 3, &put(6))]);
        assert_eq!(kv.take_done(), vec![(W, Reply::Ok(String::new()))]);
    }

    #[test]
    fn reads_wait_for_their_index_and_everything_times_out() {
        let mut kv = kv();
        let now = Instant::now();
        let get = Command { client: 1, seq: 1, op: Op::Get { key: "k".into() } };
        let Request::Read(id) = kv.request(get.clone(), W, now) else { panic!("a read asks the core") };
        kv.read_ready(id, Index(1));
        assert!(kv.take_done().is_empty(), "index 1 is not applied yet");
        kv.apply(vec![entry(1, 1, &put(1))]);
        assert_eq!(kv.take_done(), vec![(W, Reply::Ok("v".into()))]);
        let Request::Read(_) = kv.request(get, W, now) else { panic!() };
        kv.expire(now + Duration::from_secs(2));
        assert_eq!(kv.take_done(), vec![(W, Reply::Timeout)]);
        assert_eq!(kv.in_progress(), 0);
        assert!(kv.idle());
    }

    #[test]
    fn a_snapshot_that_does_not_decode_is_an_error_not_a_silent_divergence() {
        let bad = Snapshot {
            meta: skiff_core::SnapshotMeta { index: Index(5), term: Term(1), voters: vec![NodeId(1)] },
            data: Bytes::from_static(b"\xff\xff not a KV state"),
        };
        assert!(LocalKv::new(Some(&bad), (16, 16), Duration::from_secs(1), vec![NodeId(1)]).is_err());
        let mut kv = kv();
        assert!(kv.install(&bad).unwrap_err().contains("index 5"));
    }

    #[test]
    fn oversized_requests_and_refusals_get_clear_answers() {
        let mut kv = kv();
        let big = Command { client: 1, seq: 1, op: Op::Put { key: "k".repeat(17), value: String::new() } };
        assert!(matches!(kv.request(big, W, Instant::now()), Request::Answered));
        assert!(matches!(&kv.take_done()[0].1, Reply::Invalid { reason } if reason.contains("key of 17 bytes")));
        let Request::Propose(p) = kv.request(put(1), W, Instant::now()) else { panic!() };
        kv.proposal_dropped(p.id, &DropReason::NotLeader { hint: Some(NodeId(3)) });
        assert_eq!(kv.take_done(), vec![(W, Reply::WrongLeader { hint: Some(2) })]);
    }
}
