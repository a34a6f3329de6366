use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// Why an admin command failed.
#[derive(Debug, Error)]
pub enum AdminError {
    /// The socket file's permissions keep this user out.
    #[error(
        "permission denied: can't connect to the admin socket '{0}' \
         (it is for root and the user the server runs as)"
    )]
    PermissionDenied(PathBuf),
    /// Nothing at the path.
    #[error("no admin socket at '{0}' (was the server started with -admin?)")]
    NoSocket(PathBuf),
    /// A socket file that nothing listens on.
    #[error("nothing listens on the admin socket '{0}' (is the server running?)")]
    NotListening(PathBuf),
    /// Connecting failed otherwise.
    #[error("can't connect to the admin socket '{path}': {source}")]
    Connect {
        /// The socket file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The server refused this user (its `ERR denied` reply).
    #[error("permission denied: the server refused: {0}")]
    Refused(String),
    /// The server sent nothing for too long.
    #[error("the server did not answer within {0} seconds")]
    TimedOut(u64),
    /// The connection failed.
    #[error("the connection to the server failed: {0}")]
    Io(#[source] io::Error),
    /// The server closed the connection before its reply was complete.
    #[error("the server closed the connection before its reply was complete")]
    Closed,
    /// The server sent something this tool does not understand.
    #[error("unexpected reply from the server: {0}")]
    Protocol(String),
    /// The server cannot do what was asked.
    #[error("the server cannot do this: {0}")]
    Unsupported(String),
    /// Any other `ERR` reply.
    #[error("the server says: {0}")]
    Server(String),
    /// The store directory could not be opened, read or written.
    #[error("store: {0}")]
    Store(String),
    /// The output could not be written.
    #[error("can't write {what}: {source}")]
    Output {
        /// What was being written.
        what: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}
