//! The cache server: what each request does to the store
//! ([`handle_request`]), and the `dc_server` engine ([`Server`]): listeners,
//! a pool of worker threads with blocking sockets, and counters.

mod admission;
mod conn;
mod embedded;
mod engine;
mod handler;
mod progress;

pub use admission::{Notice, DEFAULT_MAX_CONNS};
pub use embedded::Embedded;
pub use engine::{Server, ServerConfig, ServerError, StopHandle};
pub use handler::{handle_request, handle_request_with, reply_payload, Clock, Policy};
pub use progress::Progress;

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters a running server keeps.
#[derive(Debug, Default)]
pub struct Stats {
    operations: AtomicU64,
    connections: AtomicU64,
}

impl Stats {
    /// Requests answered so far.
    pub fn operations(&self) -> u64 {
        self.operations.load(Ordering::Relaxed)
    }
    /// Connections served so far (not counting those closed at once at a
    /// limit).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
    fn count_operation(&self) {
        self.operations.fetch_add(1, Ordering::Relaxed);
    }
    fn count_connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }
}
