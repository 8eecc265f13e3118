//! The KV service on the std runtime: [`KvService`] (`skiff_core::kv::Service` on a node,
//! executing requests), [`KvServer`] (its TCP client port) and [`KvClerk`] (a blocking client).

mod clerk;
mod server;
mod service;

pub use clerk::{ClerkError, KvClerk};
pub use server::KvServer;
pub use service::{wall_ms, KvOptions, KvService};
