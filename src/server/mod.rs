//! The cache server: what each request does to the store
//! ([`handle_request`]), and the `dc_server` engine ([`Server`]): listeners,
//! worker threads that each run an event loop, and counters; and what
//! lets an operator see inside a running server: the counters
//! ([`Metrics`], [`Report`]), the admin socket ([`Server::spawn_admin`]) and
//! the metrics page ([`Server::spawn_metrics`]).

mod admin;
mod admission;
mod conn;
mod embedded;
mod engine;
mod exposition;
mod handler;
mod http;
mod inspect;
mod metrics;
mod progress;
mod report;
mod worker;

pub use admission::{default_max_conns, Notice, RESERVED_FDS};
pub use embedded::Embedded;
pub(crate) use engine::ServerView;
pub use engine::{Server, ServerConfig, ServerError, StopHandle, MAX_THREADS};
pub use handler::{handle_request, Clock, Policy};
pub use metrics::{Metrics, Outcome};
pub use progress::Progress;
pub use report::Report;

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters a running server keeps.
#[derive(Debug, Default)]
pub struct Stats {
    connections: AtomicU64,
    metrics: Metrics,
}

impl Stats {
    /// Requests answered so far.
    pub fn operations(&self) -> u64 {
        self.metrics.answered()
    }
    /// Connections served so far (not counting those closed at once at a
    /// limit).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
    /// The detailed counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    fn count_connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }
}
