//! What skiff's drivers put in a configuration's addresses (the core keeps them as opaque
//! bytes): where a node takes peer connections and, optionally, where it serves clients.
//! Encoded as text, so that `skiff member list` and logs show it as is:
//! `raft=10.0.0.4:7004` or `raft=10.0.0.4:7004 client=10.0.0.4:6384`.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

/// A node's addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddress {
    /// Where it accepts connections from its peers.
    pub raft: SocketAddr,
    /// Where it serves clients, if it says.
    pub client: Option<SocketAddr>,
}

impl PeerAddress {
    /// The bytes a configuration carries for this node.
    pub fn encode(&self) -> Bytes {
        Bytes::from(self.to_string())
    }

    /// Reads what [`PeerAddress::encode`] wrote. Any other bytes are an error that says why.
    pub fn decode(bytes: &[u8]) -> Result<PeerAddress, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "an address that is not UTF-8".to_string())?;
        let (mut raft, mut client) = (None, None);
        for field in text.split_whitespace() {
            let parse = |v: &str| v.parse::<SocketAddr>().map_err(|_| format!("'{v}' is not an IP address and port"));
            match field.split_once('=') {
                Some(("raft", v)) if raft.is_none() => raft = Some(parse(v)?),
                Some(("client", v)) if client.is_none() => client = Some(parse(v)?),
                _ => return Err(format!("unexpected '{field}' in the address '{text}'")),
            }
        }
        let raft = raft.ok_or_else(|| format!("the address '{text}' has no raft= part"))?;
        Ok(PeerAddress { raft, client })
    }
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raft={}", self.raft)?;
        if let Some(c) = self.client {
            write!(f, " client={c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_and_bad_ones_say_why() {
        let a = PeerAddress { raft: "10.0.0.4:7004".parse().unwrap(), client: Some("[::1]:6384".parse().unwrap()) };
        assert_eq!(PeerAddress::decode(&a.encode()), Ok(a));
        let b = PeerAddress { client: None, ..a };
        assert_eq!(&b.encode()[..], b"raft=10.0.0.4:7004");
        assert_eq!(PeerAddress::decode(&b.encode()), Ok(b));
        assert!(PeerAddress::decode(b"client=1.2.3.4:5").unwrap_err().contains("no raft="));
        assert!(PeerAddress::decode(b"raft=localhost:5").unwrap_err().contains("not an IP address"));
        assert!(PeerAddress::decode(b"raft=1.2.3.4:5 x=1").unwrap_err().contains("unexpected"));
        assert!(PeerAddress::decode(&[0xff]).is_err());
    }
}
