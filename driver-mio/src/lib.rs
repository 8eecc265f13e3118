//! # skiff-mio
//!
//! `skiff-node`, the standalone skiff server, and the `skiff` CLI: the RESP2 protocol
//! ([`resp`]) and port ([`resp_server`]) so that Redis clients can talk to it, its
//! configuration ([`config`]), and running a node ([`node`]).

pub mod cli;
pub mod config;
pub mod node;
pub mod resp;
pub mod resp_server;
