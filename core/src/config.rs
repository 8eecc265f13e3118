//! Node configuration, validated when built: a `Config` that exists is a valid one.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use bytes::Bytes;

use crate::membership::Membership;
use crate::planted::PlantedBug;
use crate::types::NodeId;

/// A validated node configuration. Build one with [`Config::builder`] (a node of a new
/// cluster) or [`Config::joining`] (a node waiting to be added to a running one).
///
/// The voters given here are the *bootstrap* configuration: a node uses it only while its
/// log and snapshot hold no configuration (a fresh node of a new cluster). Once changes are
/// made, the configuration lives in the log ([`crate::Membership`]).
///
/// Invariants: `voters` is sorted, free of duplicates and contains `id` (empty when
/// joining); `bootstrap` is built from `voters` and `initial_addresses`;
/// `heartbeat_ticks >= 1`; `heartbeat_ticks < election_ticks_min < election_ticks_max`;
/// every flow-control limit is at least 1; lease reads imply check-quorum and a lease of
/// at least one tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    id: NodeId,
    voters: Vec<NodeId>,
    initial_addresses: BTreeMap<NodeId, Bytes>,
    joining: bool,
    bootstrap: Membership,
    seed: u64,
    heartbeat_ticks: u32,
    election_ticks_min: u32,
    election_ticks_max: u32,
    pre_vote: bool,
    check_quorum: bool,
    /// Lease reads on, with this clock-drift bound in parts per thousand.
    lease_drift_permille: Option<u32>,
    max_entries_per_msg: usize,
    max_bytes_per_msg: u64,
    max_inflight_msgs: usize,
    max_inflight_bytes: u64,
    snapshot_chunk_bytes: u64,
    max_inflight_snapshot_chunks: u64,
    max_entry_bytes: usize,
    max_snapshot_bytes: u64,
    /// Drop the snapshot's bytes once storage holds them; load them back to send them.
    snapshots_in_storage: bool,
    #[cfg(feature = "planted-bugs")]
    planted: Option<PlantedBug>,
}

/// Why a configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The voter set is empty.
    NoVoters,
    /// The node's own id is not among the voters.
    SelfNotVoter { id: NodeId },
    /// The same id appears twice in the voter set.
    DuplicateVoter { id: NodeId },
    /// An initial address is given for a node that is not a voter (or for a joining node,
    /// which learns addresses from its cluster).
    AddressOfNonVoter { id: NodeId },
    /// The heartbeat interval is zero ticks.
    ZeroHeartbeat,
    /// The minimum election timeout must exceed the heartbeat interval, or followers would
    /// time out between two heartbeats of a healthy leader.
    ElectionNotAboveHeartbeat { election_min: u32, heartbeat: u32 },
    /// The election timeout range `[min, max)` is empty.
    EmptyElectionRange { min: u32, max: u32 },
    /// A flow-control limit is zero, which would stall replication forever.
    ZeroLimit { name: &'static str },
    /// Lease reads rely on followers refusing votes while they hear from a leader, which
    /// check-quorum provides.
    LeaseWithoutCheckQuorum,
    /// The lease left by the election timeout and the drift bound is shorter than a tick
    /// (or the bound is 1000 permille or more).
    LeaseTooShort { election_min: u32, drift_permille: u32 },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NoVoters => write!(f, "the voter set is empty"),
            ConfigError::SelfNotVoter { id } => {
                write!(f, "node id {} is not in the voter set", id.0)
            }
            ConfigError::DuplicateVoter { id } => {
                write!(f, "node id {} appears twice in the voter set", id.0)
            }
            ConfigError::AddressOfNonVoter { id } => {
                write!(f, "an initial address is given for node id {}, which is not a bootstrap voter", id.0)
            }
            ConfigError::ZeroHeartbeat => write!(f, "the heartbeat interval must be at least 1 tick"),
            ConfigError::ElectionNotAboveHeartbeat { election_min, heartbeat } => write!(
                f,
                "the minimum election timeout ({election_min} ticks) must be above the heartbeat interval ({heartbeat} ticks)"
            ),
            ConfigError::EmptyElectionRange { min, max } => write!(
                f,
                "the election timeout range [{min}, {max}) is empty: max must be above min"
            ),
            ConfigError::ZeroLimit { name } => write!(f, "{name} must be at least 1"),
            ConfigError::LeaseWithoutCheckQuorum => {
                write!(f, "lease reads need check-quorum: followers must refuse votes while they hear from a leader")
            }
            ConfigError::LeaseTooShort { election_min, drift_permille } => write!(
                f,
                "lease reads: a minimum election timeout of {election_min} ticks with a clock-drift bound of {drift_permille} permille leaves no lease; raise the timeout or lower the bound"
            ),
        }
    }
}

impl Config {
    /// Starts a configuration for node `id` of a cluster bootstrapped with `voters`, with
    /// `seed` for the core's PRNG (drivers mix OS entropy with the node id; simulators derive
    /// it from the run's seed). Every other setting has a default that suits a 10 ms tick.
    /// `voters` matter only to a node whose storage holds no configuration yet.
    pub fn builder(id: NodeId, voters: impl IntoIterator<Item = NodeId>, seed: u64) -> ConfigBuilder {
        Config::start(id, voters.into_iter().collect(), false, seed)
    }

    /// Starts a configuration for node `id` that joins a running cluster: it starts with
    /// no configuration, never campaigns, and waits for a leader to add it (its first append
    /// or snapshot brings the cluster's configuration). A node restarted with data uses the
    /// configuration its storage holds, whichever constructor made its `Config`.
    pub fn joining(id: NodeId, seed: u64) -> ConfigBuilder {
        Config::start(id, Vec::new(), true, seed)
    }

    fn start(id: NodeId, voters: Vec<NodeId>, joining: bool, seed: u64) -> ConfigBuilder {
        ConfigBuilder {
            config: Config {
                id,
                voters,
                initial_addresses: BTreeMap::new(),
                joining,
                bootstrap: Membership::empty(),
                seed,
                heartbeat_ticks: 2,
                election_ticks_min: 10,
                election_ticks_max: 20,
                pre_vote: true,
                check_quorum: true,
                lease_drift_permille: None,
                max_entries_per_msg: 512,
                max_bytes_per_msg: 1 << 20,
                max_inflight_msgs: 64,
                max_inflight_bytes: 16 << 20,
                snapshot_chunk_bytes: 64 << 10,
                max_inflight_snapshot_chunks: 4,
                max_entry_bytes: 16 << 20,
                max_snapshot_bytes: 4 << 30,
                snapshots_in_storage: false,
                #[cfg(feature = "planted-bugs")]
                planted: None,
            },
        }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }
    /// The bootstrap voters, sorted (empty for a joining node).
    pub fn initial_voters(&self) -> &[NodeId] {
        &self.voters
    }
    /// Whether this node was configured to join a running cluster.
    pub fn is_joining(&self) -> bool {
        self.joining
    }
    /// The configuration a node uses while its log and snapshot hold none: the bootstrap
    /// voters with their initial addresses, or [`Membership::empty`] when joining.
    pub fn bootstrap_membership(&self) -> &Membership {
        &self.bootstrap
    }
    pub fn seed(&self) -> u64 {
        self.seed
    }
    pub fn heartbeat_ticks(&self) -> u32 {
        self.heartbeat_ticks
    }
    pub fn election_ticks_min(&self) -> u32 {
        self.election_ticks_min
    }
    pub fn election_ticks_max(&self) -> u32 {
        self.election_ticks_max
    }
    pub fn pre_vote(&self) -> bool {
        self.pre_vote
    }
    pub fn check_quorum(&self) -> bool {
        self.check_quorum
    }
    /// The clock-drift bound lease reads were enabled with (parts per thousand), or `None`
    /// when reads go through ReadIndex.
    pub fn lease_drift_permille(&self) -> Option<u32> {
        self.lease_drift_permille
    }
    /// Ticks a leader's lease lasts from the send of a heartbeat a quorum answered (0 when
    /// lease reads are off). A follower that received that heartbeat refuses votes for
    /// `election_ticks_min` of its ticks, which span at least `election_ticks_min - 1` tick
    /// lengths after the receipt; a leader's tick may run fast by the drift bound `d` and a
    /// follower's slow by as much, so the lease is `(min - 1) * (1 - d) / (1 + d)` ticks,
    /// rounded down.
    pub fn lease_ticks(&self) -> u32 {
        match self.lease_drift_permille {
            Some(d) if d < 1000 => {
                let min = u64::from(self.election_ticks_min.saturating_sub(1));
                (min * u64::from(1000 - d) / u64::from(1000 + d)) as u32
            }
            _ => 0,
        }
    }
    pub fn max_entries_per_msg(&self) -> usize {
        self.max_entries_per_msg
    }
    pub fn max_bytes_per_msg(&self) -> u64 {
        self.max_bytes_per_msg
    }
    pub fn max_inflight_msgs(&self) -> usize {
        self.max_inflight_msgs
    }
    pub fn max_inflight_bytes(&self) -> u64 {
        self.max_inflight_bytes
    }
    pub fn snapshot_chunk_bytes(&self) -> u64 {
        self.snapshot_chunk_bytes
    }
    pub fn max_entry_bytes(&self) -> usize {
        self.max_entry_bytes
    }

    /// Largest snapshot a follower takes from a leader, in bytes.
    pub fn max_snapshot_bytes(&self) -> u64 {
        self.max_snapshot_bytes
    }
    pub fn max_inflight_snapshot_chunks(&self) -> u64 {
        self.max_inflight_snapshot_chunks
    }
    /// Whether the node keeps its snapshot's bytes only while it needs them (see
    /// [`ConfigBuilder::snapshots_in_storage`]).
    pub fn snapshots_in_storage(&self) -> bool {
        self.snapshots_in_storage
    }

    /// Whether `bug` was planted (never, without the `planted-bugs` feature).
    #[inline]
    pub(crate) fn has_bug(&self, bug: PlantedBug) -> bool {
        #[cfg(feature = "planted-bugs")]
        {
            self.planted == Some(bug)
        }
        #[cfg(not(feature = "planted-bugs"))]
        {
            let _ = bug;
            false
        }
    }
}

/// Builds a [`Config`]; `build` validates it.
#[derive(Clone, Debug)]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// Plants `bug` (verification only; see [`PlantedBug`]).
    #[cfg(feature = "planted-bugs")]
    pub fn plant(mut self, bug: PlantedBug) -> Self {
        self.config.planted = Some(bug);
        self
    }

    /// Addresses of the bootstrap voters, opaque to the core (the driver defines the bytes):
    /// they go into the cluster's configuration, so nodes added later learn where the first
    /// ones are. Only for voters given to [`Config::builder`].
    pub fn initial_addresses(mut self, addresses: BTreeMap<NodeId, Bytes>) -> Self {
        self.config.initial_addresses = addresses;
        self
    }
    /// Heartbeat interval of a leader, in ticks.
    pub fn heartbeat_ticks(mut self, ticks: u32) -> Self {
        self.config.heartbeat_ticks = ticks;
        self
    }
    /// Election timeout range `[min, max)` in ticks; a fresh timeout is drawn uniformly from
    /// it at every reset.
    pub fn election_ticks(mut self, min: u32, max: u32) -> Self {
        self.config.election_ticks_min = min;
        self.config.election_ticks_max = max;
        self
    }
    /// Pre-vote (Raft thesis §9.6): a node asks whether it could win before bumping its term,
    /// so a partitioned node rejoining does not disrupt a stable leader. A pre-vote is refused
    /// by a node that heard from a leader within the minimum election timeout, whether or
    /// not check-quorum is on. Default on.
    pub fn pre_vote(mut self, on: bool) -> Self {
        self.config.pre_vote = on;
        self
    }
    /// Check-quorum: a leader that has not heard from a majority within an election timeout
    /// steps down, and followers that heard from a leader recently ignore (real) vote
    /// requests, except from a leadership transfer (leader lease). Default on.
    pub fn check_quorum(mut self, on: bool) -> Self {
        self.config.check_quorum = on;
        self
    }
    /// Lease reads (Raft thesis §6.4.1), off by default: a leader answers a read at once,
    /// with no heartbeat round, while a quorum answered a heartbeat it sent less than
    /// [`Config::lease_ticks`] ago, no leadership transfer was started in its term, and it
    /// has committed an entry of its term; otherwise the read goes through ReadIndex.
    /// `drift_permille` bounds how far any node's tick length may stray from the nominal one,
    /// either way (parts per thousand; 50 = 5%). Safe only if that bound holds and the
    /// driver delivers every elapsed tick before each read and each peer message. Needs
    /// check-quorum. With leases on, a node refuses votes for an election timeout after it
    /// starts, and a follower that hears a leader ignores [`crate::Input::Campaign`].
    pub fn lease_reads(mut self, drift_permille: u32) -> Self {
        self.config.lease_drift_permille = Some(drift_permille);
        self
    }
    /// Largest number of entries in one append message.
    pub fn max_entries_per_msg(mut self, n: usize) -> Self {
        self.config.max_entries_per_msg = n;
        self
    }
    /// Soft limit on the entry bytes of one append message (one entry always fits).
    pub fn max_bytes_per_msg(mut self, n: u64) -> Self {
        self.config.max_bytes_per_msg = n;
        self
    }
    /// Largest number of unacknowledged append messages per follower.
    pub fn max_inflight_msgs(mut self, n: usize) -> Self {
        self.config.max_inflight_msgs = n;
        self
    }
    /// Largest number of unacknowledged entry bytes per follower.
    pub fn max_inflight_bytes(mut self, n: u64) -> Self {
        self.config.max_inflight_bytes = n;
        self
    }

    /// Bytes of snapshot data per InstallSnapshot message.
    pub fn snapshot_chunk_bytes(mut self, n: u64) -> Self {
        self.config.snapshot_chunk_bytes = n;
        self
    }
    /// Unacknowledged InstallSnapshot chunks per follower.
    pub fn max_inflight_snapshot_chunks(mut self, n: u64) -> Self {
        self.config.max_inflight_snapshot_chunks = n;
        self
    }
    /// Largest command a proposal may carry, in bytes (default 16 MiB); a larger one is
    /// refused with [`crate::DropReason::TooLarge`] and never reaches the log. Keep it below
    /// the transport's frame limit (64 MiB in skiff-std and skiff-node), or an entry is
    /// accepted that no append message can carry; skiff-std's WAL takes records to 256 MiB.
    pub fn max_entry_bytes(mut self, n: usize) -> Self {
        self.config.max_entry_bytes = n;
        self
    }

    /// Largest snapshot a follower assembles from a leader's chunks, in bytes (default 4 GiB:
    /// raise it if the state machine's snapshots can be larger). A transfer that passes it
    /// is dropped and counted in `View::ignored.too_large_snapshot`, so a forged or runaway
    /// transfer cannot grow a follower's memory without bound.
    pub fn max_snapshot_bytes(mut self, n: u64) -> Self {
        self.config.max_snapshot_bytes = n;
        self
    }

    /// Keep the latest snapshot's bytes in storage only (default off: the node keeps them in
    /// memory, which every storage supports). On, the node drops its copy once the record
    /// that carried the snapshot is durable and the service has it, and when a follower
    /// needs the snapshot it asks for the bytes with [`crate::Output::LoadSnapshot`], which
    /// the driver answers with [`crate::Input::SnapshotLoaded`]; a transfer holds its bytes
    /// until it ends. The node's memory is then its log, not its log and its state again.
    pub fn snapshots_in_storage(mut self, on: bool) -> Self {
        self.config.snapshots_in_storage = on;
        self
    }

    /// Validates and returns the configuration.
    pub fn build(self) -> Result<Config, ConfigError> {
        let mut c = self.config;
        c.voters.sort_unstable();
        if let Some(w) = c.voters.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfigError::DuplicateVoter { id: w[0] });
        }
        if let Some(id) = c.initial_addresses.keys().find(|id| c.voters.binary_search(id).is_err()) {
            return Err(ConfigError::AddressOfNonVoter { id: *id });
        }
        if !c.joining {
            if c.voters.is_empty() {
                return Err(ConfigError::NoVoters);
            }
            if c.voters.binary_search(&c.id).is_err() {
                return Err(ConfigError::SelfNotVoter { id: c.id });
            }
            c.bootstrap = Membership::new(c.voters.iter().copied(), [], c.initial_addresses.clone())
                .expect("sorted distinct voters with their own addresses");
        }
        if c.heartbeat_ticks == 0 {
            return Err(ConfigError::ZeroHeartbeat);
        }
        if c.election_ticks_min <= c.heartbeat_ticks {
            return Err(ConfigError::ElectionNotAboveHeartbeat {
                election_min: c.election_ticks_min,
                heartbeat: c.heartbeat_ticks,
            });
        }
        if c.election_ticks_max <= c.election_ticks_min {
            return Err(ConfigError::EmptyElectionRange { min: c.election_ticks_min, max: c.election_ticks_max });
        }
        if let Some(drift_permille) = c.lease_drift_permille {
            if !c.check_quorum {
                return Err(ConfigError::LeaseWithoutCheckQuorum);
            }
            if c.lease_ticks() == 0 {
                return Err(ConfigError::LeaseTooShort { election_min: c.election_ticks_min, drift_permille });
            }
        }
        for (name, v) in [
            ("max_entries_per_msg", c.max_entries_per_msg as u64),
            ("max_bytes_per_msg", c.max_bytes_per_msg),
            ("max_inflight_msgs", c.max_inflight_msgs as u64),
            ("max_inflight_bytes", c.max_inflight_bytes),
            ("snapshot_chunk_bytes", c.snapshot_chunk_bytes),
            ("max_inflight_snapshot_chunks", c.max_inflight_snapshot_chunks),
        ] {
            if v == 0 {
                return Err(ConfigError::ZeroLimit { name });
            }
        }
        Ok(c)
    }
}
