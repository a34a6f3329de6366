use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// Transport errors: bad addresses, sockets that cannot be made, I/O.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NalError {
    /// The string is not an address in any supported syntax.
    #[error("invalid address '{0}': {1}")]
    BadAddress(String, &'static str),
    /// The host name of an address did not resolve.
    #[error("cannot resolve host '{0}'")]
    Resolve(String),
    /// The address can be listened on but not connected to (no host given).
    #[error("address '{0}' names no host to connect to")]
    NotConnectable(String),
    /// Something other than a stale socket is at a UNIX listener's path
    /// (the text says what, and that it was left alone).
    #[error("'{0}' {1}")]
    PathInUse(PathBuf, &'static str),
    /// The operation ran out of time.
    #[error("timed out")]
    TimedOut,
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Closed,
    /// A user name that is neither an account nor a numeric id with one.
    #[error("no such user '{0}'")]
    NoSuchUser(String),
    /// A group name that is neither a group nor a numeric id.
    #[error("no such group '{0}'")]
    NoSuchGroup(String),
    /// The password or group database could not be read.
    #[error("can't look up '{0}': {1}")]
    Lookup(String, #[source] io::Error),
    /// Any other operating system error.
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl NalError {
    /// Whether this error means the peer went away (as a server that closed
    /// an idle connection does), so that a fresh connection may succeed.
    pub fn is_disconnect(&self) -> bool {
        match self {
            NalError::Closed => true,
            NalError::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}
