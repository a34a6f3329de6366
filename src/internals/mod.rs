//! Not part of the API: what the programs of this package need of the
//! library's insides, and nothing a Rust program using the library should
//! touch (it changes without notice). The tools in `src/bin/` take their
//! option parsing (`cli`), the daemon options (`daemon`) and the wire
//! codec (`proto`) from here; the integration tests and the benchmarks
//! speak the wire format by hand through `proto`; the fuzz targets call
//! `fuzzing`. ARCHITECTURE.md says why this module exists.

pub mod latency;

/// The tools' command-line parsing.
pub mod cli {
    pub use crate::cli::*;
}

/// The daemon options of dc_server and dc_client.
pub mod daemon {
    pub use crate::daemon::*;
}

/// The fuzz targets' entry points.
pub mod fuzzing {
    pub use crate::fuzzing::*;
}

/// The wire formats: frames, messages, the admin line protocol.
pub mod proto {
    pub use crate::proto::*;
}

/// What the tools use of the transport.
pub mod nal {
    pub use crate::nal::{
        fd_limit, parse_mode, raise_fd_limit, AcceptFailure, Listener, ACCEPT_BACKOFF,
    };
}

/// The breaker's process-wide counters and the client's defaults.
pub mod client {
    pub use crate::client::{breaker_stats, BreakerStats, DEFAULT_TIMEOUT, TIMEOUT_ENV};
}

/// The durable store's files and the reader the admin tool opens a
/// stopped server's store with.
pub mod cache {
    pub use crate::cache::durable::{Logger, OfflineStore, COMPACT_SLACK, LOCK_FILE, LOG_FILE};
    pub use crate::cache::MAX_EVICTION_BATCH;

    /// The Redis store's address scheme, defaults and password file.
    pub mod redis {
        pub use crate::cache::redis::{
            is_redis, password_from, read_ca, read_identity, Kind, RedisError, Seed,
            DEFAULT_PREFIX, DEFAULT_TIMEOUT, SCHEME, TLS_SCHEME,
        };
    }
}

/// dc_server's limits.
pub mod server {
    pub use crate::server::{default_max_conns, MAX_THREADS, RESERVED_FDS};
}

/// dc_client's defaults.
pub mod proxy {
    pub use crate::proxy::DEFAULT_SERVER_TIMEOUT;
}

/// What the tools use of TLS: the address prefix, SIGHUP.
pub mod tls {
    pub use crate::tls::{is_tls, ReloadSignal};
}
