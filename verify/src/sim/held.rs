//! Held-network mode, for the exhaustive explorer: nothing happens by itself. Messages sent
//! wait in `Sim::held` until the explorer delivers, duplicates or drops one; persists wait
//! in each node's `pending` until it acknowledges the oldest; no tick is ever scheduled.
//! Every step still goes through [`Sim::step`], so the checker runs exactly as in a swarm.

use std::hash::{Hash, Hasher};

use skiff_core::Message;

use super::{Event, Sim};
use crate::checker::Violation;

impl Sim {
    /// Switches this (fresh) simulation to held-network mode, dropping the events queued so
    /// far (the first ticks).
    pub fn hold_network(&mut self) {
        self.held = Some(Vec::new());
        self.queue.clear();
    }

    /// The messages sent and not yet delivered or dropped (held mode).
    pub fn held_messages(&self) -> &[Message] {
        self.held.as_deref().unwrap_or(&[])
    }

    /// Delivers held message `k`, keeping a copy in flight when `keep` (a duplicate).
    pub fn deliver_held(&mut self, k: usize, keep: bool) -> Result<(), Violation> {
        let held = self.held.as_mut().expect("held mode");
        let msg = if keep { held[k].clone() } else { held.swap_remove(k) };
        self.handle(Event::Deliver(msg))
    }

    /// Loses held message `k`.
    pub fn drop_held(&mut self, k: usize) {
        let held = self.held.as_mut().expect("held mode");
        let m = held.swap_remove(k);
        self.log(|| format!("drop {} {}->{}", m.body.name(), m.from, m.to));
    }

    /// Makes node `i`'s oldest pending persist durable and tells the node (no-op without one).
    pub fn complete_persist(&mut self, i: usize) -> Result<(), Violation> {
        let Some(seq) = self.nodes[i].pending.front().map(|p| p.seq) else { return Ok(()) };
        let epoch = self.nodes[i].epoch;
        self.handle(Event::PersistDone { node: i, epoch, seq })
    }

    /// Hashes what decides this run's future in held mode: every node's core, disk, pending
    /// persists (without their sequence numbers, which follow from the core's) and service
    /// state, the messages in flight as a multiset, and the checker's ghost history (so that
    /// history invariants stay sound when states are merged). Counters, traces and the
    /// simulator's rng are left out: held mode draws from the rng only for a restarted
    /// core's seed, and the core's rng decides only timeouts, which the explorer never lets
    /// run out by ticking.
    pub fn fingerprint<H: Hasher>(&self, h: &mut H) {
        for n in &self.nodes {
            match &n.node {
                Some(node) => {
                    1u8.hash(h);
                    node.fingerprint(h);
                }
                None => 0u8.hash(h),
            }
            n.disk.hash(h);
            for p in &n.pending {
                (&p.snapshot, &p.hard_state, &p.truncate_from, &p.entries).hash(h);
            }
            (n.spawned, n.state, n.state_index).hash(h);
        }
        let mut wire: Vec<Vec<u8>> =
            self.held_messages().iter().map(|m| postcard::to_allocvec(m).expect("a message encodes")).collect();
        wire.sort_unstable();
        wire.hash(h);
        self.checker.fingerprint(h);
    }
}
