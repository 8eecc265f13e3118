//! `skiff-node`: one skiff KV server. Configuration from an optional TOML file, then flags.
//! SIGTERM or Ctrl-C: stop accepting, flush, exit 0. A bad configuration or an unusable data
//! directory: a message and exit code 2.

#[global_allocator]
static ALLOCATOR: skiff_mio::Allocator = skiff_mio::Allocator {};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use skiff_mio::cli::{init_logs, parse_map, stop_on_signals, LogFormat};
use skiff_mio::config::NodeConfig;

#[derive(Parser, Debug)]
#[command(name = "skiff-node", version, about = "A skiff KV server (Raft, native and RESP client ports)")]
struct Args {
    /// TOML configuration file (every field optional; flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    id: Option<u64>,
    #[arg(long)]
    cluster_id: Option<u64>,
    /// Every voter's peer address: 1=127.0.0.1:7001,2=127.0.0.1:7002,...
    #[arg(long)]
    peers: Option<String>,
    /// Every node's native client address (for forwarding): 1=127.0.0.1:7101,...
    #[arg(long)]
    clients: Option<String>,
    #[arg(long)]
    peer_listen: Option<String>,
    #[arg(long)]
    client_listen: Option<String>,
    #[arg(long)]
    resp_listen: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9181).
    #[arg(long)]
    metrics_listen: Option<String>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long)]
    tick_ms: Option<u64>,
    #[arg(long)]
    snapshot_threshold: Option<u64>,
    #[arg(long)]
    max_snapshot_bytes: Option<u64>,
    #[arg(long)]
    max_sessions: Option<u32>,
    #[arg(long)]
    session_ttl_s: Option<u64>,
    #[arg(long)]
    max_clients: Option<usize>,
    #[arg(long)]
    max_client_buffer_bytes: Option<usize>,
    #[arg(long)]
    peer_handshake_timeout_ms: Option<u64>,
    /// TLS on every port with this certificate (PEM; `skiff certs` makes one): with
    /// --tls-key and --tls-ca. A `[tls]` table in the configuration sets modes per port.
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires_all = ["tls_cert", "tls_ca"])]
    tls_key: Option<PathBuf>,
    /// The cluster CA certificate (PEM): peers' certificates must chain to it.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<PathBuf>,
    /// Join a running cluster: with an empty data directory, wait to be added (see `skiff
    /// member add-learner`) instead of starting a new cluster.
    #[arg(long)]
    join: bool,
    /// Answer reads from the leader's lease instead of a heartbeat round (see the README's
    /// "Lease reads" for the clock-drift bound it assumes: `lease_clock_drift_permille`).
    #[arg(long)]
    lease_reads: bool,
    /// Read a password from standard input, print its Argon2 hash for a `[[users]]` entry's
    /// `password_hash`, and exit.
    #[arg(long)]
    hash_password: bool,
    /// Log lines as text (coloured only on a terminal) or as JSON objects.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn config(a: Args) -> Result<NodeConfig, String> {
    let mut c = match &a.config {
        Some(path) => NodeConfig::from_file(path).map_err(|e| e.to_string())?,
        None => NodeConfig::default(),
    };
    if let Some(v) = a.id {
        c.id = v;
    }
    if let Some(v) = a.cluster_id {
        c.cluster_id = v;
    }
    if let Some(v) = &a.peers {
        c.peers = parse_map(v).map_err(|e| format!("--peers: {e}"))?;
    }
    if let Some(v) = &a.clients {
        c.clients = parse_map(v).map_err(|e| format!("--clients: {e}"))?;
    }
    if let Some(v) = a.peer_listen {
        c.peer_listen = Some(v);
    }
    if let Some(v) = a.client_listen {
        c.client_listen = v;
    }
    if let Some(v) = a.resp_listen {
        c.resp_listen = v;
    }
    if let Some(v) = a.metrics_listen {
        c.metrics_listen = Some(v);
    }
    if let Some(v) = a.data_dir {
        c.data_dir = v;
    }
    if let Some(v) = a.tick_ms {
        c.tick_ms = v;
    }
    if let Some(v) = a.snapshot_threshold {
        c.snapshot_threshold = v;
    }
    if let Some(v) = a.max_snapshot_bytes {
        c.max_snapshot_bytes = v;
    }
    if let Some(v) = a.max_sessions {
        c.max_sessions = v;
    }
    if let Some(v) = a.session_ttl_s {
        c.session_ttl_s = v;
    }
    if let Some(v) = a.max_clients {
        c.max_clients = v;
    }
    if let Some(v) = a.max_client_buffer_bytes {
        c.max_client_buffer_bytes = v;
    }
    if let Some(v) = a.peer_handshake_timeout_ms {
        c.peer_handshake_timeout_ms = v;
    }
    if let (Some(cert), Some(key), Some(ca)) = (a.tls_cert, a.tls_key, a.tls_ca) {
        let files = skiff_std::tls::TlsFiles { cert, key, ca };
        c.tls = Some(match c.tls.take() {
            Some(t) => skiff_mio::config::TlsConfig { cert: files.cert, key: files.key, ca: files.ca, ..t },
            None => skiff_mio::config::TlsConfig::with_files(files),
        });
    }
    c.join |= a.join;
    c.lease_reads |= a.lease_reads;
    Ok(c)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.hash_password {
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line).is_err() || line.trim_end_matches(['\r', '\n']).is_empty() {
            eprintln!("skiff-node --hash-password: give the password on standard input");
            return ExitCode::FAILURE;
        }
        println!("{}", skiff_mio::server::acl::hash_password(line.trim_end_matches(['\r', '\n'])));
        return ExitCode::SUCCESS;
    }
    init_logs(args.log_format);
    let cfg = match config(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skiff-node: {e}");
            return ExitCode::from(2);
        }
    };
    let stop = match stop_on_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skiff-node: cannot handle signals: {e}");
            return ExitCode::from(2);
        }
    };
    match skiff_mio::node::run(&cfg, stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skiff-node: {e}");
            ExitCode::from(2)
        }
    }
}
