//! `skiff certs`: a cluster CA and node certificates for TLS, with rcgen (ECDSA P-256 keys).
//!
//! A directory holds `ca.crt` and `ca.key` (the cluster CA) and `node-<id>.crt` and
//! `node-<id>.key` per node. A node's certificate names it as peers check
//! (`skiff_std::tls::node_name`: `node-<id>.cluster-<cluster>.skiff`), plus the host names and
//! addresses clients reach it at, and may serve and authenticate as a client (both extended
//! key usages). An existing CA is reused, so that a node given a new certificate (rotation,
//! or one that expires) still chains to the CA its peers trust. Keys are written readable by
//! their owner only.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// How long a CA made here is valid.
const CA_DAYS: u64 = 3650;
/// How long a node certificate is valid by default.
pub const NODE_DAYS: u64 = 365;
const DAY: Duration = Duration::from_secs(86_400);

/// When a certificate is valid.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    pub from: SystemTime,
    pub until: SystemTime,
}

impl Validity {
    /// From an hour ago (clocks differ) for `days` days.
    pub fn days(days: u64) -> Validity {
        let now = SystemTime::now();
        Validity { from: now - Duration::from_secs(3600), until: now + DAY * days as u32 }
    }
}

fn time(t: SystemTime) -> Result<time::OffsetDateTime, String> {
    let secs = t.duration_since(UNIX_EPOCH).map_err(|_| "a time before 1970".to_string())?.as_secs();
    time::OffsetDateTime::from_unix_timestamp(secs as i64).map_err(|e| e.to_string())
}

fn write(path: &Path, text: &str, secret: bool) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = secret;
    let mut f = options.open(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The CA's parameters: the same for the same key, so that an issuer rebuilt from them and
/// the CA's key signs certificates that chain to the CA certificate made earlier. The name
/// carries a digest of the key, so that two CAs (during a rotation) are told apart by name.
fn ca_params(validity: Validity, key: &KeyPair) -> Result<CertificateParams, String> {
    use blake2::Digest;
    let digest = blake2::Blake2s256::digest(rcgen::PublicKeyData::der_bytes(key));
    let id: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    p.distinguished_name.push(DnType::CommonName, format!("skiff cluster CA {id}"));
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p.not_before = time(validity.from)?;
    p.not_after = time(validity.until)?;
    Ok(p)
}

/// The files of a directory of certificates.
#[derive(Clone, Debug)]
pub struct CertDir(pub PathBuf);

impl CertDir {
    pub fn ca_cert(&self) -> PathBuf {
        self.0.join("ca.crt")
    }

    pub fn ca_key(&self) -> PathBuf {
        self.0.join("ca.key")
    }

    pub fn node_cert(&self, id: u64) -> PathBuf {
        self.0.join(format!("node-{id}.crt"))
    }

    pub fn node_key(&self, id: u64) -> PathBuf {
        self.0.join(format!("node-{id}.key"))
    }

    /// Node `id`'s TLS files.
    pub fn files(&self, id: u64) -> skiff_std::tls::TlsFiles {
        skiff_std::tls::TlsFiles { cert: self.node_cert(id), key: self.node_key(id), ca: self.ca_cert() }
    }

    /// Makes the CA unless the directory has one; returns whether it made it.
    pub fn ensure_ca(&self) -> Result<bool, String> {
        if self.ca_key().exists() && self.ca_cert().exists() {
            return Ok(false);
        }
        std::fs::create_dir_all(&self.0).map_err(|e| format!("cannot create {}: {e}", self.0.display()))?;
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = ca_params(Validity::days(CA_DAYS), &key)?.self_signed(&key).map_err(|e| e.to_string())?;
        write(&self.ca_key(), &key.serialize_pem(), true)?;
        write(&self.ca_cert(), &cert.pem(), false)?;
        Ok(true)
    }

    /// Issues node `id` of `cluster` a new key and certificate, signed by the directory's CA
    /// (which must exist), naming it and `hosts` (DNS names or IP addresses).
    pub fn issue(&self, cluster: u64, id: u64, hosts: &[String], validity: Validity) -> Result<(), String> {
        let ca_key = std::fs::read_to_string(self.ca_key())
            .map_err(|e| format!("cannot read {}: {e}", self.ca_key().display()))?;
        let ca_key = KeyPair::from_pem(&ca_key).map_err(|e| format!("{}: {e}", self.ca_key().display()))?;
        let issuer = Issuer::new(ca_params(Validity::days(CA_DAYS), &ca_key)?, ca_key);
        let name = skiff_std::tls::node_name(cluster, id);
        let mut names = vec![name.clone()];
        names.extend(hosts.iter().filter(|h| **h != name).cloned());
        let mut p = CertificateParams::new(names).map_err(|e| format!("a host name: {e}"))?;
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        p.not_before = time(validity.from)?;
        p.not_after = time(validity.until)?;
        // Names the CA's key, so that a client holding two CAs picks the right issuer.
        p.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = p.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
        write(&self.node_key(id), &key.serialize_pem(), true)?;
        write(&self.node_cert(id), &cert.pem(), false)
    }
}

/// The hosts a local cluster's certificates name besides the node: loopback.
pub fn local_hosts() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_std::tls::{names_node, Identity, TlsFiles};

    #[test]
    fn issued_certificates_name_their_node_and_load_with_their_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = CertDir(dir.path().join("c"));
        assert!(d.ensure_ca().unwrap());
        assert!(!d.ensure_ca().unwrap(), "an existing CA is kept");
        for id in [1, 2] {
            d.issue(5, id, &local_hosts(), Validity::days(1)).unwrap();
        }
        let one = Identity::load(&d.files(1)).unwrap();
        assert!(names_node(one.certificate(), 5, 1));
        assert!(!names_node(one.certificate(), 5, 2), "another node");
        assert!(!names_node(one.certificate(), 6, 1), "another cluster");
        let crossed = TlsFiles { key: d.node_key(2), ..d.files(1) };
        let e = Identity::load(&crossed).unwrap_err().to_string();
        assert!(e.contains("do not make a usable pair"), "{e}");
        let missing = TlsFiles { cert: dir.path().join("nope.crt"), ..d.files(1) };
        let e = Identity::load(&missing).unwrap_err().to_string();
        assert!(e.contains("cannot read the certificate") && e.contains("nope.crt"), "{e}");
        let not_pem = TlsFiles { ca: d.node_key(1), ..d.files(1) };
        assert!(Identity::load(&not_pem).unwrap_err().to_string().contains("CA certificate"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.node_key(1)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "a key is readable by its owner only");
        }
    }
}
