//! A client connection driven by an event loop (the proxy's link to its
//! server): a non-blocking stream, plain or under TLS, with the handshake
//! carried on between wake-ups.

use super::client::NoWait;
use super::{ClientTls, TlsError};
use crate::nal::Stream;
use openssl::ssl::{ErrorCode, SslStream};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

/// A connected non-blocking stream to a server.
#[derive(Debug)]
pub(crate) enum Upstream {
    /// The stream itself.
    Plain(Stream),
    /// TLS over the stream.
    Tls(Box<TlsUpstream>),
}

#[derive(Debug)]
pub(crate) struct TlsUpstream {
    stream: SslStream<NoWait>,
    handshaking: bool,
    wants_write: bool,
}

impl Upstream {
    /// A stream just connected: plain, or TLS with `tls`.
    pub(crate) fn connected(stream: Stream, tls: Option<&ClientTls>) -> Result<Upstream, TlsError> {
        let Some(tls) = tls else {
            return Ok(Upstream::Plain(stream));
        };
        let stream = SslStream::new(tls.connection()?, NoWait(stream))?;
        Ok(Upstream::Tls(Box::new(TlsUpstream {
            stream,
            handshaking: true,
            wants_write: false,
        })))
    }

    /// The descriptor to watch.
    pub(crate) fn raw_fd(&self) -> RawFd {
        match self {
            Upstream::Plain(s) => s.as_fd().as_raw_fd(),
            Upstream::Tls(t) => t.stream.get_ref().0.as_fd().as_raw_fd(),
        }
    }

    /// Whether requests can be written now (not while the handshake goes
    /// on: it is driven by reads).
    pub(crate) fn can_send(&self) -> bool {
        !matches!(self, Upstream::Tls(t) if t.handshaking)
    }

    /// Whether TLS waits for room to send.
    pub(crate) fn wants_write(&self) -> bool {
        matches!(self, Upstream::Tls(t) if t.wants_write)
    }

    /// Whether read bytes wait inside TLS (the socket will not say so).
    pub(crate) fn has_pending(&self) -> bool {
        matches!(self, Upstream::Tls(t) if t.stream.ssl().pending() > 0)
    }

    /// Receives some bytes: 0 at the end of the stream, `WouldBlock` when
    /// none are there (or the handshake is not over).
    pub(crate) fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Upstream::Plain(s) => s.recv(buf),
            Upstream::Tls(t) => t.exchange(|s| s.ssl_read(buf)),
        }
    }

    /// Sends some of `buf` without waiting.
    pub(crate) fn send(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Upstream::Plain(s) => s.send(buf),
            Upstream::Tls(t) => t.exchange(|s| s.ssl_write(buf)),
        }
    }
}

impl TlsUpstream {
    /// Reads or writes with `op` once the handshake is over.
    fn exchange(
        &mut self,
        op: impl FnOnce(&mut SslStream<NoWait>) -> Result<usize, openssl::ssl::Error>,
    ) -> io::Result<usize> {
        self.handshake()?;
        self.wants_write = false;
        op(&mut self.stream).or_else(|e| self.failed(e))
    }

    fn handshake(&mut self) -> io::Result<()> {
        if !self.handshaking {
            return Ok(());
        }
        match self.stream.connect() {
            Ok(()) => {
                self.handshaking = false;
                Ok(())
            }
            Err(e) => match self.failed(e) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(e),
                Err(e) => Err(io::Error::other(format!("TLS handshake: {e}"))),
                Ok(_) => Err(io::Error::other("TLS handshake: connection closed")),
            },
        }
    }

    fn failed(&mut self, e: openssl::ssl::Error) -> io::Result<usize> {
        match e.code() {
            ErrorCode::WANT_READ => Err(io::ErrorKind::WouldBlock.into()),
            ErrorCode::WANT_WRITE => {
                self.wants_write = true;
                Err(io::ErrorKind::WouldBlock.into())
            }
            ErrorCode::ZERO_RETURN => Ok(0),
            ErrorCode::SYSCALL if e.ssl_error().is_none() => match e.into_io_error() {
                Ok(io) => Err(io),
                Err(_) => Ok(0),
            },
            _ => Err(io::Error::other(e.to_string())),
        }
    }
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        if !self.handshaking {
            // An orderly close keeps the session resumable.
            let _ = self.stream.shutdown();
        }
    }
}
