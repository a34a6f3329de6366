//! TLS on the TCP links: `TLS:host:port` addresses, the server's
//! credentials (reloaded on SIGHUP), the server side of a connection as the
//! event-driven workers drive it, and the client's blocking TLS stream with
//! deadlines and session resumption.
//!
//! Built on the system's libssl (through the `openssl` crate): the library
//! the TLS servers that load `libdistcache` already carry, so a process
//! holds one TLS implementation, updated with the distribution.
//!
//! Mutual authentication is the default on both sides: a server asks every
//! client for a certificate that chains to its CA, and a client checks the
//! server's certificate against its CA and the name or IP address it
//! connected to. Nothing but the CA given is trusted.

mod address;
mod client;
mod error;
mod files;
mod link;
mod reload;
mod server;
mod upstream;

pub use address::{is_tls, TlsAddress};
pub use client::{ClientTls, TlsStream};
pub use error::TlsError;
pub use files::Credentials;
pub(crate) use link::Link;
pub use reload::ReloadSignal;
pub use server::{HandshakeCounts, ServerOptions, ServerTls};
pub(crate) use upstream::Upstream;
