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

/// A listening port's TLS: its mode, the server configuration, and where refusals are
/// counted (`port` names the port in logs and metrics).
#[derive(Clone, Debug)]
pub(crate) struct PortTls {
    pub(crate) mode: TlsMode,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) port: &'static str,
    pub(crate) metrics: Metrics,
}

impl PortTls {
    /// Counts and logs a connection refused for `reason` (`plaintext`, `certificate`,
    /// `identity`, `handshake`, `timeout`).
    pub(crate) fn refused(&self, reason: &'static str, detail: &str) {
        tracing::warn!(port = self.port, reason, "refused a connection: {detail}");
        self.metrics.tls_refused(self.port, reason);
    }
}

/// Why a TLS connection ended in error.
#[derive(Debug)]
pub(crate) enum TlsFailure {
    /// A plaintext client on a port that requires TLS.
    Plaintext,
    /// The handshake or a record failed (a certificate refused, a protocol error).
    Tls(rustls::Error),
    Io(io::Error),
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
        }
    }
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsFailure::Plaintext => f.write_str("plaintext on a port that requires TLS"),
            TlsFailure::Tls(e) => write!(f, "TLS: {e}"),
            TlsFailure::Io(e) => write!(f, "TLS: {e}"),
        }
    }
}

/// How a connection's bytes travel.
#[derive(Debug)]
pub(crate) enum Wire {
    Plain,
    /// An accepted connection on a TLS port before its first byte said which it speaks.
    Undecided(PortTls),
    /// TLS; `port` is set for accepted connections (where refusals are counted).
    Tls {
        tls: Box<rustls::Connection>,
        port: Option<PortTls>,
    },
}

impl Wire {
    /// A client's TLS to a server that must be `name`.
    pub(crate) fn client(
        config: &Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
    ) -> io::Result<Wire> {
        let c = rustls::ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
        Ok(Wire::Tls { tls: Box::new(c.into()), port: None })
    }

    /// Takes bytes read from the socket: plaintext goes to `rbuf` (decrypted first under
    /// TLS). On an undecided port the first byte decides.
    pub(crate) fn take_in(&mut self, bytes: &[u8], rbuf: &mut Vec<u8>) -> Result<(), TlsFailure> {
        if let Wire::Undecided(port) = self {
            *self = if bytes.first() == Some(&TLS_HANDSHAKE) {
                let server = rustls::ServerConnection::new(port.config.clone()).map_err(TlsFailure::Tls)?;
                Wire::Tls { tls: Box::new(server.into()), port: Some(port.clone()) }
            } else if port.mode == TlsMode::Optional {
                Wire::Plain
            } else {
                return Err(TlsFailure::Plaintext);
            };
        }
        let tls = match self {
            Wire::Plain => {
                rbuf.extend_from_slice(bytes);
                return Ok(());
            }
            Wire::Undecided(_) => unreachable!("decided above"),
            Wire::Tls { tls, .. } => tls,
        };
        let mut rest = bytes;
        while !rest.is_empty() {
            if tls.read_tls(&mut rest).map_err(TlsFailure::Io)? == 0 {
                // After the peer's close_notify nothing more is read.
                break;
            }
            let state = tls.process_new_packets().map_err(TlsFailure::Tls)?;
            let n = state.plaintext_bytes_to_read();
            if n > 0 {
                let start = rbuf.len();
                rbuf.resize(start + n, 0);
                tls.reader().read_exact(&mut rbuf[start..]).map_err(TlsFailure::Io)?;
            }
        }
        Ok(())
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
            if *pos == out.len() {
                return Ok(());
            }
            let end = out.len().min(*pos + TLS_CHUNK);
            let n = tls.writer().write(&out[*pos..end])?;
            if n == 0 {
                // rustls holds as much as it takes until the handshake completes.
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

    /// The accepting port's TLS policy, where refusals are counted.
    pub(crate) fn port(&self) -> Option<&PortTls> {
        match self {
            Wire::Undecided(p) => Some(p),
            Wire::Tls { port, .. } => port.as_ref(),
            Wire::Plain => None,
        }
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

/// How this node dials other nodes' TLS ports: trusting the cluster CA, presenting its own
/// certificate, and expecting the node dialled to be named by its certificate.
#[derive(Clone, Debug)]
pub(crate) struct Dial {
    pub(crate) config: Arc<rustls::ClientConfig>,
    pub(crate) cluster: u64,
}

/// The wire of a connection dialled to `node`: TLS with `dial`, else plaintext.
pub(crate) fn dial_wire(dial: Option<&Dial>, node: skiff_core::NodeId) -> io::Result<Wire> {
    match dial {
        Some(d) => Wire::client(&d.config, skiff_std::tls::node_server_name(d.cluster, node.0)),
        None => Ok(Wire::Plain),
    }
}
