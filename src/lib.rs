//! distcache: a shared TLS session cache.
//!
//! A drop-in replacement for the C distcache libraries and tools. TLS
//! servers of a farm store sessions in one `dc_server` and any of them can
//! resume a session another one negotiated. This crate is both the Rust API
//! ([`Client`], [`server::Server`], [`cache::MemoryStore`]) and, built as a
//! shared library, the C ABI of `libdistcache`, `libnal` and
//! `libdistcacheserver`.
#![warn(missing_docs)]

pub mod cache;
#[doc(hidden)]
pub mod cli;
pub mod client;
pub mod nal;
pub mod proto;
pub mod server;

mod ffi;

pub use cache::{MemoryStore, Store};
pub use client::{Client, ClientError, Flags};
pub use nal::Address;
