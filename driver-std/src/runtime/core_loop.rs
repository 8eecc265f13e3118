//! The thread that owns the core: takes events, steps the core, carries out its outputs.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender};

use bytes::Bytes;
use skiff_core::{Index, Input, MembershipChange, Node, Output, Persist, Proposal, Term};

use super::{Applied, Event, ProposeError, ReadError};
use crate::transport::Transport;

type ProposeReply = Sender<Result<(Index, Term), ProposeError>>;
type ReadReply = Sender<Result<Index, ReadError>>;

/// Events taken per round before outputs are flushed, so one busy source cannot starve
/// the others for long.
const MAX_EVENTS_PER_ROUND: usize = 1024;

pub(super) struct CoreLoop<T: Transport> {
    node: Node,
    transport: T,
    persist: Option<Sender<Persist>>,
    apply: Sender<Applied>,
    proposals: BTreeMap<u64, ProposeReply>,
    reads: BTreeMap<u64, ReadReply>,
    next_id: u64,
    batch: Vec<Proposal>,
    out: Vec<Output>,
}

impl<T: Transport> CoreLoop<T> {
    pub(super) fn new(node: Node, transport: T, persist: Sender<Persist>, apply: Sender<Applied>) -> Self {
        CoreLoop {
            node,
            transport,
            persist: Some(persist),
            apply,
            proposals: BTreeMap::new(),
            reads: BTreeMap::new(),
            next_id: 0,
            batch: Vec::new(),
            out: Vec::new(),
        }
    }

    pub(super) fn run(mut self, events: Receiver<Event>) {
        'outer: while let Ok(first) = events.recv() {
            let mut next = Some(first);
            let mut taken = 0;
            while let Some(ev) = next {
                if !self.handle(ev) {
                    break 'outer;
                }
                taken += 1;
                next = if taken < MAX_EVENTS_PER_ROUND { events.try_recv().ok() } else { None };
            }
            self.flush_proposals();
        }
        self.flush_proposals();
        for (_, r) in std::mem::take(&mut self.proposals) {
            let _ = r.send(Err(ProposeError::Stopped));
        }
        for (_, r) in std::mem::take(&mut self.reads) {
            let _ = r.send(Err(ReadError::Stopped));
        }
        self.transport.shutdown();
        // Dropping the persist sender lets the storage thread finish what is queued and exit
        // (or, after a crash request, exit without writing it).
        self.persist = None;
    }

    /// Handles one event; false means stop.
    fn handle(&mut self, ev: Event) -> bool {
        if !matches!(ev, Event::Propose(..)) {
            self.flush_proposals();
        }
        let input = match ev {
            Event::Tick => Input::Tick,
            Event::Message(m) => Input::Message(m),
            Event::Persisted(up_to) => Input::Persisted { up_to },
            Event::Propose(data, reply) => {
                self.propose(data, reply);
                return true;
            }
            Event::Read(reply) => {
                self.next_id += 1;
                self.reads.insert(self.next_id, reply);
                Input::Read { id: self.next_id }
            }
            Event::Snapshot(index, data) => Input::Snapshot { index, data },
            Event::Transfer(to) => Input::TransferLeadership { to },
            Event::Change(steps, joint, reply) => {
                self.next_id += 1;
                self.proposals.insert(self.next_id, reply);
                Input::ChangeMembership(MembershipChange { id: self.next_id, steps, joint })
            }
            Event::CaughtUp(peer, within, reply) => {
                let _ = reply.send(self.node.caught_up(peer, within));
                return true;
            }
            Event::Status(reply) => {
                let _ = reply.send(self.node.view());
                return true;
            }
            Event::Halt(why) => {
                tracing::error!(node = self.node.config().id().0, "stopping: {why}");
                return false;
            }
            Event::Stop => return false,
        };
        self.step(input);
        true
    }

    fn propose(&mut self, data: Bytes, reply: ProposeReply) {
        self.next_id += 1;
        self.proposals.insert(self.next_id, reply);
        self.batch.push(Proposal { id: self.next_id, data });
    }

    /// Proposals that arrived together go to the core as one batch.
    fn flush_proposals(&mut self) {
        if let Some(input) = super::batch_input(&mut self.batch) {
            self.step(input);
        }
    }

    fn step(&mut self, input: Input) {
        let mut out = std::mem::take(&mut self.out);
        self.node.step_into(input, &mut out);
        for o in out.drain(..) {
            self.carry_out(o);
        }
        self.out = out;
    }

    fn carry_out(&mut self, o: Output) {
        match o {
            Output::Send(m) => self.transport.send(m),
            Output::Persist(p) => {
                if let Some(tx) = &self.persist {
                    let _ = tx.send(p);
                }
            }
            Output::Apply(entries) => {
                for e in entries {
                    let _ = self.apply.send(Applied::Entry(e));
                }
            }
            Output::ApplySnapshot(s) => {
                let _ = self.apply.send(Applied::Snapshot(s));
            }
            Output::Accepted { id, index, term } => {
                if let Some(r) = self.proposals.remove(&id) {
                    let _ = r.send(Ok((index, term)));
                }
            }
            Output::ProposalDropped { id, reason } => {
                if let Some(r) = self.proposals.remove(&id) {
                    let _ = r.send(Err(reason.into()));
                }
            }
            Output::ReadReady { id, index } => {
                if let Some(r) = self.reads.remove(&id) {
                    let _ = r.send(Ok(index));
                }
            }
            Output::ReadDropped { id, reason } => {
                if let Some(r) = self.reads.remove(&id) {
                    let _ = r.send(Err(reason.into()));
                }
            }
            Output::RoleChanged { role, term, leader } => {
                let id = self.node.config().id().0;
                tracing::info!(node = id, ?role, term = term.0, leader = ?leader.map(|l| l.0), "role changed");
            }
            Output::MembershipChanged { index, membership, committed } => {
                let id = self.node.config().id().0;
                tracing::info!(node = id, index = index.0, %membership, committed, "configuration changed");
                self.transport.set_members(&membership);
            }
            // `RaftNode::start` refuses `snapshots_in_storage`: the core keeps its snapshot.
            Output::LoadSnapshot { .. } => unreachable!("snapshots_in_storage is refused at start"),
        }
    }
}
