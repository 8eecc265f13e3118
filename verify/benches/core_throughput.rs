//! Core throughput: 3 nodes in one process, messages passed in memory, persists acknowledged
//! at once, no faults; 64-byte proposals in batches of 1, 64 and 1024. Reports entries
//! committed and applied on all 3 nodes per second.
//!
//! Run: `cargo bench -p skiff-verify --bench core_throughput` (add `-- --secs N` to change
//! the measuring time per batch size, default 3).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use skiff_core::{Config, Input, Message, Node, NodeId, Output, Proposal, Restored, Role};

struct Cluster {
    nodes: Vec<Node>,
    inbox: VecDeque<Message>,
    /// Highest persist seq issued per node and not yet acknowledged.
    unacked: Vec<Option<u64>>,
    applied: Vec<u64>,
    out: Vec<Output>,
}

impl Cluster {
    fn new() -> Cluster {
        let ids = [NodeId(1), NodeId(2), NodeId(3)];
        let nodes = ids
            .iter()
            .map(|id| {
                let cfg = Config::builder(*id, ids, id.0)
                    .max_inflight_msgs(256)
                    .max_entries_per_msg(4096)
                    .max_bytes_per_msg(8 << 20)
                    .max_inflight_bytes(64 << 20)
                    .build()
                    .expect("valid");
                Node::new(cfg, Restored::default()).expect("fresh")
            })
            .collect();
        Cluster { nodes, inbox: VecDeque::new(), unacked: vec![None; 3], applied: vec![0; 3], out: Vec::new() }
    }

    fn step(&mut self, i: usize, input: Input) {
        let mut out = std::mem::take(&mut self.out);
        self.nodes[i].step_into(input, &mut out);
        for o in out.drain(..) {
            match o {
                Output::Send(m) => self.inbox.push_back(m),
                Output::Persist(p) => self.unacked[i] = Some(p.seq),
                Output::Apply(entries) => self.applied[i] += entries.len() as u64,
                Output::ApplySnapshot(s) => self.applied[i] = s.meta.index.0,
                Output::Accepted { .. } | Output::ProposalDropped { .. } | Output::RoleChanged { .. } => {}
                Output::ReadReady { .. } | Output::ReadDropped { .. } | Output::MembershipChanged { .. } => {}
                Output::LoadSnapshot { .. } => unreachable!("snapshots stay in memory here"),
            }
        }
        self.out = out;
    }

    /// Delivers messages and acknowledges persists (group commit: one acknowledgement per
    /// node per round) until nothing is left.
    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(m) = self.inbox.pop_front() {
                let to = m.to.0 as usize - 1;
                self.step(to, Input::Message(m));
                progressed = true;
            }
            for i in 0..3 {
                if let Some(seq) = self.unacked[i].take() {
                    self.step(i, Input::Persisted { up_to: seq });
                    progressed = true;
                }
            }
            if !progressed {
                return;
            }
        }
    }
}

fn measure(batch: usize, secs: u64) -> (u64, Duration) {
    let mut c = Cluster::new();
    c.step(0, Input::Campaign);
    c.pump();
    assert_eq!(c.nodes[0].view().role, Role::Leader, "node 1 should lead");
    let payload = Bytes::from(vec![0xAB; 64]);
    let start_applied = *c.applied.iter().min().expect("3 nodes");
    let began = Instant::now();
    let mut id = 0u64;
    while began.elapsed() < Duration::from_secs(secs) {
        for _ in 0..16 {
            if batch == 1 {
                id += 1;
                c.step(0, Input::Propose(Proposal { id, data: payload.clone() }));
            } else {
                let ps = (0..batch)
                    .map(|_| {
                        id += 1;
                        Proposal { id, data: payload.clone() }
                    })
                    .collect();
                c.step(0, Input::ProposeBatch(ps));
            }
            c.pump();
        }
    }
    let elapsed = began.elapsed();
    // The leader's no-op may reach the followers' state machines only with the first batch.
    let done = c.applied.iter().min().expect("3 nodes") - start_applied;
    assert!(done >= id && done <= id + 1, "every proposal applied on all 3 nodes ({done} of {id})");
    (id, elapsed)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs =
        args.iter().position(|a| a == "--secs").and_then(|p| args.get(p + 1)).and_then(|s| s.parse().ok()).unwrap_or(3);
    println!("core_throughput: 3 nodes in memory, 64-byte proposals, instant persistence");
    for batch in [1usize, 64, 1024] {
        let (entries, elapsed) = measure(batch, secs);
        println!(
            "batch={batch:>5} entries={entries:>9} elapsed_s={:.2} entries_per_s={:.0}",
            elapsed.as_secs_f64(),
            entries as f64 / elapsed.as_secs_f64()
        );
    }
}
