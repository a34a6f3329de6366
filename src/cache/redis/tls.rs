//! TLS to Redis (`rediss://`): the CA that signed the nodes' certificates
//! and the gateway's own certificate, read from PEM files and checked when
//! the gateway starts, so that a bad file is named then and not at the
//! first connection.
//!
//! The link is rustls (the TLS that the Redis client supports with a CA and
//! a client certificate of our choosing), with ring's cryptography.

use super::RedisError;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// The gateway's certificate and key, as PEM.
#[derive(Clone)]
pub struct TlsIdentity {
    /// The certificate, then any intermediate CAs' certificates.
    pub cert: Vec<u8>,
    /// The private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC), unencrypted.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

/// Whom the gateway trusts and who it is, on a TLS link to Redis.
///
/// Every node's certificate must chain to `ca` and name the host or IP
/// address the gateway reaches it by (a cluster's nodes announce IP
/// addresses, so their certificates need those as IP subject alternative
/// names).
#[derive(Clone, Default)]
pub struct StoreTls {
    /// The CA certificates (PEM) that signed the nodes' certificates; the
    /// system's trusted CAs when absent.
    pub ca: Option<Vec<u8>>,
    /// The certificate the gateway presents. Redis asks for one unless it
    /// runs with `tls-auth-clients no`.
    pub identity: Option<TlsIdentity>,
}

impl std::fmt::Debug for StoreTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTls")
            .field("ca", &self.ca.as_ref().map(|pem| pem.len()))
            .field("identity", &self.identity)
            .finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, RedisError> {
    std::fs::read(path)
        .map_err(|e| RedisError::Tls(format!("can't read '{}': {e}", path.display())))
}

fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, RedisError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RedisError::Tls(format!("'{}' is not PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(RedisError::Tls(format!(
            "'{}' holds no certificate (PEM 'BEGIN CERTIFICATE')",
            path.display()
        )));
    }
    Ok(certs)
}

fn private_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, RedisError> {
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            let encrypted = pem.windows(b"ENCRYPTED".len()).any(|w| w == b"ENCRYPTED");
            Err(RedisError::Tls(format!(
                "'{}' holds no {}private key: give one in PEM, as PKCS#8 \
                 ('BEGIN PRIVATE KEY'), PKCS#1 ('BEGIN RSA PRIVATE KEY') or SEC1 \
                 ('BEGIN EC PRIVATE KEY'){}",
                path.display(),
                if encrypted { "unencrypted " } else { "" },
                if encrypted {
                    "; `openssl pkey -in KEY -out PLAIN` writes it without the passphrase"
                } else {
                    ""
                },
            )))
        }
        Err(e) => Err(RedisError::Tls(format!(
            "'{}' is not PEM: {e}",
            path.display()
        ))),
    }
}

/// The CA certificates in the PEM file at `path`.
pub fn read_ca(path: &Path) -> Result<Vec<u8>, RedisError> {
    let pem = read(path)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(&pem, path)? {
        roots.add(cert).map_err(|e| {
            RedisError::Tls(format!(
                "'{}' holds a certificate that can't be used: {e}",
                path.display()
            ))
        })?;
    }
    Ok(pem)
}

/// The certificate at `cert` and its key at `key`, both PEM; an error when
/// either cannot be used or the key is not the certificate's.
pub fn read_identity(cert: &Path, key: &Path) -> Result<TlsIdentity, RedisError> {
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain = certificates(&cert_pem, cert)?;
    let der = private_key(&key_pem, key)?;
    rustls::sign::CertifiedKey::from_der(chain, der, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => RedisError::Tls(format!(
            "the key '{}' does not go with the certificate '{}': {e}",
            key.display(),
            cert.display()
        )),
        e => RedisError::Tls(format!(
            "the key '{}' can't be used: {e} (RSA, ECDSA P-256 or P-384, or Ed25519 keys \
             are)",
            key.display()
        )),
    })?;
    Ok(TlsIdentity {
        cert: cert_pem,
        key: key_pem,
    })
}

/// The cryptography of the link: ring's. rustls marks it deprecated for
/// lacking post-quantum key exchange, which only its aws-lc-rs provider
/// has; that one needs a large C build of its own.
#[allow(deprecated)]
fn ring() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(ring())
}

/// Makes ring the process's cryptography for rustls, which the Redis client
/// takes without naming one; a no-op when one is already set.
pub(super) fn install_provider() {
    let _ = ring().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = read_ca(&missing).unwrap_err().to_string();
        assert!(e.contains("missing.pem") && e.contains("can't read"), "{e}");
        let empty = file(&dir, "empty.pem", "");
        let e = read_ca(&empty).unwrap_err().to_string();
        assert!(
            e.contains("empty.pem") && e.contains("no certificate"),
            "{e}"
        );
        let enc = file(
            &dir,
            "enc.key",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        let e = private_key(b"", &empty).unwrap_err().to_string();
        assert!(e.contains("PKCS#8") && !e.contains("unencrypted"), "{e}");
        let text = std::fs::read(&enc).unwrap();
        let e = private_key(&text, &enc).unwrap_err().to_string();
        assert!(e.contains("enc.key") && e.contains("unencrypted"), "{e}");
    }
}
