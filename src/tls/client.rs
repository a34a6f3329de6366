use super::server::{non_blocking_writes, set_identity, trust};
use super::{Credentials, TlsAddress, TlsError};
use crate::nal::{Address, Deadline, NalError, Stream};
use crate::sys::socket::{wait, Ready};
use crate::sys::tls::ResumingContext;
use openssl::ssl::{ErrorCode, Ssl, SslContext, SslMethod, SslStream, SslVerifyMode, SslVersion};
use openssl::x509::verify::X509CheckFlags;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;

/// The CA a client checks the server's certificate against.
pub const ENV_CA: &str = "DISTCACHE_TLS_CA";
/// The certificate a client presents.
pub const ENV_CERT: &str = "DISTCACHE_TLS_CERT";
/// The private key of that certificate.
pub const ENV_KEY: &str = "DISTCACHE_TLS_KEY";

/// The client side of TLS for one server: the credentials, the name or
/// address the server's certificate must carry, and the last session, which
/// every new connection offers.
#[derive(Debug)]
pub struct ClientTls {
    context: ResumingContext,
    host: String,
    ip: Option<IpAddr>,
}

impl ClientTls {
    /// Sets up TLS to `to` with `creds`. The CA is required; a certificate
    /// and key are presented when both are given.
    pub fn new(to: &TlsAddress, creds: &Credentials) -> Result<ClientTls, TlsError> {
        let host = to.host.clone().ok_or(TlsError::Missing(
            "a TLS address to connect to names its host",
        ))?;
        let mut b = SslContext::builder(SslMethod::tls_client())?;
        b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
        b.set_mode(non_blocking_writes());
        let ca = creds.ca.as_deref().ok_or(TlsError::Missing(
            "no CA to check the server's certificate against",
        ))?;
        trust(&mut b, ca, false)?;
        b.set_verify(SslVerifyMode::PEER);
        match (&creds.cert, &creds.key) {
            (Some(cert), Some(key)) => set_identity(&mut b, cert, key)?,
            (None, None) => {}
            _ => return Err(TlsError::Missing("a certificate and its key go together")),
        }
        Ok(ClientTls {
            context: ResumingContext::build(b),
            ip: host.parse().ok(),
            host,
        })
    }

    /// [`ClientTls::new`] with the credentials named by `DISTCACHE_TLS_CA`,
    /// `DISTCACHE_TLS_CERT` and `DISTCACHE_TLS_KEY`.
    pub fn from_env(to: &TlsAddress) -> Result<ClientTls, TlsError> {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let creds = Credentials {
            ca: var(ENV_CA),
            cert: var(ENV_CERT),
            key: var(ENV_KEY),
        };
        if creds.ca.is_none() {
            return Err(TlsError::Missing(
                "a TLS address needs DISTCACHE_TLS_CA (and DISTCACHE_TLS_CERT, DISTCACHE_TLS_KEY)",
            ));
        }
        ClientTls::new(to, &creds)
    }

    /// Whether a session is kept to resume on the next connection.
    pub fn has_session(&self) -> bool {
        self.context.has_session()
    }

    /// A new connection's TLS state: the last session offered, the
    /// server's name or address to verify.
    pub(super) fn connection(&self) -> Result<Ssl, TlsError> {
        let mut ssl = self.context.connection()?;
        ssl.param_mut()
            .set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
        match self.ip {
            Some(ip) => ssl.param_mut().set_ip(ip)?,
            None => {
                ssl.set_hostname(&self.host)?;
                ssl.param_mut().set_host(&self.host)?;
            }
        }
        Ok(ssl)
    }

    /// Forgets the kept session: the next connection makes a full
    /// handshake.
    pub fn forget_session(&self) {
        self.context.forget();
    }
}

impl Drop for TlsStream {
    fn drop(&mut self) {
        // A close_notify if the socket takes it, without waiting: libssl
        // keeps a session resumable only after an orderly close.
        if self.pid == std::process::id() {
            let _ = self.stream.shutdown();
        }
    }
}

/// A connected stream as libssl reads and writes it: without waiting.
#[derive(Debug)]
pub(super) struct NoWait(pub(super) Stream);

impl Read for NoWait {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.recv(buf)
    }
}

impl Write for NoWait {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.send(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A TLS connection to a server whose every operation ends by a
/// [`Deadline`], as [`Stream`]'s do.
#[derive(Debug)]
pub struct TlsStream {
    stream: SslStream<NoWait>,
    /// The process that made the connection: a child that inherited it
    /// must not end the TLS session its parent goes on using.
    pid: u32,
}

impl TlsStream {
    /// Connects to `addr` and makes the handshake before `deadline`.
    pub fn connect(addr: &Address, tls: &ClientTls, deadline: Deadline) -> Result<Self, TlsError> {
        let stream = Stream::connect(addr, deadline)?;
        stream.set_nonblocking(true).map_err(NalError::Io)?;
        let ssl = tls.connection()?;
        let mut s = TlsStream {
            stream: SslStream::new(ssl, NoWait(stream))?,
            pid: std::process::id(),
        };
        match s.pump(deadline, |s| s.connect()) {
            Ok(()) => Ok(s),
            Err(e) => {
                if tls.has_session() && !matches!(e, TlsError::Net(_)) {
                    // A server that no longer knows the session may be one
                    // that changed; the next attempt starts afresh.
                    tls.forget_session();
                }
                Err(match e {
                    TlsError::Record(why) => TlsError::Handshake(why),
                    other => other,
                })
            }
        }
    }

    /// Reads some bytes into `buf` before `deadline`: at least one, or an
    /// error (`Closed` at the end of the stream).
    pub fn read_before(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize, TlsError> {
        self.pump(deadline, |s| s.ssl_read(buf))
    }

    /// Writes all of `buf` before `deadline`.
    pub fn write_all_before(&mut self, mut buf: &[u8], deadline: Deadline) -> Result<(), TlsError> {
        while !buf.is_empty() {
            let n = self.pump(deadline, |s| s.ssl_write(buf))?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Runs `op` until it succeeds, waiting for the socket as libssl asks.
    fn pump<T>(
        &mut self,
        deadline: Deadline,
        mut op: impl FnMut(&mut SslStream<NoWait>) -> Result<T, openssl::ssl::Error>,
    ) -> Result<T, TlsError> {
        loop {
            let e = match op(&mut self.stream) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let ready = match e.code() {
                ErrorCode::WANT_READ => Ready::Read,
                ErrorCode::WANT_WRITE => Ready::Write,
                ErrorCode::ZERO_RETURN => return Err(NalError::Closed.into()),
                ErrorCode::SYSCALL if e.ssl_error().is_none() => {
                    return Err(match e.into_io_error() {
                        Ok(io) if io.kind() == io::ErrorKind::Interrupted => continue,
                        Ok(io) => NalError::Io(io),
                        Err(_) => NalError::Closed,
                    }
                    .into())
                }
                _ => return Err(TlsError::Record(e.to_string())),
            };
            let fd = self.stream.get_ref().0.as_fd();
            if !wait(fd, ready, deadline.remaining()?).map_err(NalError::Io)? {
                return Err(NalError::TimedOut.into());
            }
        }
    }
}
