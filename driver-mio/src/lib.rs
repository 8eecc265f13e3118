//! # skiff-mio
//!
//! `skiff-node`, the standalone skiff server, and the `skiff` CLI: the event loop that runs a
//! node on mio ([`server`]), the RESP2 protocol ([`resp`]) so that Redis clients can talk to
//! it, its configuration ([`config`]), starting a node from it ([`node`]), and the TLS
//! certificates `skiff certs` makes ([`certs`]).

/// Every binary linking this crate allocates through jemalloc (see `Cargo.toml`); without
/// the feature, through the system's allocator.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

pub mod certs;
pub mod cli;
pub mod config;
pub mod metrics;
pub mod node;
pub mod resp;
pub mod server;
