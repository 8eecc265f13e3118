//! Real `skiff-node` processes on loopback: RESP against any node, a leader killed with
//! SIGKILL and restarted from its files, garbage on a client port, and a data directory of
//! another cluster refused with exit code 2.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NODE: &str = env!("CARGO_BIN_EXE_skiff-node");

/// Free loopback ports (bound then released).
fn ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

struct Cluster {
    peer: Vec<u16>,
    native: Vec<u16>,
    resp: Vec<u16>,
    dirs: Vec<tempfile::TempDir>,
    children: Vec<Option<Child>>,
}

fn map(ports: &[u16]) -> String {
    ports.iter().enumerate().map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1)).collect::<Vec<_>>().join(",")
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        let all = ports(3 * n);
        let mut c = Cluster {
            peer: all[..n].to_vec(),
            native: all[n..2 * n].to_vec(),
            resp: all[2 * n..].to_vec(),
            dirs: (0..n).map(|_| tempfile::tempdir().unwrap()).collect(),
            children: (0..n).map(|_| None).collect(),
        };
        for i in 0..n {
            c.start(i);
        }
        c
    }

    fn command(&self, i: usize, dir: &Path, cluster_id: u64) -> Command {
        let mut cmd = Command::new(NODE);
        cmd.args(["--id", &(i + 1).to_string(), "--cluster-id", &cluster_id.to_string()])
            .args(["--peers", &map(&self.peer), "--clients", &map(&self.native)])
            .args(["--client-listen", &format!("127.0.0.1:{}", self.native[i])])
            .args(["--resp-listen", &format!("127.0.0.1:{}", self.resp[i])])
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }

    fn start(&mut self, i: usize) {
        let child = self.command(i, self.dirs[i].path(), 7).spawn().expect("skiff-node starts");
        self.children[i] = Some(child);
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

/// Sends one RESP command and reads one reply (retrying the connection while the node starts).
fn resp(port: u16, args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
            let mut req = format!("*{}\r\n", args.len());
            for a in args {
                req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
            }
            s.write_all(req.as_bytes()).unwrap();
            let mut buf = [0u8; 4096];
            if let Ok(n) = s.read(&mut buf) {
                if n > 0 {
                    return String::from_utf8_lossy(&buf[..n]).to_string();
                }
            }
        }
        assert!(Instant::now() < deadline, "no answer from port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn leader(c: &Cluster) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (i, p) in c.resp.iter().enumerate() {
            if c.children[i].is_some() && resp(*p, &["INFO"]).contains("role:Leader") {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no leader");
        std::thread::sleep(Duration::from_millis(50));
    }
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
