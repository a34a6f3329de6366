use super::{Address, Deadline, NalError, Stream};
use socket2::{Domain, SockAddr, Socket, Type};
use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

/// Connections the kernel queues before they are accepted (it caps this at
/// `net.core.somaxconn`). Many clients connecting at once, each for one
/// operation, must not find the queue full.
const BACKLOG: i32 = 4096;

/// A listening socket.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A UNIX listener.
    Unix(UnixListener),
}

impl Listener {
    /// Listens on `addr`.
    ///
    /// For a UNIX address, a stale socket file left by a server that is gone
    /// is replaced, but a live server's socket (one that accepts a
    /// connection) and anything that is not a socket are left alone and the
    /// call fails.
    pub fn bind(addr: &Address) -> Result<Listener, NalError> {
        match addr {
            Address::Tcp { addr, .. } => {
                let socket = Socket::new(Domain::for_address(*addr), Type::STREAM, None)?;
                socket.set_reuse_address(true)?;
                if addr.is_ipv6() {
                    // IPv6 only, so that `IP:port` and `IPv6:port` can be
                    // listened on side by side.
                    socket.set_only_v6(true)?;
                }
                socket.bind(&SockAddr::from(*addr))?;
                socket.listen(BACKLOG)?;
                Ok(Listener::Tcp(socket.into()))
            }
            Address::Unix(path) => {
                clear_stale_socket(path)?;
                let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
                socket.bind(&SockAddr::unix(path)?)?;
                socket.listen(BACKLOG)?;
                Ok(Listener::Unix(socket.into()))
            }
        }
    }

    /// Waits for a connection (see [`Listener::set_accept_timeout`]).
    pub fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::from_tcp(s)),
            Listener::Unix(l) => l.accept().map(|(s, _)| Stream::from_unix(s)),
        }
    }

    /// Switches the listener between blocking and non-blocking accepts.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.set_nonblocking(nonblocking),
            Listener::Unix(l) => l.set_nonblocking(nonblocking),
        }
    }

    /// Bounds how long [`Listener::accept`] blocks (`None`: no bound).
    pub fn set_accept_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        let sock = match self {
            Listener::Tcp(l) => socket2::SockRef::from(l),
            Listener::Unix(l) => socket2::SockRef::from(l),
        };
        sock.set_read_timeout(timeout)
    }
}

/// Makes room for a UNIX listener at `path`, removing only a dead socket.
fn clear_stale_socket(path: &Path) -> Result<(), NalError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(NalError::Io(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(NalError::PathInUse(
            path.into(),
            "it exists and is not a socket",
        ));
    }
    let probe = Address::Unix(path.into());
    match Stream::connect(&probe, Deadline::after(Duration::from_millis(500))) {
        Ok(_) => Err(NalError::PathInUse(
            path.into(),
            "a server is listening on it",
        )),
        Err(NalError::Io(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            fs::remove_file(path)?;
            Ok(())
        }
        Err(NalError::TimedOut) => Err(NalError::PathInUse(
            path.into(),
            "a server is listening on it (busy)",
        )),
        Err(e) => Err(e),
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l) => l.as_fd(),
        }
    }
}
