use crate::nal::NalError;
use openssl::error::ErrorStack;
use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// Why TLS could not be set up, or a TLS connection failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A credentials file could not be read.
    #[error("can't read '{0}': {1}")]
    File(PathBuf, #[source] io::Error),
    /// A credentials file holds nothing usable of what it should.
    #[error("'{0}' holds no valid {1}")]
    Pem(PathBuf, &'static str, #[source] ErrorStack),
    /// A credentials file holds no certificate at all.
    #[error("'{0}' holds no certificate")]
    NoCertificate(PathBuf),
    /// The private key does not belong to the certificate.
    #[error("the key in '{0}' does not match the certificate in '{1}'")]
    KeyMismatch(PathBuf, PathBuf),
    /// A setting is missing (the text names it).
    #[error("{0}")]
    Missing(&'static str),
    /// libssl refused a setting.
    #[error("TLS setup: {0}")]
    Setup(#[from] ErrorStack),
    /// The handshake failed: the peer's certificate, the protocol, or the
    /// peer went away.
    #[error("TLS handshake: {0}")]
    Handshake(String),
    /// A TLS record could not be read or written after the handshake.
    #[error("TLS: {0}")]
    Record(String),
    /// The connection under TLS failed: timed out, closed, refused.
    #[error("{0}")]
    Net(#[from] NalError),
}
