//! distcache: a shared TLS session cache.
//!
//! A drop-in replacement for the C distcache libraries and tools. TLS
//! servers of a farm store sessions in one `dc_server` and any of them can
//! resume a session another one negotiated. This crate is both the Rust API
//! and, built as a shared library, the C ABI of `libdistcache`, `libnal` and
//! `libdistcacheserver`.
//!
//! The Rust API is what this page lists:
//! - the client a TLS server uses: [`Client`], its [`Flags`], its errors
//!   ([`ClientError`]) and its back-off for a server that went silent
//!   ([`Backoff`]);
//! - the session cache server: [`Server`], configured by [`ServerConfig`]
//!   and its setters, stopped through a [`StopHandle`];
//! - the stores a server keeps sessions in: the [`Store`] trait,
//!   [`MemoryStore`], and [`DurableStore`], which also keeps them on disk;
//! - the proxy that `dc_client` runs: [`Proxy`] and [`ProxyConfig`];
//! - [`Address`], the address strings all of them take (`UNIX:/path`,
//!   `IP:host:port`, `IPv6:[addr]:port`).
//!
//! The module `internals` is hidden and not part of the API: it holds what
//! the tools, tests and fuzz targets of this package need of the insides.
//!
//! # Example
//!
//! A server and a client in one program (each would normally be a process
//! of its own: `dc_server`, and a TLS server using [`Client`]):
//!
//! ```
//! use distcache::{Address, Client, Flags, Server, ServerConfig};
//! use std::time::Duration;
//!
//! let dir = tempfile::tempdir()?;
//! let address = format!("UNIX:{}", dir.path().join("cache.sock").display());
//! let config = ServerConfig { listen: vec![Address::parse(&address)?], sessions: 1000 };
//! let server = Server::bind(&config)?;
//! let stop = server.stop_handle();
//! let running = std::thread::spawn(move || server.run());
//!
//! let client = Client::new(&address, Flags::PERSISTENT)?;
//! client.set_timeout(Duration::from_secs(2));
//! client.add(b"session-1", b"serialized TLS session", 300_000)?;
//! assert!(client.have(b"session-1")?);
//! assert_eq!(client.get(b"session-1")?.as_deref(), Some(&b"serialized TLS session"[..]));
//! assert!(client.remove(b"session-1")?);
//! assert_eq!(client.get(b"session-1")?, None);
//!
//! stop.stop();
//! running.join().expect("server thread")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

// The layers (ARCHITECTURE.md); a Rust program uses the re-exports below.
mod cache;
mod cli;
mod client;
mod daemon;
mod ffi;
mod fuzzing;
mod nal;
mod plug;
mod proto;
mod proxy;
mod server;
mod sys;
mod tls;

#[doc(hidden)]
pub mod internals;

/// # Example
///
/// ```
/// # use distcache::{Address, Server, ServerConfig};
/// # let dir = tempfile::tempdir()?;
/// # let address = format!("UNIX:{}", dir.path().join("cache.sock").display());
/// # let config = ServerConfig { listen: vec![Address::parse(&address)?], sessions: 100 };
/// # let server = Server::bind(&config)?;
/// # let stop = server.stop_handle();
/// # let running = std::thread::spawn(move || server.run());
/// use distcache::{Client, Flags};
/// use std::time::Duration;
///
/// // `address` is where a dc_server listens, e.g. "UNIX:/run/dc_server.sock".
/// let client = Client::new(&address, Flags::PERSISTENT | Flags::PERSISTENT_RETRY)?;
/// client.set_timeout(Duration::from_millis(500));
/// client.add(b"session-id", b"serialized session", 300_000)?;
/// assert_eq!(client.get(b"session-id")?.as_deref(), Some(&b"serialized session"[..]));
/// assert!(client.remove(b"session-id")?);
/// # stop.stop();
/// # running.join().expect("server thread")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub use client::Client;

/// # Example
///
/// ```
/// use distcache::Flags;
///
/// let flags = Flags::PERSISTENT | Flags::PERSISTENT_PIDCHECK;
/// assert!(flags.contains(Flags::PERSISTENT));
/// assert!(!flags.contains(Flags::PERSISTENT_LATE));
/// // The values of the C API's DC_CTX_FLAG_* macros.
/// assert_eq!(flags.bits(), 0x3);
/// assert_eq!(Flags::from_bits(0x3), flags);
/// ```
pub use client::Flags;

/// # Example
///
/// ```
/// use distcache::{Client, ClientError, Flags};
///
/// let client = Client::new("UNIX:/nonexistent/dc_server.sock", Flags::empty())?;
/// // An empty id is refused before anything is sent.
/// assert!(matches!(client.have(b""), Err(ClientError::InvalidArgument(_))));
/// // Nobody listens there.
/// assert!(client.have(b"session-id").is_err());
/// // A bad address fails at once.
/// assert!(Client::new("nonsense", Flags::empty()).is_err());
/// # Ok::<(), ClientError>(())
/// ```
pub use client::ClientError;

pub use client::{Backoff, Health};

/// # Example
///
/// A server on a UNIX socket, run on a thread of its own and stopped from
/// another:
///
/// ```
/// use distcache::{Address, Client, Flags, Server, ServerConfig};
/// use std::time::Duration;
///
/// let dir = tempfile::tempdir()?;
/// let address = format!("UNIX:{}", dir.path().join("cache.sock").display());
/// let config = ServerConfig { listen: vec![Address::parse(&address)?], sessions: 1000 };
/// let server = Server::bind(&config)?;
/// server.set_threads(2);
/// server.set_idle_timeout(Some(Duration::from_secs(60)));
/// let stop = server.stop_handle();
/// let running = std::thread::spawn(move || server.run());
///
/// let client = Client::new(&address, Flags::PERSISTENT)?;
/// client.add(b"id", b"data", 60_000)?;
/// assert!(client.have(b"id")?);
///
/// stop.stop();
/// running.join().expect("server thread")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub use server::Server;

/// # Example
///
/// ```
/// use distcache::{Address, Server, ServerConfig, ServerError};
///
/// let config = ServerConfig { listen: vec![Address::parse("IP:127.0.0.1:0")?], sessions: 512 };
/// assert_eq!(config.sessions, 512);
/// // A server needs somewhere to listen.
/// let none = ServerConfig { listen: Vec::new(), sessions: 512 };
/// assert!(matches!(Server::bind(&none), Err(ServerError::NoListener)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub use server::ServerConfig;

pub use server::{Notice as ServerNotice, ServerError, Stats, StopHandle};

/// # Example
///
/// A store is driven with the time in milliseconds on the caller's own
/// monotonic clock ([`Millis`]):
///
/// ```
/// use distcache::{MemoryStore, Store};
///
/// let store: Box<dyn Store> = Box::new(MemoryStore::new(100));
/// store.add(0, 1_000, b"id", b"data")?; // at 0 ms, for 1 s
/// let mut out = Vec::new();
/// assert!(store.get_into(500, b"id", &mut out));
/// assert_eq!(out, b"data");
/// assert!(!store.have(1_000, b"id")); // expired
/// assert_eq!(store.len(1_000), 0);
/// # Ok::<(), distcache::AddError>(())
/// ```
pub use cache::{Lane, Store};

/// # Example
///
/// A full store makes room by evicting the sessions that expire soonest:
///
/// ```
/// use distcache::{AddError, MemoryStore, Store};
///
/// let store = MemoryStore::new(2);
/// store.add(0, 10_000, b"a", b"soonest")?;
/// store.add(0, 20_000, b"b", b"later")?;
/// assert_eq!(store.add(0, 30_000, b"b", b"again"), Err(AddError::Exists));
/// store.add(0, 30_000, b"c", b"latest")?;
/// assert!(!store.have(1, b"a"));
/// assert!(store.have(1, b"b") && store.have(1, b"c"));
/// # Ok::<(), AddError>(())
/// ```
pub use cache::MemoryStore;

/// # Example
///
/// Sessions outlive the store that wrote them:
///
/// ```
/// use distcache::{DurableOptions, DurableStore, Store};
///
/// let dir = tempfile::tempdir()?;
/// let (store, _) = DurableStore::open(dir.path(), DurableOptions::new(1000))?;
/// store.add(0, 600_000, b"id", b"data")?;
/// drop(store); // writes what is queued, and unlocks the directory
///
/// let (store, found) = DurableStore::open(dir.path(), DurableOptions::new(1000))?;
/// assert_eq!(found.sessions, 1);
/// assert!(store.have(0, b"id"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub use cache::DurableStore;

pub use cache::durable::{DurableError, LoadReport};
pub use cache::{AddBegun, AddError, DropCounts, DurableOptions, ListCursor, ListError};
pub use cache::{Answer, Op, Started};
pub use cache::{Millis, ProgressFn, Receipt, SessionInfo, SyncMode};

/// A store that keeps the sessions in a Redis server or a Redis Cluster,
/// so that any number of `dc_server` gateways share them.
///
/// # Example
///
/// ```no_run
/// use distcache::{RedisOptions, RedisStore, Server, Store};
/// use std::sync::Arc;
///
/// let mut options = RedisOptions::parse("redis://127.0.0.1:7000,127.0.0.1:7001")?;
/// options.prefix = b"farm-a:".to_vec();
/// let store: Arc<dyn Store> = Arc::new(RedisStore::connect(options)?);
/// let listen = [distcache::Address::parse("UNIX:/run/dc_gateway.sock")?];
/// let server = Server::bind_with_store(&listen, store)?;
/// server.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub use cache::redis::RedisStore;

pub use cache::redis::{RedisError, RedisOptions, StoreTls, TlsIdentity};

/// # Example
///
/// ```
/// use distcache::Address;
///
/// let unix = Address::parse("UNIX:/run/dc_server.sock")?;
/// assert_eq!(unix.to_string(), "UNIX:/run/dc_server.sock");
/// let tcp: Address = "IP:127.0.0.1:9001".parse()?;
/// assert!(tcp.can_connect());
/// // A port alone is for listening on every address.
/// assert!(Address::parse("IP:9001")?.can_listen());
/// assert!(Address::parse("FTP:example.net").is_err());
/// # Ok::<(), distcache::NalError>(())
/// ```
pub use nal::Address;

pub use nal::NalError;

/// # Example
///
/// A proxy on a UNIX socket in front of a server (each would normally be a
/// process of its own: `dc_client` and `dc_server`):
///
/// ```
/// use distcache::{Address, Client, Flags, Proxy, ProxyConfig, Server, ServerConfig};
///
/// let dir = tempfile::tempdir()?;
/// let at = |name: &str| Address::parse(&format!("UNIX:{}", dir.path().join(name).display()));
/// let server = Server::bind(&ServerConfig { listen: vec![at("server.sock")?], sessions: 100 })?;
/// let stop_server = server.stop_handle();
/// let server = std::thread::spawn(move || server.run());
///
/// let proxy = Proxy::bind(ProxyConfig::new(at("proxy.sock")?, at("server.sock")?))?;
/// let stop_proxy = proxy.stop_handle();
/// let proxy = std::thread::spawn(move || proxy.run());
///
/// let client = Client::new(&at("proxy.sock")?.to_string(), Flags::empty())?;
/// client.add(b"id", b"through the proxy", 60_000)?;
/// assert_eq!(client.get(b"id")?.as_deref(), Some(&b"through the proxy"[..]));
///
/// stop_proxy.stop();
/// proxy.join().expect("proxy thread")?;
/// stop_server.stop();
/// server.join().expect("server thread")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub use proxy::Proxy;

pub use proxy::{Notice as ProxyNotice, ProxyConfig, ProxyError, StopHandle as ProxyStopHandle};

/// TLS on the TCP links: a server's credentials for its `TLS:` listeners
/// ([`Server::set_tls`]), reloaded with [`ServerTls::reload`]; a client's
/// for a `TLS:` address ([`Client::new`] reads them from the environment,
/// [`ProxyConfig::tls`] takes them).
///
/// # Example
///
/// ```
/// use distcache::{ClientTls, Credentials, TlsAddress};
///
/// let to = TlsAddress::parse("TLS:localhost:9001")?;
/// assert_eq!(to.host.as_deref(), Some("localhost"));
/// // The CA is required; missing files are reported, never a panic.
/// let creds = Credentials { ca: Some("/nonexistent/ca.pem".into()), ..Credentials::default() };
/// assert!(ClientTls::new(&to, &creds).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub use tls::TlsAddress;

pub use tls::{ClientTls, Credentials, HandshakeCounts, ServerOptions, ServerTls, TlsError};
