//! The KV service on the std runtime: [`KvService`] (the state machine on a node, executing
//! requests), [`KvServer`] (its TCP client port) and [`KvClerk`] (a blocking client).

mod clerk;
mod server;
mod service;

pub use clerk::{ClerkError, KvClerk};
pub use server::{ClientRequest, ClientResponse, KvServer};
pub use service::{KvOptions, KvService};
