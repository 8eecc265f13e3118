//! # skiff-mio
//!
//! `skiff-node`, the standalone skiff server, and the `skiff` CLI: the event loop that runs a
//! node on mio ([`server`]), the RESP2 protocol ([`resp`]) so that Redis clients can talk to
//! it, its configuration ([`config`]), starting a node from it ([`node`]), and the TLS
//! certificates `skiff certs` makes ([`certs`]).

/// The allocator `skiff-node` and `skiff` install (`#[global_allocator]` in each binary, not
/// here, so other programs linking this crate, such as the fuzzer with its counting
/// allocator, keep their own): jemalloc with the feature `jemalloc` (see `Cargo.toml`),
/// else the system's.
#[cfg(feature = "jemalloc")]
pub type Allocator = tikv_jemallocator::Jemalloc;
#[cfg(not(feature = "jemalloc"))]
pub type Allocator = std::alloc::System;

pub mod certs;
pub mod cli;
pub mod config;
pub mod metrics;
pub mod node;
pub mod resp;
pub mod server;
