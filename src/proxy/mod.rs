//! The `dc_client` engine: a local proxy that carries the requests of many
//! short-lived client connections over one persistent connection to a
//! `dc_server`.
//!
//! Each client sends requests with uids of its own choosing; on the server
//! leg the proxy numbers them from its own counter (1, 2, 3, ...) and puts
//! each client's uid back on the replies, so that both legs carry exactly
//! the bytes a direct exchange would. While the server cannot be reached the
//! proxy answers every request itself with an empty reply (which every
//! client library takes as a failure), and tries to reconnect every
//! [`ProxyConfig::retry`]; a request whose reply the server will never send,
//! because the connection broke or stalled, gets the one-byte reply `0x02`
//! (`DC_ERR_DISCONNECTED`).
//!
//! It is one thread running one `poll(2)` loop over non-blocking sockets:
//! no client, however slow, and no server, however stalled, can hold it up.
//! Each client has one request at a time in the proxy (as with the
//! original); memory per client is bounded by one request and one reply of
//! at most 32 KiB each, plus one read.
//!
//! ```no_run
//! use distcache::{Proxy, ProxyConfig};
//! use distcache::Address;
//!
//! let config = ProxyConfig::new(
//!     Address::parse("UNIX:/run/distcache/dc_client.sock")?,
//!     Address::parse("IP:cache.example.net:9001")?,
//! );
//! let proxy = Proxy::bind(config)?;
//! let stop = proxy.stop_handle(); // stop.stop() from another thread ends run()
//! proxy.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backend;
mod engine;
mod local;

pub use engine::{Proxy, StopHandle};

use crate::client::Backoff;
use crate::nal::{Address, NalError};
use crate::tls::ClientTls;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// The reconnect period unless configured otherwise (`-retry`).
pub const DEFAULT_RETRY: Duration = Duration::from_millis(5000);
/// How long the server may leave requests unanswered, making no progress
/// at all, before the proxy gives up on that connection. Shorter than the
/// client library's default timeout, so that a client of the proxy gets
/// the proxy's failure reply rather than timing out on a healthy proxy.
pub const DEFAULT_SERVER_TIMEOUT: Duration = Duration::from_millis(500);
/// Client connections served at once unless configured otherwise (the
/// original's limit).
pub const DEFAULT_MAX_CLIENTS: usize = 1024;
/// Requests waiting at the server at once unless configured otherwise (the
/// original's limit).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;

/// What a proxy is told to do.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where local clients connect.
    pub listen: Address,
    /// The `dc_server` to forward to.
    pub server: Address,
    /// TLS to the server (for a `TLS:` server address): credentials, and
    /// the name or address its certificate must carry.
    pub tls: Option<Arc<ClientTls>>,
    /// How long to wait between attempts to reach the server.
    pub retry: Duration,
    /// Close client connections idle this long (`None`: never).
    pub idle: Option<Duration>,
    /// How long the server may stall (requests outstanding, nothing read or
    /// written), or a connection attempt may take, before the connection is
    /// dropped and its requests are answered `0x02`.
    pub server_timeout: Duration,
    /// Most client connections at once; more are accepted and closed.
    pub max_clients: usize,
    /// Most requests outstanding at the server; more wait in the proxy.
    pub max_in_flight: usize,
    /// How long a server that stalled is left alone, every request
    /// answered at once, before one request probes it.
    pub down: Backoff,
}

impl ProxyConfig {
    /// A configuration with the original's defaults (retry every 5 s, no
    /// idle timeout, 1024 clients, 512 requests in flight), a stall timeout
    /// of 500 ms, and the back-off of `DISTCACHE_DOWN_MS` (1 s doubling up
    /// to 30 s by default).
    pub fn new(listen: Address, server: Address) -> ProxyConfig {
        ProxyConfig {
            listen,
            server,
            tls: None,
            retry: DEFAULT_RETRY,
            idle: None,
            server_timeout: DEFAULT_SERVER_TIMEOUT,
            max_clients: DEFAULT_MAX_CLIENTS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            down: Backoff::from_env(),
        }
    }
}

/// Why a proxy could not start or run.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The server address cannot be connected to (no host in it).
    #[error("can't connect to '{0}': the address names no host")]
    ServerAddress(Address),
    /// A limit of zero in the configuration.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// The listening socket could not be set up.
    #[error("can't listen on '{0}': {1}")]
    Listen(Address, #[source] NalError),
    /// The event loop failed (poll(2) itself returned an error).
    #[error("event loop failed: {0}")]
    Poll(#[source] io::Error),
}

/// Something worth telling an operator, reported through the callback of
/// [`Proxy::on_notice`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// The connection to the server is up.
    ServerUp(Address),
    /// An attempt to reach the server failed (reported once per outage).
    ServerUnreachable(Address, String),
    /// The server stalled: until this back-off period is over, every
    /// request is answered at once; then one request probes the server.
    ServerMarkedDown(Address, Duration),
    /// An established connection to the server was lost; `answered` requests
    /// in flight were answered `0x02`.
    ServerLost {
        /// The server.
        address: Address,
        /// What happened.
        reason: String,
        /// Requests in flight that were answered `0x02`.
        answered: usize,
    },
    /// Client connections were refused because the limit was reached
    /// (reported at most once a second, with the count since the last one).
    ClientsRefused(u64),
    /// Accepting a client connection failed (out of descriptors, say).
    AcceptFailed(String),
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::ServerUp(a) => write!(f, "connected to the cache server at '{a}'"),
            Notice::ServerMarkedDown(a, backoff) => write!(
                f,
                "the cache server at '{a}' is marked down: answering requests with failures for {} ms, then probing it with one",
                backoff.as_millis()
            ),
            Notice::ServerUnreachable(a, why) => {
                write!(
                    f,
                    "can't reach the cache server at '{a}': {why}; answering requests with failures until it is back"
                )
            }
            Notice::ServerLost {
                address,
                reason,
                answered,
            } => write!(
                f,
                "lost the cache server at '{address}': {reason}; {answered} request(s) in flight failed"
            ),
            Notice::ClientsRefused(n) => {
                write!(f, "refused {n} client connection(s): too many clients")
            }
            Notice::AcceptFailed(why) => write!(f, "can't accept a client connection: {why}"),
        }
    }
}
