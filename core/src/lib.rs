//! # skiff-core
//!
//! A Raft consensus state machine with no I/O, no clock, no threads and no OS randomness:
//! `#![no_std]` plus `alloc`, so it embeds in any runtime. A driver feeds it [`Input`]s
//! (ticks, received messages, proposals, storage acknowledgements) and carries out the
//! [`Output`]s it returns (send messages, persist records, apply committed entries).
//! The same inputs always give the same outputs.
//!
//! ## Run loop
//!
//! A driver is one loop. Its only rules: send every `Send` at once; make every `Persist`
//! durable before reporting `Persisted { up_to: seq }` (one report may cover many, so a
//! driver can group-commit); apply `Apply` entries in order.
//!
//! ```
//! use skiff_core::{Config, Input, Node, NodeId, Output, Proposal, Restored};
//!
//! // A one-node cluster whose "disk" and "network" are vectors.
//! let config = Config::builder(NodeId(1), [NodeId(1)], 42).build().expect("valid config");
//! let mut node = Node::new(config, Restored::default()).expect("fresh state");
//! let mut disk = Vec::new();
//! let mut applied = Vec::new();
//! let mut inputs = vec![Input::Campaign];
//! let mut proposed = false;
//! while let Some(input) = inputs.pop() {
//!     for output in node.step(input) {
//!         match output {
//!             Output::Send(msg) => { /* transport.send(msg.to, msg) */ let _ = msg; }
//!             Output::Persist(record) => {
//!                 let seq = record.seq;
//!                 disk.push(record); // append + fsync in a real driver
//!                 inputs.push(Input::Persisted { up_to: seq });
//!             }
//!             Output::Apply(entries) => applied.extend(entries),
//!             Output::ApplySnapshot(snapshot) => { /* replace the state machine */ let _ = snapshot; }
//!             Output::Accepted { .. } | Output::ProposalDropped { .. } => {}
//!             Output::RoleChanged { .. } => {}
//!             // The configuration changed: update the transport's peers.
//!             Output::MembershipChanged { .. } => {}
//!             // ReadIndex: serve read `id` once `applied` reaches `index`.
//!             Output::ReadReady { .. } | Output::ReadDropped { .. } => {}
//!             // Only with `snapshots_in_storage`: read the stored snapshot back.
//!             Output::LoadSnapshot { .. } => {}
//!         }
//!     }
//!     if node.view().commit.0 >= 1 && !proposed {
//!         proposed = true;
//!         inputs.push(Input::Propose(Proposal { id: 7, data: "x=1".into() }));
//!     }
//! }
//! // The leader's no-op entry and the command, in order.
//! assert_eq!(applied.len(), 2);
//! assert_eq!(&applied[1].data[..], b"x=1");
//! ```
//!
//! ## Contracts
//!
//! - **The configuration lives in the log.** A node acts on the latest configuration its
//!   log holds (a `Config` entry, or its snapshot's), committed or not; `Config`'s voters
//!   only bootstrap a node whose storage holds none. Entries of kind `Config` are skipped by
//!   the service; `Output::MembershipChanged` reports each change.
//! - **Persistence gating is inside the core.** Responses (vote grants, append
//!   acknowledgements) are held until the persist that made them true is acknowledged; a
//!   candidate counts its own vote, and a leader its own log, only once durable.
//! - **One `Persist` is one atomic record**: hard state, truncation point and entries.
//! - **`Apply`** carries committed, locally durable entries in index order, each once.
//! - **Bad network input is never an error**: it is ignored and counted in [`View::ignored`].
//! - **Time is ticks** and **randomness is the seed in [`Config`]**.
//!
//! ## Memory
//!
//! The whole log since the last snapshot lives in memory (entries share their payloads with
//! the `Persist` and `Apply` outputs, so the driver holds no second copy). Its size is bounded
//! only by how often the service snapshots: a driver that never hands back
//! `Input::Snapshot` grows the log without bound. The KV service's policy
//! ([`kv::Service::snapshot_due`]) snapshots once the persisted Raft state reaches 9/10 of
//! `ServiceConfig::max_raft_state`, which bounds the in-memory log to about that many bytes
//! plus what arrives while the snapshot is taken.
//!
//! ## The KV service
//!
//! [`kv`] holds the replicated key/value service, written once for every runtime:
//! [`kv::KvState`] (the state machine with exactly-once client sessions), [`kv::Service`] (the
//! server side: client requests, the core's outputs and the time in; proposals, reads and
//! replies out) and [`kv::Clerk`] (the client's retries). [`wire`] has the frames drivers
//! exchange. `examples/tokio_cluster.rs` runs three nodes with the service on tokio tasks in
//! about two hundred lines.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod codec;
mod config;
mod io;
pub mod kv;
mod membership;
mod message;
mod planted;
pub mod raft;
pub mod rng;
mod types;
pub mod wire;

pub use config::{Config, ConfigBuilder, ConfigError};
pub use io::{DropReason, Ignored, Input, Output, Persist, Proposal, RestoreError, Restored, Role, View};
pub use membership::{
    ChangeRefused, ChangeStep, JointPolicy, Membership, MembershipChange, MembershipError, StepRefused,
};
pub use message::{AppendResult, Message, MessageBody};
pub use planted::PlantedBug;
pub use raft::Node;
pub use types::{Entry, EntryKind, HardState, Index, NodeId, Snapshot, SnapshotMeta, Term, ENTRY_OVERHEAD};
