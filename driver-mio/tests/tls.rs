//! TLS on `skiff-node`'s ports: Redis clients (redis-cli `--tls`, redis-py `ssl=True`) and the
//! native clerk over TLS, through a follower (so forwards to the leader are TLS too); plaintext
//! on a TLS port refused with a clean close; a stalled handshake closed in time; peers that
//! present a certificate from another CA, an expired one, or one naming another node are
//! refused and counted, while a peer with the right certificate is accepted and the cluster
//! goes on serving; a node restarted with a new certificate from the same CA rejoins; an
//! `optional` port takes both.
//! redis-cli and redis-py are skipped, saying so, when not installed, unless
//! `SKIFF_REQUIRE_REDIS_TOOLS=1`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{wait_for, Cluster, TlsSetup, CLUSTER_ID};
use skiff_mio::certs::{CertDir, Validity};
use skiff_std::tls::rustls::ClientConfig;
use skiff_std::tls::{ClientStream, Identity, TlsFiles};

fn required() -> bool {
    std::env::var("SKIFF_REQUIRE_REDIS_TOOLS").is_ok_and(|v| v == "1")
}

/// One RESP command over TLS; its reply as text (`+OK`, `-ERR ..`, `:1`, a bulk string's
/// contents, `(nil)`).
fn call(tls: &Arc<ClientConfig>, port: u16, args: &[&str]) -> std::io::Result<String> {
    let addr = ([127, 0, 0, 1], port).into();
    let mut s = BufReader::new(ClientStream::dial(addr, Duration::from_secs(10), Some(tls))?);
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.get_mut().write_all(req.as_bytes())?;
    s.get_mut().flush()?;
    let mut line = String::new();
    s.read_line(&mut line)?;
    let line = line.trim_end().to_string();
    match line.strip_prefix('$').map(str::parse::<usize>) {
        Some(Ok(len)) => {
            let mut buf = vec![0u8; len + 2];
            s.read_exact(&mut buf)?;
            buf.truncate(len);
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
        Some(Err(_)) => Ok("(nil)".into()),
        None => Ok(line),
    }
}

/// The index of the node that leads, asked over TLS.
fn leader(c: &Cluster, tls: &Arc<ClientConfig>) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (i, p) in c.resp.iter().enumerate() {
            if c.children[i].is_some() && call(tls, *p, &["INFO"]).is_ok_and(|i| i.contains("role:Leader")) {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no leader");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A numeric field of node `i`'s `INFO`, over TLS.
fn info_field(c: &Cluster, tls: &Arc<ClientConfig>, i: usize, field: &str) -> u64 {
    let info = call(tls, c.resp[i], &["INFO"]).unwrap_or_default();
    info.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// `GET /metrics` over HTTPS.
fn metrics(tls: &Arc<ClientConfig>, port: u16) -> String {
    let mut s = ClientStream::dial(([127, 0, 0, 1], port).into(), Duration::from_secs(10), Some(tls)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: skiff\r\n\r\n").unwrap();
    s.flush().unwrap();
    let mut body = Vec::new();
    let _ = s.read_to_end(&mut body);
    String::from_utf8_lossy(&body).into_owned()
}

/// A counter of `skiff_tls_refused_total` on node `i`.
fn refused(c: &Cluster, tls: &Arc<ClientConfig>, i: usize, port: &str, reason: &str) -> u64 {
    let text = metrics(tls, c.metrics[i]);
    let series = format!("skiff_tls_refused_total{{port=\"{port}\",reason=\"{reason}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&series)).map_or(0, |v| v.trim().parse().unwrap())
}

/// What a connection got before it ended: the bytes, and whether it ended cleanly (end of
/// stream, not a reset) within `within`. `None` if it was still open then.
fn until_closed(s: &mut TcpStream, within: Duration) -> Option<(Vec<u8>, bool)> {
    s.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some((got, true)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return None,
            Err(_) => return Some((got, false)),
        }
    }
}

#[test]
fn redis_clients_and_the_clerk_speak_tls_and_plaintext_is_refused_cleanly() {
    let setup = TlsSetup::new(3, "handshake_timeout_ms = 700");
    let (tls, ca) = (setup.client(), setup.certs.ca_cert());
    let c = Cluster::with_tls(3, &[], setup);
    let l = leader(&c, &tls);
    let f = (l + 1) % 3;
    // Through a follower: it forwards to the leader's native port, over TLS.
    assert_eq!(call(&tls, c.resp[f], &["SET", "k", "v"]).unwrap(), "+OK");
    assert_eq!(call(&tls, c.resp[f], &["GET", "k"]).unwrap(), "v");
    // Values over a TLS record (16 KiB) and over the chunk the loop hands rustls (64 KiB).
    let big = "b".repeat(300_000);
    assert_eq!(call(&tls, c.resp[f], &["SET", "big", &big]).unwrap(), "+OK");
    assert_eq!(call(&tls, c.resp[f], &["GET", "big"]).unwrap(), big);

    // The native clerk over TLS.
    let servers = (0..3).map(|i| (skiff_core::NodeId(i as u64 + 1), ([127, 0, 0, 1], c.native[i]).into())).collect();
    let mut clerk = skiff_std::kv::KvClerk::new(servers, Duration::from_secs(2)).with_tls(tls.clone());
    clerk.put("n", "1").unwrap();
    assert_eq!(clerk.get("k").unwrap(), "v");

    // Plaintext on the RESP port: told why in RESP, then a clean end of stream.
    let mut s = TcpStream::connect(("127.0.0.1", c.resp[f])).unwrap();
    s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let (got, clean) = until_closed(&mut s, Duration::from_secs(5)).expect("closed");
    assert!(String::from_utf8_lossy(&got).starts_with("-ERR this port requires TLS"), "{got:?}");
    assert!(clean, "a clean close, not a reset");
    // On the native port: a refusal frame the clerk shows, then the end.
    let mut s = TcpStream::connect(("127.0.0.1", c.native[f])).unwrap();
    let mut frame = Vec::new();
    let req = skiff_core::wire::ClientRequest::new(
        1,
        skiff_core::kv::Command { client: 0, seq: 0, op: skiff_core::kv::Op::Register },
    );
    skiff_core::codec::encode_frame(&req, &mut frame).unwrap();
    s.write_all(&frame).unwrap();
    let (got, clean) = until_closed(&mut s, Duration::from_secs(5)).expect("closed");
    assert!(String::from_utf8_lossy(&got).contains("requires TLS") && clean, "{got:?}");
    // The metrics port speaks HTTPS only.
    let mut s = TcpStream::connect(("127.0.0.1", c.metrics[f])).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    assert!(until_closed(&mut s, Duration::from_secs(5)).is_some_and(|(got, _)| got.is_empty()));
    assert!(refused(&c, &tls, f, "resp", "plaintext") >= 1);
    assert!(refused(&c, &tls, f, "native", "plaintext") >= 1);
    assert!(refused(&c, &tls, f, "metrics", "plaintext") >= 1);

    // A handshake that stalls (one byte of a record, or nothing) is closed in time.
    let began = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", c.resp[f])).unwrap();
    s.write_all(&[0x16]).unwrap();
    let mut silent = TcpStream::connect(("127.0.0.1", c.native[f])).unwrap();
    assert!(until_closed(&mut s, Duration::from_secs(10)).is_some(), "a stalled handshake is closed");
    assert!(until_closed(&mut silent, Duration::from_secs(10)).is_some(), "a silent connection is closed");
    assert!(began.elapsed() >= Duration::from_millis(600), "not before the timeout: {:?}", began.elapsed());
    assert!(refused(&c, &tls, f, "resp", "timeout") >= 1);
    assert!(refused(&c, &tls, f, "native", "timeout") >= 1);

    // redis-cli and redis-py, checking the certificate against the CA.
    let port = c.resp[f].to_string();
    let cli = Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(&ca)
        .args(["-p", &port, "SET", "cli", "yes"])
        .output();
    match cli {
        Ok(out) => {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK", "{out:?}");
            let mut get = Command::new("redis-cli");
            let out = get.args(["--tls", "--cacert"]).arg(&ca).args(["-p", &port, "GET", "cli"]).output().unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "yes");
            // Without the CA redis-cli refuses the node's certificate.
            let out = Command::new("redis-cli").args(["--tls", "-p", &port, "PING"]).output().unwrap();
            let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(said.contains("certificate verify failed"), "{said}");
        }
        Err(_) => {
            assert!(!required(), "redis-cli is required (SKIFF_REQUIRE_REDIS_TOOLS=1)");
            eprintln!("SKIPPED: redis-cli (apt install redis-tools) is not installed");
        }
    }
    let has_py = Command::new("python3").args(["-c", "import redis"]).status().is_ok_and(|s| s.success());
    if has_py {
        let script = r#"
import sys, redis
r = redis.Redis(port=int(sys.argv[1]), ssl=True, ssl_ca_certs=sys.argv[2], ssl_check_hostname=True)
assert r.set("py", "1") and r.incr("py") == 2 and r.get("k") == b"v"
r3 = redis.Redis(port=int(sys.argv[1]), ssl=True, ssl_ca_certs=sys.argv[2], ssl_check_hostname=True, protocol=3)
assert r3.get("py") == b"2"
try:
    redis.Redis(port=int(sys.argv[1]), ssl=True).ping()
    print("no CA, yet connected")
except redis.exceptions.ConnectionError as e:
    assert "CERTIFICATE_VERIFY_FAILED" in str(e), e
    print("ok")
"#;
        let out = Command::new("python3").args(["-c", script, &port]).arg(&ca).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{}", String::from_utf8_lossy(&out.stderr));
    } else {
        assert!(!required(), "python3 with the redis package is required (SKIFF_REQUIRE_REDIS_TOOLS=1)");
        eprintln!("SKIPPED: python3 with the redis package is not installed");
    }
}

/// A stranger dials node `to`'s peer port over TLS presenting `files` (its certificate and
/// key; `None`: no certificate; it trusts the cluster CA) and says it is node `claims`.
/// Returns the connection after the handshake frame is sent (or `None` if it already failed).
fn stranger(c: &Cluster, to: usize, files: Option<&TlsFiles>, claims: u64) -> Option<impl Read + AsTcp> {
    let config = match files {
        Some(f) => Identity::load(f).unwrap().client_config().unwrap(),
        None => Arc::new(
            ClientConfig::builder_with_provider(Arc::new(skiff_std::tls::rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(skiff_std::tls::load_roots(&c.tls.as_ref().unwrap().certs.ca_cert()).unwrap())
                .with_no_client_auth(),
        ),
    };
    let tcp = TcpStream::connect(("127.0.0.1", c.peer[to])).unwrap();
    let name = skiff_std::tls::node_server_name(CLUSTER_ID, to as u64 + 1);
    let conn = skiff_std::tls::rustls::ClientConnection::new(config, name).unwrap();
    let mut s = skiff_std::tls::rustls::StreamOwned::new(conn, tcp);
    let hello = skiff_core::wire::Hello::new(CLUSTER_ID, skiff_core::NodeId(claims), bytes::Bytes::new());
    let mut frame = Vec::new();
    skiff_core::codec::encode_frame(&hello, &mut frame).unwrap();
    s.write_all(&frame).and_then(|()| s.flush()).ok()?;
    Some(s)
}

/// Whether the node keeps the stranger's connection open for 3 s (it never writes on an
/// incoming peer connection, so any read that returns ends it).
fn kept(s: Option<impl Read + AsTcp>) -> bool {
    let Some(mut s) = s else { return false };
    s.tcp().set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let read = s.read(&mut [0u8; 64]);
    matches!(read, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

/// Whether the node closes the stranger's connection (waiting up to 20 s for it).
fn closed(s: Option<impl Read + AsTcp>) -> bool {
    let Some(mut s) = s else { return true };
    s.tcp().set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let read = s.read(&mut [0u8; 64]);
    !matches!(read, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

/// The TCP connection under a test's TLS stream.
trait AsTcp {
    fn tcp(&self) -> &TcpStream;
}

impl AsTcp for skiff_std::tls::rustls::StreamOwned<skiff_std::tls::rustls::ClientConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

/// A directory with the cluster's CA (copied from `certs`), for issuing certificates a test
/// needs without touching the nodes' own.
fn with_cluster_ca(certs: &CertDir) -> (tempfile::TempDir, CertDir) {
    let dir = tempfile::tempdir().unwrap();
    let copy = CertDir(dir.path().to_path_buf());
    std::fs::copy(certs.ca_cert(), copy.ca_cert()).unwrap();
    std::fs::copy(certs.ca_key(), copy.ca_key()).unwrap();
    (dir, copy)
}

#[test]
fn peers_are_refused_without_a_certificate_that_chains_to_the_ca_and_names_them() {
    let setup = TlsSetup::new(3, "handshake_timeout_ms = 700");
    let tls = setup.client();
    let certs = setup.certs.clone();
    let hosts = skiff_mio::certs::local_hosts();
    let mut c = Cluster::with_tls(3, &[], setup);
    let l = leader(&c, &tls);
    let to = (l + 1) % 3;
    let claims = ((to + 1) % 3 + 1) as u64; // another member's id

    // The control: node `claims`'s own certificate, claiming to be it, is accepted.
    assert!(kept(stranger(&c, to, Some(&certs.files(claims)), claims)), "the right peer is accepted");

    // A certificate from another CA.
    let other_dir = tempfile::tempdir().unwrap();
    let other = CertDir(other_dir.path().join("other"));
    other.ensure_ca().unwrap();
    other.issue(CLUSTER_ID, claims, &hosts, Validity::days(1)).unwrap();
    let foreign = TlsFiles { ca: certs.ca_cert(), ..other.files(claims) };
    assert!(closed(stranger(&c, to, Some(&foreign), claims)));
    // No certificate at all.
    assert!(closed(stranger(&c, to, None, claims)));
    // The cluster's CA, but naming node 9 while claiming to be `claims`.
    let (_d, ours) = with_cluster_ca(&certs);
    ours.issue(CLUSTER_ID, 9, &hosts, Validity::days(1)).unwrap();
    assert!(closed(stranger(&c, to, Some(&ours.files(9)), claims)));
    // Naming the node, but of another cluster.
    ours.issue(CLUSTER_ID + 1, claims, &hosts, Validity::days(1)).unwrap();
    assert!(closed(stranger(&c, to, Some(&ours.files(claims)), claims)));
    // Expired.
    let day = Duration::from_secs(86_400);
    let expired = Validity { from: SystemTime::now() - 10 * day, until: SystemTime::now() - day };
    ours.issue(CLUSTER_ID, claims, &hosts, expired).unwrap();
    assert!(closed(stranger(&c, to, Some(&ours.files(claims)), claims)));
    // Plaintext: nothing written back, a clean close.
    let mut s = TcpStream::connect(("127.0.0.1", c.peer[to])).unwrap();
    let mut frame = Vec::new();
    let hello = skiff_core::wire::Hello::new(CLUSTER_ID, skiff_core::NodeId(claims), bytes::Bytes::new());
    skiff_core::codec::encode_frame(&hello, &mut frame).unwrap();
    s.write_all(&frame).unwrap();
    assert_eq!(until_closed(&mut s, Duration::from_secs(20)), Some((Vec::new(), true)));
    // A handshake that never comes.
    let mut silent = TcpStream::connect(("127.0.0.1", c.peer[to])).unwrap();
    assert!(until_closed(&mut silent, Duration::from_secs(20)).is_some());

    assert_eq!(refused(&c, &tls, to, "peer", "certificate"), 3, "another CA, none, expired");
    assert_eq!(refused(&c, &tls, to, "peer", "identity"), 2, "node 9, another cluster");
    assert_eq!(refused(&c, &tls, to, "peer", "plaintext"), 1);
    assert!(refused(&c, &tls, to, "peer", "timeout") >= 1);
    // The cluster goes on serving, through the node the strangers dialled.
    assert_eq!(call(&tls, c.resp[to], &["SET", "after", "1"]).unwrap(), "+OK");
    assert_eq!(call(&tls, c.resp[l], &["GET", "after"]).unwrap(), "1");

    // An impostor at a member's address: the nodes dialling it refuse its certificate
    // (it names node 9) and count it.
    let gone = (l + 2) % 3;
    c.kill(gone);
    let listener = std::net::TcpListener::bind(("127.0.0.1", c.peer[gone])).unwrap();
    let impostor = Identity::load(&ours.files(9)).unwrap().server_config(false).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<bool>();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for tcp in listener.incoming().flatten() {
            if rx.try_recv().is_ok() || !held.is_empty() {
                // Now a black hole: connections accepted, never answered.
                held.push(tcp);
                continue;
            }
            let conn = skiff_std::tls::rustls::ServerConnection::new(impostor.clone()).unwrap();
            let mut s = skiff_std::tls::rustls::StreamOwned::new(conn, tcp);
            let _ = s.read(&mut [0u8; 64]);
        }
    });
    wait_for("the leader to refuse the impostor", Duration::from_secs(20), || {
        refused(&c, &tls, l, "peer-dial", "certificate") >= 1
    });
    // A handshake the other end never answers is given up in time (and redialled).
    tx.send(true).unwrap();
    wait_for("the leader to give up a silent handshake", Duration::from_secs(20), || {
        refused(&c, &tls, l, "peer-dial", "timeout") >= 1
    });
    assert_eq!(call(&tls, c.resp[l], &["SET", "still", "1"]).unwrap(), "+OK", "two of three still commit");
}

#[test]
fn a_node_restarted_with_a_new_certificate_from_the_same_ca_rejoins() {
    // The RESP port takes TLS or plaintext, as each client chooses.
    let setup = TlsSetup::new(3, "resp = \"optional\"");
    let tls = setup.client();
    let certs = setup.certs.clone();
    // Snapshots soon, so that the node comes back through one (a big message over TLS).
    let mut c = Cluster::with_tls(3, &["--snapshot-threshold", "20000"], setup);
    let l = leader(&c, &tls);
    let n = (l + 1) % 3;
    assert_eq!(call(&tls, c.resp[l], &["SET", "a", "1"]).unwrap(), "+OK");
    c.kill(n);
    let old = std::fs::read(certs.node_cert(n as u64 + 1)).unwrap();
    certs.issue(CLUSTER_ID, n as u64 + 1, &skiff_mio::certs::local_hosts(), Validity::days(1)).unwrap();
    assert_ne!(std::fs::read(certs.node_cert(n as u64 + 1)).unwrap(), old, "a new certificate");
    let value = "2".repeat(2000);
    for i in 0..50 {
        assert_eq!(call(&tls, c.resp[l], &["SET", &format!("b{i}"), &value]).unwrap(), "+OK");
    }
    c.start(n);
    let target = info_field(&c, &tls, l, "commit_index");
    wait_for("the restarted node to catch up", Duration::from_secs(20), || {
        info_field(&c, &tls, n, "applied_index") >= target
    });
    assert_eq!(call(&tls, c.resp[n], &["GET", "b49"]).unwrap(), value);
    assert!(info_field(&c, &tls, n, "snapshots_installed") >= 1, "it caught up through a snapshot");
    assert!(common::resp(c.resp[n], &["DBSIZE"]).starts_with(":51"), "plaintext on an optional port");
}

#[test]
fn midway_through_a_ca_rotation_nodes_trusting_both_cas_form_one_cluster() {
    let setup = TlsSetup::new(3, "");
    // Node 3 already has a certificate from the new CA; every node trusts both.
    let new = CertDir(setup.dir.path().join("new-ca"));
    new.ensure_ca().unwrap();
    new.issue(CLUSTER_ID, 3, &skiff_mio::certs::local_hosts(), Validity::days(1)).unwrap();
    std::fs::copy(new.node_cert(3), setup.certs.node_cert(3)).unwrap();
    std::fs::copy(new.node_key(3), setup.certs.node_key(3)).unwrap();
    let both = [std::fs::read(setup.certs.ca_cert()).unwrap(), std::fs::read(new.ca_cert()).unwrap()].concat();
    std::fs::write(setup.certs.ca_cert(), both).unwrap();
    let tls = setup.client();
    let c = Cluster::with_tls(3, &[], setup);
    let l = leader(&c, &tls);
    assert_eq!(call(&tls, c.resp[l], &["SET", "r", "1"]).unwrap(), "+OK");
    let target = info_field(&c, &tls, l, "commit_index");
    wait_for("every node to apply the write", Duration::from_secs(20), || {
        (0..3).all(|i| info_field(&c, &tls, i, "applied_index") >= target)
    });
    assert_eq!(call(&tls, c.resp[2], &["GET", "r"]).unwrap(), "1");
}

#[test]
fn skiff_certs_the_node_flags_and_the_cli_set_up_and_speak_tls() {
    const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let out = Command::new(SKIFF)
        .args(["certs", "--cluster-id", &CLUSTER_ID.to_string(), "--nodes", "1,2", "--dir"])
        .arg(&certs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let d = CertDir(certs.clone());
    let f = d.files(1);
    let flags = |f: &TlsFiles| -> Vec<String> {
        ["--tls-cert", "--tls-key", "--tls-ca"]
            .iter()
            .zip([&f.cert, &f.key, &f.ca])
            .flat_map(|(flag, p)| [flag.to_string(), p.display().to_string()])
            .collect()
    };
    // A node given another node's certificate refuses to start, saying so.
    let wrong = TlsFiles { cert: d.node_cert(2), key: d.node_key(2), ca: d.ca_cert() };
    let c = Cluster::with_spares(0, 1, &[]);
    let out = c.command(0, dir.path(), CLUSTER_ID).args(flags(&wrong)).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("cannot serve as node node-1.cluster-7.skiff"), "{err}");

    // One node with TLS from the flags; the CLI over TLS.
    let owned = flags(&f);
    let c = Cluster::with_flags(1, &owned.iter().map(String::as_str).collect::<Vec<_>>());
    let servers = format!("127.0.0.1:{}", c.native[0]);
    let cli = |args: &[&str], ca: Option<&std::path::Path>| {
        let mut cmd = Command::new(SKIFF);
        cmd.args(args).args(["--servers", &servers]).env_remove("SKIFF_TLS_CA");
        if let Some(ca) = ca {
            cmd.env("SKIFF_TLS_CA", ca);
        }
        cmd.output().unwrap()
    };
    let out = Command::new(SKIFF).arg("--tls-ca").arg(&f.ca).args(["put", "k", "v", "--servers", &servers]).output();
    let out = out.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK", "{out:?}");
    let out = cli(&["get", "k"], Some(&f.ca));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v", "{out:?}");
    let out = cli(&["get", "k"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("requires TLS"), "{out:?}");
    let resp = format!("127.0.0.1:{}", c.resp[0]);
    let out = Command::new(SKIFF).arg("--tls-ca").arg(&f.ca).args(["status", "--nodes", &resp]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Leader"), "{out:?}");
}
