use super::files::{certificates, private_key};
use super::TlsError;
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslMode, SslOptions, SslRef, SslVerifyMode,
    SslVersion,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Tickets a server issues after a full handshake: one is enough for a
/// client that keeps only its last session.
const TICKETS: usize = 1;
/// Names the sessions this server issues, so that it resumes only its own.
const SESSION_CONTEXT: &[u8] = b"distcache";

/// What a TLS listener is set up with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA a client's certificate must chain to (PEM).
    pub ca: Option<PathBuf>,
    /// Whether clients must present a certificate (the default).
    pub require_client_cert: bool,
    /// Whether TLS 1.2 is accepted as well as TLS 1.3.
    pub allow_tls12: bool,
}

/// Handshakes a server has made since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandshakeCounts {
    /// Handshakes that negotiated a new session.
    pub full: u64,
    /// Handshakes that resumed a session.
    pub resumed: u64,
    /// Handshakes that failed or were cut off.
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    full: AtomicU64,
    resumed: AtomicU64,
    failed: AtomicU64,
}

/// The server side of TLS: the current credentials, swapped whole on
/// [`ServerTls::reload`], and handshake counters.
#[derive(Debug)]
pub struct ServerTls {
    options: ServerOptions,
    context: RwLock<SslContext>,
    counters: Arc<Counters>,
}

impl ServerTls {
    /// Loads the credentials of `options`.
    pub fn new(options: ServerOptions) -> Result<ServerTls, TlsError> {
        let context = build(&options)?;
        Ok(ServerTls {
            options,
            context: RwLock::new(context),
            counters: Arc::default(),
        })
    }

    /// Loads the credentials again from the same files; connections
    /// accepted afterwards use them. On failure the ones in use are kept.
    /// Sessions issued before a reload are not resumed after it.
    pub fn reload(&self) -> Result<(), TlsError> {
        let context = build(&self.options)?;
        *self.context.write().unwrap_or_else(|p| p.into_inner()) = context;
        Ok(())
    }

    /// What the server was set up with.
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// The handshakes made so far.
    pub fn counts(&self) -> HandshakeCounts {
        let c = &self.counters;
        HandshakeCounts {
            full: c.full.load(Ordering::Relaxed),
            resumed: c.resumed.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }

    /// A new connection's TLS state, with the current credentials.
    pub(super) fn session(&self) -> Result<Ssl, TlsError> {
        let context = self.context.read().unwrap_or_else(|p| p.into_inner());
        Ok(Ssl::new(&context)?)
    }

    /// Counts a handshake that ended: `Some(ssl)` when it succeeded.
    pub(super) fn count(&self, done: Option<&SslRef>) {
        let c = &self.counters;
        let counter = match done {
            Some(ssl) if ssl.session_reused() => &c.resumed,
            Some(_) => &c.full,
            None => &c.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What writing through libssl on a non-blocking socket needs: a write
/// returns once a record is out, and a write retried after `WANT_WRITE`
/// may come from another buffer holding the same bytes.
pub(super) fn non_blocking_writes() -> SslMode {
    SslMode::ENABLE_PARTIAL_WRITE | SslMode::ACCEPT_MOVING_WRITE_BUFFER
}

/// Sets the side's own certificate chain and key.
pub(super) fn set_identity(
    b: &mut SslContextBuilder,
    cert: &Path,
    key: &Path,
) -> Result<(), TlsError> {
    let mut chain = certificates(cert)?.into_iter();
    let leaf = chain
        .next()
        .ok_or_else(|| TlsError::NoCertificate(cert.into()))?;
    b.set_certificate(&leaf)?;
    for c in chain {
        b.add_extra_chain_cert(c)?;
    }
    let key_pem = private_key(key)?;
    b.set_private_key(&key_pem)?;
    b.check_private_key()
        .map_err(|_| TlsError::KeyMismatch(key.into(), cert.into()))?;
    Ok(())
}

/// Trusts the certificates of `ca`, and only them.
pub(super) fn trust(b: &mut SslContextBuilder, ca: &Path, name_them: bool) -> Result<(), TlsError> {
    for c in certificates(ca)? {
        if name_them {
            b.add_client_ca(&c)?;
        }
        b.cert_store_mut().add_cert(c)?;
    }
    Ok(())
}

fn build(o: &ServerOptions) -> Result<SslContext, TlsError> {
    let mut b = SslContext::builder(SslMethod::tls_server())?;
    let min = if o.allow_tls12 {
        SslVersion::TLS1_2
    } else {
        SslVersion::TLS1_3
    };
    b.set_min_proto_version(Some(min))?;
    b.set_options(SslOptions::NO_RENEGOTIATION | SslOptions::CIPHER_SERVER_PREFERENCE);
    // An idle connection keeps no TLS buffers; replies the socket did not
    // take are offered again from wherever they are kept by then.
    b.set_mode(SslMode::RELEASE_BUFFERS | non_blocking_writes());
    // A request's record comes in with one read, not one for its header
    // and one for the rest; the worker reads a TLS connection until the
    // socket is empty, so records read ahead are never left unseen.
    b.set_read_ahead(true);
    b.set_session_id_context(SESSION_CONTEXT)?;
    b.set_num_tickets(TICKETS)?;
    set_identity(&mut b, &o.cert, &o.key)?;
    match (&o.ca, o.require_client_cert) {
        (Some(ca), require) => {
            trust(&mut b, ca, true)?;
            let mut mode = SslVerifyMode::PEER;
            if require {
                mode |= SslVerifyMode::FAIL_IF_NO_PEER_CERT;
            }
            b.set_verify(mode);
        }
        (None, true) => {
            return Err(TlsError::Missing(
                "client certificates are required, but no CA to check them against was given",
            ))
        }
        (None, false) => b.set_verify(SslVerifyMode::NONE),
    }
    Ok(b.build())
}
