//! Stepping a simulated node: the core's step, the checker after it, and carrying out every
//! output (messages onto the faulty network, persists onto the simulated disk, applies into
//! the simulated service and the KV workload, and the checks on reads and snapshot chunks).

use std::collections::BTreeMap;

use bytes::Bytes;
use skiff_core::{Input, MessageBody, NodeId, Output};

use super::network::{fate, Time};
use super::{Acked, Event, Sim};
use crate::checker::{fold_digest, Durable, Invariant, Violation};

impl Sim {
    /// Steps node `i` with `input`, carries out its outputs and runs the checker.
    pub fn step(&mut self, i: usize, input: Input) -> Result<(), Violation> {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let n = &mut self.nodes[i];
        let Some(node) = n.node.as_mut() else { return Ok(()) };
        let lease_reads = node.lease_reads();
        node.step_into(input, &mut out);
        self.stats.lease_reads += node.lease_reads() - lease_reads;
        if let Some(due) = self.tick_due.take() {
            if due > 1 && !out.is_empty() {
                let detail = format!("node {} was due in {due} ticks but emitted {:?}", i + 1, out.first());
                self.out = out;
                return Err(Violation { invariant: Invariant::EarlyTick, detail });
            }
        }
        let disks: BTreeMap<NodeId, &Durable> = self.nodes.iter().map(|n| (n.id, &n.disk)).collect();
        let node = self.nodes[i].node.as_ref().expect("up");
        let mut result = self.checker.after_step(node, &disks, &out);
        if result.is_ok() && self.checker.committed_len() > 0 {
            for n in self.nodes.iter().filter_map(|n| n.node.as_ref()) {
                result = self.checker.check_leaders_hold_committed(n);
                if result.is_err() {
                    break;
                }
            }
        }
        if let Err(v) = result {
            self.out = out;
            return Err(v);
        }
        for o in out.drain(..) {
            self.carry_out(i, o);
        }
        self.out = out;
        if let Some(v) = self.deferred_violation.take() {
            return Err(v);
        }
        // The service snapshots when enough was applied since its last snapshot.
        if let (Some(every), Some(view)) = (self.cfg.snapshot_every, self.view(i)) {
            let n = &self.nodes[i];
            if n.state_index.0 >= view.snapshot_index.0 + every && n.snapshot_refused_at != Some(n.state_index) {
                let digest = n.state;
                let data = match self.kv.as_mut().and_then(|kv| kv.snapshot(i, digest)) {
                    Some(data) => data,
                    None => {
                        let words = self.cfg.snapshot_bytes.div_ceil(8).max(1);
                        Bytes::from((0..words).flat_map(|_| n.state.to_le_bytes()).collect::<Vec<u8>>())
                    }
                };
                let index = n.state_index;
                self.stats.snapshots_taken += 1;
                // Refused (a joiner before the entry that set its configuration): the service
                // tries again after its next apply, not in a loop.
                self.nodes[i].snapshot_refused_at = Some(index);
                return self.step(i, Input::Snapshot { index, data });
            }
        }
        Ok(())
    }

    /// A snapshot chunk must be a slice of the sender's one copy of a snapshot it holds (its
    /// own, or an older one a transfer began with), or that its disk holds (shared with the
    /// core's, which may drop its reference in the step that sent the chunk, as a leader
    /// that steps down drops its transfers: seed 4394748): never a copy per chunk or per
    /// follower.
    fn check_chunk_borrows_snapshot(&mut self, i: usize, chunk: &Bytes) {
        if chunk.is_empty() {
            return;
        }
        let inside = |s: &skiff_core::Snapshot| {
            let r = s.data.as_ptr_range();
            r.start <= chunk.as_ptr() && chunk.as_ptr_range().end <= r.end
        };
        let sim = &self.nodes[i];
        let on_disk = sim.disk.snapshot.as_ref().is_some_and(inside)
            || sim.pending.iter().filter_map(|p| p.snapshot.as_ref()).any(inside);
        let borrowed = on_disk
            || sim
                .node
                .as_ref()
                .is_some_and(|n| n.log().snapshot().is_some_and(inside) || n.snapshots_in_transfer().any(inside));
        if borrowed {
            self.stats.borrowed_chunks += 1;
        } else if self.deferred_violation.is_none() {
            self.deferred_violation = Some(Violation {
                invariant: Invariant::SnapshotCopied,
                detail: format!("n{} sent a snapshot chunk that is not a slice of its snapshot", i + 1),
            });
        }
    }

    fn carry_out(&mut self, i: usize, o: Output) {
        self.note_change_answer(&o);
        match o {
            Output::Send(msg) => {
                if let MessageBody::InstallSnapshot { data, .. } = &msg.body {
                    self.check_chunk_borrows_snapshot(i, data);
                }
                if let Some(held) = self.held.as_mut() {
                    held.push(msg);
                    return;
                }
                let copies: Vec<Time> = fate(&self.cfg.net, &mut self.rng).collect();
                for delay in copies {
                    let mut at = self.now + delay.max(1);
                    if self.fifo {
                        // In order per link, as over one TCP connection.
                        let last = self.link_last.entry((msg.from, msg.to)).or_insert(0);
                        at = at.max(*last);
                        *last = at;
                    }
                    self.push(at, Event::Deliver(msg.clone()));
                }
            }
            Output::Persist(p) => {
                let delay = self.rng.between(self.cfg.persist_delay.0, self.cfg.persist_delay.1);
                let n = &mut self.nodes[i];
                let done = (self.now + delay).max(n.last_done);
                n.last_done = done;
                let (epoch, seq) = (n.epoch, p.seq);
                n.pending.push_back(p);
                self.push(done, Event::PersistDone { node: i, epoch, seq });
            }
            Output::Apply(entries) => {
                for e in &entries {
                    if let Some((term, _)) = self.awaiting.remove(&(i, e.index)) {
                        if term == e.term {
                            self.acked.insert((i, e.index), Acked { index: e.index, term });
                        }
                    }
                }
                self.log(|| {
                    format!("apply n{} {}..={}", i + 1, entries[0].index.0, entries[entries.len() - 1].index.0)
                });
                let n = &mut self.nodes[i];
                for e in &entries {
                    n.state = fold_digest(n.state, e);
                    n.state_index = e.index;
                }
                if let Err(v) = self.kv_on_apply(i, &entries) {
                    self.deferred_violation.get_or_insert(v);
                }
            }
            Output::ApplySnapshot(s) => {
                self.log(|| format!("n{} installs snapshot at {}", i + 1, s.meta.index.0));
                self.stats.snapshots_installed += 1;
                self.stats.largest_installed_snapshot = self.stats.largest_installed_snapshot.max(s.data.len() as u64);
                let n = &mut self.nodes[i];
                n.state = u64::from_le_bytes(s.data[..8].try_into().expect("8-byte digest"));
                n.state_index = s.meta.index;
                if let Err(v) = self.kv_on_snapshot(i, &s) {
                    self.deferred_violation.get_or_insert(v);
                }
            }
            Output::Accepted { id, index, term } => {
                self.awaiting.insert((i, index), (term, id));
                self.accepted = Some((id, index, term));
                self.kv_on_accepted(i, id, index, term);
            }
            Output::ProposalDropped { id, reason } => self.kv_on_dropped(i, id, reason, false),
            Output::ReadReady { id, index } => {
                self.kv_on_read_ready(i, id, index);
                if let Some(committed_at_issue) = self.reads.remove(&(i, id)) {
                    self.reads_served += 1;
                    if index.0 < committed_at_issue && self.deferred_violation.is_none() {
                        self.deferred_violation = Some(Violation {
                            invariant: Invariant::StaleRead,
                            detail: format!(
                                "n{} answered read {id} at index {}, but {committed_at_issue} entries were committed when it was issued",
                                i + 1,
                                index.0
                            ),
                        });
                    }
                }
                self.log(|| format!("n{} read {id} ready at {}", i + 1, index.0));
            }
            Output::ReadDropped { id, reason } => {
                self.kv_on_dropped(i, id, reason, true);
                self.reads.remove(&(i, id));
                self.reads_dropped += 1;
            }
            Output::RoleChanged { role, term, leader } => {
                self.kv_on_role(i, &Output::RoleChanged { role, term, leader });
                self.mix(0x3000 + role as u64 + term.0 * 8);
                self.log(|| format!("n{} is {role:?} in term {} (leader {leader:?})", i + 1, term.0));
            }
            Output::MembershipChanged { index, membership, committed } => {
                self.log(|| {
                    format!("n{} acts on configuration {membership} of i{} (committed: {committed})", i + 1, index.0)
                });
            }
            Output::LoadSnapshot { index } => {
                self.stats.snapshot_loads += 1;
                let delay = self.rng.between(self.cfg.persist_delay.0, self.cfg.persist_delay.1);
                let epoch = self.nodes[i].epoch;
                self.log(|| format!("n{} reads its snapshot at i{} back", i + 1, index.0));
                self.push(self.now + delay.max(1), Event::SnapshotRead { node: i, epoch });
            }
        }
    }
}
