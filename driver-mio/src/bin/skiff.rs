//! `skiff`: start a local cluster, and talk to one.
//!
//! ```text
//! skiff local-cluster            # 3 nodes on loopback, data under ./skiff-data; Ctrl-C stops
//! skiff put K V | get K | append K V [--servers 127.0.0.1:7101,...]
//! skiff status [--nodes 127.0.0.1:6381,...]
//! skiff member list | add-learner ID PEER_ADDR [CLIENT_ADDR] | promote ID [--no-wait] |
//!              demote ID | remove ID [--nodes 127.0.0.1:6381,...]
//! skiff bench [--connections 16] [--seconds 5] [--size 64] [--op set|get]
//! skiff certs [--dir certs] [--cluster-id 1] [--nodes 1,2,3] [--host H]... [--days 365]
//! ```
//!
//! Against nodes that require TLS, `--tls-ca FILE` (or `SKIFF_TLS_CA`) names the CA their
//! certificates chain to; users' credentials come from `SKIFF_USER` and `SKIFF_PASSWORD`.

#[global_allocator]
static ALLOCATOR: skiff_mio::Allocator = skiff_mio::Allocator {};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::{Parser, Subcommand};
use skiff_core::NodeId;
use skiff_mio::cli::{init_logs, local_node, stop_on_signals};
use skiff_std::kv::KvClerk;

#[derive(Parser, Debug)]
#[command(name = "skiff", version, about = "skiff: a replicated, linearizable KV store on Raft")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
    /// Speak TLS to the nodes, trusting this CA certificate (PEM); default: $SKIFF_TLS_CA.
    #[arg(long, global = true)]
    tls_ca: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Start a local cluster on loopback (peers 7001.., native clients 7101.., RESP 6381..).
    LocalCluster {
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        #[arg(long, default_value = "skiff-data")]
        dir: PathBuf,
        /// TLS on every port, peers authenticated by certificate: a CA and node
        /// certificates are made under DIR/tls unless there already.
        #[arg(long)]
        tls: bool,
        /// Reads from the leader's lease instead of a heartbeat round (clock-drift bound
        /// 5%; see the README's "Lease reads").
        #[arg(long)]
        lease_reads: bool,
    },
    /// Make a cluster CA (unless DIR has one) and a new key and certificate for each node:
    /// DIR/ca.crt, DIR/node-ID.crt, DIR/node-ID.key (reissuing rotates a node's certificate).
    Certs {
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        cluster_id: u64,
        /// Node ids: 1,2,3.
        #[arg(long, default_value = "1,2,3")]
        nodes: String,
        /// Host names or addresses clients reach the nodes at (repeatable; default
        /// localhost, 127.0.0.1 and ::1).
        #[arg(long = "host")]
        hosts: Vec<String>,
        #[arg(long, default_value_t = skiff_mio::certs::NODE_DAYS)]
        days: u64,
    },
    /// Set a key.
    Put {
        key: String,
        value: String,
        #[arg(long, default_value = LOCAL)]
        servers: String,
    },
    /// Read a key (linearizable).
    Get {
        key: String,
        #[arg(long, default_value = LOCAL)]
        servers: String,
    },
    /// A load generator: N connections doing SETs (or GETs) for a while; ops/s and latency.
    Bench {
        #[arg(long, default_value_t = 16)]
        connections: usize,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Value size in bytes.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// set or get.
        #[arg(long, default_value = "set")]
        op: String,
        #[arg(long, default_value = LOCAL)]
        servers: String,
    },
    /// A table of the nodes: id, address, role, term, commit, applied, lag behind the leader.
    Status {
        /// RESP ports of the nodes.
        #[arg(long, default_value = "127.0.0.1:6381,127.0.0.1:6382,127.0.0.1:6383")]
        nodes: String,
    },
    /// Change the cluster's membership, on its leader (found among `--nodes`); waits until
    /// the change is complete. To replace a machine: add-learner, promote, remove the old one.
    Member {
        /// list | add-learner ID PEER_ADDR [CLIENT_ADDR] | add-voter ID PEER_ADDR [CLIENT_ADDR] |
        /// promote ID | demote ID | remove ID
        #[arg(num_args = 1..=4, required = true)]
        args: Vec<String>,
        /// RESP ports of the nodes (one is enough; the leader is found through them).
        #[arg(long, default_value = "127.0.0.1:6381,127.0.0.1:6382,127.0.0.1:6383")]
        nodes: String,
        /// promote: do not wait for the learner to catch up first.
        #[arg(long)]
        no_wait: bool,
    },
    /// Append to a key; prints the new length.
    Append {
        key: String,
        value: String,
        #[arg(long, default_value = LOCAL)]
        servers: String,
    },
}

/// Native client ports of `local-cluster`'s nodes 1, 2 and 3 (`--servers` takes `ID=ADDR`
/// or plain addresses, numbered 1, 2, 3, ... in order).
const LOCAL: &str = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103";

/// `--servers`: native client addresses, `ID=ADDR` or plain `ADDR` (then the nodes are
/// numbered 1, 2, 3, ... in the order given).
fn parse_servers(servers: &str) -> Result<Vec<(NodeId, SocketAddr)>, String> {
    servers
        .split(',')
        .enumerate()
        .map(|(i, s)| {
            let s = s.trim();
            let (id, addr) = match s.split_once('=') {
                Some((id, addr)) => {
                    let id = id.trim().parse().map_err(|_| format!("--servers: '{id}' is not a node id"))?;
                    (id, addr.trim())
                }
                None => (i as u64 + 1, s),
            };
            let addr = addr.parse().map_err(|_| format!("--servers: '{addr}' is not an address"))?;
            Ok((NodeId(id), addr))
        })
        .collect()
}

/// The credentials in `SKIFF_USER` and `SKIFF_PASSWORD` (the user defaults to `default`),
/// for nodes with users configured.
fn credentials() -> Option<(String, String)> {
    let password = std::env::var("SKIFF_PASSWORD").ok()?;
    Some((std::env::var("SKIFF_USER").unwrap_or_else(|_| "default".into()), password))
}

/// The TLS client configuration from `--tls-ca` or `SKIFF_TLS_CA` (none: plaintext).
static TLS: std::sync::OnceLock<Option<std::sync::Arc<skiff_std::tls::rustls::ClientConfig>>> =
    std::sync::OnceLock::new();

fn tls() -> Option<&'static std::sync::Arc<skiff_std::tls::rustls::ClientConfig>> {
    TLS.get().and_then(Option::as_ref)
}

fn clerk(servers: &str) -> Result<KvClerk, String> {
    let mut c = KvClerk::new(parse_servers(servers)?, Duration::from_secs(1));
    if let Some(config) = tls() {
        c = c.with_tls(config.clone());
    }
    Ok(match credentials() {
        Some((user, password)) => c.with_credentials(&user, &password),
        None => c,
    })
}

fn certs(dir: PathBuf, cluster_id: u64, nodes: &str, hosts: Vec<String>, days: u64) -> Result<(), String> {
    let ids: Vec<u64> = nodes
        .split(',')
        .map(|n| n.trim().parse().map_err(|_| format!("--nodes: '{n}' is not a node id")))
        .collect::<Result<_, _>>()?;
    let hosts = if hosts.is_empty() { skiff_mio::certs::local_hosts() } else { hosts };
    let d = skiff_mio::certs::CertDir(dir);
    if d.ensure_ca()? {
        println!("made a CA: {} (keep {} secret)", d.ca_cert().display(), d.ca_key().display());
    } else {
        println!("using the CA in {}", d.ca_cert().display());
    }
    for id in ids {
        d.issue(cluster_id, id, &hosts, skiff_mio::certs::Validity::days(days))?;
        println!(
            "node {id}: {} and {} (names {} and {})",
            d.node_cert(id).display(),
            d.node_key(id).display(),
            skiff_std::tls::node_name(cluster_id, id),
            hosts.join(", ")
        );
    }
    Ok(())
}

fn local_cluster(nodes: u64, dir: PathBuf, tls: bool, lease_reads: bool) -> Result<(), String> {
    if !(1..=9).contains(&nodes) {
        return Err("--nodes must be between 1 and 9".into());
    }
    let stop = stop_on_signals().map_err(|e| format!("cannot handle signals: {e}"))?;
    let mut configs: Vec<_> = (1..=nodes).map(|id| local_node(id, nodes, &dir)).collect();
    for c in &mut configs {
        c.lease_reads = lease_reads;
    }
    let certs = skiff_mio::certs::CertDir(dir.join("tls"));
    if tls {
        let made = certs.ensure_ca()?;
        for c in &mut configs {
            if made || !c.tls_files_exist(&certs) {
                certs.issue(
                    c.cluster_id,
                    c.id,
                    &skiff_mio::certs::local_hosts(),
                    skiff_mio::certs::Validity::days(365),
                )?;
            }
            c.tls = Some(skiff_mio::config::TlsConfig::with_files(certs.files(c.id)));
        }
    }
    for c in &configs {
        c.validate().map_err(|e| e.to_string())?;
    }
    println!("skiff local cluster: {nodes} nodes, data under {}", dir.display());
    for c in &configs {
        let metrics = c.metrics_listen.as_deref().unwrap_or("off");
        let scheme = if tls { "https" } else { "http" };
        println!(
            "  node {}: RESP {}  native {}  metrics {scheme}://{metrics}/metrics",
            c.id, c.resp_listen, c.client_listen
        );
    }
    if tls {
        let ca = certs.ca_cert();
        let ca = ca.display();
        println!("TLS on every port (metrics over https); the CA is {ca}");
        println!("connect: redis-cli --tls --cacert {ca} -p 6381 set k v; skiff --tls-ca {ca} get k");
    } else {
        println!("connect: redis-cli -p 6381 set k v; redis-cli -p 6382 get k; skiff get k");
    }
    println!("Ctrl-C stops the cluster.");
    let nodes: Vec<_> = configs
        .into_iter()
        .map(|c| {
            let stop = stop.clone();
            // Named, so that `top -H`, perf and bench/cpu_per_set.sh tell the nodes' loops apart.
            std::thread::Builder::new()
                .name(format!("skiff-node-{}", c.id))
                .spawn(move || skiff_mio::node::run(&c, stop).map_err(|e| format!("node {}: {e}", c.id)))
                .expect("a thread for each node")
        })
        .collect();
    let mut failed = None;
    for n in nodes {
        if let Err(e) = n.join().map_err(|_| "a node panicked".to_string()).and_then(|r| r) {
            // One node failing (a port in use, a corrupt directory) stops the others.
            stop.store(true, Ordering::SeqCst);
            failed.get_or_insert(e);
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Asks a node's RESP port for `INFO` and returns its `field:value` lines.
fn info(addr: &str) -> Option<std::collections::BTreeMap<String, String>> {
    let addr: SocketAddr = addr.trim().parse().ok()?;
    let text = resp_command(addr, &["INFO".to_string()], Duration::from_secs(2)).ok()?;
    Some(text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.to_string(), v.trim().to_string())).collect())
}

/// Sends one RESP command to `addr` and returns its reply as text (`Err` for an error
/// reply), waiting up to `timeout`.
fn resp_command(addr: SocketAddr, args: &[String], timeout: Duration) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s =
        skiff_std::tls::ClientStream::dial(addr, Duration::from_secs(1), tls()).map_err(|e| format!("{addr}: {e}"))?;
    s.tcp().set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let frame = |args: &[String]| {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        req
    };
    let auth = credentials().map(|(user, password)| frame(&["AUTH".into(), user, password]));
    let req = auth.clone().unwrap_or_default() + &frame(args);
    s.write_all(req.as_bytes()).and_then(|()| s.flush()).map_err(|e| format!("{addr}: {e}"))?;
    let mut buf = Vec::new();
    let mut authed = auth.is_none();
    let mut chunk = [0u8; 4096];
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    loop {
        let n = s.read(&mut chunk).map_err(|e| format!("{addr}: no answer in time ({e})"))?;
        if n == 0 {
            return Err(format!("{addr} closed the connection"));
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else { continue };
        if !authed {
            // The answer to AUTH comes first: `+OK`, or why not.
            if buf[0] != b'+' {
                return Err(format!("{addr}: {}", text(&buf[1..end])));
            }
            buf.drain(..end + 2);
            authed = true;
            if buf.is_empty() {
                continue;
            }
        }
        let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else { continue };
        match buf[0] {
            b'+' => return Ok(text(&buf[1..end])),
            b'-' => return Err(text(&buf[1..end])),
            b'$' => {
                let len: usize = text(&buf[1..end]).parse().map_err(|_| "a malformed reply".to_string())?;
                if buf.len() >= end + 2 + len {
                    return Ok(text(&buf[end + 2..end + 2 + len]));
                }
            }
            _ => return Err(format!("an unexpected reply: {}", text(&buf))),
        }
    }
}

/// The RESP address of the node that leads, among `nodes`, with its `INFO`.
fn find_leader(nodes: &str) -> Result<(SocketAddr, std::collections::BTreeMap<String, String>), String> {
    let mut best: Option<(u64, SocketAddr, std::collections::BTreeMap<String, String>)> = None;
    for a in nodes.split(',') {
        let Some(i) = info(a) else { continue };
        let Ok(addr) = a.trim().parse::<SocketAddr>() else { continue };
        let term = i.get("term").and_then(|t| t.parse().ok()).unwrap_or(0);
        if i.get("role").map(String::as_str) == Some("Leader") && best.as_ref().map_or(true, |(t, _, _)| term > *t) {
            best = Some((term, addr, i));
        }
    }
    best.map(|(_, a, i)| (a, i)).ok_or_else(|| format!("no node among {nodes} leads (is the cluster up?)"))
}

fn member(args: &[String], nodes: &str, no_wait: bool) -> Result<(), String> {
    let (leader, info) = find_leader(nodes)?;
    let verb = args[0].to_ascii_lowercase();
    if verb == "promote" && !no_wait {
        // A learner far behind would stall commits once it counts: wait for it first.
        let id = args.get(1).ok_or("promote needs a node id")?;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let (_, i) = find_leader(nodes)?;
            let last: u64 = i.get("last_index").and_then(|v| v.parse().ok()).unwrap_or(0);
            let matched: Option<u64> = i.get(&format!("peer_{id}_match")).and_then(|v| v.parse().ok());
            let caught_up = i.get(&format!("peer_{id}_caught_up")).map(String::as_str) == Some("true");
            match matched {
                Some(_) if caught_up => break,
                Some(m) => eprintln!("waiting for node {id} to catch up: {} entries behind", last.saturating_sub(m)),
                None => eprintln!("waiting for node {id}: the leader does not replicate to it (not a member?)"),
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("node {id} did not catch up within 120 s (use --no-wait to promote anyway)"));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    // Leadership may have moved while we waited.
    let leader = if verb == "promote" && !no_wait { find_leader(nodes)?.0 } else { leader };
    let _ = info;
    let mut command = vec!["SKIFF.MEMBER".to_string()];
    command.extend(args.iter().cloned());
    match resp_command(leader, &command, Duration::from_secs(60)) {
        Ok(answer) => {
            println!("{answer}");
            Ok(())
        }
        Err(e) if e.contains("no answer in time") => {
            Err(format!("{e}: the change may still complete; see `skiff member list`"))
        }
        Err(e) => Err(e),
    }
}

fn status(nodes: &str) -> Result<(), String> {
    let rows: Vec<(String, Option<std::collections::BTreeMap<String, String>>)> =
        nodes.split(',').map(|a| (a.trim().to_string(), info(a))).collect();
    let leader_commit: u64 = rows
        .iter()
        .filter_map(|(_, i)| i.as_ref())
        .filter(|i| i.get("role").map(String::as_str) == Some("Leader"))
        .filter_map(|i| i.get("commit_index")?.parse().ok())
        .max()
        .unwrap_or(0);
    println!(
        "{:<4} {:<21} {:<13} {:>6} {:>8} {:>8} {:>6}",
        "id", "address", "role", "term", "commit", "applied", "lag"
    );
    for (addr, i) in rows {
        match i {
            Some(i) => {
                let get = |k: &str| i.get(k).cloned().unwrap_or_else(|| "-".into());
                let applied: u64 = get("applied_index").parse().unwrap_or(0);
                println!(
                    "{:<4} {:<21} {:<13} {:>6} {:>8} {:>8} {:>6}",
                    get("node_id"),
                    addr,
                    get("role"),
                    get("term"),
                    get("commit_index"),
                    applied,
                    leader_commit.saturating_sub(applied)
                );
            }
            None => println!("{:<4} {:<21} {:<13}", "-", addr, "unreachable"),
        }
    }
    if let Ok((_, i)) = find_leader(nodes) {
        let get = |k: &str| i.get(k).cloned().unwrap_or_default();
        println!(
            "membership: voters {} learners {}{} (set at index {}, committed: {})",
            get("voters"),
            if get("learners").is_empty() { "none".to_string() } else { get("learners") },
            if get("joint") == "true" { format!(", joint with outgoing {}", get("outgoing")) } else { String::new() },
            get("membership_index"),
            get("membership_committed")
        );
    }
    Ok(())
}

fn bench(connections: usize, seconds: u64, size: usize, op: &str, servers: &str) -> Result<(), String> {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::Instant;
    if op != "set" && op != "get" {
        return Err(format!("--op: expected set or get, got '{op}'"));
    }
    if connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    // One write first, so the cluster is up and the keys exist.
    let value = "x".repeat(size);
    op_quiet(servers, "bench:0", &value)?;
    let stop = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|w| {
            let (mut c, stop, value, get) = (clerk(servers), stop.clone(), value.clone(), op == "get");
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let c = c.as_mut().map_err(|e| e.clone())?;
                let key = format!("bench:{w}");
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if get {
                        c.get(&key).map_err(|e| e.to_string())?;
                    } else {
                        c.put(&key, &value).map_err(|e| e.to_string())?;
                    }
                    lat.push(t.elapsed());
                }
                Ok(lat)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for w in workers {
        lat.extend(w.join().map_err(|_| "a bench connection panicked".to_string())??);
    }
    let elapsed = began.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct =
        |p: f64| lat.get(((lat.len().max(1) - 1) as f64 * p).round() as usize).map_or(0.0, |d| d.as_secs_f64() * 1e3);
    println!(
        "{op}: {connections} connections, {size}-byte values: {:.0} ops/s, p50 {:.3} ms, p99 {:.3} ms ({} ops in {elapsed:.1} s)",
        lat.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        lat.len()
    );
    Ok(())
}

/// A put with the CLI's deadline, printing nothing.
fn op_quiet(servers: &str, key: &str, value: &str) -> Result<(), String> {
    let mut c = clerk(servers)?;
    let (key, value) = (key.to_string(), value.to_string());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(c.put(&key, &value).map_err(|e| e.to_string()));
    });
    rx.recv_timeout(OP_TIMEOUT)
        .map_err(|_| format!("no answer within {} s (is the cluster running?)", OP_TIMEOUT.as_secs()))?
}

/// How long a CLI operation may take (the clerk itself retries until it succeeds).
const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs one clerk operation with a deadline; prints its result.
fn op(servers: &str, f: impl FnOnce(&mut KvClerk) -> Result<String, String> + Send + 'static) -> Result<(), String> {
    let mut c = clerk(servers)?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f(&mut c));
    });
    match rx.recv_timeout(OP_TIMEOUT) {
        Ok(r) => r.map(|out| println!("{out}")),
        Err(_) => {
            Err(format!("no answer within {} s (is the cluster running? --servers {servers})", OP_TIMEOUT.as_secs()))
        }
    }
}

fn main() -> ExitCode {
    init_logs(skiff_mio::cli::LogFormat::Text);
    let args = Args::parse();
    let ca = args.tls_ca.or_else(|| std::env::var_os("SKIFF_TLS_CA").map(PathBuf::from));
    match ca.map(|ca| skiff_std::tls::client_config(&ca)).transpose() {
        Ok(config) => {
            let _ = TLS.set(config);
        }
        Err(e) => {
            eprintln!("skiff: --tls-ca: {e}");
            return ExitCode::from(2);
        }
    }
    let result = match args.command {
        Cmd::LocalCluster { nodes, dir, tls, lease_reads } => local_cluster(nodes, dir, tls, lease_reads),
        Cmd::Certs { dir, cluster_id, nodes, hosts, days } => certs(dir, cluster_id, &nodes, hosts, days),
        Cmd::Put { key, value, servers } => {
            op(&servers, move |c| c.put(&key, &value).map(|()| "OK".to_string()).map_err(|e| e.to_string()))
        }
        Cmd::Get { key, servers } => op(&servers, move |c| c.get(&key).map_err(|e| e.to_string())),
        Cmd::Status { nodes } => status(&nodes),
        Cmd::Member { args, nodes, no_wait } => member(&args, &nodes, no_wait),
        Cmd::Bench { connections, seconds, size, op, servers } => bench(connections, seconds, size, &op, &servers),
        Cmd::Append { key, value, servers } => {
            op(&servers, move |c| c.append(&key, &value).map(|l| l.to_string()).map_err(|e| e.to_string()))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skiff: {e}");
            ExitCode::from(2)
        }
    }
}
