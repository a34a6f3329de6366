//! What can go wrong when a daemon starts or sets itself up.

use crate::nal::NalError;
use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// Why a daemon could not start or set itself up.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// A user or group that could not be found (the rules and messages
    /// of the `nal::owner` module).
    #[error(transparent)]
    Owner(#[from] NalError),
    /// Changing identity to the `-user` failed.
    #[error("can't become user '{user}': {step}: {source}")]
    BecomeUser {
        /// The user asked for.
        user: String,
        /// Which step failed.
        step: &'static str,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// chown or chmod of a socket file failed.
    #[error("can't set the {what} of socket file '{path}': {source}")]
    SocketFile {
        /// "owner" or "permissions".
        what: &'static str,
        /// The socket file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The pid file could not be written.
    #[error("can't write pid file '{0}': {1}")]
    PidFile(PathBuf, #[source] io::Error),
    /// Detaching from the terminal failed.
    #[error("can't detach: {0}")]
    Detach(#[source] io::Error),
    /// What went wrong carrying out one option (named without its dash).
    #[error("-{option}: {source}")]
    Option {
        /// The option.
        option: &'static str,
        /// What went wrong.
        source: Box<DaemonError>,
    },
    /// Signal handling could not be set up.
    #[error("can't set up signal handling: {0}")]
    Signals(#[source] io::Error),
}
