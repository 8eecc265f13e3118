//! # skiff-std
//!
//! The std driver of the skiff Raft core: [`storage`] (a segmented, checksummed WAL and
//! atomically written snapshots, or memory for tests), [`transport`] (TCP with a handshake and
//! bounded queues, or anything implementing [`transport::Transport`]) and [`runtime`] (a
//! [`runtime::RaftNode`] running the core on threads, driven through a cloneable handle, with an
//! apply stream).

pub mod accept;
pub mod address;
pub mod kv;
pub mod runtime;
pub mod storage;
pub mod tls;
pub mod transport;
