//! A non-blocking listener driven by a selector (libnal's `NAL_LISTENER`):
//! the selector reports a waiting connection, and one accept takes it.

use super::connection::Ready;
use super::sys::{lookup_group, lookup_user, PollFd};
use super::{Address, Listener, NalError};
use socket2::Socket;
use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
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
    /// A listener that is not listening yet.
    pub fn new() -> Acceptor {
        Acceptor::default()
    }

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
        match &listener {
            Listener::Tcp(l) => l.set_nonblocking(true)?,
            Listener::Unix(l) => l.set_nonblocking(true)?,
        }
        self.unix_path = match addr {
            Address::Unix(path) => Some(path.clone()),
            Address::Tcp { .. } => None,
        };
        self.listener = Some(listener);
        self.caught = false;
        self.buffer_size = buffer_size;
        Ok(())
    }

    /// Stops listening (the socket file, if any, stays, as the original's).
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
    pub fn poll_entry(&self) -> Option<PollFd> {
        let fd = match self.listener.as_ref()? {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l) => l.as_raw_fd(),
        };
        Some(PollFd {
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
            Some(Listener::Tcp(l)) => Ok((Socket::from(l.accept()?.0), true)),
            Some(Listener::Unix(l)) => Ok((Socket::from(l.accept()?.0), false)),
            None => Err(NalError::Closed),
        }
    }

    /// Gives a UNIX listener's socket file to `user` and/or `group` (a
    /// user alone also sets the user's primary group, as the original).
    pub fn set_owner(&self, user: Option<&str>, group: Option<&str>) -> Result<(), NalError> {
        let path = self.socket_path()?;
        let mut uid = None;
        let mut gid = None;
        if let Some(name) = user {
            let (u, g) = lookup_user(name)?.ok_or_else(|| not_found("user", name))?;
            uid = Some(u);
            gid = Some(g);
        }
        if let Some(name) = group {
            gid = Some(lookup_group(name)?.ok_or_else(|| not_found("group", name))?);
        }
        std::os::unix::fs::chown(path, uid, gid)?;
        Ok(())
    }

    /// Sets a UNIX listener's socket file mode from an octal string such as
    /// `660`.
    pub fn set_mode(&self, octal: &str) -> Result<(), NalError> {
        use std::os::unix::fs::PermissionsExt;
        let mode = parse_mode(octal).ok_or_else(|| {
            NalError::Io(io::Error::new(
                ErrorKind::InvalidInput,
                format!("'{octal}' is not an octal file mode"),
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

fn not_found(what: &str, name: &str) -> NalError {
    NalError::Io(io::Error::new(
        ErrorKind::NotFound,
        format!("no {what} named '{name}'"),
    ))
}

/// Parses a file mode written in octal (`600`, `0660`); `None` for anything
/// else or a mode above `7777`.
pub fn parse_mode(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(s, 8).ok().filter(|m| *m <= 0o7777)
}

#[cfg(test)]
mod tests {
    use super::parse_mode;

    #[test]
    fn modes() {
        assert_eq!(parse_mode("600"), Some(0o600));
        assert_eq!(parse_mode("0660"), Some(0o660));
        assert_eq!(parse_mode("7777"), Some(0o7777));
        for bad in ["", "8", "60a", "-600", "17777", " 600"] {
            assert_eq!(parse_mode(bad), None, "{bad:?}");
        }
    }
}
