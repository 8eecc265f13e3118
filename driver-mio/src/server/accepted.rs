//! [`Accepted`]: one connection the event loop accepted (a peer dialling in, a native client,
//! a RESP client) and what its backpressure needs to know of it.

use std::time::Instant;

use skiff_core::NodeId;

use super::conn::{Conn, MAX_OUTPUT};
use super::native::NativeSession;
use super::resp_session::RespSession;

/// Requests of one client connection in progress (or queued) before reading from it waits.
pub(super) const MAX_PIPELINE: usize = 1024;
/// Bytes of a RESP connection's parsed commands waiting their turn before reading from it
/// waits.
const MAX_QUEUED_BYTES: usize = 4 << 20;

/// Whether reading more from a RESP session should wait (see [`Accepted::saturated`]).
pub(super) fn resp_saturated(s: &RespSession) -> bool {
    s.queued() >= MAX_PIPELINE || s.queued_bytes() >= MAX_QUEUED_BYTES || s.conn.pending() >= MAX_OUTPUT
}

/// Which listener a connection came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Port {
    Peer,
    Native,
    Resp,
}

/// An accepted connection.
#[derive(Debug)]
pub(super) enum Accepted {
    /// A peer dialling in; `from` is set by its handshake, due by `deadline`.
    Peer {
        conn: Conn,
        from: Option<NodeId>,
        deadline: Instant,
    },
    Native(NativeSession),
    Resp(Box<RespSession>),
}

impl Accepted {
    /// Bytes a client connection holds in its buffers (0 for peers: their frames are bounded
    /// by the peer frame limit and their number by the peer port's).
    pub(super) fn buffered(&self) -> usize {
        match self {
            Accepted::Peer { .. } => 0,
            Accepted::Native(s) => s.conn.rbuf.len() + s.conn.pending(),
            Accepted::Resp(s) => s.buffered(),
        }
    }

    pub(super) fn port(&self) -> Port {
        match self {
            Accepted::Peer { .. } => Port::Peer,
            Accepted::Native(_) => Port::Native,
            Accepted::Resp(_) => Port::Resp,
        }
    }

    pub(super) fn conn(&mut self) -> &mut Conn {
        match self {
            Accepted::Peer { conn, .. } => conn,
            Accepted::Native(s) => &mut s.conn,
            Accepted::Resp(s) => &mut s.conn,
        }
    }

    /// Whether the connection can go: closing, everything written, nothing in progress.
    pub(super) fn finished(&self) -> bool {
        match self {
            Accepted::Peer { conn, .. } => conn.finished(),
            Accepted::Native(s) => s.conn.finished() && s.in_flight == 0,
            Accepted::Resp(s) => s.conn.finished() && s.idle(),
        }
    }

    /// What the client asked and was not answered yet.
    pub(super) fn busy(&self) -> bool {
        match self {
            Accepted::Peer { .. } => false,
            Accepted::Native(s) => s.in_flight > 0 || s.conn.pending() > 0,
            Accepted::Resp(s) => !s.idle() || s.conn.pending() > 0,
        }
    }

    /// Whether reading more from this client should wait: too many of its requests are in
    /// progress, or too much output waits for it to read (backpressure: the node's memory
    /// stays bounded whatever a client sends).
    pub(super) fn saturated(&self) -> bool {
        match self {
            Accepted::Peer { .. } => false,
            Accepted::Native(s) => s.in_flight >= MAX_PIPELINE || s.conn.pending() >= MAX_OUTPUT,
            Accepted::Resp(s) => resp_saturated(s),
        }
    }
}
