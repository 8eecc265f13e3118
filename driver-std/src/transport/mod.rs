//! Moving Raft messages between nodes. The runtime hands every outgoing message to a
//! [`Transport`] and receives incoming ones through an [`Inbox`]. [`TcpTransport`] is the real
//! one; test clusters plug in their own (a fault-injecting in-process network).

mod tcp;

use std::fmt;
use std::sync::Arc;

use skiff_core::{Membership, Message};

pub use tcp::{TcpOptions, TcpTransport};

/// Outgoing messages. Raft tolerates loss, so a transport never blocks the node: when a
/// peer is slow or down it drops.
pub trait Transport: Send + 'static {
    /// Queues `msg` for `msg.to`.
    fn send(&mut self, msg: Message);
    /// The configuration changed: learn the members' addresses (see
    /// [`crate::address::PeerAddress`]) and let go of links to nodes no longer in it. Messages
    /// may still come for a removed node for a while (the core tells it of its removal), so
    /// a transport must keep its address. The default does nothing (transports whose peers
    /// are fixed).
    fn set_members(&mut self, members: &Membership) {
        let _ = members;
    }
    /// Stops every thread the transport runs and waits for them.
    fn shutdown(&mut self);
}

/// Where a transport delivers received messages (into the node's event queue).
#[derive(Clone)]
pub struct Inbox(Arc<dyn Fn(Message) -> bool + Send + Sync>);

impl Inbox {
    /// An inbox calling `deliver` for every message; `deliver` returns false once the node
    /// is gone.
    pub fn new(deliver: impl Fn(Message) -> bool + Send + Sync + 'static) -> Inbox {
        Inbox(Arc::new(deliver))
    }

    /// Hands `msg` to the node. Returns false once the node has stopped.
    pub fn deliver(&self, msg: Message) -> bool {
        (self.0)(msg)
    }
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Inbox")
    }
}
