//! The KV service on the std runtime: [`KvService`] (the state machine on a node, executing
//! requests), [`KvServer`] (its TCP client port) and [`KvClerk`] (a blocking client).

mod clerk;
mod server;
mod service;

pub use clerk::{fresh_client_id, ClerkError, KvClerk};
pub use server::{ClientRequest, ClientResponse, KvServer};
pub use service::{validate_op, KvOptions, KvService};
