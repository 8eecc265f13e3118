//! # skiff-mio
//!
//! `skiff-node`, the standalone skiff server, and the `skiff` CLI: the event loop that runs a
//! node on mio ([`server`]), the RESP2 protocol ([`resp`]) so that Redis clients can talk to
//! it, its configuration ([`config`]), and starting a node from it ([`node`]).

pub mod cli;
pub mod config;
pub mod metrics;
pub mod node;
pub mod resp;
pub mod server;
