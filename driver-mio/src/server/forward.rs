//! [`Forward`]: this node's client connection to another node's native port, over which RESP
//! sessions' requests travel when their clerk sends them there (a node that does not lead
//! forwards to the leader, so Redis clients need not know who leads). Requests of all
//! sessions share the connection; each carries an id that its answer repeats.

use std::collections::HashMap;
use std::net::SocketAddr;

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Registry, Token};
use skiff_core::codec::{decode_frame, encode_frame};
use skiff_core::kv::{Command, Reply};
use skiff_core::wire::{ClientRequest, ClientResponse};
use skiff_core::NodeId;

use super::conn::{Conn, ReadState};
use super::peers::frame_error;
use super::wire::{dial_wire, Dial};

/// An answer for a RESP session: (session, attempt, reply).
pub(crate) type SessionReply = (Token, u64, Reply);

/// The connection to node `node`'s native port.
#[derive(Debug)]
pub(crate) struct Forward {
    pub(crate) node: NodeId,
    addr: SocketAddr,
    token: Token,
    conn: Option<Conn>,
    next_id: u64,
    /// Request id -> (session, attempt).
    pending: HashMap<u64, (Token, u64)>,
    /// TLS to the node's native port, when it requires it.
    dial: Option<Dial>,
}

impl Forward {
    pub(crate) fn new(node: NodeId, addr: SocketAddr, token: Token, dial: Option<Dial>) -> Forward {
        Forward { node, addr, token, conn: None, next_id: 0, pending: HashMap::new(), dial }
    }

    /// Sends attempt `attempt` of `command` for `session`, dialling first if needed. On
    /// failure the session's answer is a `Timeout` (its clerk tries another server).
    pub(crate) fn send(
        &mut self,
        registry: &Registry,
        session: Token,
        attempt: u64,
        command: Command,
        credentials: Option<skiff_core::wire::Token>,
        out: &mut Vec<SessionReply>,
    ) {
        if self.conn.is_none() {
            let dialled = TcpStream::connect(self.addr).and_then(|s| {
                s.set_nodelay(true)?;
                let (wire, by) = dial_wire(self.dial.as_ref(), self.node)?;
                Conn::register(s, self.token, registry, wire, by)
            });
            match dialled {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    tracing::debug!(node = self.node.0, error = %e, "cannot forward");
                    out.push((session, attempt, Reply::Timeout));
                    return;
                }
            }
        }
        let conn = self.conn.as_mut().expect("dialled above");
        self.next_id += 1;
        if encode_frame(&ClientRequest::new(self.next_id, command).with_token(credentials), &mut conn.wbuf).is_err() {
            out.push((session, attempt, Reply::Timeout));
            return;
        }
        self.pending.insert(self.next_id, (session, attempt));
    }

    /// Whether requests sent over this connection wait for answers.
    pub(crate) fn busy(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Readiness: answers are read and handed out; a failed connection answers `Timeout` to
    /// everything it carried.
    pub(crate) fn on_event(&mut self, event: &Event, registry: &Registry, max_frame: u64, out: &mut Vec<SessionReply>) {
        let Some(conn) = self.conn.as_mut() else { return };
        conn.saw(event);
        loop {
            let state = conn.fill();
            let mut used = 0;
            let mut bad = None;
            loop {
                match decode_frame::<ClientResponse>(&conn.rbuf[used..], max_frame) {
                    Ok(Some((resp, n))) => {
                        used += n;
                        if let Some((session, attempt)) = self.pending.remove(&resp.id) {
                            out.push((session, attempt, resp.reply));
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        bad = Some(frame_error(&e));
                        break;
                    }
                }
            }
            conn.rbuf.drain(..used);
            if let Some(why) = bad {
                tracing::warn!(node = self.node.0, "bad answer from a forward: {why}");
                return self.fail(registry, out);
            }
            match state {
                ReadState::More => continue,
                ReadState::Drained => break,
                ReadState::Closed => return self.fail(registry, out),
            }
        }
        self.flush(registry, out);
    }

    /// Fails the connection if its TLS handshake did not complete in time (what it carried
    /// is answered `Timeout`: the sessions' clerks try another server).
    pub(crate) fn check_handshake(
        &mut self,
        now: std::time::Instant,
        registry: &Registry,
        out: &mut Vec<SessionReply>,
    ) {
        if self.conn.as_mut().is_some_and(|c| c.handshake_late(now)) {
            self.fail(registry, out);
        }
    }

    pub(crate) fn flush(&mut self, registry: &Registry, out: &mut Vec<SessionReply>) {
        let Some(conn) = self.conn.as_mut() else { return };
        if conn.flush(registry).is_err() {
            self.fail(registry, out);
        }
    }

    fn fail(&mut self, registry: &Registry, out: &mut Vec<SessionReply>) {
        if let Some(mut c) = self.conn.take() {
            c.deregister(registry);
        }
        for (_, (session, attempt)) in self.pending.drain() {
            out.push((session, attempt, Reply::Timeout));
        }
    }
}
