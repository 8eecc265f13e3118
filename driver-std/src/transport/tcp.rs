//! TCP transport: one outgoing connection per peer, dialled by a writer thread that
//! reconnects with exponential backoff and drains a bounded queue; one listener thread that
//! accepts peers' connections and a reader thread per connection.
//!
//! Peers come and go with the configuration: a writer is started for a node the first time
//! a message is sent to it, at the address the configuration gives for it (or, for a node
//! without one, the address in [`TcpOptions::peers`]), and stopped when a configuration
//! without the node arrives; addresses are kept, since a removed node is still told of its
//! removal for a while.
//!
//! A connection starts with a [`Hello`] frame (protocol version, cluster id, sender id); the
//! acceptor refuses (logs and closes) a wrong version or cluster, or a sender claiming our
//! own id. (Any other id is accepted: a node being added must reach us before we know it.
//! Authenticating peers is TLS's job.) Every
//! frame is `len: u32 BE | postcard payload` (`skiff_core::codec`); a length over
//! `max_frame` closes the connection before anything is allocated, and so does a payload that
//! does not decode or a message that does not come from the handshaken peer to us.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use skiff_core::codec::{encode_frame, LEN_PREFIX};
use skiff_core::wire::Hello;
use skiff_core::{Membership, Message, NodeId};

use crate::address::PeerAddress;

use super::{Inbox, Transport};

/// Settings of a [`TcpTransport`].
#[derive(Clone, Debug)]
pub struct TcpOptions {
    pub id: NodeId,
    pub cluster_id: u64,
    /// Where the nodes of the bootstrap configuration listen (addresses in the cluster's
    /// configuration take precedence).
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Largest frame accepted or sent (a bigger outgoing message is dropped and logged).
    pub max_frame: u64,
    /// Messages queued per peer; beyond it new messages are dropped.
    pub queue_len: usize,
    /// Reconnection backoff: first delay, doubled up to the maximum.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// The address this node tells the peers it dials (in its greeting), so that one that
    /// joins and knows no one can answer; the listener's own address by default (set it when
    /// listening on an unspecified address such as 0.0.0.0).
    pub advertise: Option<SocketAddr>,
}

impl TcpOptions {
    pub fn new(id: NodeId, cluster_id: u64, peers: BTreeMap<NodeId, SocketAddr>) -> TcpOptions {
        TcpOptions {
            id,
            cluster_id,
            peers,
            max_frame: 64 << 20,
            queue_len: 4096,
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_secs(1),
            advertise: None,
        }
    }
}

/// Most greeting addresses remembered (they are used only until a configuration arrives).
const MAX_LEARNED: usize = 256;

/// Counters of what the transport dropped or refused.
#[derive(Debug, Default)]
pub struct TcpCounters {
    pub queue_full: AtomicU64,
    pub refused_handshakes: AtomicU64,
    pub bad_frames: AtomicU64,
}

struct Shared {
    opts: TcpOptions,
    stop: AtomicBool,
    counters: TcpCounters,
    /// Open accepted connections, to unblock their readers at shutdown.
    accepted: Mutex<BTreeMap<u64, TcpStream>>,
    /// Where peers that dialled us said they listen (configuration addresses come first).
    learned: Mutex<BTreeMap<NodeId, SocketAddr>>,
    /// Our greeting, with our address.
    hello: Vec<u8>,
}

/// The TCP [`Transport`].
pub struct TcpTransport {
    shared: Arc<Shared>,
    /// Where each node listens: the configuration's addresses over the options' peers.
    addresses: BTreeMap<NodeId, SocketAddr>,
    writers: BTreeMap<NodeId, Writer>,
    /// Writers told to stop, still finishing (a dial or a backoff); joined at shutdown.
    retired: Vec<JoinHandle<()>>,
    /// Whether a configuration with voters reached us: until then (a node that joins) we
    /// answer peers at the address their greeting gave; after, only at known addresses, so
    /// a stranger naming itself and an address cannot make us start writers without end.
    configured: bool,
    local: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

/// A running writer thread and its queue.
struct Writer {
    addr: SocketAddr,
    queue: SyncSender<Message>,
    thread: JoinHandle<()>,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport").field("id", &self.shared.opts.id).field("local", &self.local).finish()
    }
}

impl TcpTransport {
    /// Starts accepting on `listener` and dialling every peer. Received messages go to
    /// `inbox`.
    pub fn start(opts: TcpOptions, listener: TcpListener, inbox: Inbox) -> io::Result<TcpTransport> {
        let local = listener.local_addr()?;
        let advertise = PeerAddress { raft: opts.advertise.unwrap_or(local), client: None };
        let mut hello = Vec::new();
        encode_frame(&Hello::new(opts.cluster_id, opts.id, advertise.encode()), &mut hello)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let shared = Arc::new(Shared {
            opts,
            stop: AtomicBool::new(false),
            counters: TcpCounters::default(),
            accepted: Mutex::new(BTreeMap::new()),
            learned: Mutex::new(BTreeMap::new()),
            hello,
        });
        let addresses = shared.opts.peers.clone();
        let s = shared.clone();
        let acceptor =
            thread::Builder::new().name("skiff-accept".into()).spawn(move || acceptor(s, listener, inbox))?;
        Ok(TcpTransport {
            shared,
            addresses,
            writers: BTreeMap::new(),
            retired: Vec::new(),
            configured: false,
            local,
            acceptor: Some(acceptor),
        })
    }

    /// The writer to `peer`, started if there is none and its address is known.
    fn writer_for(&mut self, peer: NodeId) -> Option<&Writer> {
        if peer == self.shared.opts.id {
            return None;
        }
        if !self.writers.contains_key(&peer) {
            let learned = || {
                let greeting = self.shared.learned.lock().expect("lock").get(&peer).copied();
                greeting.filter(|_| !self.configured)
            };
            let addr = self.addresses.get(&peer).copied().or_else(learned)?;
            let (tx, rx) = sync_channel(self.shared.opts.queue_len);
            let shared = self.shared.clone();
            let spawned = thread::Builder::new()
                .name(format!("skiff-tx-{}", peer.0))
                .spawn(move || writer(shared, peer, addr, rx));
            match spawned {
                Ok(thread) => {
                    self.writers.insert(peer, Writer { addr, queue: tx, thread });
                }
                Err(e) => {
                    tracing::warn!(to = peer.0, error = %e, "cannot start a writer thread");
                    return None;
                }
            }
        }
        self.writers.get(&peer)
    }

    /// Stops the writer to `peer`, if any: its thread ends once it sees its queue closed,
    /// which may take a dial or a backoff, so the caller (the core's thread) does not wait.
    fn stop_writer(&mut self, peer: NodeId) {
        if let Some(w) = self.writers.remove(&peer) {
            drop(w.queue);
            self.retired.retain(|t| !t.is_finished());
            self.retired.push(w.thread);
        }
    }

    /// Where this transport accepts connections.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// What was dropped or refused so far.
    pub fn counters(&self) -> &TcpCounters {
        &self.shared.counters
    }
}

impl Transport for TcpTransport {
    fn send(&mut self, msg: Message) {
        let counters = self.shared.clone();
        let Some(w) = self.writer_for(msg.to) else { return };
        if let Err(TrySendError::Full(_)) = w.queue.try_send(msg) {
            counters.counters.queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn set_members(&mut self, members: &Membership) {
        self.configured |= !members.is_empty();
        for (id, bytes) in members.addresses() {
            match PeerAddress::decode(bytes) {
                Ok(a) => {
                    self.addresses.insert(*id, a.raft);
                }
                Err(e) => tracing::warn!(node = id.0, "ignoring the configuration's address of a peer: {e}"),
            }
        }
        // A writer dialling an old address, or to a node no longer a member, stops; the next
        // message to it (a removed node is told of its removal) starts one afresh.
        let stale: Vec<NodeId> = self
            .writers
            .iter()
            .filter(|(id, w)| !members.is_member(**id) || self.addresses.get(id) != Some(&w.addr))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.stop_writer(id);
        }
    }

    fn shutdown(&mut self) {
        if self.shared.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = TcpStream::connect_timeout(&self.local, Duration::from_millis(200)); // wake the acceptor
        for (_, s) in self.shared.accepted.lock().expect("lock").iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let peers: Vec<NodeId> = self.writers.keys().copied().collect();
        for p in peers {
            self.stop_writer(p); // writers see their queue close
        }
        for t in self.retired.drain(..).chain(self.acceptor.take()) {
            let _ = t.join();
        }
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Dials `peer`, sends the handshake, then writes queued messages, coalescing what is queued
/// into one write. A failed write drops the connection (and the message: Raft resends).
fn writer(shared: Arc<Shared>, peer: NodeId, addr: SocketAddr, rx: Receiver<Message>) {
    let opts = &shared.opts;
    let mut conn: Option<TcpStream> = None;
    let mut backoff = opts.backoff_min;
    let mut buf = Vec::new();
    loop {
        let msg = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) if !shared.stop.load(Ordering::Relaxed) => continue,
            Err(_) => return,
        };
        if conn.is_none() {
            match dial(&shared.hello, addr) {
                Ok(s) => {
                    tracing::debug!(from = opts.id.0, to = peer.0, "connected");
                    backoff = opts.backoff_min;
                    conn = Some(s);
                }
                Err(e) => {
                    tracing::debug!(from = opts.id.0, to = peer.0, error = %e, "connect failed");
                    // Messages queued meanwhile are stale by the time we are back: drop them.
                    sleep_unless_stopped(&shared.stop, backoff);
                    backoff = (backoff * 2).min(opts.backoff_max);
                    while rx.try_recv().is_ok() {}
                    continue;
                }
            }
        }
        buf.clear();
        let add = |m: &Message, buf: &mut Vec<u8>| {
            let start = buf.len();
            if encode_frame(m, buf).is_err() || (buf.len() - start - LEN_PREFIX) as u64 > opts.max_frame {
                tracing::warn!(to = peer.0, "dropping a message over the maximum frame size");
                buf.truncate(start);
            }
        };
        add(&msg, &mut buf);
        while buf.len() < 1 << 20 {
            match rx.try_recv() {
                Ok(m) => add(&m, &mut buf),
                Err(_) => break,
            }
        }
        let stream = conn.as_mut().expect("connected above");
        if let Err(e) = stream.write_all(&buf) {
            tracing::debug!(from = opts.id.0, to = peer.0, error = %e, "connection lost");
            conn = None;
        }
    }
}

fn dial(hello: &[u8], addr: SocketAddr) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_nodelay(true)?;
    // A peer that stops reading (hung, or stopped) must not hold its writer, and the
    // shutdown that joins it, for ever.
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(hello)?;
    Ok(s)
}

fn sleep_unless_stopped(stop: &AtomicBool, d: Duration) {
    let step = Duration::from_millis(20);
    let mut left = d;
    while !stop.load(Ordering::Relaxed) && !left.is_zero() {
        let s = left.min(step);
        thread::sleep(s);
        left -= s;
    }
}

fn acceptor(shared: Arc<Shared>, listener: TcpListener, inbox: Inbox) {
    let mut readers: Vec<JoinHandle<()>> = Vec::new();
    let mut next_conn = 0u64;
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let Ok(clone) = stream.try_clone() else { continue };
        next_conn += 1;
        let conn = next_conn;
        shared.accepted.lock().expect("lock").insert(conn, clone);
        let (s, inbox) = (shared.clone(), inbox.clone());
        let spawned = thread::Builder::new().name("skiff-rx".into()).spawn(move || {
            let peer = stream.peer_addr().ok();
            if let Err(why) = reader(&s, stream, &inbox) {
                tracing::warn!(node = s.opts.id.0, ?peer, "closing peer connection: {why}");
            }
            s.accepted.lock().expect("lock").remove(&conn);
        });
        match spawned {
            Ok(h) => readers.push(h),
            Err(_) => {
                shared.accepted.lock().expect("lock").remove(&conn);
            }
        }
        readers.retain(|h| !h.is_finished());
    }
    for (_, s) in shared.accepted.lock().expect("lock").iter() {
        let _ = s.shutdown(Shutdown::Both);
    }
    for h in readers {
        let _ = h.join();
    }
}

/// Reads one frame's payload, refusing a length over `max` before allocating it. `Ok(None)`
/// is a clean end of stream.
fn read_frame(r: &mut impl Read, max: u64) -> Result<Option<Vec<u8>>, String> {
    let mut len = [0u8; LEN_PREFIX];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let len = u64::from(u32::from_be_bytes(len));
    if len > max {
        return Err(format!("frame of {len} bytes over the maximum of {max}"));
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).map_err(|e| e.to_string())?;
    Ok(Some(payload))
}

/// Serves one accepted connection: handshake, then messages into the inbox.
fn reader(shared: &Shared, stream: TcpStream, inbox: &Inbox) -> Result<(), String> {
    let opts = &shared.opts;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let mut r = BufReader::with_capacity(64 << 10, stream);
    let refuse = |why: String| {
        shared.counters.refused_handshakes.fetch_add(1, Ordering::Relaxed);
        Err(why)
    };
    let Some(payload) = read_frame(&mut r, 1024)? else { return Ok(()) };
    let hello: Hello = match postcard::from_bytes(&payload) {
        Ok(h) => h,
        Err(_) => return refuse("malformed handshake".into()),
    };
    if let Err(why) = hello.check(opts.cluster_id, opts.id, |n| n != opts.id) {
        return refuse(why.to_string());
    }
    if let Ok(a) = PeerAddress::decode(&hello.address) {
        let mut learned = shared.learned.lock().expect("lock");
        if learned.len() < MAX_LEARNED || learned.contains_key(&hello.from) {
            learned.insert(hello.from, a.raft);
        }
    }
    r.get_ref().set_read_timeout(None).map_err(|e| e.to_string())?;
    let bad = |why: String| {
        shared.counters.bad_frames.fetch_add(1, Ordering::Relaxed);
        Err(why)
    };
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let payload = match read_frame(&mut r, opts.max_frame) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(()),
            Err(why) => return bad(why),
        };
        let msg: Message = match postcard::from_bytes(&payload) {
            Ok(m) => m,
            Err(_) => return bad("malformed message".into()),
        };
        if msg.from != hello.from || msg.to != opts.id {
            return bad(format!("message from {} to {} on {}'s connection", msg.from.0, msg.to.0, hello.from.0));
        }
        if !inbox.deliver(msg) {
            return Ok(());
        }
    }
}
