//! A non-blocking listener driven by a selector (libnal's `NAL_LISTENER`):
//! the selector reports a waiting connection, and one accept takes it.

use super::connection::Ready;
use super::{Address, Listener, NalError};
use crate::sys::poll::RawPollFd;
use socket2::Socket;
use std::io::{self, ErrorKind};
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;

/// A listener, possibly not (or no longer) listening.
#[derive(Debug, Default)]
pub struct Acceptor {
    listener: Option<Listener>,
    unix_path: Option<PathBuf>,
    /// A connection is waiting (the last wait said so).
    caught: bool,
    buffer_size: usize,
}

impl Acceptor {
    /// Whether it is listening.
    pub fn is_active(&self) -> bool {
        self.listener.is_some()
    }

    /// Listens on `addr`; accepted connections get buffers of
    /// `buffer_size` bytes. Fails when already listening.
    pub fn listen(&mut self, addr: &Address, buffer_size: usize) -> Result<(), NalError> {
        if self.is_active() {
            return Err(NalError::Io(io::Error::new(
                ErrorKind::AlreadyExists,
                "listener already in use",
            )));
        }
        let listener = Listener::bind(addr)?;
        listener.set_nonblocking(true)?;
        self.unix_path = match addr {
            Address::Unix(path) => Some(path.clone()),
            Address::Tcp { .. } => None,
        };
        self.listener = Some(listener);
        self.caught = false;
        self.buffer_size = buffer_size;
        Ok(())
    }

    /// Stops listening, removing the socket file it created (if that file
    /// is still its own).
    pub fn reset(&mut self) {
        self.listener = None;
        self.unix_path = None;
        self.caught = false;
    }

    /// The buffer size of accepted connections.
    pub fn buffer_size(&self) -> usize {
        self.buffer_size
    }

    /// The `poll(2)` entry for the next wait: readable unless a connection
    /// is already waiting to be accepted.
    pub fn poll_entry(&self) -> Option<RawPollFd> {
        let fd = self.listener.as_ref()?.as_fd().as_raw_fd();
        Some(RawPollFd {
            fd,
            events: if self.caught { 0 } else { libc::POLLIN },
            revents: 0,
        })
    }

    /// Records what the last wait reported.
    pub fn set_ready(&mut self, ready: Ready) {
        if ready.read {
            self.caught = true;
        }
    }

    /// Forgets a reported connection (the listener left its selector).
    pub fn clear_ready(&mut self) {
        self.caught = false;
    }

    /// Takes the connection the last wait reported: the socket, and whether
    /// it is TCP.
    pub(crate) fn accept_ready(&mut self) -> Result<(Socket, bool), NalError> {
        if !self.caught {
            return Err(NalError::Io(io::Error::new(
                ErrorKind::WouldBlock,
                "no connection is waiting",
            )));
        }
        self.caught = false;
        match self.listener.as_ref() {
            Some(l) => Ok(l.accept_socket()?),
            None => Err(NalError::Closed),
        }
    }

    /// Gives a UNIX listener's socket file to `user` and/or `group`, names
    /// or numeric ids, by the rules of [`super::owner`].
    pub fn set_owner(&self, user: Option<&str>, group: Option<&str>) -> Result<(), NalError> {
        super::owner::set_owner(self.socket_path()?, user, group)
    }

    /// Sets a UNIX listener's socket file mode from an octal string such as
    /// `660`.
    pub fn set_mode(&self, octal: &str) -> Result<(), NalError> {
        use std::os::unix::fs::PermissionsExt;
        let mode = parse_mode(octal).map_err(|why| {
            NalError::Io(io::Error::new(
                ErrorKind::InvalidInput,
                format!("'{octal}': {why}"),
            ))
        })?;
        let path = self.socket_path()?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    }

    fn socket_path(&self) -> Result<&PathBuf, NalError> {
        self.unix_path.as_ref().ok_or_else(|| {
            NalError::Io(io::Error::new(
                ErrorKind::InvalidInput,
                "not listening on a UNIX socket",
            ))
        })
    }
}

/// Parses file permission bits written in octal, as `chmod` takes them
/// (`660`, `0660`, at most `7777`); the error says what is wrong.
pub fn parse_mode(s: &str) -> Result<u32, &'static str> {
    if s.is_empty() || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err("not an octal mode (e.g. 660)");
    }
    match u32::from_str_radix(s, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err("an octal mode is at most 7777"),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_mode;

    #[test]
    fn modes() {
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0660"), Ok(0o660));
        assert_eq!(parse_mode("7777"), Ok(0o7777));
        for bad in ["", "8", "60a", "-600", "17777", " 600"] {
            assert!(parse_mode(bad).is_err(), "{bad:?}");
        }
    }
}
