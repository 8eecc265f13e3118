//! The KV service end to end: 3 nodes on loopback TCP with file storage, each with a client
//! port; a clerk writes and reads through whichever node leads, survives the leader being
//! stopped and restarted, and gets clear refusals for oversized requests; garbage on a
//! client port closes that connection only.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use skiff_core::{NodeId, Role};
use skiff_std::kv::{ClerkError, KvClerk};
use skiff_tests::kv_tcp::{bind, start, TcpKvNode};

#[test]
fn a_clerk_writes_and_reads_through_leader_changes() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (addrs, listeners) = bind(3);
    let client_addrs = addrs.clients.clone();
    let mut servers: Vec<Option<TcpKvNode>> = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        servers.push(Some(start(i, dirs[i].path(), l, &addrs, Some(4096))));
    }
    let mut clerk = KvClerk::new(client_addrs.clone(), Duration::from_millis(500));
    clerk.put("a", "1").unwrap();
    for k in 0..200 {
        clerk.append("a", &format!(",{k}")).unwrap();
    }
    let expected: String = std::iter::once("1".to_string()).chain((0..200).map(|k| format!(",{k}"))).collect();
    assert_eq!(clerk.get("a").unwrap(), expected);
    assert_eq!(clerk.get("missing").unwrap(), "");

    // Stop the leader; the clerk finds the new one.
    let leader = (0..3)
        .find(|i| servers[*i].as_ref().unwrap().service.raft().status().is_some_and(|v| v.role == Role::Leader))
        .expect("a leader");
    servers[leader].take().unwrap().stop();
    clerk.append("a", ",after").unwrap();
    assert_eq!(clerk.get("a").unwrap(), format!("{expected},after"));

    // Restart it from its files on its old addresses: it catches up (its peers snapshotted).
    let p = TcpListener::bind(addrs.peers[&NodeId(leader as u64 + 1)]).unwrap();
    let c = TcpListener::bind(client_addrs[leader].1).unwrap();
    servers[leader] = Some(start(leader, dirs[leader].path(), (p, c), &addrs, Some(4096)));
    clerk.put("b", "2").unwrap();
    let back = servers[leader].as_ref().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while back.service.local_get("b") != "2" {
        assert!(std::time::Instant::now() < deadline, "the restarted node did not catch up");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(back.service.local_get("a"), format!("{expected},after"));

    // Refusals.
    assert!(matches!(clerk.put(&"k".repeat(65), "v"), Err(ClerkError::Invalid(_))));
    assert!(matches!(clerk.append("a", &"v".repeat(5000)), Err(ClerkError::Invalid(_))));
    // Garbage and a 4 GiB length on a client port close that connection only.
    for junk in [vec![0xffu8; 32], u32::MAX.to_be_bytes().to_vec()] {
        let mut s = TcpStream::connect(client_addrs[0].1).unwrap();
        s.write_all(&junk).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest); // an Invalid answer, then the close
    }
    assert_eq!(clerk.get("b").unwrap(), "2");
    for s in servers.into_iter().flatten() {
        s.stop();
    }
}

#[test]
fn a_key_set_with_an_expiry_goes_on_an_idle_cluster() {
    use bytes::Bytes;
    use skiff_core::kv::{Cmd, Op, Resp};
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (addrs, listeners) = bind(3);
    let servers: Vec<TcpKvNode> =
        listeners.into_iter().enumerate().map(|(i, l)| start(i, dirs[i].path(), l, &addrs, None)).collect();
    let mut clerk = KvClerk::new(addrs.clients.clone(), Duration::from_millis(500));
    let args: Vec<Bytes> = ["SET", "k", "v", "PX", "300"].iter().map(|w| Bytes::from(*w)).collect();
    let set = Cmd::parse(&args).unwrap().unwrap();
    assert_eq!(clerk.run(Op::Cmd(set)).unwrap(), Resp::Ok);
    assert_eq!(clerk.get("k").unwrap(), "v");
    // No other write: the leader's clock entries move the replicated clock past the expiry.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while clerk.get("k").unwrap() == "v" {
        assert!(std::time::Instant::now() < deadline, "the key never expired");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(clerk.get("k").unwrap(), "");
    for s in servers {
        s.stop();
    }
}
