//! Real `skiff-node` processes on loopback: RESP against any node, a leader killed with
//! SIGKILL and restarted from its files, garbage on every port (RESP, native, peer), a clean
//! stop on SIGTERM (exit 0), and a data directory of another cluster refused with exit code 2.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{leader, resp, Cluster};
use skiff_core::kv::Reply;
use skiff_core::wire::ClientResponse;
use skiff_core::wire::Hello;
use skiff_std::kv::KvClerk;
use skiff_verify::rng::SimRng;

/// Sends `junk` on a fresh connection to `port`, then reads until the node answers and
/// closes, or a short timeout. Returns what came back.
fn feed(port: u16, junk: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let _ = s.write_all(junk);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

/// The first native answer in `bytes`, if it is a whole frame.
fn native_answer(bytes: &[u8]) -> Option<ClientResponse> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    postcard::from_bytes(bytes.get(4..4 + len)?).ok()
}

/// Garbage on the native and peer ports of node `i`: refused, connection closed, the node
/// serves on.
fn garbage_on_native_and_peer_ports(c: &Cluster, i: usize) {
    let mut rng = SimRng::new(42);
    let random: Vec<u8> = (0..4096).map(|_| rng.below(256) as u8).collect();
    // A 4 GiB length prefix: refused before anything is allocated, with an answer.
    let got = feed(c.native[i], &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    match native_answer(&got) {
        Some(ClientResponse { id: 0, reply: Reply::Invalid { reason }, .. }) => {
            assert!(reason.contains("over the maximum"))
        }
        other => panic!("a 4 GiB frame was answered {other:?}"),
    }
    // A payload that does not decode.
    let got = feed(c.native[i], &[0, 0, 0, 3, 0xff, 0xff, 0xff]);
    assert!(matches!(native_answer(&got), Some(ClientResponse { id: 0, reply: Reply::Invalid { .. }, .. })), "{got:?}");
    // Random bytes, and a frame cut short (the client goes away mid-frame).
    let _ = feed(c.native[i], &random);
    let _ = feed(c.native[i], &[0, 0, 0, 100, 1, 2, 3]);
    // The peer port: random bytes, a 4 GiB frame, a handshake from another cluster, and one
    // from a node that is not a peer.
    let _ = feed(c.peer[i], &random);
    let _ = feed(c.peer[i], &[0xff, 0xff, 0xff, 0xff]);
    for hello in [
        Hello::new(99, skiff_core::NodeId(2), Default::default()),
        Hello::new(7, skiff_core::NodeId(9), Default::default()),
    ] {
        let mut frame = Vec::new();
        skiff_core::codec::encode_frame(&hello, &mut frame).unwrap();
        let got = feed(c.peer[i], &frame);
        assert!(got.is_empty(), "a refused peer is closed without an answer");
    }
    // The node is alive and serves clients and peers.
    let servers = c
        .native
        .iter()
        .enumerate()
        .map(|(i, p)| (skiff_core::NodeId(i as u64 + 1), std::net::SocketAddr::from(([127, 0, 0, 1], *p))))
        .collect();
    let mut ck = KvClerk::new(servers, Duration::from_secs(1));
    ck.put("after-garbage", "yes").unwrap();
    assert_eq!(resp(c.resp[i], &["GET", "after-garbage"]), "$3\r\nyes\r\n");
}

#[test]
fn three_processes_serve_resp_survive_kill_9_and_refuse_garbage() {
    let mut c = Cluster::new(3);
    assert_eq!(resp(c.resp[1], &["SET", "k", "v1"]), "+OK\r\n");
    assert_eq!(resp(c.resp[2], &["GET", "k"]), "$2\r\nv1\r\n");
    assert_eq!(resp(c.resp[0], &["APPEND", "k", "-x"]), ":4\r\n");

    // kill -9 the leader; the others go on; it restarts from its files and catches up.
    let l = leader(&c);
    c.kill(l);
    let other = (l + 1) % 3;
    assert_eq!(resp(c.resp[other], &["SET", "k", "v2"]), "+OK\r\n");
    c.start(l);
    let deadline = Instant::now() + Duration::from_secs(20);
    while resp(c.resp[l], &["GET", "k"]) != "$2\r\nv2\r\n" {
        assert!(Instant::now() < deadline, "the restarted node does not serve the latest value");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Garbage: an error or a closed connection, and the node keeps serving.
    for junk in [&b"*1\r\n$4294967296\r\n"[..], b"\x00\xff\x13\x37garbage\r\n", b"*2\r\n$3\r\nGET\r\n$1"] {
        let mut s = TcpStream::connect(("127.0.0.1", c.resp[0])).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        s.write_all(junk).unwrap();
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf);
    }
    assert!(resp(c.resp[0], &["NOSUCH"]).starts_with("-ERR unknown command"));
    assert!(resp(c.resp[0], &["GET"]).starts_with("-ERR wrong number of arguments for 'get'"));
    assert_eq!(resp(c.resp[0], &["GET", "k"]), "$2\r\nv2\r\n");
    for i in 0..3 {
        garbage_on_native_and_peer_ports(&c, i);
    }

    // What came before a protocol error is answered, then the error, then the connection
    // closes; a client that closes its side after a request still gets the answer.
    let got = feed(c.resp[1], b"*3\r\n$3\r\nSET\r\n$2\r\nhc\r\n$1\r\nv\r\n*1\r\n$99999999999\r\n");
    assert_eq!(String::from_utf8_lossy(&got), "+OK\r\n-ERR Protocol error: invalid bulk length\r\n");
    let mut s = TcpStream::connect(("127.0.0.1", c.resp[0])).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"*2\r\n$3\r\nGET\r\n$2\r\nhc\r\n").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert_eq!(got, "$1\r\nv\r\n");
    // A value over the limit (1 MiB) is refused by whichever node gets it, forwarding or not.
    for port in &c.resp {
        let big = "x".repeat((1 << 20) + 1);
        let reply = resp(*port, &["SET", "big", &big]);
        assert!(reply.starts_with("-ERR value of 1048577 bytes over the limit"), "{reply}");
    }

    // A client pipelining more commands than a connection may have queued (1024): the node
    // stops reading it until it catches up, and answers every command, in order.
    let mut s = TcpStream::connect(("127.0.0.1", c.resp[2])).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let n = 1500;
    let mut req = String::new();
    for i in 0..n {
        req.push_str(&format!("*3\r\n$6\r\nAPPEND\r\n$4\r\npipe\r\n${}\r\n{i},\r\n", format!("{i},").len()));
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut lines = 0;
    let mut buf = [0u8; 64 << 10];
    while lines < n {
        let k = s.read(&mut buf).unwrap();
        assert!(k > 0, "closed after {lines} answers");
        got.extend_from_slice(&buf[..k]);
        lines = got.iter().filter(|b| **b == b'\n').count();
    }
    let answers = String::from_utf8(got).unwrap();
    let expected: Vec<String> = (0..n)
        .scan(0, |len, i| {
            *len += format!("{i},").len();
            Some(format!(":{len}"))
        })
        .collect();
    assert_eq!(answers.lines().collect::<Vec<_>>(), expected, "APPEND answers the new length, in order");
    for (i, child) in c.children.iter_mut().enumerate() {
        assert!(child.as_mut().unwrap().try_wait().unwrap().is_none(), "node {} exited", i + 1);
    }

    // SIGTERM: a clean stop with exit code 0; the node restarts from its files and serves.
    let mut child = c.children[1].take().unwrap();
    let ok = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "SIGTERM did not stop the node");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "a SIGTERM stop exits 0");
    c.start(1);
    assert_eq!(resp(c.resp[1], &["GET", "after-garbage"]), "$3\r\nyes\r\n");

    // A data directory of another cluster is refused with a clear message and exit code 2.
    c.kill(0);
    let out = c.command(0, c.dirs[0].path(), 99).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("belongs to cluster 7"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `skiff-node` with `args` to completion (it must not start serving).
fn node_output(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_skiff-node")).args(args).env("RUST_LOG", "error").output().unwrap()
}

#[test]
fn bad_configurations_and_a_corrupt_wal_exit_2_with_a_clear_message() {
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).to_string();
    let out = node_output(&["--id", "9", "--peers", "1=127.0.0.1:7001"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("id 9 is not in peers"), "{}", stderr(&out));
    let out = node_output(&["--config", "/nonexistent/node.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read /nonexistent/node.toml"), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("node.toml");
    std::fs::write(&toml, "id = 1\nelection_tick = 5\n").unwrap();
    let out = node_output(&["--config", toml.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown field `election_tick`"), "{}", stderr(&out));

    // A WAL damaged in its middle (intact records after the damage) is refused, naming the
    // file, never truncated away and never a panic.
    let mut c = Cluster::new(1);
    for i in 0..30 {
        assert_eq!(resp(c.resp[0], &["SET", &format!("k{i}"), "some value to fill the log"]), "+OK\r\n");
    }
    c.kill(0);
    let wal = c.dirs[0].path().join("wal");
    let segment = std::fs::read_dir(&wal).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x5a;
    std::fs::write(&segment, &bytes).unwrap();
    let out = c.command(0, c.dirs[0].path(), 7).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let name = segment.file_name().unwrap().to_string_lossy().to_string();
    assert!(stderr(&out).contains(&name), "the error names the segment: {}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    println!("{}", stderr(&out));
}
