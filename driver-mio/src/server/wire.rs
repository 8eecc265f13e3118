//! [`Wire`]: how a connection's bytes travel, plaintext or TLS (rustls driven by the event
//! loop: ciphertext read from the socket is fed to rustls, the plaintext it yields goes to the
//! connection's read buffer; plaintext to send goes to rustls a chunk at a time and its
//! ciphertext to the socket), and [`PortTls`], a listening port's TLS policy.
//!
//! A port whose TLS is `optional` or `required` decides per connection from the first byte
//! received: 0x16 opens a TLS handshake record; skiff's protocols never start with it (a RESP
//! command starts with `*` or a letter; a native or peer frame with the high byte of a length
//! far below 0x16000000). Plaintext on a `required` port is refused: the client is told so in
//! its protocol where it has one, and the connection closes.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::ServerConfig;

use super::accepted::Port;
use crate::metrics::Metrics;

/// Byte that starts a TLS record carrying a handshake message.
const TLS_HANDSHAKE: u8 = 0x16;
/// Plaintext handed to rustls at once (it holds it until written as ciphertext).
const TLS_CHUNK: usize = 64 << 10;

/// Whether a port speaks TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// Plaintext only.
    Off,
    /// TLS or plaintext, as each client chooses (for a migration to TLS).
    Optional,
    /// TLS only: plaintext is refused.
    Required,
}

impl TlsMode {
    /// Parses `off`, `optional` or `required`.
    pub fn parse(s: &str) -> Option<TlsMode> {
        match s {
            "off" => Some(TlsMode::Off),
            "optional" => Some(TlsMode::Optional),
            "required" => Some(TlsMode::Required),
            _ => None,
        }
    }
}

/// Where a connection's TLS refusals are counted: `port` names it in logs and metrics
/// (`peer`, `native`, `resp` for accepted connections; `peer-dial`, `forward` for dialled).
#[derive(Clone, Debug)]
pub(crate) struct Counted {
    pub(crate) port: &'static str,
    pub(crate) metrics: Metrics,
}

impl Counted {
    /// Counts and logs a connection refused for `reason` (`plaintext`, `certificate`,
    /// `identity`, `handshake`, `timeout`).
    pub(crate) fn refused(&self, reason: &'static str, detail: &str) {
        tracing::warn!(port = self.port, reason, "refused a TLS connection: {detail}");
        self.metrics.tls_refused(self.port, reason);
    }
}

/// A listening port's TLS: its mode, the server configuration, where refusals are counted.
#[derive(Clone, Debug)]
pub(crate) struct PortTls {
    pub(crate) mode: TlsMode,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) counted: Counted,
}

/// Why a TLS connection ended in error.
#[derive(Debug)]
pub(crate) enum TlsFailure {
    /// A plaintext client on a port that requires TLS.
    Plaintext,
    /// The handshake or a record failed (a certificate refused, a protocol error).
    Tls(rustls::Error),
    Io(io::Error),
    /// The handshake did not complete in time.
    Timeout,
}

impl TlsFailure {
    /// The metrics label of the refusal.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            TlsFailure::Plaintext => "plaintext",
            TlsFailure::Tls(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented) => {
                "certificate"
            }
            TlsFailure::Tls(_) | TlsFailure::Io(_) => "handshake",
            TlsFailure::Timeout => "timeout",
        }
    }
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsFailure::Plaintext => f.write_str("plaintext on a port that requires TLS"),
            TlsFailure::Tls(e) => write!(f, "TLS: {e}"),
            TlsFailure::Io(e) => write!(f, "TLS: {e}"),
            TlsFailure::Timeout => f.write_str("the TLS handshake did not complete in time"),
        }
    }
}

/// How a connection's bytes travel.
#[derive(Debug)]
pub(crate) enum Wire {
    Plain,
    /// An accepted connection on a TLS port before its first byte said which it speaks.
    Undecided(PortTls),
    /// TLS; `accepted` tells an accepted connection from a dialled one.
    Tls {
        tls: Box<rustls::Connection>,
        counted: Counted,
        accepted: bool,
    },
}

impl Wire {
    /// Takes bytes read from the socket: plaintext goes to `rbuf` (decrypted first under
    /// TLS). On an undecided port the first byte decides. `Ok(true)`: the other side ended
    /// TLS (close_notify), nothing more comes.
    pub(crate) fn take_in(&mut self, bytes: &[u8], rbuf: &mut Vec<u8>) -> Result<bool, TlsFailure> {
        if let Wire::Undecided(port) = self {
            *self = if bytes.first() == Some(&TLS_HANDSHAKE) {
                let server = rustls::ServerConnection::new(port.config.clone()).map_err(TlsFailure::Tls)?;
                Wire::Tls { tls: Box::new(server.into()), counted: port.counted.clone(), accepted: true }
            } else if port.mode == TlsMode::Optional {
                Wire::Plain
            } else {
                return Err(TlsFailure::Plaintext);
            };
        }
        let tls = match self {
            Wire::Plain => {
                rbuf.extend_from_slice(bytes);
                return Ok(false);
            }
            Wire::Undecided(_) => unreachable!("decided above"),
            Wire::Tls { tls, .. } => tls,
        };
        let mut rest = bytes;
        while !rest.is_empty() {
            if tls.read_tls(&mut rest).map_err(TlsFailure::Io)? == 0 {
                // After the peer's close_notify nothing more is read.
                return Ok(true);
            }
            let state = tls.process_new_packets().map_err(TlsFailure::Tls)?;
            let n = state.plaintext_bytes_to_read();
            if n > 0 {
                let start = rbuf.len();
                rbuf.resize(start + n, 0);
                tls.reader().read_exact(&mut rbuf[start..]).map_err(TlsFailure::Io)?;
            }
            if state.peer_has_closed() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Writes `out` (advancing `pos`) and what TLS has to send, as far as `stream` takes it.
    pub(crate) fn write_out(&mut self, stream: &mut impl Write, out: &[u8], pos: &mut usize) -> io::Result<()> {
        let tls = match self {
            Wire::Plain | Wire::Undecided(_) => {
                while *pos < out.len() {
                    match stream.write(&out[*pos..]) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => *pos += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                }
                return Ok(());
            }
            Wire::Tls { tls, .. } => tls,
        };
        loop {
            while tls.wants_write() {
                match tls.write_tls(stream) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            // Plaintext waits in `out` until the handshake is done, so that what is pending is
            // all in sight (rustls would take it and hold it unsent).
            if *pos == out.len() || tls.is_handshaking() {
                return Ok(());
            }
            let end = out.len().min(*pos + TLS_CHUNK);
            let n = tls.writer().write(&out[*pos..end])?;
            if n == 0 {
                // Its buffer is full: the next round writes it out.
                return Ok(());
            }
            *pos += n;
        }
    }

    /// Whether TLS holds ciphertext not yet written.
    pub(crate) fn wants_write(&self) -> bool {
        matches!(self, Wire::Tls { tls, .. } if tls.wants_write())
    }

    /// Whether a TLS handshake is still to complete (an undecided port counts).
    pub(crate) fn handshaking(&self) -> bool {
        match self {
            Wire::Plain => false,
            Wire::Undecided(_) => true,
            Wire::Tls { tls, .. } => tls.is_handshaking(),
        }
    }

    /// The certificate the other side presented (TLS only).
    pub(crate) fn peer_certificate(&self) -> Option<&CertificateDer<'static>> {
        match self {
            Wire::Tls { tls, .. } => tls.peer_certificates()?.first(),
            _ => None,
        }
    }

    /// Where this connection's refusals are counted (TLS ports and dialled TLS).
    pub(crate) fn counted(&self) -> Option<&Counted> {
        match self {
            Wire::Undecided(p) => Some(&p.counted),
            Wire::Tls { counted, .. } => Some(counted),
            Wire::Plain => None,
        }
    }

    /// Whether this is TLS accepted on a port (its peer's certificate, if asked for, was
    /// verified against the CA).
    pub(crate) fn accepted_tls(&self) -> bool {
        matches!(self, Wire::Tls { accepted: true, .. })
    }

    /// Queues TLS's close_notify (a clean end of a TLS connection).
    pub(crate) fn close_notify(&mut self) {
        if let Wire::Tls { tls, .. } = self {
            if !tls.is_handshaking() {
                tls.send_close_notify();
            }
        }
    }
}

/// The TLS of the listening ports (`None`: plaintext) and of forwards.
#[derive(Debug, Default)]
pub(crate) struct PortsTls {
    pub(crate) peer: Option<PortTls>,
    pub(crate) native: Option<PortTls>,
    pub(crate) resp: Option<PortTls>,
    /// How long an accepted connection may take to complete its TLS handshake.
    pub(crate) handshake_timeout: std::time::Duration,
    /// How forwards dial other nodes' native ports.
    pub(crate) forward_dial: Option<Dial>,
}

impl PortsTls {
    pub(crate) fn of(&self, port: Port) -> Option<&PortTls> {
        match port {
            Port::Peer => self.peer.as_ref(),
            Port::Native => self.native.as_ref(),
            Port::Resp => self.resp.as_ref(),
        }
    }
}

/// How this node dials other nodes' TLS ports: trusting the cluster CA, presenting its own
/// certificate, expecting the node dialled to be named by its certificate, within a
/// handshake timeout.
#[derive(Clone, Debug)]
pub(crate) struct Dial {
    pub(crate) config: Arc<rustls::ClientConfig>,
    pub(crate) cluster: u64,
    pub(crate) handshake_timeout: std::time::Duration,
    pub(crate) counted: Counted,
}

/// The wire of a connection dialled to `node`, and when its handshake must be done: TLS with
/// `dial`, else plaintext.
pub(crate) fn dial_wire(
    dial: Option<&Dial>,
    node: skiff_core::NodeId,
) -> io::Result<(Wire, Option<std::time::Instant>)> {
    let Some(d) = dial else { return Ok((Wire::Plain, None)) };
    let name = skiff_std::tls::node_server_name(d.cluster, node.0);
    let c = rustls::ClientConnection::new(d.config.clone(), name).map_err(io::Error::other)?;
    let wire = Wire::Tls { tls: Box::new(c.into()), counted: d.counted.clone(), accepted: false };
    Ok((wire, Some(std::time::Instant::now() + d.handshake_timeout)))
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
