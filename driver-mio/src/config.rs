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
use skiff_core::{Config, NodeId};

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
    /// The RESP2 port (redis-cli, Redis client libraries).
    pub resp_listen: String,
    pub data_dir: PathBuf,
    pub tick_ms: u64,
    pub heartbeat_ticks: u32,
    pub election_ticks_min: u32,
    pub election_ticks_max: u32,
    /// Snapshot once the WAL passes this many bytes.
    pub snapshot_threshold: u64,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
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
            data_dir: PathBuf::from("skiff-data/n1"),
            tick_ms: 10,
            heartbeat_ticks: 10,
            election_ticks_min: 50,
            election_ticks_max: 100,
            snapshot_threshold: 64 << 20,
            max_key_bytes: 1024,
            max_value_bytes: 1 << 20,
        }
    }
}

/// A configuration that cannot work, with what to fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration error: {}", self.0)
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
    /// Native client addresses of the cluster, in node id order (a RESP session's clerk
    /// numbers servers by position here).
    pub clients: Vec<(NodeId, SocketAddr)>,
}

fn addr(what: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|_| ConfigError(format!("{what}: '{s}' is not an address like 127.0.0.1:7001")))
}

impl NodeConfig {
    /// Reads a TOML file. Unknown keys are errors (a typo must not be silently ignored).
    pub fn from_file(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// Checks everything that can be checked before starting.
    pub fn validate(&self) -> Result<Resolved, ConfigError> {
        let mut peers = BTreeMap::new();
        for (key, a) in &self.peers {
            let id = match key.parse::<u64>() {
                Ok(id) if id > 0 => id,
                _ => return Err(ConfigError(format!("peers: '{key}' is not a node id (1, 2, ...)"))),
            };
            peers.insert(NodeId(id), addr(&format!("peers.{id}"), a)?);
        }
        let own = *peers
            .get(&NodeId(self.id))
            .ok_or_else(|| ConfigError(format!("id {} is not in peers ({:?})", self.id, self.peers.keys())))?;
        let peer_listen = match &self.peer_listen {
            Some(a) => addr("peer_listen", a)?,
            None => own,
        };
        let client_listen = addr("client_listen", &self.client_listen)?;
        let resp_listen = addr("resp_listen", &self.resp_listen)?;
        if self.tick_ms == 0 {
            return Err(ConfigError("tick_ms must be at least 1".into()));
        }
        let raft = Config::builder(NodeId(self.id), peers.keys().copied(), self.id ^ self.cluster_id.rotate_left(17))
            .heartbeat_ticks(self.heartbeat_ticks)
            .election_ticks(self.election_ticks_min, self.election_ticks_max)
            .build()
            .map_err(|e| ConfigError(e.to_string()))?;
        let mut clients = BTreeMap::new();
        for (key, a) in &self.clients {
            let id: u64 = key.parse().map_err(|_| ConfigError(format!("clients: '{key}' is not a node id")))?;
            if !peers.contains_key(&NodeId(id)) {
                return Err(ConfigError(format!("clients: node {id} is not in peers")));
            }
            clients.insert(id, addr(&format!("clients.{id}"), a)?);
        }
        clients.entry(self.id).or_insert(client_listen);
        let clients = clients.into_iter().map(|(id, a)| (NodeId(id), a)).collect();
        Ok(Resolved { raft, peers, peer_listen, client_listen, resp_listen, clients })
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
    }
}
