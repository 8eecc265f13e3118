//! # skiff-verify
//!
//! Verification of skiff-core: a deterministic simulator ([`sim`]) with a faulty network and
//! crashing disks, the Raft safety invariants checked after every event ([`checker`]), swarm
//! testing where each seed draws its own fault profile ([`swarm`]) and membership churn
//! ([`churn`]), quickcheck fault
//! schedules that shrink ([`schedule`]), and golden interaction scripts ([`script`]).
//!
//! Every failure names its seed; `skiff-verify replay --seed S` reruns it with a trace.

pub mod checker;
pub mod churn;
pub mod explore;
pub mod harness;
pub mod lab;
pub mod linearizability;
pub mod rng;
pub mod schedule;
pub mod script;
pub mod sim;
pub mod swarm;
