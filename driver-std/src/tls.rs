//! TLS for skiff's ports, with rustls on the `ring` provider: loading a node's certificate,
//! key and cluster CA from PEM files, the server and client configurations built from them,
//! and the names certificates carry.
//!
//! Naming (the contract `skiff certs` follows and peers check): a node's certificate carries
//! the DNS name [`node_name`] `node-<id>.cluster-<cluster>.skiff` among its subject
//! alternative names, besides the host names and addresses clients reach it at. A node that
//! dials a peer checks the peer's certificate names the node it meant to dial; a node that
//! accepts a peer checks, once the peer's handshake says which node it is, that its client
//! certificate names that node ([`names_node`]). Both certificates must chain to the cluster
//! CA. Only TLS 1.3 and TLS 1.2 are spoken, with rustls's suites (all AEAD, all with
//! forward secrecy).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use rustls;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Why TLS could not be set up; `Display` names the file and what is wrong with it.
#[derive(Debug)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// The TLS versions spoken (no TLS 1.1 or older).
static VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The DNS name a node's certificate carries: `node-<id>.cluster-<cluster>.skiff`.
pub fn node_name(cluster: u64, id: u64) -> String {
    format!("node-{id}.cluster-{cluster}.skiff")
}

/// [`node_name`] as the name a dialler expects of the server.
pub fn node_server_name(cluster: u64, id: u64) -> ServerName<'static> {
    ServerName::try_from(node_name(cluster, id)).expect("a valid DNS name")
}

/// Whether `cert` (already verified to chain to the CA) names node `id` of `cluster`.
pub fn names_node(cert: &CertificateDer<'_>, cluster: u64, id: u64) -> bool {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else { return false };
    ee.verify_is_valid_for_subject_name(&node_server_name(cluster, id)).is_ok()
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("cannot read the {what} {}: {e}", path.display())))
}

/// The certificates of a PEM file (at least one).
pub fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("the {what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!("the {what} {} holds no PEM certificate", path.display())));
    }
    Ok(certs)
}

/// A root store of the CA certificates in `path`.
pub fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, "CA certificate")? {
        roots.add(cert).map_err(|e| TlsError(format!("the CA certificate {}: {e}", path.display())))?;
    }
    Ok(Arc::new(roots))
}

/// Where a node's certificate chain, private key and cluster CA are (PEM files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// A node's TLS identity: its certificate chain and key, and the CA its peers chain to.
#[derive(Debug)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Arc<RootCertStore>,
}

impl Identity {
    /// Loads and checks the files: each readable PEM of the right kind, and the key the
    /// certificate's (rustls checks the pair when a configuration is built).
    pub fn load(files: &TlsFiles) -> Result<Identity, TlsError> {
        let chain = load_certs(&files.cert, "certificate")?;
        let pem = read(&files.key, "private key")?;
        let key = PrivateKeyDer::from_pem_slice(&pem)
            .map_err(|e| TlsError(format!("the private key {}: {e}", files.key.display())))?;
        let roots = load_roots(&files.ca)?;
        let id = Identity { chain, key, roots };
        // Built once here so that a key that does not match its certificate is an error now.
        id.server_config(false)?;
        Ok(id)
    }

    /// The end certificate (the node's own).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// A server configuration presenting this identity. With `peers`, the client must
    /// present a certificate that chains to the CA, and sessions are never resumed (each
    /// connection's certificate is verified afresh); else no certificate is asked for.
    pub fn server_config(&self, peers: bool) -> Result<Arc<ServerConfig>, TlsError> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| TlsError(e.to_string()))?;
        let builder = if peers {
            let verifier = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider())
                .build()
                .map_err(|e| TlsError(format!("the CA certificate cannot verify clients: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError(format!("the certificate and key do not make a usable pair: {e}")))?;
        if peers {
            config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        }
        Ok(Arc::new(config))
    }

    /// A client configuration that trusts the CA and presents this identity, resuming no
    /// session (for dialling peers and other nodes' client ports).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| TlsError(e.to_string()))?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError(format!("the certificate and key do not make a usable pair: {e}")))?;
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Arc::new(config))
    }

    /// Checks the certificate is one node `id` of `cluster` can serve and authenticate with
    /// now: it chains to the CA, is valid today, names the node, and may serve and be a
    /// client (a node started with another's files, or an expired certificate, is refused
    /// at start rather than by every peer).
    pub fn check_for_node(&self, cluster: u64, id: u64) -> Result<(), TlsError> {
        let now = rustls::pki_types::UnixTime::now();
        let (end, rest) = (&self.chain[0], &self.chain[1..]);
        let server = rustls::client::WebPkiServerVerifier::builder_with_provider(self.roots.clone(), provider())
            .build()
            .map_err(|e| TlsError(e.to_string()))?;
        server
            .verify_server_cert(end, rest, &node_server_name(cluster, id), &[], now)
            .map_err(|e| TlsError(format!("the certificate cannot serve as node {}: {e}", node_name(cluster, id))))?;
        let client = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider())
            .build()
            .map_err(|e| TlsError(e.to_string()))?;
        client
            .verify_client_cert(end, rest, now)
            .map_err(|e| TlsError(format!("the certificate cannot authenticate to peers: {e}")))?;
        Ok(())
    }
}

/// A client configuration trusting the CA certificates in `ca` and presenting none (a client
/// of the native or RESP port).
pub fn client_config(ca: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError(e.to_string()))?
        .with_root_certificates(load_roots(ca)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A blocking client connection (the clerk's, the CLI's): plain TCP or TLS over it.
#[derive(Debug)]
pub enum ClientStream {
    Plain(std::net::TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>),
}

impl ClientStream {
    /// Connects to `addr` within `timeout` (reads and writes wait as long), with TLS if
    /// `tls` is given: the server's certificate must then chain to its CA and name the
    /// address dialled (`skiff certs --host`).
    pub fn dial(
        addr: std::net::SocketAddr,
        timeout: std::time::Duration,
        tls: Option<&Arc<ClientConfig>>,
    ) -> std::io::Result<ClientStream> {
        let s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        Ok(match tls {
            Some(config) => {
                let name = ServerName::IpAddress(addr.ip().into());
                let conn = rustls::ClientConnection::new(config.clone(), name).map_err(std::io::Error::other)?;
                ClientStream::Tls(Box::new(rustls::StreamOwned::new(conn, s)))
            }
            None => ClientStream::Plain(s),
        })
    }

    /// The TCP connection underneath.
    pub fn tcp(&self) -> &std::net::TcpStream {
        match self {
            ClientStream::Plain(s) => s,
            ClientStream::Tls(s) => &s.sock,
        }
    }
}

impl std::io::Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.read(buf),
            ClientStream::Tls(s) => s.read(buf),
        }
    }
}

impl std::io::Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.write(buf),
            ClientStream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.flush(),
            ClientStream::Tls(s) => s.flush(),
        }
    }
}
