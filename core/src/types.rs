//! Newtypes and records shared by every part of the core: terms, indexes, node ids, log
//! entries and the durable hard state.

use bytes::Bytes;
use core::fmt;
use serde::{Deserialize, Serialize};

use crate::membership::Membership;

/// A Raft term. Terms only grow on a node; `Term(0)` is the term before any election.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Term(pub u64);

/// A log position. `Index(0)` is the empty position before the first entry; the first entry
/// of a log is `Index(1)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Index(pub u64);

/// A node's identity within its cluster. Any `u64` is valid; ids need not be dense.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl Index {
    /// The next position (saturating: an index near `u64::MAX` only comes from forged
    /// input, which must not panic the node).
    #[must_use]
    pub fn next(self) -> Index {
        Index(self.0.saturating_add(1))
    }
    /// The previous position, saturating at `Index(0)`.
    #[must_use]
    pub fn prev(self) -> Index {
        Index(self.0.saturating_sub(1))
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}
impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "i{}", self.0)
    }
}
impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// What an entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntryKind {
    /// A command proposed by the service; applied to its state machine.
    Command,
    /// The empty entry a new leader appends to commit entries of earlier terms (Raft §5.4.2,
    /// §8). The service skips it, but it still occupies an index.
    Noop,
    /// A new cluster configuration: `data` is a postcard-encoded
    /// [`Membership`](crate::Membership), the whole configuration (never a delta). It takes
    /// effect when appended, committed or not (Raft §4.1); the service skips it. Last, so
    /// that entries written before it existed decode unchanged.
    Config,
}

/// One log entry. Cloning is cheap: the payload is reference-counted.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub index: Index,
    pub kind: EntryKind,
    pub data: Bytes,
}

impl Entry {
    /// Bytes this entry counts for in flow control and message-size limits: the payload plus
    /// a fixed allowance for the header.
    pub fn size(&self) -> u64 {
        self.data.len() as u64 + ENTRY_OVERHEAD
    }
}

/// Header allowance per entry in byte accounting (term, index, kind, length prefix).
pub const ENTRY_OVERHEAD: u64 = 24;

/// The state a node must keep on stable storage besides its log.
///
/// `commit` is stored opportunistically: it rides along in every `Persist` but never causes
/// one on its own, so after a restart it is a lower bound on what was committed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HardState {
    pub term: Term,
    pub vote: Option<NodeId>,
    pub commit: Index,
}

/// What a snapshot stands for: the state after applying every entry up to `index`, whose
/// entry had `term`, in the configuration `membership`, set by the entry at
/// `membership_index` (0: the bootstrap configuration, set by no entry).
///
/// Invariant: `membership_index <= index`. The core never makes a snapshot whose membership
/// is empty: only the service's own starting state (index 0) has one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub index: Index,
    pub term: Term,
    pub membership: Membership,
    pub membership_index: Index,
}

/// A snapshot of the service's state, opaque to the core. Cloning shares the bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: Bytes,
}
