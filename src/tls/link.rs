//! The server side of one connection as a worker drives it: a plain socket,
//! or TLS over it with the handshake carried on between wake-ups.

use super::{ServerTls, TlsError};
use openssl::ssl::{ErrorCode, SslStream};
use socket2::Socket;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

/// A non-blocking socket as libssl reads and writes it: a peer that went
/// away gives `EPIPE`, never a SIGPIPE.
#[derive(Debug)]
struct Raw(Socket);

impl Read for Raw {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.0).read(buf)
    }
}

impl Write for Raw {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.send_with_flags(buf, libc::MSG_NOSIGNAL)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where a connection's bytes come from and go to.
#[derive(Debug)]
pub(crate) enum Link {
    /// The socket itself.
    Plain(Socket),
    /// TLS over the socket.
    Tls(Box<TlsLink>),
}

#[derive(Debug)]
pub(crate) struct TlsLink {
    stream: SslStream<Raw>,
    tls: Arc<ServerTls>,
    handshaking: bool,
    /// Whether the handshake was begun (a connection refused at a limit
    /// never is, and is not counted).
    begun: bool,
    /// libssl waits for room to send before it can go on.
    wants_write: bool,
}

fn would_block() -> io::Error {
    io::ErrorKind::WouldBlock.into()
}

impl Link {
    /// A connection just accepted: plain, or TLS with `tls`'s credentials.
    pub(crate) fn accepted(sock: Socket, tls: Option<&Arc<ServerTls>>) -> Result<Link, TlsError> {
        let Some(tls) = tls else {
            return Ok(Link::Plain(sock));
        };
        let stream = SslStream::new(tls.session()?, Raw(sock))?;
        Ok(Link::Tls(Box::new(TlsLink {
            stream,
            tls: tls.clone(),
            handshaking: true,
            begun: false,
            wants_write: false,
        })))
    }

    /// The socket's descriptor, to watch.
    pub(crate) fn raw_fd(&self) -> RawFd {
        match self {
            Link::Plain(s) => s.as_raw_fd(),
            Link::Tls(t) => t.stream.get_ref().0.as_raw_fd(),
        }
    }

    /// Whether the TLS handshake is still going on.
    pub(crate) fn is_handshaking(&self) -> bool {
        matches!(self, Link::Tls(t) if t.handshaking)
    }

    /// Whether TLS waits for room to send (the socket must be watched for
    /// it even with no reply pending).
    pub(crate) fn wants_write(&self) -> bool {
        matches!(self, Link::Tls(t) if t.wants_write)
    }

    /// Whether a read shorter than the buffer means the socket is empty:
    /// true of a plain socket; TLS reads one record at a time.
    pub(crate) fn short_read_drains(&self) -> bool {
        matches!(self, Link::Plain(_))
    }

    /// Reads what has come in, going on with the handshake first: 0 at the
    /// end of the stream, `WouldBlock` when nothing is there (yet).
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Link::Plain(s) => (&*s).read(buf),
            Link::Tls(t) => t.exchange(|s| s.ssl_read(buf)),
        }
    }

    /// Sends some of `bytes` without waiting: how much was taken.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Link::Plain(s) => s.send_with_flags(bytes, libc::MSG_NOSIGNAL),
            Link::Tls(t) => t.exchange(|s| s.ssl_write(bytes)),
        }
    }
}

impl TlsLink {
    /// Reads or writes with `op` once the handshake is over.
    fn exchange(
        &mut self,
        op: impl FnOnce(&mut SslStream<Raw>) -> Result<usize, openssl::ssl::Error>,
    ) -> io::Result<usize> {
        self.handshake()?;
        self.wants_write = false;
        op(&mut self.stream).or_else(|e| self.failed(e))
    }

    /// Goes on with the handshake; `Ok` once it is over.
    fn handshake(&mut self) -> io::Result<()> {
        if !self.handshaking {
            return Ok(());
        }
        self.begun = true;
        match self.stream.accept() {
            Ok(()) => {
                self.handshaking = false;
                self.wants_write = false;
                self.tls.count(Some(self.stream.ssl()));
                Ok(())
            }
            Err(e) => {
                let e = match self.failed(e) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
                    Err(e) => e,
                    Ok(_) => io::ErrorKind::UnexpectedEof.into(),
                };
                self.handshaking = false;
                self.tls.count(None);
                Err(e)
            }
        }
    }

    /// What a libssl error means to the worker.
    fn failed(&mut self, e: openssl::ssl::Error) -> io::Result<usize> {
        match e.code() {
            ErrorCode::WANT_READ => Err(would_block()),
            ErrorCode::WANT_WRITE => {
                self.wants_write = true;
                Err(would_block())
            }
            ErrorCode::ZERO_RETURN => Ok(0),
            ErrorCode::SYSCALL if e.io_error().is_none() && e.ssl_error().is_none() => Ok(0),
            _ => Err(match e.into_io_error() {
                Ok(io) if io.kind() != io::ErrorKind::WouldBlock => io,
                Ok(_) => io::Error::other("TLS failure"),
                Err(e) => io::Error::other(e.to_string()),
            }),
        }
    }
}

impl Drop for TlsLink {
    fn drop(&mut self) {
        if self.handshaking && self.begun {
            // Cut off before it ended (a stall, or the server stopping).
            self.tls.count(None);
        }
    }
}
