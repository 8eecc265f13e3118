//! Peer connections on the event loop, with skiff-std's wire format (a [`Hello`] frame, then
//! `len: u32 BE | postcard` messages), so mio and threaded nodes can form one cluster.
//!
//! Each node dials every peer once ([`PeerLink`], write only) and reads what peers dial in
//! ([`read_peer`]). A link that fails is redialled with backoff (10 ms doubling to 1 s);
//! messages for a peer that is down, or whose link already holds [`MAX_QUEUED`] bytes, are
//! dropped: Raft resends.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Registry, Token};
use skiff_core::codec::{decode_frame, encode_frame, CodecError, LEN_PREFIX};
use skiff_core::wire::Hello;
use skiff_core::{Message, NodeId};

use super::conn::{Conn, ReadState};
use super::wire::{dial_wire, Dial};

/// Bytes a link may hold unwritten before new messages are dropped.
pub(crate) const MAX_QUEUED: usize = 32 << 20;
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The outgoing connection to one peer.
#[derive(Debug)]
pub(crate) struct PeerLink {
    pub(crate) id: NodeId,
    addr: SocketAddr,
    token: Token,
    conn: Option<Conn>,
    retry_at: Instant,
    backoff: Duration,
    /// Messages dropped (link down or full).
    pub(crate) dropped: u64,
    /// The peer is no member: the link stays down until a message is sent to it (a removed
    /// node is still told of its removal for a while).
    dormant: bool,
    /// When a message was last queued on the link.
    last_send: Instant,
}

impl PeerLink {
    pub(crate) fn new(id: NodeId, addr: SocketAddr, token: Token, now: Instant) -> PeerLink {
        PeerLink {
            id,
            addr,
            token,
            conn: None,
            retry_at: now,
            backoff: BACKOFF_MIN,
            dropped: 0,
            dormant: false,
            last_send: now,
        }
    }

    pub(crate) fn token(&self) -> Token {
        self.token
    }

    /// Where the link dials.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The peer left the configuration: once its connection fails the link is not redialled
    /// until a message is sent to it (what is queued is still written: a removed node is
    /// told of its removal).
    pub(crate) fn sleep(&mut self) {
        self.dormant = true;
    }

    /// Drops the connection (the link is replaced: its peer moved).
    pub(crate) fn close(&mut self, registry: &Registry) {
        if let Some(mut c) = self.conn.take() {
            c.deregister(registry);
        }
    }

    /// Puts the link of a node that is no member back to sleep once nothing was sent to it
    /// for `idle` (the core stops telling a removed node after a while).
    pub(crate) fn sleep_if_idle(&mut self, now: Instant, idle: Duration) {
        if !self.dormant && now.duration_since(self.last_send) >= idle {
            self.dormant = true;
        }
    }

    /// Whether the link is asleep (see [`PeerLink::sleep`]).
    pub(crate) fn is_dormant(&self) -> bool {
        self.dormant
    }

    /// Queues `msg`; false if it was dropped.
    pub(crate) fn send(&mut self, msg: &Message, max_frame: u64) -> bool {
        // A message for a node asleep wakes its link (dialled at the next tick).
        self.dormant = false;
        self.last_send = Instant::now();
        let Some(conn) = self.conn.as_mut().filter(|c| c.pending() < MAX_QUEUED) else {
            self.dropped += 1;
            return false;
        };
        let start = conn.wbuf.len();
        if encode_frame(msg, &mut conn.wbuf).is_err() || (conn.wbuf.len() - start - LEN_PREFIX) as u64 > max_frame {
            tracing::warn!(to = self.id.0, "dropping a message over the maximum frame size");
            conn.wbuf.truncate(start);
            self.dropped += 1;
            return false;
        }
        true
    }

    /// Dials the peer if the link is down and its backoff has passed (over TLS with `dial`).
    pub(crate) fn connect_if_due(&mut self, now: Instant, registry: &Registry, hello: &Hello, dial: Option<&Dial>) {
        if self.conn.is_some() || self.dormant || now < self.retry_at {
            return;
        }
        let dialled = TcpStream::connect(self.addr).and_then(|s| {
            s.set_nodelay(true)?;
            let (wire, by) = dial_wire(dial, self.id)?;
            Conn::register(s, self.token, registry, wire, by)
        });
        match dialled {
            Ok(mut conn) => {
                let _ = encode_frame(hello, &mut conn.wbuf);
                self.conn = Some(conn);
            }
            Err(e) => self.fail(now, registry, &e),
        }
    }

    /// Readiness on the link. A peer never writes on it: anything read is discarded, and a
    /// read of nothing means the link closed or failed.
    pub(crate) fn on_event(&mut self, now: Instant, registry: &Registry) {
        let Some(conn) = self.conn.as_mut() else { return };
        if conn.fill() == ReadState::Closed {
            let e = match conn.failure.take() {
                // The peer's certificate refused (another CA, another node's name): logged
                // and counted where it was found.
                Some(f) => io::Error::other(f.to_string()),
                None => {
                    conn.stream.take_error().ok().flatten().unwrap_or_else(|| io::ErrorKind::ConnectionReset.into())
                }
            };
            self.fail(now, registry, &e);
            return;
        }
        conn.rbuf.clear();
        self.flush(now, registry);
    }

    /// Writes what the socket takes.
    pub(crate) fn flush(&mut self, now: Instant, registry: &Registry) {
        let Some(conn) = self.conn.as_mut() else { return };
        if conn.pending() == 0 {
            return;
        }
        match conn.flush(registry) {
            // Only a link that got through (its TLS handshake included) ends the backoff: a
            // peer that refuses our certificate is redialled ever more slowly.
            Ok(()) if conn.pending() == 0 && !conn.wire.handshaking() => self.backoff = BACKOFF_MIN,
            Ok(()) => {}
            Err(e) => self.fail(now, registry, &e),
        }
    }

    fn fail(&mut self, now: Instant, registry: &Registry, e: &io::Error) {
        if let Some(mut c) = self.conn.take() {
            c.deregister(registry);
        }
        tracing::debug!(to = self.id.0, error = %e, "peer link down");
        self.retry_at = now + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Closes the link if its TLS handshake did not complete in time (it is redialled after
    /// its backoff).
    pub(crate) fn check_handshake(&mut self, now: Instant, registry: &Registry) {
        if self.conn.as_mut().is_some_and(|c| c.handshake_late(now)) {
            self.fail(now, registry, &io::Error::other("no TLS handshake in time"));
        }
    }

    /// Whether the link is connected (or connecting).
    pub(crate) fn is_up(&self) -> bool {
        self.conn.is_some()
    }

    /// Whether everything queued was written.
    pub(crate) fn drained(&self) -> bool {
        self.conn.as_ref().map_or(true, |c| c.pending() == 0)
    }
}

/// Who may dial in: a node of this cluster that is not this one.
#[derive(Debug)]
pub(crate) struct PeerCheck {
    pub(crate) cluster_id: u64,
    pub(crate) me: NodeId,
    pub(crate) max_frame: u64,
}

/// Takes the frames read on an incoming peer connection: the handshake first (sets `from`),
/// then messages. An error closes the connection: a refused handshake, a frame over the
/// limit, an undecodable message, or one not from the handshaken peer to us.
pub(crate) fn read_peer(
    conn: &mut Conn,
    from: &mut Option<NodeId>,
    check: &PeerCheck,
    out: &mut Vec<Message>,
    learned: &mut Vec<(NodeId, SocketAddr)>,
) -> Result<(), String> {
    let mut used = 0;
    let result = loop {
        let buf = &conn.rbuf[used..];
        let Some(peer) = *from else {
            match decode_frame::<Hello>(buf, 1024) {
                Ok(Some((hello, n))) => {
                    used += n;
                    // Any id but ours: a node being added dials us before we know it.
                    if let Err(why) = hello.check(check.cluster_id, check.me, |n| n != check.me) {
                        break Err(format!("refused handshake: {why}"));
                    }
                    // Over TLS, the certificate must name the node the handshake claims.
                    if let Some(counted) = conn.wire.counted().filter(|_| conn.wire.accepted_tls()) {
                        let named = conn
                            .wire
                            .peer_certificate()
                            .is_some_and(|c| skiff_std::tls::names_node(c, check.cluster_id, hello.from.0));
                        if !named {
                            let why = format!(
                                "a peer claims to be node {} but its certificate does not name {}",
                                hello.from.0,
                                skiff_std::tls::node_name(check.cluster_id, hello.from.0)
                            );
                            counted.refused("identity", &why);
                            break Err(why);
                        }
                    }
                    if let Ok(a) = skiff_std::address::PeerAddress::decode(&hello.address) {
                        learned.push((hello.from, a.raft));
                    }
                    *from = Some(hello.from);
                    continue;
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(format!("bad handshake: {}", frame_error(&e))),
            }
        };
        match decode_frame::<Message>(buf, check.max_frame) {
            Ok(Some((msg, n))) => {
                used += n;
                if msg.from != peer || msg.to != check.me {
                    break Err(format!("message from {} to {} on {}'s connection", msg.from.0, msg.to.0, peer.0));
                }
                out.push(msg);
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(frame_error(&e)),
        }
    };
    conn.rbuf.drain(..used);
    result
}

pub(crate) fn frame_error(e: &CodecError) -> String {
    match e {
        CodecError::TooLarge { len, max } => format!("frame of {len} bytes over the maximum of {max}"),
        other => format!("{other:?}"),
    }
}
