//! `skiff-node`'s configuration: a TOML file (optional) whose every field has a default, then
//! command-line flags on top. [`NodeConfig::validate`] turns mistakes into clear errors before
//! anything starts.
//!
//! ```toml
//! id = 1
//! cluster_id = 7
//! data_dir = "skiff-data/n1"
//! peer_listen = "127.0.0.1:7001"
//! client_listen = "127.0.0.1:7101"
//! resp_listen = "127.0.0.1:6381"
//! [peers]
//! 1 = "127.0.0.1:7001"
//! 2 = "127.0.0.1:7002"
//! 3 = "127.0.0.1:7003"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use skiff_core::kv::SessionLimits;
use skiff_core::{Config, NodeId};

use crate::server::TlsMode;

/// Everything a node needs to start.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id (a key of `peers`).
    pub id: u64,
    /// Refuses peers from another cluster (and a data directory of another cluster).
    pub cluster_id: u64,
    /// Every voter's peer address, by id (this node included). TOML keys are strings.
    pub peers: BTreeMap<String, String>,
    /// Every node's native client address, by id: where this node's RESP port forwards
    /// requests when it does not lead (default: this node's `client_listen` only).
    pub clients: BTreeMap<String, String>,
    /// Where this node accepts peers (default: its own entry in `peers`).
    pub peer_listen: Option<String>,
    /// The native client port (the Rust `KvClerk`).
    pub client_listen: String,
    /// The RESP port (redis-cli, Redis client libraries; RESP2 and RESP3).
    pub resp_listen: String,
    /// Where Prometheus scrapes `GET /metrics` (none by default).
    pub metrics_listen: Option<String>,
    pub data_dir: PathBuf,
    pub tick_ms: u64,
    pub heartbeat_ticks: u32,
    pub election_ticks_min: u32,
    pub election_ticks_max: u32,
    /// Answer reads from the leader's lease instead of a heartbeat round (ReadIndex, the
    /// default): faster, and safe only while no node's clock runs faster or slower than
    /// `lease_clock_drift_permille` allows (see the README's "Lease reads").
    pub lease_reads: bool,
    /// The clock-drift bound lease reads assume, in parts per thousand (default 50: 5%).
    pub lease_clock_drift_permille: u32,
    /// Snapshot once this many bytes of log were written since the last snapshot (the
    /// snapshot is encoded off the event loop).
    pub snapshot_threshold: u64,
    /// Keep the latest snapshot in its file only (default): the node reads it back when a
    /// follower needs it, instead of holding a second copy of its state in memory.
    pub snapshots_in_storage: bool,
    /// Largest snapshot this node takes from a leader; a larger one is refused (the leader
    /// is told and `INFO` shows it as `peer_N_snapshot_refused` there), so set it above the
    /// state's size on every node.
    pub max_snapshot_bytes: u64,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// Most client sessions the cluster keeps (each RESP connection that writes, each
    /// `KvClerk`, holds one); past it the least recently active go.
    pub max_sessions: u32,
    /// A client session with no write for this many seconds expires.
    pub session_ttl_s: u64,
    /// Most client connections (native and RESP together); one past it is refused.
    pub max_clients: usize,
    /// Most bytes all client connections may hold in buffers together (input, commands
    /// waiting, output); past it the one holding the most is closed.
    pub max_client_buffer_bytes: usize,
    /// How long an incoming peer connection may take to send its handshake.
    pub peer_handshake_timeout_ms: u64,
    /// Join a running cluster instead of starting a new one: with an empty data directory
    /// the node starts with no configuration and waits to be added (`skiff member
    /// add-learner`); `peers` then need only this node's own entry. A node with data uses
    /// the configuration its data holds, whatever this says.
    pub join: bool,
    /// The users clients authenticate as (`[[users]]` tables); with none, every connection
    /// may run everything.
    pub users: Vec<UserConfig>,
    /// TLS on the ports (a `[tls]` table); without it every port speaks plaintext.
    pub tls: Option<TlsConfig>,
}

/// The `[tls]` table: this node's certificate (PEM, it must name the node as `skiff certs`
/// does: see `skiff_std::tls`), its private key, the cluster CA, and each port's mode
/// (`required`, the default; `optional`, TLS or plaintext as the client chooses; `off`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub peer: String,
    pub native: String,
    pub resp: String,
    pub metrics: String,
    /// How long an accepted connection may take to complete its TLS handshake.
    pub handshake_timeout_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: PathBuf::new(),
            key: PathBuf::new(),
            ca: PathBuf::new(),
            peer: "required".into(),
            native: "required".into(),
            resp: "required".into(),
            metrics: "required".into(),
            handshake_timeout_ms: 5000,
        }
    }
}

/// The `[tls]` table checked: files named, modes parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedTls {
    pub files: skiff_std::tls::TlsFiles,
    pub peer: TlsMode,
    pub native: TlsMode,
    pub resp: TlsMode,
    pub metrics: TlsMode,
    pub handshake_timeout: std::time::Duration,
}

impl TlsConfig {
    /// Every port TLS required, with these files.
    pub fn with_files(files: skiff_std::tls::TlsFiles) -> TlsConfig {
        TlsConfig { cert: files.cert, key: files.key, ca: files.ca, ..TlsConfig::default() }
    }

    fn resolve(&self) -> Result<ResolvedTls, ConfigError> {
        for (field, path) in [("cert", &self.cert), ("key", &self.key), ("ca", &self.ca)] {
            if path.as_os_str().is_empty() {
                return Err(ConfigError::Tls(format!("{field} is not set (the path of a PEM file)")));
            }
        }
        let mode = |field: &str, value: &str| {
            TlsMode::parse(value).ok_or_else(|| {
                ConfigError::Tls(format!("{field}: '{value}' is not a TLS mode (required, optional or off)"))
            })
        };
        if !(1..=MAX_TIMEOUT_MS).contains(&self.handshake_timeout_ms) {
            return Err(ConfigError::Tls(format!("handshake_timeout_ms must be between 1 and {MAX_TIMEOUT_MS}")));
        }
        Ok(ResolvedTls {
            files: skiff_std::tls::TlsFiles { cert: self.cert.clone(), key: self.key.clone(), ca: self.ca.clone() },
            peer: mode("peer", &self.peer)?,
            native: mode("native", &self.native)?,
            resp: mode("resp", &self.resp)?,
            metrics: mode("metrics", &self.metrics)?,
            handshake_timeout: std::time::Duration::from_millis(self.handshake_timeout_ms),
        })
    }
}

/// One `[[users]]` table: `name`, `role` (`read-only`, `read-write` or `admin`) and
/// `password_hash`, an Argon2 PHC string (`skiff-node --hash-password` makes one).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    pub role: String,
    pub password_hash: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: 1,
            cluster_id: 1,
            peers: BTreeMap::from([("1".to_string(), "127.0.0.1:7001".to_string())]),
            clients: BTreeMap::new(),
            peer_listen: None,
            client_listen: "127.0.0.1:7101".into(),
            resp_listen: "127.0.0.1:6381".into(),
            metrics_listen: None,
            data_dir: PathBuf::from("skiff-data/n1"),
            tick_ms: 10,
            heartbeat_ticks: 10,
            election_ticks_min: 50,
            election_ticks_max: 100,
            lease_reads: false,
            lease_clock_drift_permille: 50,
            snapshot_threshold: 64 << 20,
            snapshots_in_storage: true,
            max_snapshot_bytes: 4 << 30,
            max_key_bytes: 1024,
            max_value_bytes: 1 << 20,
            max_sessions: 10_000,
            session_ttl_s: 3600,
            max_clients: 10_000,
            max_client_buffer_bytes: 256 << 20,
            peer_handshake_timeout_ms: 5000,
            join: false,
            users: Vec::new(),
            tls: None,
        }
    }
}

/// A configuration that cannot work; `Display` says what to fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The file could not be read.
    Unreadable {
        path: String,
        error: String,
    },
    /// The file is not valid TOML for a node (a syntax error, an unknown key, a wrong type).
    Syntax {
        path: String,
        error: String,
    },
    /// `field` holds something that is not a socket address.
    NotAnAddress {
        field: String,
        value: String,
    },
    /// A key of `table` (`peers`, `clients`) is not a node id.
    NotANodeId {
        table: &'static str,
        key: String,
    },
    /// This node's id is not among the peers.
    NotAPeer {
        id: u64,
        peers: Vec<String>,
    },
    /// A client address is given for a node that is not a peer.
    ClientNotAPeer {
        id: u64,
    },
    /// `field` is an unspecified address (0.0.0.0 or ::), which other nodes cannot dial.
    Undialable {
        field: String,
    },
    ZeroTick,
    /// `max_sessions` or `session_ttl_s` is 0.
    NoSessions,
    /// A transaction of twice the largest key and value would not fit in one log entry.
    ValueOverEntryLimit {
        max_key_bytes: usize,
        max_value_bytes: usize,
        max_entry_bytes: usize,
    },
    /// The Raft settings do not make a valid core configuration.
    Raft(skiff_core::ConfigError),
    /// A `[[users]]` entry is wrong.
    User(String),
    /// The `[tls]` table is wrong.
    Tls(String),
    /// A duration past its bound.
    TooLong {
        field: &'static str,
        max_ms: u64,
    },
    /// Lease reads with a lease longer than the ticks the loop delivers at once after a
    /// stall (`MAX_TICK_BURST`): a long stall would leave the lease clock behind.
    LeaseTooLong {
        lease_ticks: u32,
        max: u64,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("configuration error: ")?;
        match self {
            ConfigError::Unreadable { path, error } => write!(f, "cannot read {path}: {error}"),
            ConfigError::Syntax { path, error } => write!(f, "{path}: {error}"),
            ConfigError::NotAnAddress { field, value } => {
                write!(f, "{field}: '{value}' is not an address like 127.0.0.1:7001")
            }
            ConfigError::NotANodeId { table, key } => write!(f, "{table}: '{key}' is not a node id (1, 2, ...)"),
            ConfigError::NotAPeer { id, peers } => write!(f, "id {id} is not in peers ({peers:?}); add it there"),
            ConfigError::ClientNotAPeer { id } => write!(f, "clients: node {id} is not in peers"),
            ConfigError::Undialable { field } => write!(
                f,
                "{field}: other nodes dial this address, and 0.0.0.0 or :: names no host; give the address \
                 they reach the node at (to listen on every interface, set peer_listen or client_listen)"
            ),
            ConfigError::ZeroTick => write!(f, "tick_ms must be at least 1"),
            ConfigError::NoSessions => write!(f, "max_sessions and session_ttl_s must be at least 1"),
            ConfigError::ValueOverEntryLimit { max_key_bytes, max_value_bytes, max_entry_bytes } => write!(
                f,
                "max_key_bytes ({max_key_bytes}) and max_value_bytes ({max_value_bytes}) allow commands over \
                 the log's entry limit of {max_entry_bytes} bytes: a transaction holds up to twice both, with \
                 {COMMAND_OVERHEAD} bytes for the rest of each of up to 1024 commands"
            ),
            ConfigError::Raft(e) => write!(f, "{e}"),
            ConfigError::User(e) => write!(f, "users: {e}"),
            ConfigError::Tls(e) => write!(f, "tls: {e}"),
            ConfigError::TooLong { field, max_ms } => write!(f, "{field} must be at most {max_ms}"),
            ConfigError::LeaseTooLong { lease_ticks, max } => write!(
                f,
                "lease reads: a lease of {lease_ticks} ticks is longer than the {max} ticks a node catches up at once after a stall; lower election_ticks_min"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// What [`NodeConfig::validate`] resolved: addresses parsed, the core's configuration built.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub raft: Config,
    pub peers: BTreeMap<NodeId, SocketAddr>,
    pub peer_listen: SocketAddr,
    pub client_listen: SocketAddr,
    pub resp_listen: SocketAddr,
    pub metrics_listen: Option<SocketAddr>,
    /// Native client addresses of the cluster, in node id order (a RESP session's clerk
    /// numbers servers by position here).
    pub clients: Vec<(NodeId, SocketAddr)>,
    pub sessions: SessionLimits,
    pub tls: Option<ResolvedTls>,
}

/// Longest handshake timeout accepted (an hour).
const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// Bytes of a KV command besides its key and value (client id, sequence, op, lengths).
const COMMAND_OVERHEAD: usize = 64;

fn addr(what: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|_| ConfigError::NotAnAddress { field: what.to_string(), value: s.to_string() })
}

impl NodeConfig {
    /// Whether this node's certificate and key are in `certs`.
    pub fn tls_files_exist(&self, certs: &crate::certs::CertDir) -> bool {
        certs.node_cert(self.id).exists() && certs.node_key(self.id).exists()
    }

    /// The users of the configuration, checked.
    pub fn users(&self) -> Result<crate::server::acl::Users, crate::server::acl::UserError> {
        let entries: Vec<(String, String, String)> =
            self.users.iter().map(|u| (u.name.clone(), u.role.clone(), u.password_hash.clone())).collect();
        crate::server::acl::Users::new(&entries)
    }

    /// Reads a TOML file. Unknown keys are errors (a typo must not be silently ignored).
    pub fn from_file(path: &Path) -> Result<NodeConfig, ConfigError> {
        let path_text = || path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Unreadable { path: path_text(), error: e.to_string() })?;
        toml::from_str(&text).map_err(|e| ConfigError::Syntax { path: path_text(), error: e.to_string() })
    }

    /// Checks everything that can be checked before starting.
    pub fn validate(&self) -> Result<Resolved, ConfigError> {
        self.users().map_err(|e| ConfigError::User(e.0))?;
        let tls = self.tls.as_ref().map(TlsConfig::resolve).transpose()?;
        let mut peers = BTreeMap::new();
        for (key, a) in &self.peers {
            let id = match key.parse::<u64>() {
                Ok(id) if id > 0 => id,
                _ => return Err(ConfigError::NotANodeId { table: "peers", key: key.clone() }),
            };
            let field = format!("peers.{id}");
            let a = addr(&field, a)?;
            if a.ip().is_unspecified() {
                return Err(ConfigError::Undialable { field });
            }
            peers.insert(NodeId(id), a);
        }
        let own = *peers
            .get(&NodeId(self.id))
            .ok_or_else(|| ConfigError::NotAPeer { id: self.id, peers: self.peers.keys().cloned().collect() })?;
        let peer_listen = match &self.peer_listen {
            Some(a) => addr("peer_listen", a)?,
            None => own,
        };
        let client_listen = addr("client_listen", &self.client_listen)?;
        let resp_listen = addr("resp_listen", &self.resp_listen)?;
        let metrics_listen = self.metrics_listen.as_ref().map(|m| addr("metrics_listen", m)).transpose()?;
        if self.tick_ms == 0 {
            return Err(ConfigError::ZeroTick);
        }
        if self.peer_handshake_timeout_ms > MAX_TIMEOUT_MS {
            return Err(ConfigError::TooLong { field: "peer_handshake_timeout_ms", max_ms: MAX_TIMEOUT_MS });
        }
        if self.max_sessions == 0 || self.session_ttl_s == 0 {
            return Err(ConfigError::NoSessions);
        }
        let sessions = SessionLimits { max: self.max_sessions, ttl: self.session_ttl_s.saturating_mul(1000) };
        let mut clients = BTreeMap::new();
        for (key, a) in &self.clients {
            let id: u64 = key.parse().map_err(|_| ConfigError::NotANodeId { table: "clients", key: key.clone() })?;
            if !peers.contains_key(&NodeId(id)) {
                return Err(ConfigError::ClientNotAPeer { id });
            }
            let field = format!("clients.{id}");
            let a = addr(&field, a)?;
            if a.ip().is_unspecified() {
                return Err(ConfigError::Undialable { field });
            }
            clients.insert(id, a);
        }
        // Our own client address defaults to where we listen, unless that names no host
        // (other nodes then learn none, and forward nothing here).
        if !client_listen.ip().is_unspecified() {
            clients.entry(self.id).or_insert(client_listen);
        }
        let seed = self.id ^ self.cluster_id.rotate_left(17);
        let builder = if self.join {
            Config::joining(NodeId(self.id), seed)
        } else {
            // The bootstrap configuration carries every node's addresses, so that nodes added
            // later learn where the first ones are.
            let addresses = peers
                .iter()
                .map(|(id, raft)| {
                    let client = clients.get(&id.0).copied();
                    (*id, skiff_std::address::PeerAddress { raft: *raft, client }.encode())
                })
                .collect();
            Config::builder(NodeId(self.id), peers.keys().copied(), seed).initial_addresses(addresses)
        };
        let builder = builder
            .heartbeat_ticks(self.heartbeat_ticks)
            .election_ticks(self.election_ticks_min, self.election_ticks_max)
            .max_snapshot_bytes(self.max_snapshot_bytes)
            .snapshots_in_storage(self.snapshots_in_storage);
        let builder = if self.lease_reads { builder.lease_reads(self.lease_clock_drift_permille) } else { builder };
        let raft = builder.build().map_err(ConfigError::Raft)?;
        let max = crate::server::MAX_TICK_BURST;
        if u64::from(raft.lease_ticks()) >= max {
            return Err(ConfigError::LeaseTooLong { lease_ticks: raft.lease_ticks(), max });
        }
        let max_entry_bytes = raft.max_entry_bytes();
        // A transaction may hold twice the key and value limits of arguments (and a
        // pipeline its value limit): both must fit one entry.
        let largest = self.max_key_bytes.saturating_add(self.max_value_bytes).saturating_mul(2);
        if largest.saturating_add(COMMAND_OVERHEAD * 1024) > max_entry_bytes {
            let (max_key_bytes, max_value_bytes) = (self.max_key_bytes, self.max_value_bytes);
            return Err(ConfigError::ValueOverEntryLimit { max_key_bytes, max_value_bytes, max_entry_bytes });
        }
        let clients = clients.into_iter().map(|(id, a)| (NodeId(id), a)).collect();
        Ok(Resolved { raft, peers, peer_listen, client_listen, resp_listen, metrics_listen, clients, sessions, tls })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_make_a_working_single_node() {
        let r = NodeConfig::default().validate().unwrap();
        assert_eq!(r.peer_listen, "127.0.0.1:7001".parse().unwrap());
    }

    #[test]
    fn a_toml_file_sets_fields_and_typos_are_errors() {
        let c: NodeConfig = toml::from_str(
            "id = 2\ncluster_id = 9\n[peers]\n1 = \"127.0.0.1:7001\"\n2 = \"127.0.0.1:7002\"\n3 = \"127.0.0.1:7003\"\n",
        )
        .unwrap();
        let r = c.validate().unwrap();
        assert_eq!((r.peers.len(), r.peer_listen.port()), (3, 7002));
        assert!(toml::from_str::<NodeConfig>("idd = 2").is_err());
    }

    #[test]
    fn mistakes_are_named() {
        let bad = |f: fn(&mut NodeConfig)| {
            let mut c = NodeConfig::default();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(bad(|c| c.id = 4).contains("id 4 is not in peers"));
        assert!(bad(|c| c.client_listen = "localhost".into()).contains("client_listen"));
        assert!(bad(|c| c.election_ticks_min = 5).contains("election"));
        assert!(bad(|c| c.tick_ms = 0).contains("tick_ms"));
        assert!(bad(|c| {
            c.lease_reads = true;
            c.lease_clock_drift_permille = 1000;
        })
        .contains("leaves no lease"));
        assert!(bad(|c| {
            c.lease_reads = true;
            c.election_ticks_min = 5000;
            c.election_ticks_max = 6000;
        })
        .contains("longer than the 1000 ticks"));
        let leased = NodeConfig { lease_reads: true, ..NodeConfig::default() }.validate().unwrap();
        // (50 - 1) ticks shrunk by 5% each way: 44 ticks of 10 ms.
        assert_eq!(leased.raft.lease_ticks(), 44);
        assert!(bad(|c| c.peer_handshake_timeout_ms = u64::MAX).contains("peer_handshake_timeout_ms must be at most"));
        assert!(bad(|c| c.max_sessions = 0).contains("max_sessions"));
        assert!(bad(|c| c.max_value_bytes = 64 << 20).contains("entry limit"));
        // A transaction of twice the value limit must fit the 16 MiB entry too.
        assert!(bad(|c| c.max_value_bytes = 8 << 20).contains("twice"));
        let mut ok = NodeConfig { max_value_bytes: 7 << 20, ..NodeConfig::default() };
        assert!(ok.validate().is_ok());
        ok.users = vec![UserConfig { name: "u".into(), role: "root".into(), password_hash: "x".into() }];
        assert!(ok.validate().unwrap_err().to_string().contains("users: user \"u\": role \"root\""));
        // Addresses others dial must name a host.
        assert!(bad(|c| {
            c.peers.insert("1".into(), "0.0.0.0:7001".into());
        })
        .contains("peers.1: other nodes dial this address"));
        assert!(bad(|c| {
            c.clients.insert("1".into(), "[::]:7101".into());
        })
        .contains("clients.1"));
    }

    #[test]
    fn a_tls_table_names_its_files_and_modes() {
        let c: NodeConfig =
            toml::from_str("[tls]\ncert = \"n.crt\"\nkey = \"n.key\"\nca = \"ca.crt\"\nresp = \"optional\"\n").unwrap();
        let t = c.validate().unwrap().tls.unwrap();
        assert_eq!(
            (t.peer, t.native, t.resp, t.metrics),
            (TlsMode::Required, TlsMode::Required, TlsMode::Optional, TlsMode::Required)
        );
        assert_eq!(t.files.ca, PathBuf::from("ca.crt"));
        let bad = |text: &str| toml::from_str::<NodeConfig>(text).unwrap().validate().unwrap_err().to_string();
        assert!(bad("[tls]\ncert = \"a\"\nkey = \"b\"\n").contains("tls: ca is not set"));
        assert!(bad("[tls]\ncert = \"a\"\nkey = \"b\"\nca = \"c\"\npeer = \"yes\"")
            .contains("peer: 'yes' is not a TLS mode"));
        assert!(toml::from_str::<NodeConfig>("[tls]\ncertificate = \"a\"").is_err(), "unknown keys are errors");
        assert!(bad("[tls]\ncert = \"a\"\nkey = \"b\"\nca = \"c\"\nhandshake_timeout_ms = 99999999999")
            .contains("handshake_timeout_ms must be between"));
    }

    #[test]
    fn a_node_listening_on_every_interface_advertises_no_client_address_it_cannot_be_reached_at() {
        let c = NodeConfig { client_listen: "0.0.0.0:7101".into(), ..NodeConfig::default() };
        let r = c.validate().unwrap();
        assert_eq!(r.client_listen, "0.0.0.0:7101".parse().unwrap());
        assert!(r.clients.is_empty(), "{:?}", r.clients);
        let addresses = r.raft.bootstrap_membership().addresses().clone();
        let own = skiff_std::address::PeerAddress::decode(&addresses[&skiff_core::NodeId(1)]).unwrap();
        assert_eq!(own.client, None);
    }
}
