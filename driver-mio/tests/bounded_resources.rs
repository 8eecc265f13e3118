//! Bounded resources (issue 12, item 12), against a real `skiff-node`: unfinished commands
//! larger than the command limit, more connections than allowed, a peer connection that never
//! sends its handshake, and clients that pipeline without reading their answers. In each case
//! the node refuses or closes with a clear error, its memory stays bounded, and it serves on.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::{info_field, resp, Cluster, RespConn};
use skiff_core::kv::Reply;
use skiff_core::wire::ClientResponse;

/// The node's resident memory, in bytes.
fn rss(c: &Cluster) -> u64 {
    let pid = c.children[0].as_ref().expect("running").id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// Reads until the peer closes (or `limit` passes); returns what came.
fn read_to_close(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 64 << 10];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return (got, true),
        }
    }
    (got, false)
}

#[test]
fn unfinished_commands_over_the_limit_are_refused_and_memory_stays_bounded() {
    let c = Cluster::new(1);
    let port = c.resp[0];
    assert_eq!(resp(port, &["SET", "k", "v"]).trim(), "+OK");
    let before = rss(&c);
    // Three connections each start a command of 300 arguments of 1 MiB (300 MiB): the first
    // argument, then the second one's header. The node refuses on the header (what the
    // command declares passes the limit) instead of buffering 300 MiB per connection.
    let senders: Vec<_> = (0..3)
        .map(|_| {
            thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                let arg = [b"$1048576\r\n".as_slice(), &vec![b'x'; 1 << 20], b"\r\n"].concat();
                s.write_all(&[b"*300\r\n".as_slice(), &arg, b"$1048576\r\n"].concat()).unwrap();
                let (answer, closed) = read_to_close(&mut s, Duration::from_secs(10));
                (String::from_utf8_lossy(&answer).to_string(), closed)
            })
        })
        .collect();
    for t in senders {
        let (answer, closed) = t.join().unwrap();
        assert!(answer.starts_with("-ERR Protocol error: command over the limit of"), "answer: {answer:?}");
        assert!(closed, "the connection is closed after the error");
    }
    let after = rss(&c);
    eprintln!("RSS before {} MiB, after {} MiB", before >> 20, after >> 20);
    assert!(after < before + (64 << 20), "RSS grew from {before} to {after}");
    assert_eq!(resp(port, &["GET", "k"]), "$1\r\nv\r\n", "the node serves on");
}

#[test]
fn connections_past_the_limit_are_refused_and_silent_peers_are_closed() {
    let c = Cluster::with_flags(1, &["--max-clients", "8", "--peer-handshake-timeout-ms", "300"]);
    let port = c.resp[0];
    assert_eq!(resp(port, &["SET", "k", "v"]).trim(), "+OK");
    // A connection closed by the client still counts until the node has read its close
    // (the SET's, just now): the first held connection waits until it is the only one.
    let mut first = RespConn::connect(port, Duration::from_secs(5)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !first.call(&["INFO", "clients"]).unwrap().contains("connected_clients:1\r\n") {
        assert!(Instant::now() < deadline, "a closed connection still counted after 5 s");
        thread::sleep(Duration::from_millis(10));
    }
    let held: Vec<RespConn> = std::iter::once(first)
        .chain((1..8).map(|_| RespConn::connect(port, Duration::from_secs(5)).unwrap()))
        .collect();
    // The node has counted them once it answers on each.
    let mut held = held;
    for h in &mut held {
        assert_eq!(h.call(&["PING"]).unwrap(), "+PONG");
    }
    let mut extra = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (answer, closed) = read_to_close(&mut extra, Duration::from_secs(5));
    assert_eq!(String::from_utf8_lossy(&answer), "-ERR max number of clients reached\r\n");
    assert!(closed);
    // The native port shares the bound and refuses in its own protocol.
    let mut native = TcpStream::connect(("127.0.0.1", c.native[0])).unwrap();
    let (answer, closed) = read_to_close(&mut native, Duration::from_secs(5));
    let (refusal, _) =
        skiff_core::codec::decode_frame::<ClientResponse>(&answer, 1 << 20).expect("a frame").expect("a whole frame");
    let reason = "max number of clients reached".to_string();
    assert_eq!(refusal, ClientResponse::new(0, Reply::Invalid { reason }));
    assert!(closed);
    drop(held);
    // Once they are gone, new clients are taken again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !resp(port, &["PING"]).starts_with("+PONG") {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(50));
    }
    assert!(info_field(port, "rejected_connections") >= 1);
    // A connection to the peer port that never sends its handshake is closed after the timeout.
    let mut silent = TcpStream::connect(("127.0.0.1", c.peer[0])).unwrap();
    let began = Instant::now();
    let (_, closed) = read_to_close(&mut silent, Duration::from_secs(10));
    assert!(closed, "a silent peer connection stays open");
    assert!(began.elapsed() >= Duration::from_millis(250), "closed before its time: {:?}", began.elapsed());
}

#[test]
fn clients_that_do_not_read_their_answers_are_closed_past_the_buffer_bound() {
    let c = Cluster::with_flags(1, &["--max-client-buffer-bytes", "16000000"]);
    let port = c.resp[0];
    let value = "v".repeat(100_000);
    assert_eq!(resp(port, &["SET", "big", &value]).trim(), "+OK");
    // Four clients pipeline 400 GETs of a 100 KB value each (40 MB of answers) and read
    // nothing: each may hold 8 MiB of output, four of them pass the 16 MB bound.
    let request = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(400);
    let mut clients: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    for s in &mut clients {
        s.write_all(&request).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(port, "evicted_clients") == 0 {
        assert!(Instant::now() < deadline, "no client was closed");
        thread::sleep(Duration::from_millis(100));
    }
    assert!(info_field(port, "client_buffer_bytes") <= 16_000_000);
    // An evicted client finds its connection closed once it reads what was sent before.
    let closed = clients.iter_mut().map(|s| read_to_close(s, Duration::from_secs(2)).1).filter(|c| *c).count();
    assert!(closed >= 1, "no connection was closed");
    assert_eq!(resp(port, &["GET", "k"]), "$-1\r\n", "the node serves on");
}
