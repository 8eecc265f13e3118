//! [`Metrics`]: what a node counts, in Prometheus's text format on `--metrics-listen`
//! (`GET /metrics`), with the `prometheus-client` crate (the Prometheus project's own Rust
//! client: OpenMetrics encoding, atomic metrics that the loop, the storage thread and the
//! HTTP thread share without locks).
//!
//! Raft: term, role, leader changes, commit/apply/last index, proposals and their refusals,
//! reads. Storage: group commit (fsync) latency, bytes written, snapshots taken and their
//! duration and size. Clients: connections, commands by name, their latency, error replies.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A command's name, as a label (lowercase; `other` for names skiff does not know, so a
/// client cannot grow the label set without bound).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabel {
    pub command: String,
}

/// A TLS refusal's port (`peer`, `native`, `resp`, `metrics`) and reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsLabel {
    pub port: &'static str,
    pub reason: &'static str,
}

/// The node's metrics. Cloning shares them.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub term: Gauge,
    /// 0 follower, 1 pre-candidate, 2 candidate, 3 leader.
    pub role: Gauge,
    pub leader_changes: Counter,
    pub commit_index: Gauge,
    pub applied_index: Gauge,
    pub last_index: Gauge,
    pub proposals: Counter,
    pub proposals_dropped: Counter,
    pub reads: Counter,
    /// Reads the core answered from its lease (a gauge of the core's counter, which
    /// restarts with the node).
    pub lease_reads: Gauge,
    pub keys: Gauge,
    pub fsync_seconds: Histogram,
    pub storage_records: Counter,
    pub snapshots: Counter,
    pub snapshot_seconds: Histogram,
    pub snapshot_bytes: Gauge,
    pub connections: Gauge,
    pub connections_total: Counter,
    pub commands: Family<CommandLabel, Counter>,
    pub command_seconds: Family<CommandLabel, Histogram>,
    pub command_errors: Family<CommandLabel, Counter>,
    pub auth_failures: Counter,
    /// Connections refused by TLS, by port and reason.
    pub tls_refusals: Family<TlsLabel, Counter>,
    /// Every command answered and every error reply (not exported: `INFO stats` reads them).
    pub commands_all: Counter,
    pub errors_all: Counter,
    /// When the node started.
    pub started: std::time::Instant,
    /// Each known command's metrics, made once: counting a command takes no allocation
    /// and no lock of the families.
    by_name: Arc<std::collections::HashMap<&'static str, (Counter, Histogram, Counter)>>,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    // 50 us to about 13 s.
    exponential_buckets(0.000_05, 2.0, 19)
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        // The registry is filled in below, from the metrics themselves.
        let mut m = Metrics {
            registry: Arc::new(Registry::default()),
            term: Gauge::default(),
            role: Gauge::default(),
            leader_changes: Counter::default(),
            commit_index: Gauge::default(),
            applied_index: Gauge::default(),
            last_index: Gauge::default(),
            proposals: Counter::default(),
            proposals_dropped: Counter::default(),
            reads: Counter::default(),
            lease_reads: Gauge::default(),
            keys: Gauge::default(),
            fsync_seconds: Histogram::new(latency_buckets()),
            storage_records: Counter::default(),
            snapshots: Counter::default(),
            snapshot_seconds: Histogram::new(latency_buckets()),
            snapshot_bytes: Gauge::default(),
            connections: Gauge::default(),
            connections_total: Counter::default(),
            commands: Family::default(),
            command_seconds: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            command_errors: Family::default(),
            auth_failures: Counter::default(),
            tls_refusals: Family::default(),
            commands_all: Counter::default(),
            errors_all: Counter::default(),
            started: std::time::Instant::now(),
            by_name: Arc::default(),
        };
        let mut r = Registry::with_prefix("skiff");
        r.register("raft_term", "The node's current term", m.term.clone());
        r.register("raft_role", "0 follower, 1 pre-candidate, 2 candidate, 3 leader", m.role.clone());
        r.register("raft_leader_changes", "Times the leader this node knows changed", m.leader_changes.clone());
        r.register("raft_commit_index", "The commit index", m.commit_index.clone());
        r.register("raft_applied_index", "The index applied to the state machine", m.applied_index.clone());
        r.register("raft_last_index", "The last index of the log", m.last_index.clone());
        r.register("raft_proposals", "Entries proposed to this node's core", m.proposals.clone());
        r.register("raft_proposals_dropped", "Proposals the core refused", m.proposals_dropped.clone());
        r.register("raft_reads", "Linearizable reads asked of this node's core", m.reads.clone());
        r.register("raft_lease_reads", "Reads answered from the leader's lease", m.lease_reads.clone());
        r.register("kv_keys", "Keys in the state machine", m.keys.clone());
        r.register("storage_fsync_seconds", "Time of one group commit (write and fsync)", m.fsync_seconds.clone());
        r.register("storage_records", "Records made durable", m.storage_records.clone());
        r.register("snapshots", "Snapshots taken", m.snapshots.clone());
        r.register("snapshot_seconds", "Time to encode a snapshot", m.snapshot_seconds.clone());
        r.register("snapshot_bytes", "Size of the latest snapshot taken", m.snapshot_bytes.clone());
        r.register("client_connections", "Client connections open", m.connections.clone());
        r.register("client_connections_accepted", "Client connections accepted", m.connections_total.clone());
        r.register("client_commands", "Commands answered, by name", m.commands.clone());
        r.register("client_command_seconds", "Latency of commands, by name", m.command_seconds.clone());
        r.register("client_command_errors", "Error replies, by command", m.command_errors.clone());
        r.register("client_auth_failures", "Failed authentications (AUTH, HELLO AUTH)", m.auth_failures.clone());
        r.register(
            "tls_refused",
            "Connections refused by TLS, by port and reason (plaintext, certificate, identity, handshake, timeout)",
            m.tls_refusals.clone(),
        );
        m.registry = Arc::new(r);
        let names = crate::server::resp_commands::all_commands().chain(["other"]);
        m.by_name = Arc::new(
            names
                .map(|name| {
                    let label = CommandLabel { command: name.to_string() };
                    let counters = (
                        m.commands.get_or_create(&label).clone(),
                        m.command_seconds.get_or_create(&label).clone(),
                        m.command_errors.get_or_create(&label).clone(),
                    );
                    (name, counters)
                })
                .collect(),
        );
        m
    }

    /// Counts a connection refused by TLS on `port` for `reason`.
    pub fn tls_refused(&self, port: &'static str, reason: &'static str) {
        self.tls_refusals.get_or_create(&TlsLabel { port, reason }).inc();
    }

    /// Counts one command answered after `took`, and whether its reply was an error. A name
    /// skiff does not know counts as `other`.
    pub fn command(&self, name: &str, took: Duration, error: bool) {
        let Some((count, seconds, errors)) = self.by_name.get(name).or_else(|| self.by_name.get("other")) else {
            return;
        };
        count.inc();
        self.commands_all.inc();
        seconds.observe(took.as_secs_f64());
        if error {
            self.errors_all.inc();
            errors.inc();
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a string");
        out
    }

    /// Serves `GET /metrics` on `listener` from a thread of its own, one short connection
    /// at a time (a scraper's; anything else gets 404, a request that does not arrive in
    /// 2 s is dropped). With `tls`, over TLS as its mode says (HTTPS).
    pub fn serve(&self, listener: TcpListener, tls: Option<MetricsTls>) -> io::Result<SocketAddr> {
        let addr = listener.local_addr()?;
        let metrics = self.clone();
        thread::Builder::new().name("skiff-metrics".into()).spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(e) = metrics.accept(stream, tls.as_ref()) {
                    tracing::debug!(error = %e, "metrics request");
                }
            }
        })?;
        Ok(addr)
    }

    fn accept(&self, stream: TcpStream, tls: Option<&MetricsTls>) -> io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.set_write_timeout(Some(Duration::from_secs(2)))?;
        let Some(tls) = tls.filter(|t| t.mode != crate::server::TlsMode::Off) else {
            return self.answer(stream);
        };
        // The first byte says whether the client speaks TLS (0x16 opens a handshake).
        let mut first = [0u8; 1];
        let refuse = |reason: &'static str, why: &str| {
            tracing::warn!(port = "metrics", reason, "refused a connection: {why}");
            self.tls_refused("metrics", reason);
        };
        match stream.peek(&mut first) {
            Ok(1) if first[0] == 0x16 => {}
            Ok(1) if tls.mode == crate::server::TlsMode::Optional => return self.answer(stream),
            Ok(1) => {
                refuse("plaintext", "plaintext on a port that requires TLS");
                // What arrived is read, so that closing ends the stream cleanly (no reset).
                let _ = (&stream).read(&mut [0u8; 4096]);
                return Ok(());
            }
            Ok(_) => return Ok(()),
            Err(e) => {
                refuse("timeout", "no TLS handshake in time");
                return Err(e);
            }
        }
        let conn = rustls::ServerConnection::new(tls.config.clone()).map_err(io::Error::other)?;
        let mut tls_stream = rustls::StreamOwned::new(conn, stream);
        // A client trickling bytes must not hold the (only) metrics thread past this.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while tls_stream.conn.is_handshaking() {
            if std::time::Instant::now() > deadline {
                refuse("timeout", "no TLS handshake in time");
                return Ok(());
            }
            if let Err(e) = tls_stream.conn.complete_io(&mut tls_stream.sock) {
                let reason = if e.kind() == io::ErrorKind::WouldBlock { "timeout" } else { "handshake" };
                refuse(reason, &e.to_string());
                return Err(e);
            }
        }
        self.answer(&mut tls_stream)?;
        tls_stream.conn.send_close_notify();
        tls_stream.flush()
    }

    fn answer(&self, mut stream: impl Read + Write) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        let mut len = 0;
        // The request line and headers, up to the blank line (bounded in size and time).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while len < buf.len() && !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            if std::time::Instant::now() > deadline {
                break;
            }
            let n = stream.read(&mut buf[len..])?;
            if n == 0 {
                break;
            }
            len += n;
        }
        let line = String::from_utf8_lossy(&buf[..len]);
        let (status, kind, body) = if line.starts_with("GET /metrics ") || line.starts_with("GET /metrics?") {
            ("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", self.encode())
        } else {
            ("404 Not Found", "text/plain", "only /metrics is served here\n".to_string())
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body.as_bytes())?;
        stream.flush()
    }
}

/// The metrics port's TLS: its mode and server configuration.
#[derive(Clone, Debug)]
pub struct MetricsTls {
    pub mode: crate::server::TlsMode,
    pub config: Arc<rustls::ServerConfig>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_served_in_the_text_format() {
        let m = Metrics::new();
        m.term.set(7);
        m.command("get", Duration::from_micros(300), false);
        m.command("incr", Duration::from_millis(2), true);
        let addr = m.serve(TcpListener::bind("127.0.0.1:0").unwrap(), None).unwrap();
        let get = |path: &str| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let page = get("/metrics");
        assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
        assert!(page.contains("skiff_raft_term 7"), "{page}");
        assert!(page.contains("skiff_client_commands_total{command=\"get\"} 1"), "{page}");
        assert!(page.contains("skiff_client_command_errors_total{command=\"incr\"} 1"), "{page}");
        let bucket = page.lines().find(|l| {
            l.starts_with("skiff_client_command_seconds_bucket")
                && l.contains("command=\"get\"")
                && l.contains("le=\"0.0004\"")
        });
        assert!(bucket.is_some_and(|l| l.ends_with(" 1")), "{page}");
        assert!(get("/other").starts_with("HTTP/1.1 404"));
    }
}
