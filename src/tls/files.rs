use super::TlsError;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use std::path::{Path, PathBuf};

/// Where a side's credentials are: the CA that the peer's certificate must
/// chain to, and its own certificate (with any intermediates after it) and
/// private key, all PEM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The CA certificates to trust.
    pub ca: Option<PathBuf>,
    /// The certificate chain to present.
    pub cert: Option<PathBuf>,
    /// The private key of the certificate.
    pub key: Option<PathBuf>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File(path.into(), e))
}

/// Every certificate in a PEM file, in order; at least one.
pub(super) fn certificates(path: &Path) -> Result<Vec<X509>, TlsError> {
    let pem = read(path)?;
    let certs =
        X509::stack_from_pem(&pem).map_err(|e| TlsError::Pem(path.into(), "certificate", e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.into()));
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub(super) fn private_key(path: &Path) -> Result<PKey<Private>, TlsError> {
    let pem = read(path)?;
    PKey::private_key_from_pem(&pem).map_err(|e| TlsError::Pem(path.into(), "private key", e))
}
