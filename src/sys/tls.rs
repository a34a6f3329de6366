//! The one libssl call the `openssl` crate leaves unsafe: offering a saved
//! session to a new client connection.

use openssl::error::ErrorStack;
use openssl::ssl::{Ssl, SslContext, SslContextBuilder, SslSession, SslSessionCacheMode};
use std::sync::{Arc, Mutex};

/// A client context that keeps the last session its server gave it, and
/// offers it on every new connection, so that a client that connects for
/// each operation resumes rather than paying a full handshake.
///
/// The context and its sessions are kept together, and a session reaches
/// the slot only through this context's callback: that is what makes
/// offering it sound (libssl requires a session to come from the context
/// of the connection it is offered on).
pub(crate) struct ResumingContext {
    context: SslContext,
    last: Arc<Mutex<Option<SslSession>>>,
}

impl std::fmt::Debug for ResumingContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumingContext")
            .field("has_session", &self.has_session())
            .finish_non_exhaustive()
    }
}

impl ResumingContext {
    /// Finishes `builder` into a context that keeps its last session.
    pub(crate) fn build(mut builder: SslContextBuilder) -> ResumingContext {
        let last: Arc<Mutex<Option<SslSession>>> = Arc::default();
        let slot = last.clone();
        builder.set_session_cache_mode(
            SslSessionCacheMode::CLIENT | SslSessionCacheMode::NO_INTERNAL_STORE,
        );
        builder.set_new_session_callback(move |_, session| {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(session);
        });
        ResumingContext {
            context: builder.build(),
            last,
        }
    }

    /// A new connection's TLS state, offering the last session if any.
    pub(crate) fn connection(&self) -> Result<Ssl, ErrorStack> {
        let mut ssl = Ssl::new(&self.context)?;
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(session) = last {
            // SAFETY: `session` reached `last` only through the callback
            // installed on `self.context` in `build`, the context `ssl` was
            // made from.
            unsafe { ssl.set_session(&session)? };
        }
        Ok(ssl)
    }

    /// Whether a session is kept to offer.
    pub(crate) fn has_session(&self) -> bool {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Drops the kept session (after a handshake that failed with it).
    pub(crate) fn forget(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
