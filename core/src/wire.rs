//! The wire types every driver shares, framed by [`crate::codec`]: the handshake that opens a
//! peer connection ([`Hello`]) and the native client protocol ([`ClientRequest`] answered by
//! [`ClientResponse`] with the same id).

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::kv::{Command, Reply};
use crate::types::NodeId;

/// Version of the peer protocol (handshake and message encoding). Version 2 carries a
/// snapshot's configuration (`SnapshotMeta::membership`), `Config` entries and the
/// sender's address in the greeting; version 3, KV entries of Redis's data model
/// (`Body::Write`, `Body::Sweep`), which a node of version 2 would skip as foreign, and
/// diverge. Nodes of different versions refuse each other at the handshake: a cluster is
/// upgraded across versions by stopping every node, then starting them on the new version
/// (each reads its old data).
pub const PROTOCOL_VERSION: u32 = 3;

/// The first field of every native client frame: a client or server of another version of
/// the native protocol (whose commands would decode as other commands) is refused, not
/// misread. Version 2 carries Redis commands (`Op::Cmd`); version 3, a [`Token`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NativeVersion;

/// What [`NativeVersion`] encodes: "SKN" and the version, as a postcard varint (an old
/// client's first field is its request id, which never gets near it).
const NATIVE_MAGIC: u32 = 0x534b_4e03;

impl Serialize for NativeVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        NATIVE_MAGIC.serialize(s)
    }
}

impl<'de> Deserialize<'de> for NativeVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u32::deserialize(d)? {
            NATIVE_MAGIC => Ok(NativeVersion),
            _ => Err(serde::de::Error::custom("another version of skiff's native client protocol")),
        }
    }
}
const MAGIC: u32 = 0x534b_4946; // "SKIF"

/// The first frame on every peer connection.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Hello {
    pub magic: u32,
    pub version: u32,
    pub cluster_id: u64,
    pub from: NodeId,
    /// Where the sender takes peer connections, in the driver's encoding of a
    /// configuration's addresses (empty if it does not say): a node that joins knows no one,
    /// and learns where to answer its leader from the leader's greeting.
    pub address: bytes::Bytes,
}

/// Why a peer's greeting is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// Not a skiff peer, or another version of the protocol.
    Version { theirs: u32 },
    /// A node of another cluster (check its `cluster_id`).
    Cluster { theirs: u64, ours: u64 },
    /// A node that is not one of our peers (or claims our own id).
    UnknownNode(NodeId),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Version { theirs } => {
                write!(f, "protocol version {theirs} (we speak {PROTOCOL_VERSION}); is this a skiff peer port?")
            }
            HandshakeError::Cluster { theirs, ours } => {
                write!(f, "cluster id {theirs} (ours is {ours}); the two nodes belong to different clusters")
            }
            HandshakeError::UnknownNode(n) => write!(f, "unknown node {}: not in this node's peer list", n.0),
        }
    }
}

impl Hello {
    /// The greeting of node `from` of cluster `cluster_id`, which listens at `address`.
    pub fn new(cluster_id: u64, from: NodeId, address: bytes::Bytes) -> Hello {
        Hello { magic: MAGIC, version: PROTOCOL_VERSION, cluster_id, from, address }
    }

    /// Whether node `me` of cluster `cluster_id` accepts this greeting, `is_peer` telling
    /// which ids are its peers.
    pub fn check(&self, cluster_id: u64, me: NodeId, is_peer: impl Fn(NodeId) -> bool) -> Result<(), HandshakeError> {
        if self.magic != MAGIC || self.version != PROTOCOL_VERSION {
            return Err(HandshakeError::Version { theirs: self.version });
        }
        if self.cluster_id != cluster_id {
            return Err(HandshakeError::Cluster { theirs: self.cluster_id, ours: cluster_id });
        }
        if self.from == me || !is_peer(self.from) {
            return Err(HandshakeError::UnknownNode(self.from));
        }
        Ok(())
    }
}

/// A native client's request; `id` is the client's, repeated in the answer (a clerk uses its
/// attempt number, so a late answer to an earlier attempt is recognised).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequest {
    pub version: NativeVersion,
    pub id: u64,
    pub command: Command,
    /// Who asks: a node with users configured answers nothing without one that checks.
    pub token: Option<Token>,
}

/// A user's credentials, as `AUTH user password` gives them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub user: alloc::string::String,
    pub password: bytes::Bytes,
}

impl fmt::Debug for Token {
    /// The user only: a password never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({})", self.user)
    }
}

/// The server's answer to request `id` (id 0: a refusal of the connection's input, sent
/// before the server closes it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientResponse {
    pub version: NativeVersion,
    pub id: u64,
    pub reply: Reply,
}

impl ClientRequest {
    pub fn new(id: u64, command: Command) -> ClientRequest {
        ClientRequest { version: NativeVersion, id, command, token: None }
    }

    /// The request with credentials.
    pub fn with_token(self, token: Option<Token>) -> ClientRequest {
        ClientRequest { token, ..self }
    }
}

impl ClientResponse {
    pub fn new(id: u64, reply: Reply) -> ClientResponse {
        ClientResponse { version: NativeVersion, id, reply }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_native_frame_of_another_version_does_not_decode() {
        let req = ClientRequest::new(3, Command { client: 1, seq: 1, op: crate::kv::Op::get("k") });
        let bytes = postcard::to_allocvec(&req).unwrap();
        assert_eq!(postcard::from_bytes::<ClientRequest>(&bytes).unwrap(), req);
        // The first format: an id first, no version.
        #[derive(Serialize)]
        struct Old {
            id: u64,
            client: u64,
            seq: u64,
            op: (u32, alloc::string::String),
        }
        let old = postcard::to_allocvec(&Old { id: 3, client: 1, seq: 1, op: (0, "k".into()) }).unwrap();
        assert!(postcard::from_bytes::<ClientRequest>(&old).is_err());
    }

    #[test]
    fn greetings_from_strangers_are_refused_with_the_reason() {
        let peers = |n: NodeId| n == NodeId(2) || n == NodeId(3);
        assert_eq!(Hello::new(7, NodeId(2), bytes::Bytes::new()).check(7, NodeId(1), peers), Ok(()));
        assert_eq!(
            Hello::new(8, NodeId(2), bytes::Bytes::new()).check(7, NodeId(1), peers),
            Err(HandshakeError::Cluster { theirs: 8, ours: 7 })
        );
        assert_eq!(
            Hello::new(7, NodeId(9), bytes::Bytes::new()).check(7, NodeId(1), peers),
            Err(HandshakeError::UnknownNode(NodeId(9)))
        );
        assert_eq!(
            Hello::new(7, NodeId(1), bytes::Bytes::new()).check(7, NodeId(1), peers),
            Err(HandshakeError::UnknownNode(NodeId(1)))
        );
        let old = Hello { version: 0, ..Hello::new(7, NodeId(2), bytes::Bytes::new()) };
        assert_eq!(old.check(7, NodeId(1), peers), Err(HandshakeError::Version { theirs: 0 }));
    }
}
