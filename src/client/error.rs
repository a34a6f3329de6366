//! Why a client operation fails, and what a failure says about the
//! server's address.

use super::breaker::Outcome;
use crate::nal::NalError;
use crate::proto::{ProtoError, Status};
use crate::tls::TlsError;
use std::time::Duration;
use thiserror::Error;

/// Why a client operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The address string could not be used.
    #[error("bad address: {0}")]
    Address(#[source] NalError),
    /// Connecting, sending or receiving failed, or timed out.
    #[error("network: {0}")]
    Network(#[from] NalError),
    /// The server's bytes are not a valid reply.
    #[error("protocol: {0}")]
    Protocol(#[from] ProtoError),
    /// The reply names another request, or holds an unexpected payload.
    #[error("unexpected reply: {0}")]
    UnexpectedReply(&'static str),
    /// The server refused the operation with this status.
    #[error("server refused the operation: {0:?}")]
    Refused(Status),
    /// The request does not fit in one message (8 + id + data > 32768).
    #[error("request larger than 32768 bytes")]
    TooLarge,
    /// An id or session of zero length.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The address timed out or refused a connection recently, so the
    /// operation was not tried (see [`Backoff`](crate::Backoff)).
    #[error("server marked down; next attempt in {} ms", .retry_in.as_millis())]
    Down {
        /// How long until an operation may probe the address again.
        retry_in: Duration,
    },
    /// TLS could not be set up (credentials), or a TLS connection failed
    /// (the handshake, or a record).
    #[error("{0}")]
    Tls(TlsError),
}

impl From<TlsError> for ClientError {
    fn from(e: TlsError) -> ClientError {
        match e {
            TlsError::Net(e) => ClientError::Network(e),
            other => ClientError::Tls(other),
        }
    }
}

impl ClientError {
    pub(super) fn is_disconnect(&self) -> bool {
        matches!(self, ClientError::Network(e) if e.is_disconnect())
    }

    /// What this failure says about the server's address.
    pub(super) fn outcome(&self) -> Outcome {
        match self {
            ClientError::Network(e) if is_dead(e) => Outcome::Dead,
            ClientError::Protocol(_)
            | ClientError::UnexpectedReply(_)
            | ClientError::Refused(_) => Outcome::Reached,
            _ => Outcome::Unknown,
        }
    }
}

/// Whether a transport error marks its address down: a timeout, or a
/// connection refused (no listener at the port or the socket path, or no
/// route to the host). A full UNIX backlog does not: that server is busy,
/// and its refusal costs nothing.
fn is_dead(e: &NalError) -> bool {
    match e {
        NalError::TimedOut => true,
        NalError::Io(e) => {
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            ) || matches!(
                e.raw_os_error(),
                Some(libc::EHOSTUNREACH | libc::ENETUNREACH)
            )
        }
        _ => false,
    }
}
