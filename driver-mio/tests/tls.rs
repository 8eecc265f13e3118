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
            assert!(!String::from_utf8_lossy(&out.stdout).contains("PONG"), "{out:?}");
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
assert r.set("py", "1") and r.incr("py") == 2 and r.get("cli") in (b"yes", None)
r3 = redis.Redis(port=int(sys.argv[1]), ssl=True, ssl_ca_certs=sys.argv[2], protocol=3)
assert r3.get("py") == b"2"
print("ok")
"#;
        let out = Command::new("python3").args(["-c", script, &port]).arg(&ca).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{}", String::from_utf8_lossy(&out.stderr));
    } else {
        assert!(!required(), "python3 with the redis package is required (SKIFF_REQUIRE_REDIS_TOOLS=1)");
        eprintln!("SKIPPED: python3 with the redis package is not installed");
    }
}

/// A stranger dials node `to`'s peer port over TLS with `files` (its certificate and key;
/// it trusts the cluster CA) and says it is node `claims`. Whether the node kept the
/// connection open (it never writes on an incoming peer connection: a refusal closes it).
fn stranger_kept(c: &Cluster, to: usize, files: &TlsFiles, claims: u64) -> bool {
    let config = Identity::load(files).unwrap().client_config().unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", c.peer[to])).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let name = skiff_std::tls::node_server_name(CLUSTER_ID, to as u64 + 1);
    let conn = skiff_std::tls::rustls::ClientConnection::new(config, name).unwrap();
    let mut s = skiff_std::tls::rustls::StreamOwned::new(conn, tcp);
    let hello = skiff_core::wire::Hello::new(CLUSTER_ID, skiff_core::NodeId(claims), bytes::Bytes::new());
    let mut frame = Vec::new();
    skiff_core::codec::encode_frame(&hello, &mut frame).unwrap();
    if s.write_all(&frame).and_then(|()| s.flush()).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Err(e) => matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        // The node never writes here: any answer (the end of the stream) is a refusal.
        Ok(n) => n > buf.len(),
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
    let setup = TlsSetup::new(3, "");
    let tls = setup.client();
    let certs = setup.certs.clone();
    let hosts = skiff_mio::certs::local_hosts();
    let c = Cluster::with_tls(3, &[], setup);
    let l = leader(&c, &tls);
    let to = (l + 1) % 3;
    let claims = (to + 1) % 3 + 1; // another member's id

    // The control: node `claims`'s own certificate, claiming to be it, is accepted.
    assert!(stranger_kept(&c, to, &certs.files(claims as u64), claims as u64), "the right peer is accepted");

    // A certificate from another CA.
    let other_dir = tempfile::tempdir().unwrap();
    let other = CertDir(other_dir.path().join("other"));
    other.ensure_ca().unwrap();
    other.issue(CLUSTER_ID, claims as u64, &hosts, Validity::days(1)).unwrap();
    let foreign = TlsFiles { ca: certs.ca_cert(), ..other.files(claims as u64) };
    assert!(!stranger_kept(&c, to, &foreign, claims as u64));
    // The cluster's CA, but naming node 9 while claiming to be `claims`.
    let (_d, ours) = with_cluster_ca(&certs);
    ours.issue(CLUSTER_ID, 9, &hosts, Validity::days(1)).unwrap();
    assert!(!stranger_kept(&c, to, &ours.files(9), claims as u64));
    // Naming the node, but of another cluster.
    ours.issue(CLUSTER_ID + 1, claims as u64, &hosts, Validity::days(1)).unwrap();
    assert!(!stranger_kept(&c, to, &ours.files(claims as u64), claims as u64));
    // Expired.
    let day = Duration::from_secs(86_400);
    let expired = Validity { from: SystemTime::now() - 10 * day, until: SystemTime::now() - day };
    ours.issue(CLUSTER_ID, claims as u64, &hosts, expired).unwrap();
    assert!(!stranger_kept(&c, to, &ours.files(claims as u64), claims as u64));
    // Plaintext.
    let mut s = TcpStream::connect(("127.0.0.1", c.peer[to])).unwrap();
    let mut frame = Vec::new();
    let hello = skiff_core::wire::Hello::new(CLUSTER_ID, skiff_core::NodeId(claims as u64), bytes::Bytes::new());
    skiff_core::codec::encode_frame(&hello, &mut frame).unwrap();
    s.write_all(&frame).unwrap();
    assert!(until_closed(&mut s, Duration::from_secs(5)).is_some());

    assert_eq!(refused(&c, &tls, to, "peer", "certificate"), 2, "another CA, expired");
    assert_eq!(refused(&c, &tls, to, "peer", "identity"), 2, "node 9, another cluster");
    assert_eq!(refused(&c, &tls, to, "peer", "plaintext"), 1);
    // The cluster goes on serving, through the node the strangers dialled.
    assert_eq!(call(&tls, c.resp[to], &["SET", "after", "1"]).unwrap(), "+OK");
    assert_eq!(call(&tls, c.resp[l], &["GET", "after"]).unwrap(), "1");
}

#[test]
fn a_node_restarted_with_a_new_certificate_from_the_same_ca_rejoins() {
    // The RESP port takes TLS or plaintext, as each client chooses.
    let setup = TlsSetup::new(3, "resp = \"optional\"");
    let tls = setup.client();
    let certs = setup.certs.clone();
    let mut c = Cluster::with_tls(3, &[], setup);
    let l = leader(&c, &tls);
    let n = (l + 1) % 3;
    assert_eq!(call(&tls, c.resp[l], &["SET", "a", "1"]).unwrap(), "+OK");
    c.kill(n);
    let old = std::fs::read(certs.node_cert(n as u64 + 1)).unwrap();
    certs.issue(CLUSTER_ID, n as u64 + 1, &skiff_mio::certs::local_hosts(), Validity::days(1)).unwrap();
    assert_ne!(std::fs::read(certs.node_cert(n as u64 + 1)).unwrap(), old, "a new certificate");
    for i in 0..50 {
        assert_eq!(call(&tls, c.resp[l], &["SET", &format!("b{i}"), "2"]).unwrap(), "+OK");
    }
    c.start(n);
    let target = info_field(&c, &tls, l, "commit_index");
    wait_for("the restarted node to catch up", Duration::from_secs(20), || {
        info_field(&c, &tls, n, "applied_index") >= target
    });
    assert_eq!(call(&tls, c.resp[n], &["GET", "b49"]).unwrap(), "2");
    assert!(common::resp(c.resp[n], &["GET", "b49"]).contains("\r\n2\r\n"), "plaintext on an optional port");
}
