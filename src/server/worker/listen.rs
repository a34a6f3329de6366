//! A listener as a worker sees it: its own non-blocking handle, registered
//! with the worker's event loop.

use crate::nal::Listener;
use mio::net::{TcpListener, UnixListener};
use mio::{Interest, Registry, Token};
use socket2::Socket;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// A listener as a worker sees it: its own non-blocking handle.
pub(super) enum Listen {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Listen {
    pub(super) fn of(l: &Listener) -> io::Result<Listen> {
        let fd: OwnedFd = l.as_fd().try_clone_to_owned()?;
        Ok(if l.tcp_addr().is_some() {
            Listen::Tcp(TcpListener::from_std(std::net::TcpListener::from(fd)))
        } else {
            Listen::Unix(UnixListener::from_std(
                std::os::unix::net::UnixListener::from(fd),
            ))
        })
    }

    /// Accepts a connection, non-blocking, without waiting.
    pub(super) fn accept(&self) -> io::Result<Socket> {
        match self {
            Listen::Unix(l) => l.accept().map(|(s, _)| Socket::from(OwnedFd::from(s))),
            Listen::Tcp(l) => {
                let (s, _) = l.accept()?;
                // Replies are small and latency matters more than packets.
                let _ = s.set_nodelay(true);
                Ok(Socket::from(OwnedFd::from(s)))
            }
        }
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Listen::Unix(l) => l.as_fd(),
            Listen::Tcp(l) => l.as_fd(),
        }
    }

    pub(super) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        match self {
            Listen::Unix(l) => registry.register(l, token, Interest::READABLE),
            Listen::Tcp(l) => registry.register(l, token, Interest::READABLE),
        }
    }

    pub(super) fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Listen::Unix(l) => registry.deregister(l),
            Listen::Tcp(l) => registry.deregister(l),
        }
    }
}
