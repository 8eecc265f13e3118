//! Membership commands of the script language:
//!
//! - `add-joiner`: a new server (the next id) that joins with no configuration;
//! - `change ID STEP [+ STEP ...] [joint]`, a step being `add-learner N`, `add-voter N`,
//!   `promote N`, `demote N` or `remove N` (`joint` asks for a joint configuration even for
//!   one voter);
//! - `membership ID | all`: the configuration a node acts on.

use bytes::Bytes;
use skiff_core::{ChangeStep, Config, Input, JointPolicy, MembershipChange, Node, NodeId};

use super::{expect_args, parse_num, with_settings, Cluster, Lines};

impl Cluster {
    pub(super) fn add_joiner(&mut self, args: &[&str]) -> Result<Lines, String> {
        expect_args(args, 0, 0)?;
        let base = self.base.clone().ok_or("no cluster yet: start with add-nodes")?;
        let id = NodeId(self.servers.len() as u64 + 1);
        let config = with_settings(Config::joining(id, id.0), &base)?;
        self.add_server(id, config)?;
        Ok(vec![format!("{id} joins with no configuration")])
    }

    pub(super) fn change(&mut self, args: &[&str], out: &mut Lines) -> Result<(), String> {
        let usage = "usage: change ID STEP [+ STEP ...] [joint]";
        let (first, rest) = args.split_first().ok_or(usage)?;
        let id = self.node_id(first)?;
        let (rest, joint) = match rest.split_last() {
            Some((&"joint", before)) => (before, JointPolicy::Always),
            _ => (rest, JointPolicy::Auto),
        };
        let mut steps = Vec::new();
        for group in rest.split(|w| *w == "+") {
            let [verb, n] = group else { return Err(usage.into()) };
            let node = NodeId(parse_num(n.strip_prefix('n').unwrap_or(n))?);
            let address = Bytes::from(format!("addr-{}", node.0));
            steps.push(match *verb {
                "add-learner" => ChangeStep::AddLearner { node, address },
                "add-voter" => ChangeStep::AddVoter { node, address },
                "promote" => ChangeStep::Promote { node },
                "demote" => ChangeStep::Demote { node },
                "remove" => ChangeStep::Remove { node },
                other => return Err(format!("unknown step {other:?}")),
            });
        }
        self.next_proposal += 1;
        let change = MembershipChange { id: self.next_proposal, steps, joint };
        self.step(id, Input::ChangeMembership(change), out)
    }

    pub(super) fn show_membership(&mut self, args: &[&str], out: &mut Lines) -> Result<(), String> {
        expect_args(args, 1, 1)?;
        for id in self.targets(args[0])? {
            let line = match self.server(id).node.as_ref().map(Node::view) {
                Some(v) => format!(
                    "{id}: {} set at i{} committed={}",
                    v.membership, v.membership_index.0, v.membership_committed
                ),
                None => format!("{id}: down"),
            };
            out.push(line);
        }
        Ok(())
    }
}
