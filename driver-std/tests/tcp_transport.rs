//! The TCP transport: messages flow between handshaken peers; a wrong cluster id, an unknown
//! node, an oversized or malformed frame closes that connection (counted) and nothing else;
//! a peer that is down costs a bounded queue, not unbounded memory.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use skiff_core::codec::encode_frame;
use skiff_core::wire::PROTOCOL_VERSION;
use skiff_core::{Index, Message, MessageBody, NodeId, Term};
use skiff_std::transport::{Inbox, TcpOptions, TcpTransport, Transport};

const CLUSTER: u64 = 77;

fn beat(from: u64, to: u64) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(1),
        body: MessageBody::Heartbeat { commit: Index(0), read_round: 0, sent_at: 0 },
    }
}

fn start(id: u64, listener: TcpListener, peers: &BTreeMap<NodeId, SocketAddr>) -> (TcpTransport, Receiver<Message>) {
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    let inbox = Inbox::new(move |m| tx.lock().unwrap().send(m).is_ok());
    let t = TcpTransport::start(TcpOptions::new(NodeId(id), CLUSTER, peers.clone()), listener, inbox).unwrap();
    (t, rx)
}

fn pair() -> (TcpTransport, Receiver<Message>, TcpTransport, Receiver<Message>, SocketAddr) {
    let (l1, l2) = (TcpListener::bind("127.0.0.1:0").unwrap(), TcpListener::bind("127.0.0.1:0").unwrap());
    let b = l2.local_addr().unwrap();
    let peers = BTreeMap::from([(NodeId(1), l1.local_addr().unwrap()), (NodeId(2), b)]);
    let (t1, r1) = start(1, l1, &peers);
    let (t2, r2) = start(2, l2, &peers);
    (t1, r1, t2, r2, b)
}

/// A raw connection to `addr` that sends a handshake as `from` of `cluster`.
fn raw(addr: SocketAddr, cluster: u64, from: u64) -> TcpStream {
    raw_with_address(addr, cluster, from, vec![])
}

/// As [`raw`], with the address the greeting names (`PeerAddress` bytes).
fn raw_with_address(addr: SocketAddr, cluster: u64, from: u64, address: Vec<u8>) -> TcpStream {
    #[derive(serde::Serialize)]
    struct Hello {
        magic: u32,
        version: u32,
        cluster_id: u64,
        from: NodeId,
        address: Vec<u8>,
    }
    let mut s = TcpStream::connect(addr).unwrap();
    let mut buf = Vec::new();
    let hello =
        Hello { magic: 0x534b_4946, version: PROTOCOL_VERSION, cluster_id: cluster, from: NodeId(from), address };
    encode_frame(&hello, &mut buf).unwrap();
    s.write_all(&buf).unwrap();
    s
}

/// Whether the other side closed `s` within a few seconds.
fn closed(mut s: TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn messages_flow_between_peers_both_ways() {
    let (mut t1, r1, mut t2, r2, _) = pair();
    t1.send(beat(1, 2));
    t2.send(beat(2, 1));
    assert_eq!(r2.recv_timeout(Duration::from_secs(5)).unwrap(), beat(1, 2));
    assert_eq!(r1.recv_timeout(Duration::from_secs(5)).unwrap(), beat(2, 1));
    t1.shutdown();
    t2.shutdown();
}

#[test]
fn wrong_cluster_our_own_id_and_bad_frames_close_only_that_connection() {
    let (mut t1, _r1, t2, r2, b) = pair();
    assert!(closed(raw(b, CLUSTER + 1, 1)), "a wrong cluster id is refused");
    // Any other id is heard (a node being added is not in our configuration yet).
    assert!(closed(raw(b, CLUSTER, 2)), "a peer claiming our own id is refused");
    assert!(wait_until(|| t2.counters().refused_handshakes.load(Ordering::Relaxed) == 2));

    // After a good handshake: a 4 GiB length prefix, then garbage.
    let mut s = raw(b, CLUSTER, 1);
    s.write_all(&u32::MAX.to_be_bytes()).unwrap();
    assert!(closed(s), "an oversized frame closes the connection");
    let mut s = raw(b, CLUSTER, 1);
    s.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).unwrap();
    assert!(closed(s), "a malformed message closes the connection");
    let mut s = raw(b, CLUSTER, 1);
    let mut buf = Vec::new();
    encode_frame(&beat(3, 2), &mut buf).unwrap();
    s.write_all(&buf).unwrap();
    assert!(closed(s), "a message not from the handshaken peer closes the connection");
    assert!(wait_until(|| t2.counters().bad_frames.load(Ordering::Relaxed) == 3));

    // Random bytes instead of a handshake.
    let mut s = TcpStream::connect(b).unwrap();
    s.write_all(&[0x13; 64]).unwrap();
    assert!(closed(s));

    // The real peer is still served.
    t1.send(beat(1, 2));
    let got = r2.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(got, beat(1, 2));
    t1.shutdown();
}

#[test]
fn a_peer_that_is_down_costs_a_bounded_queue() {
    let l1 = TcpListener::bind("127.0.0.1:0").unwrap();
    // Node 2's address is reserved and then closed: nobody listens there.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let peers = BTreeMap::from([(NodeId(1), l1.local_addr().unwrap()), (NodeId(2), dead)]);
    let (tx, _rx) = channel();
    let tx = Mutex::new(tx);
    let mut opts = TcpOptions::new(NodeId(1), CLUSTER, peers);
    opts.queue_len = 64;
    let inbox = Inbox::new(move |m| tx.lock().unwrap().send(m).is_ok());
    let mut t = TcpTransport::start(opts, l1, inbox).unwrap();
    for _ in 0..10_000 {
        t.send(beat(1, 2));
    }
    assert!(t.counters().queue_full.load(Ordering::Relaxed) > 9_000, "messages beyond the queue are dropped");
    let began = Instant::now();
    t.shutdown();
    assert!(began.elapsed() < Duration::from_secs(5), "shutdown does not wait out the backoff");
}

/// A greeting names the sender's address. A node that knows no configuration yet (a joiner)
/// answers there; once it knows one, a stranger naming itself and an address cannot make it
/// dial out.
#[test]
fn a_greeting_address_is_dialled_only_until_a_configuration_is_known() {
    use skiff_core::Membership;
    use skiff_std::address::PeerAddress;
    for configured in [false, true] {
        let l1 = TcpListener::bind("127.0.0.1:0").unwrap();
        let a1 = l1.local_addr().unwrap();
        let (mut t1, r1) = start(1, l1, &BTreeMap::new());
        if configured {
            let m = Membership::new(
                [NodeId(1), NodeId(2)],
                [],
                BTreeMap::from([(NodeId(1), PeerAddress { raft: a1, client: None }.encode())]),
            )
            .unwrap();
            t1.set_members(&m);
        }
        // The stranger greets with an address where it listens, and sends a message.
        let stranger = TcpListener::bind("127.0.0.1:0").unwrap();
        stranger.set_nonblocking(true).unwrap();
        let named = PeerAddress { raft: stranger.local_addr().unwrap(), client: None }.encode().to_vec();
        let mut s = raw_with_address(a1, CLUSTER, 9, named);
        let mut frame = Vec::new();
        encode_frame(&beat(9, 1), &mut frame).unwrap();
        s.write_all(&frame).unwrap();
        assert_eq!(r1.recv_timeout(Duration::from_secs(5)).unwrap(), beat(9, 1), "its messages are heard");
        // Answering it dials the greeting's address only while unconfigured.
        t1.send(beat(1, 9));
        let dialled = wait_until(|| stranger.accept().is_ok());
        assert_eq!(dialled, !configured, "configured: {configured}");
        t1.shutdown();
    }
}
