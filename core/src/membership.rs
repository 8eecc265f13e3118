//! [`Membership`]: who is in a cluster, and how a change turns one configuration into the
//! next ([`Membership::apply`]).
//!
//! A configuration names the voters, the learners (they receive the log and never vote or
//! count toward a quorum), and while a joint change is in progress, the outgoing voters: a
//! decision then needs a majority of the voters *and* a majority of the outgoing voters (Raft
//! §6, joint consensus). Each node may carry an address: bytes the driver defines and the core
//! never reads.
//!
//! A `Membership` is valid by construction. Its fields are private, every constructor checks
//! them, and decoding goes through the same check, so no part of the core re-checks one it
//! holds. Invariants:
//! - each of `voters`, `outgoing` and `learners` is sorted and holds no id twice;
//! - no learner is a voter (a voter being demoted is a learner and, while joint, outgoing);
//! - `voters` is empty only in [`Membership::empty`] (a node that joins and has not learned
//!   its cluster yet), where everything else is empty too;
//! - every address belongs to a member (a voter, an outgoing voter or a learner).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::types::{Index, NodeId};

/// A cluster configuration; see the module docs for its invariants. Cloning is cheap (the
/// sets are shared), since every status view and snapshot carries one.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawMembership", into = "RawMembership")]
pub struct Membership(Arc<Sets>);

/// The sets of a [`Membership`], checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Sets {
    voters: Vec<NodeId>,
    outgoing: Vec<NodeId>,
    learners: Vec<NodeId>,
    addresses: BTreeMap<NodeId, Bytes>,
}

impl Sets {
    fn is_member(&self, id: NodeId) -> bool {
        [&self.voters, &self.outgoing, &self.learners].iter().any(|set| set.binary_search(&id).is_ok())
    }
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Membership")
            .field("voters", &self.0.voters)
            .field("outgoing", &self.0.outgoing)
            .field("learners", &self.0.learners)
            .field("addresses", &self.0.addresses)
            .finish()
    }
}

/// The unchecked form a [`Membership`] is encoded as.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RawMembership {
    voters: Vec<NodeId>,
    outgoing: Vec<NodeId>,
    learners: Vec<NodeId>,
    addresses: BTreeMap<NodeId, Bytes>,
}

/// Why a set of ids does not make a [`Membership`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipError {
    /// `node` is listed twice in one set.
    Duplicate { node: NodeId },
    /// `node` is both a voter and a learner.
    LearnerIsVoter { node: NodeId },
    /// An address is given for `node`, which is not a member.
    AddressOfNonMember { node: NodeId },
    /// Learners or outgoing voters without any voter.
    NoVoters,
}

/// `v=1,2,3`, then ` out=1,2,4` while joint and ` l=5` with learners; `empty` for
/// [`Membership::empty`]. Addresses are left out.
impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return write!(f, "empty");
        }
        let list = |f: &mut fmt::Formatter<'_>, name: &str, ids: &[NodeId]| -> fmt::Result {
            write!(f, "{name}=")?;
            for (k, id) in ids.iter().enumerate() {
                write!(f, "{}{}", if k == 0 { "" } else { "," }, id.0)?;
            }
            Ok(())
        };
        list(f, "v", &self.0.voters)?;
        if self.is_joint() {
            list(f, " out", &self.0.outgoing)?;
        }
        if !self.0.learners.is_empty() {
            list(f, " l", &self.0.learners)?;
        }
        Ok(())
    }
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MembershipError::Duplicate { node } => write!(f, "{node} is listed twice"),
            MembershipError::LearnerIsVoter { node } => write!(f, "{node} is both a voter and a learner"),
            MembershipError::AddressOfNonMember { node } => write!(f, "an address is given for {node}, not a member"),
            MembershipError::NoVoters => write!(f, "a configuration needs at least one voter"),
        }
    }
}

/// One step of a membership change.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChangeStep {
    /// A node that is not a member joins as a learner.
    AddLearner { node: NodeId, address: Bytes },
    /// A node joins as a voter, or a learner is promoted (an empty `address` keeps its own).
    AddVoter { node: NodeId, address: Bytes },
    /// A learner becomes a voter (unlike `AddVoter`, refused for a node that is not a
    /// learner, so that a mistyped id cannot add a voter nobody runs).
    Promote { node: NodeId },
    /// A voter becomes a learner.
    Demote { node: NodeId },
    /// A member leaves.
    Remove { node: NodeId },
    /// A member's address changes.
    SetAddress { node: NodeId, address: Bytes },
}

/// Whether a change may take effect in one step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JointPolicy {
    /// In one step when at most one voter is added or removed (the old and new majorities
    /// then always intersect); through a joint configuration otherwise.
    #[default]
    Auto,
    /// Always through a joint configuration.
    Always,
}

/// A request to change the configuration: `steps` applied in order, in one step or through
/// a joint configuration as `joint` says. `id` answers it as a proposal's id does
/// ([`crate::Output::Accepted`] or [`crate::Output::ProposalDropped`]); it shares the
/// proposals' id space.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MembershipChange {
    pub id: u64,
    pub steps: Vec<ChangeStep>,
    pub joint: JointPolicy,
}

/// Why a leader refused a membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeRefused {
    /// The configuration set at `index` is not committed yet, or is joint and not yet left:
    /// one change at a time.
    Pending { index: Index },
    /// This leader has not yet committed an entry of its own term. Until it has, a change
    /// could overlap one of an earlier leader that it does not know committed (the
    /// single-server change bug, raft-dev 2015).
    OwnTermUncommitted,
    /// The change does not apply to the configuration.
    Invalid(StepRefused),
}

impl fmt::Display for ChangeRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeRefused::Pending { index } => {
                write!(f, "the configuration set at index {} is still in progress: one change at a time", index.0)
            }
            ChangeRefused::OwnTermUncommitted => {
                write!(f, "the leader has not yet committed an entry of its term: retry in a moment")
            }
            ChangeRefused::Invalid(why) => write!(f, "{why}"),
        }
    }
}

/// Why a change cannot be made to a configuration (as far as the configuration alone says;
/// the node adds reasons of its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepRefused {
    /// The change would leave no voter.
    NoVoters,
    /// A step names `node`, which is not a member (or, for `Demote`, not a voter).
    NotMember { node: NodeId },
    /// A step adds `node`, which already is a member in that role.
    AlreadyMember { node: NodeId },
    /// The change changes nothing.
    Empty,
}

impl fmt::Display for StepRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepRefused::NoVoters => write!(f, "the change would leave no voter"),
            StepRefused::NotMember { node } => write!(f, "{node} is not a member in that role"),
            StepRefused::AlreadyMember { node } => write!(f, "{node} already is a member in that role"),
            StepRefused::Empty => write!(f, "the change changes nothing"),
        }
    }
}

impl TryFrom<RawMembership> for Membership {
    type Error = MembershipError;

    fn try_from(raw: RawMembership) -> Result<Membership, MembershipError> {
        let sorted = |ids: Vec<NodeId>| -> Result<Vec<NodeId>, MembershipError> {
            let mut seen = BTreeSet::new();
            for id in &ids {
                if !seen.insert(*id) {
                    return Err(MembershipError::Duplicate { node: *id });
                }
            }
            Ok(seen.into_iter().collect())
        };
        let m = Sets {
            voters: sorted(raw.voters)?,
            outgoing: sorted(raw.outgoing)?,
            learners: sorted(raw.learners)?,
            addresses: raw.addresses,
        };
        if m.voters.is_empty() && (!m.outgoing.is_empty() || !m.learners.is_empty() || !m.addresses.is_empty()) {
            return Err(MembershipError::NoVoters);
        }
        if let Some(node) = m.learners.iter().find(|l| m.voters.binary_search(l).is_ok()) {
            return Err(MembershipError::LearnerIsVoter { node: *node });
        }
        if let Some(node) = m.addresses.keys().find(|id| !m.is_member(**id)) {
            return Err(MembershipError::AddressOfNonMember { node: *node });
        }
        Ok(Membership(Arc::new(m)))
    }
}

impl From<Membership> for RawMembership {
    fn from(m: Membership) -> RawMembership {
        let s = Arc::unwrap_or_clone(m.0);
        RawMembership { voters: s.voters, outgoing: s.outgoing, learners: s.learners, addresses: s.addresses }
    }
}

impl Membership {
    /// A configuration that is not joint: `voters` and `learners`, with `addresses`.
    pub fn new(
        voters: impl IntoIterator<Item = NodeId>,
        learners: impl IntoIterator<Item = NodeId>,
        addresses: BTreeMap<NodeId, Bytes>,
    ) -> Result<Membership, MembershipError> {
        let raw = RawMembership {
            voters: voters.into_iter().collect(),
            outgoing: Vec::new(),
            learners: learners.into_iter().collect(),
            addresses,
        };
        if raw.voters.is_empty() {
            return Err(MembershipError::NoVoters);
        }
        Membership::try_from(raw)
    }

    /// A configuration of `voters` alone: no learners, no addresses.
    pub fn from_voters(voters: impl IntoIterator<Item = NodeId>) -> Result<Membership, MembershipError> {
        Membership::new(voters, [], BTreeMap::new())
    }

    /// The configuration of a node that has not learned its cluster yet: no one votes.
    pub fn empty() -> Membership {
        Membership::default()
    }

    /// Whether this is [`Membership::empty`].
    pub fn is_empty(&self) -> bool {
        self.0.voters.is_empty()
    }

    /// The voters (while joint: the incoming ones).
    pub fn voters(&self) -> &[NodeId] {
        &self.0.voters
    }

    /// While joint, the voters of the configuration being left; empty otherwise.
    pub fn outgoing(&self) -> &[NodeId] {
        &self.0.outgoing
    }

    pub fn learners(&self) -> &[NodeId] {
        &self.0.learners
    }

    pub fn addresses(&self) -> &BTreeMap<NodeId, Bytes> {
        &self.0.addresses
    }

    /// Whether a joint change is in progress.
    pub fn is_joint(&self) -> bool {
        !self.0.outgoing.is_empty()
    }

    /// Whether `id` votes: a voter, or while joint, an outgoing voter.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.0.voters.binary_search(&id).is_ok() || self.0.outgoing.binary_search(&id).is_ok()
    }

    /// Whether `id` is a member: it votes or learns.
    pub fn is_member(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.0.learners.binary_search(&id).is_ok()
    }

    /// Every member once, in order.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        let all: BTreeSet<NodeId> =
            self.0.voters.iter().chain(&self.0.outgoing).chain(&self.0.learners).copied().collect();
        all.into_iter()
    }

    /// The configuration `steps` lead to, applied in order to this one, which must not be
    /// joint (a change is made only once the previous one is complete; the node checks that
    /// first). A change that leaves the voters as they are, or with [`JointPolicy::Auto`]
    /// adds or removes one voter, takes effect in one step; any other becomes joint, with this
    /// configuration's voters outgoing.
    pub fn apply(&self, steps: &[ChangeStep], joint: JointPolicy) -> Result<Membership, StepRefused> {
        debug_assert!(!self.is_joint(), "a change applied to a joint configuration");
        let mut voters: BTreeSet<NodeId> = self.0.voters.iter().copied().collect();
        let mut learners: BTreeSet<NodeId> = self.0.learners.iter().copied().collect();
        let mut addresses = self.0.addresses.clone();
        let set_address = |addresses: &mut BTreeMap<NodeId, Bytes>, node: NodeId, address: &Bytes| {
            if !address.is_empty() {
                addresses.insert(node, address.clone());
            }
        };
        for step in steps {
            match step {
                ChangeStep::AddLearner { node, address } => {
                    if voters.contains(node) || learners.contains(node) {
                        return Err(StepRefused::AlreadyMember { node: *node });
                    }
                    learners.insert(*node);
                    set_address(&mut addresses, *node, address);
                }
                ChangeStep::AddVoter { node, address } => {
                    if voters.contains(node) {
                        return Err(StepRefused::AlreadyMember { node: *node });
                    }
                    learners.remove(node);
                    voters.insert(*node);
                    set_address(&mut addresses, *node, address);
                }
                ChangeStep::Promote { node } => {
                    if !learners.remove(node) {
                        return Err(StepRefused::NotMember { node: *node });
                    }
                    voters.insert(*node);
                }
                ChangeStep::Demote { node } => {
                    if !voters.remove(node) {
                        return Err(StepRefused::NotMember { node: *node });
                    }
                    learners.insert(*node);
                }
                ChangeStep::Remove { node } => {
                    if !voters.remove(node) && !learners.remove(node) {
                        return Err(StepRefused::NotMember { node: *node });
                    }
                    addresses.remove(node);
                }
                ChangeStep::SetAddress { node, address } => {
                    if !voters.contains(node) && !learners.contains(node) {
                        return Err(StepRefused::NotMember { node: *node });
                    }
                    addresses.insert(*node, address.clone());
                }
            }
        }
        if voters.is_empty() {
            return Err(StepRefused::NoVoters);
        }
        let old: BTreeSet<NodeId> = self.0.voters.iter().copied().collect();
        let changed_voters = old.symmetric_difference(&voters).count();
        // A change of learners or addresses alone never needs a joint phase.
        let one_step = changed_voters == 0 || (joint == JointPolicy::Auto && changed_voters == 1);
        let mut next = Sets {
            voters: voters.into_iter().collect(),
            outgoing: if one_step { Vec::new() } else { self.0.voters.clone() },
            learners: learners.into_iter().collect(),
            addresses,
        };
        // Outgoing voters stay reachable until the joint configuration is left.
        for id in &next.outgoing {
            if let Some(a) = self.0.addresses.get(id) {
                next.addresses.entry(*id).or_insert_with(|| a.clone());
            }
        }
        if next == *self.0 {
            return Err(StepRefused::Empty);
        }
        Ok(Membership(Arc::new(next)))
    }

    /// The configuration a joint one becomes once it committed: the incoming voters and the
    /// learners; the outgoing voters that are neither lose their addresses.
    pub fn leave_joint(&self) -> Membership {
        let mut next = Sets {
            voters: self.0.voters.clone(),
            outgoing: Vec::new(),
            learners: self.0.learners.clone(),
            addresses: BTreeMap::new(),
        };
        next.addresses =
            self.0.addresses.iter().filter(|(id, _)| next.is_member(**id)).map(|(id, a)| (*id, a.clone())).collect();
        Membership(Arc::new(next))
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::rng::SplitMix64;

    fn ids(v: &[u64]) -> Vec<NodeId> {
        v.iter().map(|&i| NodeId(i)).collect()
    }

    fn m(voters: &[u64], learners: &[u64]) -> Membership {
        Membership::new(ids(voters), ids(learners), BTreeMap::new()).unwrap()
    }

    fn addr(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn invalid_sets_are_refused_at_construction_and_at_decoding() {
        let none = BTreeMap::new;
        assert_eq!(Membership::new(ids(&[1, 1]), [], none()), Err(MembershipError::Duplicate { node: NodeId(1) }));
        assert_eq!(
            Membership::new(ids(&[1, 2]), ids(&[2]), none()),
            Err(MembershipError::LearnerIsVoter { node: NodeId(2) })
        );
        assert_eq!(Membership::new([], ids(&[2]), none()), Err(MembershipError::NoVoters));
        let stranger = BTreeMap::from([(NodeId(9), addr("x"))]);
        assert_eq!(
            Membership::new(ids(&[1]), [], stranger),
            Err(MembershipError::AddressOfNonMember { node: NodeId(9) })
        );
        // Unsorted input is sorted; decoding checks as construction does.
        let ok = Membership::new(ids(&[3, 1, 2]), ids(&[5]), BTreeMap::from([(NodeId(5), addr("e"))])).unwrap();
        assert_eq!(ok.voters(), &ids(&[1, 2, 3])[..]);
        let bytes = postcard::to_allocvec(&ok).unwrap();
        assert_eq!(postcard::from_bytes::<Membership>(&bytes).unwrap(), ok);
        let raw =
            RawMembership { voters: ids(&[1]), outgoing: vec![], learners: ids(&[1]), addresses: BTreeMap::new() };
        assert!(postcard::from_bytes::<Membership>(&postcard::to_allocvec(&raw).unwrap()).is_err());
        assert!(Membership::empty().is_empty() && !Membership::empty().is_voter(NodeId(1)));
    }

    #[test]
    fn one_voter_changes_in_one_step_more_go_through_joint() {
        let c = m(&[1, 2, 3], &[]);
        let add = ChangeStep::AddVoter { node: NodeId(4), address: addr("d") };
        let grown = c.apply(core::slice::from_ref(&add), JointPolicy::Auto).unwrap();
        assert_eq!((grown.voters(), grown.is_joint()), (&ids(&[1, 2, 3, 4])[..], false));
        assert_eq!(grown.addresses().get(&NodeId(4)), Some(&addr("d")));
        let forced = c.apply(core::slice::from_ref(&add), JointPolicy::Always).unwrap();
        assert_eq!(forced.outgoing(), &ids(&[1, 2, 3])[..]);
        // Replacing a node changes two voters: joint, and left once it committed.
        let replace = [add, ChangeStep::Remove { node: NodeId(3) }];
        let joint = c.apply(&replace, JointPolicy::Auto).unwrap();
        assert_eq!((joint.voters(), joint.outgoing()), (&ids(&[1, 2, 4])[..], &ids(&[1, 2, 3])[..]));
        assert!(joint.is_voter(NodeId(3)) && joint.is_voter(NodeId(4)));
        let left = joint.leave_joint();
        assert_eq!((left.voters(), left.is_joint(), left.is_member(NodeId(3))), (&ids(&[1, 2, 4])[..], false, false));
    }

    #[test]
    fn learners_are_added_promoted_and_demoted_and_bad_steps_refused() {
        let c = m(&[1, 2, 3], &[]);
        let learner =
            c.apply(&[ChangeStep::AddLearner { node: NodeId(4), address: addr("d") }], JointPolicy::Auto).unwrap();
        assert_eq!((learner.learners(), learner.is_voter(NodeId(4))), (&ids(&[4])[..], false));
        let promoted =
            learner.apply(&[ChangeStep::AddVoter { node: NodeId(4), address: Bytes::new() }], JointPolicy::Auto);
        let promoted = promoted.unwrap();
        assert_eq!((promoted.voters(), promoted.learners()), (&ids(&[1, 2, 3, 4])[..], &[][..]));
        assert_eq!(promoted.addresses().get(&NodeId(4)), Some(&addr("d")), "an empty address keeps the old one");
        let demoted = promoted.apply(&[ChangeStep::Demote { node: NodeId(1) }], JointPolicy::Auto).unwrap();
        assert_eq!((demoted.voters(), demoted.learners()), (&ids(&[2, 3, 4])[..], &ids(&[1])[..]));
        let refused = |steps: &[ChangeStep]| c.apply(steps, JointPolicy::Auto).unwrap_err();
        let n = NodeId;
        assert_eq!(
            refused(&[ChangeStep::AddVoter { node: n(1), address: Bytes::new() }]),
            StepRefused::AlreadyMember { node: n(1) }
        );
        assert_eq!(refused(&[ChangeStep::Remove { node: n(9) }]), StepRefused::NotMember { node: n(9) });
        assert_eq!(refused(&[ChangeStep::Demote { node: n(9) }]), StepRefused::NotMember { node: n(9) });
        // Only a learner is promoted; a voter or a stranger is not.
        assert_eq!(refused(&[ChangeStep::Promote { node: n(9) }]), StepRefused::NotMember { node: n(9) });
        assert_eq!(refused(&[ChangeStep::Promote { node: n(1) }]), StepRefused::NotMember { node: n(1) });
        let all: Vec<ChangeStep> = [1, 2, 3].map(|i| ChangeStep::Remove { node: n(i) }).into();
        assert_eq!(refused(&all), StepRefused::NoVoters);
        assert_eq!(refused(&[]), StepRefused::Empty);
        let same = [ChangeStep::AddLearner { node: n(5), address: Bytes::new() }, ChangeStep::Remove { node: n(5) }];
        assert_eq!(refused(&same), StepRefused::Empty);
    }

    /// Random configurations and changes against the set algebra: every result keeps the
    /// invariants (it decodes), its sets are what the steps say, it is joint exactly when more
    /// than one voter changed (or joint was asked for), and a one-step change's old and new
    /// majorities always intersect.
    #[test]
    fn random_changes_match_the_set_algebra_and_keep_the_invariants() {
        let mut rng = SplitMix64::new(7);
        let mut checked = 0;
        for _ in 0..25_000 {
            let size = rng.range(1, 6) as u64;
            let voters: Vec<u64> = (1..=size).collect();
            let learners: Vec<u64> = (size + 1..=size + u64::from(rng.range(0, 3))).collect();
            let c = m(&voters, &learners);
            let steps: Vec<ChangeStep> = (0..rng.range(1, 4))
                .map(|_| {
                    let node = NodeId(u64::from(rng.range(1, 10)));
                    match rng.range(0, 6) {
                        0 => ChangeStep::AddLearner { node, address: addr("l") },
                        1 => ChangeStep::AddVoter { node, address: Bytes::new() },
                        5 => ChangeStep::Promote { node },
                        2 => ChangeStep::Demote { node },
                        3 => ChangeStep::Remove { node },
                        _ => ChangeStep::SetAddress { node, address: addr("s") },
                    }
                })
                .collect();
            let policy = if rng.range(0, 4) == 0 { JointPolicy::Always } else { JointPolicy::Auto };
            let Ok(next) = c.apply(&steps, policy) else { continue };
            checked += 1;
            let bytes = postcard::to_allocvec(&next).unwrap();
            assert_eq!(postcard::from_bytes::<Membership>(&bytes).unwrap(), next, "{c:?} {steps:?}");
            let (mut v, mut l): (BTreeSet<NodeId>, BTreeSet<NodeId>) =
                (c.voters().iter().copied().collect(), c.learners().iter().copied().collect());
            for s in &steps {
                match s {
                    ChangeStep::AddLearner { node, .. } => {
                        l.insert(*node);
                    }
                    ChangeStep::AddVoter { node, .. } | ChangeStep::Promote { node } => {
                        l.remove(node);
                        v.insert(*node);
                    }
                    ChangeStep::Demote { node } => {
                        v.remove(node);
                        l.insert(*node);
                    }
                    ChangeStep::Remove { node } => {
                        v.remove(node);
                        l.remove(node);
                    }
                    ChangeStep::SetAddress { .. } => {}
                }
            }
            assert_eq!(next.voters(), &v.iter().copied().collect::<Vec<_>>()[..]);
            assert_eq!(next.learners(), &l.iter().copied().collect::<Vec<_>>()[..]);
            let old: BTreeSet<NodeId> = c.voters().iter().copied().collect();
            let changed = old.symmetric_difference(&v).count();
            let joint = changed > 1 || (changed == 1 && policy == JointPolicy::Always);
            assert_eq!(next.is_joint(), joint, "{c:?} {steps:?}");
            if !joint {
                // Any majority of the old voters meets any majority of the new.
                let (a, b) = (old.len(), v.len());
                let common = old.intersection(&v).count();
                assert!(a / 2 + 1 + b / 2 + 1 > a + b - common, "{old:?} -> {v:?}");
            }
            assert!(!next.leave_joint().is_joint());
        }
        assert!(checked > 5_000, "too few valid changes drawn: {checked}");
    }
}
