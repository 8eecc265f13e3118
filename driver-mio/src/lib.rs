//! # skiff-mio
//!
//! The pieces of `skiff-node`, the standalone skiff server: the RESP2 protocol ([`resp`]) so
//! that Redis clients can talk to it, and its configuration ([`config`]).

pub mod config;
pub mod resp;
