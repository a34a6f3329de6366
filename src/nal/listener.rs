use super::{Address, Deadline, NalError, Stream};
use socket2::{Domain, SockAddr, Socket, Type};
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::net::TcpListener;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Connections the kernel queues before they are accepted (it caps this at
/// `net.core.somaxconn`). Many clients connecting at once, each for one
/// operation, must not find the queue full.
const BACKLOG: i32 = 4096;

/// A listening socket.
///
/// A UNIX listener remembers the socket file it created: dropping the
/// listener, or [`Listener::remove_socket_file`], deletes that file, and
/// only that file (not one another server has since put at the path, and
/// not from a forked copy of the process).
#[derive(Debug)]
pub struct Listener {
    socket: Kind,
    socket_file: Option<SocketFile>,
}

#[derive(Debug)]
enum Kind {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// The socket file a UNIX listener created.
#[derive(Debug)]
struct SocketFile {
    /// Absolute, so that a change of working directory does not matter.
    path: PathBuf,
    dev: u64,
    ino: u64,
    /// The process that created it.
    pid: u32,
    removed: AtomicBool,
}

/// How long to wait before accepting again after an accept failed with
/// [`AcceptFailure::Other`] and the caller could not remedy it: the one
/// pause of every accept loop (server workers, inspection threads, the
/// proxy, dc_snoop).
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What a failed `accept` on a non-blocking listener means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptFailure {
    /// No connection is waiting.
    Empty,
    /// Try again at once: a signal, or a connection that went away before
    /// it was taken.
    Again,
    /// Something else (out of descriptors or memory, say): the caller's
    /// policy decides.
    Other,
}

impl AcceptFailure {
    /// Classifies the error an `accept` returned.
    pub fn of(e: &io::Error) -> AcceptFailure {
        match e.kind() {
            io::ErrorKind::WouldBlock => AcceptFailure::Empty,
            io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => AcceptFailure::Again,
            _ => AcceptFailure::Other,
        }
    }
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
                Ok(Listener {
                    socket: Kind::Tcp(socket.into()),
                    socket_file: None,
                })
            }
            Address::Unix(path) => {
                let absolute = std::path::absolute(path)?;
                clear_stale_socket(path)?;
                let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
                socket.bind(&SockAddr::unix(path)?)?;
                let meta = fs::symlink_metadata(path)?;
                let file = SocketFile {
                    path: absolute,
                    dev: meta.dev(),
                    ino: meta.ino(),
                    pid: std::process::id(),
                    removed: AtomicBool::new(false),
                };
                // From here on, a failure removes the file again (drop).
                let listener = Listener {
                    socket: Kind::Unix(socket.into()),
                    socket_file: Some(file),
                };
                listener.sock().listen(BACKLOG)?;
                Ok(listener)
            }
        }
    }

    fn sock(&self) -> socket2::SockRef<'_> {
        match &self.socket {
            Kind::Tcp(l) => socket2::SockRef::from(l),
            Kind::Unix(l) => socket2::SockRef::from(l),
        }
    }

    /// Waits for a connection (see [`Listener::set_accept_timeout`]).
    pub fn accept(&self) -> io::Result<Stream> {
        match &self.socket {
            Kind::Tcp(l) => l.accept().map(|(s, _)| Stream::from_tcp(s)),
            Kind::Unix(l) => l.accept().map(|(s, _)| Stream::from_unix(s)),
        }
    }

    /// Accepts one connection as a bare socket; also says whether it is a
    /// TCP connection.
    pub fn accept_socket(&self) -> io::Result<(Socket, bool)> {
        match &self.socket {
            Kind::Tcp(l) => l.accept().map(|(s, _)| (Socket::from(s), true)),
            Kind::Unix(l) => l.accept().map(|(s, _)| (Socket::from(s), false)),
        }
    }

    /// Makes [`Listener::accept_socket`] fail with `WouldBlock` instead of
    /// waiting when no connection is queued.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.sock().set_nonblocking(nonblocking)
    }

    /// Bounds how long [`Listener::accept`] blocks (`None`: no bound).
    pub fn set_accept_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock().set_read_timeout(timeout)
    }

    /// The TCP address listened on (with the port the system chose for
    /// port 0); `None` for a UNIX listener.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match &self.socket {
            Kind::Tcp(l) => l.local_addr().ok(),
            Kind::Unix(_) => None,
        }
    }

    /// The absolute path of the socket file this UNIX listener created.
    pub fn socket_path(&self) -> Option<&Path> {
        self.socket_file.as_ref().map(|f| f.path.as_path())
    }

    /// Deletes the socket file this UNIX listener created, so that clients
    /// find no server rather than one that no longer accepts. Leaves alone a
    /// file that is no longer the one it created (another server's), and
    /// does nothing in a process forked from the creator, or the second
    /// time. Returns whether a file was deleted. The socket itself stays
    /// open until the listener is dropped.
    pub fn remove_socket_file(&self) -> io::Result<bool> {
        let Some(f) = &self.socket_file else {
            return Ok(false);
        };
        if std::process::id() != f.pid || f.removed.swap(true, Ordering::AcqRel) {
            return Ok(false);
        }
        match fs::symlink_metadata(&f.path) {
            Ok(m) if (m.dev(), m.ino()) == (f.dev, f.ino) => {
                fs::remove_file(&f.path)?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.socket {
            Kind::Tcp(l) => l.as_fd(),
            Kind::Unix(l) => l.as_fd(),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.remove_socket_file();
    }
}

/// Makes room for a UNIX listener at `path`, removing only a dead socket.
fn clear_stale_socket(path: &Path) -> Result<(), NalError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(NalError::Io(e)),
    };
    let kind = meta.file_type();
    if !kind.is_socket() {
        let what = if kind.is_file() {
            "is a regular file, not a socket: left untouched"
        } else if kind.is_dir() {
            "is a directory, not a socket: left untouched"
        } else if kind.is_symlink() {
            "is a symbolic link, not a socket: left untouched"
        } else {
            "exists and is not a socket: left untouched"
        };
        return Err(NalError::PathInUse(path.into(), what));
    }
    let probe = Address::Unix(path.into());
    match Stream::connect(&probe, Deadline::after(Duration::from_millis(500))) {
        Ok(_) => Err(NalError::PathInUse(
            path.into(),
            "is the socket of a running server (it accepts connections): not taken over",
        )),
        Err(NalError::Io(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            fs::remove_file(path)?;
            Ok(())
        }
        Err(NalError::TimedOut) => Err(NalError::PathInUse(
            path.into(),
            "is the socket of a running server (busy, its queue is full): not taken over",
        )),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(path: &Path) -> Address {
        Address::Unix(path.into())
    }

    #[test]
    fn socket_file_is_removed_on_drop_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sock");
        let l = Listener::bind(&unix(&path)).unwrap();
        assert_eq!(l.socket_path(), Some(path.as_path()));
        assert!(path.exists());
        assert!(l.remove_socket_file().unwrap());
        assert!(!path.exists());
        assert!(!l.remove_socket_file().unwrap(), "second removal");
        drop(l);

        let l = Listener::bind(&unix(&path)).unwrap();
        drop(l);
        assert!(!path.exists(), "drop removes the socket file");
    }

    #[test]
    fn a_replaced_socket_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sock");
        let l = Listener::bind(&unix(&path)).unwrap();
        fs::remove_file(&path).unwrap();
        let other = UnixListener::bind(&path).unwrap(); // another server's
        assert!(!l.remove_socket_file().unwrap());
        drop(l);
        assert!(path.exists(), "another server's socket file was deleted");
        drop(other);
    }

    #[test]
    fn regular_file_and_live_socket_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data");
        fs::write(&file, b"precious").unwrap();
        let err = Listener::bind(&unix(&file)).unwrap_err().to_string();
        assert!(err.contains(&*file.to_string_lossy()), "{err}");
        assert!(err.contains("regular file"), "{err}");
        assert_eq!(fs::read(&file).unwrap(), b"precious");

        let path = dir.path().join("live.sock");
        let live = Listener::bind(&unix(&path)).unwrap();
        let err = Listener::bind(&unix(&path)).unwrap_err().to_string();
        assert!(err.contains("running server"), "{err}");
        live.set_accept_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let _client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        // The probe's connection is queued first; the live listener still
        // accepts both.
        live.accept().unwrap();
        live.accept().unwrap();
    }

    #[test]
    fn stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stale.sock");
        drop(UnixListener::bind(&path).unwrap()); // leaves the file behind
        assert!(path.exists());
        let l = Listener::bind(&unix(&path)).unwrap();
        assert!(l.socket_path().is_some());
    }

    #[test]
    fn tcp_listener_has_no_socket_file() {
        let addr = Address::parse("IP:127.0.0.1:0").unwrap();
        let l = Listener::bind(&addr).unwrap();
        assert_eq!(l.socket_path(), None);
        assert!(l.tcp_addr().is_some_and(|a| a.port() != 0));
        assert!(!l.remove_socket_file().unwrap());
    }
}
