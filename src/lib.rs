//! distcache: a shared TLS session cache.
//!
//! A drop-in replacement for the C distcache libraries and tools. TLS
//! servers of a farm store sessions in one `dc_server` and any of them can
//! resume a session another one negotiated. This crate is both the Rust API
//! ([`Client`], [`server::Server`], [`cache::MemoryStore`]) and, built as a
//! shared library, the C ABI of `libdistcache`, `libnal` and
//! `libdistcacheserver`.
//!
//! # Example
//!
//! A server and a client in one program (each would normally be a process
//! of its own: `dc_server`, and a TLS server using [`Client`]):
//!
//! ```
//! use distcache::server::{Server, ServerConfig};
//! use distcache::{Address, Client, Flags};
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

#[doc(hidden)]
pub mod admin;
pub mod cache;
#[doc(hidden)]
pub mod cli;
pub mod client;
#[doc(hidden)]
pub mod daemon;
#[doc(hidden)]
pub mod dctest;
#[doc(hidden)]
pub mod fuzzing;
pub mod nal;
pub mod plug;
pub mod proto;
pub mod proxy;
pub mod server;
#[doc(hidden)]
pub mod snoop;
mod sys;
pub mod tls;

mod ffi;

pub use cache::{MemoryStore, Store};
pub use client::{Client, ClientError, Flags};
pub use nal::Address;
