//! Real `skiff-node` processes on loopback ports, for the process tests.

#![allow(dead_code)]

pub mod load;
pub mod relay;

use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read, Write};
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

pub struct Cluster {
    /// The port each node's peer listener is bound to.
    pub peer: Vec<u16>,
    /// The port other nodes dial to reach it: its relay's, or its own without relays.
    pub dial: Vec<u16>,
    /// One relay per node in front of its peer port ([`Cluster::with_relays`]), else none.
    pub relays: Vec<relay::Relay>,
    pub native: Vec<u16>,
    pub resp: Vec<u16>,
    /// Where each node serves `GET /metrics`.
    pub metrics: Vec<u16>,
    pub dirs: Vec<tempfile::TempDir>,
    pub children: Vec<Option<Child>>,
    /// Each node's log (stderr), appended across restarts: `node-<id>.log`.
    pub logs: tempfile::TempDir,
    /// Flags every node gets besides the addresses and the data directory.
    pub flags: Vec<String>,
    /// Nodes 1..=`bootstrap` form the cluster; the others join it (`--join`) when started.
    pub bootstrap: usize,
    /// TLS on every node's ports ([`Cluster::with_tls`]).
    pub tls: Option<TlsSetup>,
}

/// The cluster id of the test clusters.
pub const CLUSTER_ID: u64 = 7;

/// TLS for a test cluster: a directory with its CA and every node's certificate, and lines
/// for each node's `[tls]` table besides the files (modes, handshake timeout).
pub struct TlsSetup {
    pub certs: skiff_mio::certs::CertDir,
    pub extra: String,
    pub dir: tempfile::TempDir,
}

impl TlsSetup {
    /// A CA and certificates for nodes 1..=n (naming loopback too), with `extra` lines.
    pub fn new(n: usize, extra: &str) -> TlsSetup {
        let dir = tempfile::tempdir().unwrap();
        let certs = skiff_mio::certs::CertDir(dir.path().join("certs"));
        certs.ensure_ca().unwrap();
        for id in 1..=n as u64 {
            certs.issue(CLUSTER_ID, id, &skiff_mio::certs::local_hosts(), skiff_mio::certs::Validity::days(1)).unwrap();
        }
        TlsSetup { certs, extra: extra.to_string(), dir }
    }

    /// A client configuration trusting the cluster CA.
    pub fn client(&self) -> std::sync::Arc<skiff_std::tls::rustls::ClientConfig> {
        skiff_std::tls::client_config(&self.certs.ca_cert()).unwrap()
    }
}

fn map(ports: &[u16]) -> String {
    ports.iter().enumerate().map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1)).collect::<Vec<_>>().join(",")
}

impl Cluster {
    pub fn new(n: usize) -> Cluster {
        Cluster::with_flags(n, &[])
    }

    /// A cluster whose nodes get `flags` too.
    pub fn with_flags(n: usize, flags: &[&str]) -> Cluster {
        Cluster::with_spares(n, 0, flags)
    }

    /// A cluster of `n` nodes, started, and `spares` more (nodes `n + 1..`) that are not: each
    /// joins the cluster with `--join` when started.
    pub fn with_spares(n: usize, spares: usize, flags: &[&str]) -> Cluster {
        Cluster::build(n, spares, flags, false, None)
    }

    /// A cluster of `n` nodes with TLS on their ports as `tls` says.
    pub fn with_tls(n: usize, flags: &[&str], tls: TlsSetup) -> Cluster {
        Cluster::build(n, 0, flags, false, Some(tls))
    }

    /// As [`Cluster::with_spares`], with every node's peer traffic through a relay that a
    /// test can cut (`c.relays[i]`: what node `i` receives from its peers).
    pub fn with_relays(n: usize, spares: usize, flags: &[&str]) -> Cluster {
        Cluster::build(n, spares, flags, true, None)
    }

    fn build(n: usize, spares: usize, flags: &[&str], relayed: bool, tls: Option<TlsSetup>) -> Cluster {
        let bootstrap = n;
        let n = n + spares;
        // One allocation for every port (relays included), so that none is handed out twice.
        let all = ports(5 * n);
        let relays: Vec<relay::Relay> = if relayed {
            let listen = |i: usize| TcpListener::bind(("127.0.0.1", all[3 * n + i])).expect("the relay's port is free");
            (0..n).map(|i| relay::Relay::start(listen(i), all[i])).collect()
        } else {
            Vec::new()
        };
        let dial = if relayed { relays.iter().map(|r| r.port).collect() } else { all[..n].to_vec() };
        let mut c = Cluster {
            peer: all[..n].to_vec(),
            dial,
            relays,
            native: all[n..2 * n].to_vec(),
            resp: all[2 * n..3 * n].to_vec(),
            metrics: all[4 * n..5 * n].to_vec(),
            dirs: (0..n).map(|_| tempfile::tempdir().unwrap()).collect(),
            children: (0..n).map(|_| None).collect(),
            logs: tempfile::tempdir().unwrap(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            bootstrap,
            tls,
        };
        for i in 0..bootstrap {
            c.start(i);
        }
        c
    }

    pub fn command(&self, i: usize, dir: &Path, cluster_id: u64) -> Command {
        let mut cmd = Command::new(NODE);
        cmd.args(["--id", &(i + 1).to_string(), "--cluster-id", &cluster_id.to_string()]);
        if i < self.bootstrap {
            let b = self.bootstrap;
            cmd.args(["--peers", &map(&self.dial[..b]), "--clients", &map(&self.native[..b])]);
        } else {
            // A node that joins knows only itself; the cluster tells it the rest.
            let own = |ports: &[u16]| format!("{}=127.0.0.1:{}", i + 1, ports[i]);
            cmd.args(["--peers", &own(&self.dial), "--clients", &own(&self.native), "--join"]);
        }
        cmd.args(["--peer-listen", &format!("127.0.0.1:{}", self.peer[i])]);
        cmd.args(["--client-listen", &format!("127.0.0.1:{}", self.native[i])])
            .args(["--resp-listen", &format!("127.0.0.1:{}", self.resp[i])])
            .args(["--metrics-listen", &format!("127.0.0.1:{}", self.metrics[i])])
            .arg("--data-dir")
            .arg(dir)
            .args(&self.flags)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        if let Some(t) = &self.tls {
            let f = t.certs.files(i as u64 + 1);
            let config = t.dir.path().join(format!("node-{}.toml", i + 1));
            let table = format!("[tls]\ncert = {:?}\nkey = {:?}\nca = {:?}\n{}\n", f.cert, f.key, f.ca, t.extra);
            std::fs::write(&config, table).unwrap();
            cmd.arg("--config").arg(config);
        }
        cmd
    }

    pub fn start(&mut self, i: usize) {
        // A log file, not a pipe: nobody reads a pipe while the node runs, and a full one
        // would block the node.
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.path().join(format!("node-{}.log", i + 1)))
            .expect("a log file");
        let child = self.command(i, self.dirs[i].path(), CLUSTER_ID).stderr(log).spawn().expect("skiff-node starts");
        self.children[i] = Some(child);
    }

    pub fn kill(&mut self, i: usize) {
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
pub fn resp(port: u16, args: &[&str]) -> String {
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

/// A numeric field of the node's `INFO` on RESP port `port`.
pub fn info_field(port: u16, field: &str) -> u64 {
    let info = resp(port, &["INFO"]);
    let value = info.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).unwrap_or_else(|| panic!("{info}"));
    value.trim().parse().unwrap()
}

pub fn leader(c: &Cluster) -> usize {
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

/// A RESP2 connection that reads whole replies.
pub struct RespConn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl RespConn {
    pub fn connect(port: u16, timeout: Duration) -> io::Result<RespConn> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(timeout))?;
        Ok(RespConn { r: BufReader::new(s.try_clone()?), w: s })
    }

    /// Sends a command; returns its reply: `+OK`, `-ERR ...`, `:5`, the bulk string's
    /// contents, or `(nil)`.
    pub fn call(&mut self, args: &[&str]) -> io::Result<String> {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.w.write_all(req.as_bytes())?;
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end().to_string();
        if let Some(len) = line.strip_prefix('$') {
            let Ok(len) = len.parse::<usize>() else { return Ok("(nil)".into()) };
            let mut buf = vec![0u8; len + 2];
            self.r.read_exact(&mut buf)?;
            buf.truncate(len);
            return String::from_utf8(buf).map_err(|_| io::ErrorKind::InvalidData.into());
        }
        Ok(line)
    }
}

/// Sends signal `sig` (`-STOP`, `-CONT`, ...) to process `pid`.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill").args([sig, &pid.to_string()]).status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "kill {sig} {pid}");
}

/// Waits until `done`, failing the test after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `SKIFF.MEMBER args` on the leader's RESP port (what `skiff member` sends).
pub fn member(c: &Cluster, args: &[&str]) -> String {
    let l = leader(c);
    let mut command = vec!["SKIFF.MEMBER"];
    command.extend_from_slice(args);
    resp(c.resp[l], &command)
}

/// The leader's configuration from `SKIFF.MEMBER LIST`: (voters, learners, outgoing voters,
/// committed), as node indexes (id - 1).
pub fn members(c: &Cluster) -> (Vec<usize>, Vec<usize>, Vec<usize>, bool) {
    let list = member(c, &["LIST"]);
    let ids = |name: &str| -> Vec<usize> {
        let line = list.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_else(|| panic!("{list}"));
        line.split_whitespace().map(|id| id.parse::<usize>().expect("a node id") - 1).collect()
    };
    let committed = list.contains("committed: true");
    (ids("voters:"), ids("learners:"), ids("outgoing:"), committed)
}
