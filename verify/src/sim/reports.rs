//! What a simulated cluster looks like from outside: who leads, a status line per node,
//! and the check, after healing, that no acknowledged command was lost.

use std::fmt::Write as _;

use skiff_core::{Index, Node, Role, Term};

use super::Sim;
use crate::checker::{Invariant, Violation};

impl Sim {
    /// The node every live node that knows a leader agrees on, if it is up and leads.
    pub fn leader(&self) -> Option<usize> {
        let mut best: Option<(Term, usize)> = None;
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(v) = n.node.as_ref().map(Node::view) {
                if v.role == Role::Leader && best.is_none_or(|(t, _)| v.term > t) {
                    best = Some((v.term, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// A readable status line per node.
    pub fn status(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            match n.node.as_ref().map(Node::view) {
                Some(v) => {
                    let _ = writeln!(
                        s,
                        "{} {:?} term={} leader={:?} commit={} applied={} last={} durable={}",
                        n.id,
                        v.role,
                        v.term.0,
                        v.leader.map(|l| l.0),
                        v.commit.0,
                        v.applied.0,
                        v.last_index.0,
                        v.durable.0
                    );
                }
                None => {
                    let _ =
                        writeln!(s, "{} down (disk: term={} log={})", n.id, n.disk.hard_state.term.0, n.disk.log.len());
                }
            }
        }
        s
    }

    /// After healing: every command acknowledged to a client is in the committed history at
    /// the index where it was acknowledged.
    pub fn check_acknowledged(&self) -> Result<(), Violation> {
        let committed: Vec<(Index, Term)> = self.checker.committed().map(|(i, t, _)| (i, t)).collect();
        for ((node, _), a) in &self.acked {
            if committed.get(a.index.0 as usize - 1).map(|c| c.1) != Some(a.term) {
                return Err(Violation {
                    invariant: Invariant::AcknowledgedLost,
                    detail: format!(
                        "a command acknowledged by n{} at index {} term {} is not in the committed history",
                        node + 1,
                        a.index.0,
                        a.term.0
                    ),
                });
            }
        }
        Ok(())
    }
}
