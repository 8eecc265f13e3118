//! Real `skiff-node` processes on loopback: RESP against any node, a leader killed with
//! SIGKILL and restarted from its files, garbage on a client port, and a data directory of
//! another cluster refused with exit code 2.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{leader, resp, Cluster};

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
    assert_eq!(resp(c.resp[0], &["GET", "k"]), "$2\r\nv2\r\n");

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
