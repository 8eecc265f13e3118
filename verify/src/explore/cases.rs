//! The explorer's cases: a cluster, the membership changes on its menu, and how many faults
//! of each kind a path may use.

use bytes::Bytes;
use skiff_core::{ChangeStep, JointPolicy, NodeId};

/// Faults and client actions one path may use, at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Budgets {
    /// Crash-restarts (each loses the node's unacknowledged persists).
    pub crashes: u8,
    /// Messages delivered while a copy stays in flight.
    pub duplicates: u8,
    /// Messages lost.
    pub drops: u8,
    /// Heartbeat rounds a leader may run (one tick each: `heartbeat_ticks` is 1).
    pub heartbeats: u8,
    /// Client commands proposed.
    pub proposals: u8,
}

/// One exploration problem.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: &'static str,
    /// Bootstrap voters: nodes 1..=voters. Node 1 is elected in term 1 and its first entry
    /// committed everywhere before exploring starts.
    pub voters: usize,
    /// Servers in all: those past `voters` start with empty disks and wait to be added.
    pub slots: usize,
    /// The membership changes a leader may propose, each whenever it applies to the
    /// leader's latest configuration.
    pub menu: Vec<(Vec<ChangeStep>, JointPolicy)>,
    pub budgets: Budgets,
    /// No node campaigns past this term.
    pub max_term: u64,
}

const DEFAULT_BUDGETS: Budgets = Budgets { crashes: 1, duplicates: 1, drops: 1, heartbeats: 2, proposals: 1 };

/// The names `case` accepts.
pub const CASES: &[&str] = &["add-remove", "joint-replace", "remove-leader", "learner-promote"];

/// The case called `name`, if there is one.
pub fn case(name: &str) -> Option<Case> {
    let add_voter = |id| ChangeStep::AddVoter { node: NodeId(id), address: Bytes::new() };
    let remove = |id| ChangeStep::Remove { node: NodeId(id) };
    let single = JointPolicy::default();
    let (slots, menu) = match name {
        // Three voters add a fourth and remove one, each in one step (the example).
        "add-remove" => (4, vec![(vec![add_voter(4)], single), (vec![remove(1)], single)]),
        // One change that replaces voter 3 with 4: through a joint configuration, left
        // automatically.
        "joint-replace" => (4, vec![(vec![add_voter(4), remove(3)], JointPolicy::Always)]),
        // The leader removes itself: it leads without counting itself, then hands over.
        "remove-leader" => (3, vec![(vec![remove(1)], single)]),
        // A learner is added, then promoted.
        "learner-promote" => (
            4,
            vec![
                (vec![ChangeStep::AddLearner { node: NodeId(4), address: Bytes::new() }], single),
                (vec![ChangeStep::Promote { node: NodeId(4) }], single),
            ],
        ),
        _ => return None,
    };
    Some(Case {
        name: CASES.iter().find(|c| **c == name)?,
        voters: 3,
        slots,
        menu,
        budgets: DEFAULT_BUDGETS,
        max_term: 3,
    })
}
