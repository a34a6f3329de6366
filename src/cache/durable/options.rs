//! How a durable store is set up: when it syncs, how much may wait for
//! the writer, where its warnings go.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// When the log is synced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// At most this long after a change: a crash of the machine loses at
    /// most the changes of the last interval. ADDs are answered at once.
    Interval(Duration),
    /// Before an ADD is answered (many ADDs share one sync).
    Always,
}

/// The default sync interval.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(1000);
/// The longest sync interval accepted by [`SyncMode::parse`] (ms).
pub const MAX_SYNC_INTERVAL_MS: u64 = 3_600_000;

impl Default for SyncMode {
    fn default() -> Self {
        SyncMode::Interval(DEFAULT_SYNC_INTERVAL)
    }
}

impl SyncMode {
    /// Parses `always` or `interval:MSECS` (1 to 3600000).
    pub fn parse(s: &str) -> Result<SyncMode, String> {
        if s == "always" {
            return Ok(SyncMode::Always);
        }
        let Some(ms) = s.strip_prefix("interval:") else {
            return Err("expected 'always' or 'interval:MSECS'".into());
        };
        match ms.parse::<u64>() {
            Ok(n) if (1..=MAX_SYNC_INTERVAL_MS).contains(&n) => {
                Ok(SyncMode::Interval(Duration::from_millis(n)))
            }
            _ => Err(format!(
                "the interval must be 1 to {MAX_SYNC_INTERVAL_MS} milliseconds"
            )),
        }
    }
}

impl fmt::Display for SyncMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncMode::Always => write!(f, "always"),
            SyncMode::Interval(d) => write!(f, "interval:{}", d.as_millis()),
        }
    }
}

/// Where the writer's warnings go (a write that failed, changes dropped).
#[derive(Clone)]
pub struct Logger(Arc<dyn Fn(&str) + Send + Sync>);

impl Logger {
    /// Warnings go to `f`.
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> Logger {
        Logger(Arc::new(f))
    }

    pub(crate) fn warn(&self, line: &str) {
        (self.0)(line)
    }
}

impl Default for Logger {
    /// Warnings go to standard error.
    fn default() -> Self {
        Logger::new(|line| eprintln!("{line}"))
    }
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Logger")
    }
}

/// How a durable store is set up.
#[derive(Debug, Clone)]
pub struct DurableOptions {
    /// Most sessions held (as [`MemoryStore::new`](crate::cache::MemoryStore::new)).
    pub capacity: usize,
    /// Most bytes of ids and data held (as
    /// [`MemoryStore::with_max_bytes`](crate::cache::MemoryStore::with_max_bytes)).
    pub max_bytes: Option<u64>,
    /// When the log is synced.
    pub sync: SyncMode,
    /// Most bytes of changes waiting for the writer (the module
    /// documentation says what happens beyond).
    pub queue_limit: usize,
    /// Where the writer's warnings go.
    pub log: Logger,
}

/// The default queue limit: 64 MiB.
pub const DEFAULT_QUEUE_LIMIT: usize = 64 << 20;
/// How long an ADD under [`SyncMode::Always`] waits for its sync before it
/// is refused: below the clients' default timeout of 1 s, so that the
/// client hears the refusal rather than its own timeout.
pub const ALWAYS_ACK_WAIT: Duration = Duration::from_millis(900);

impl DurableOptions {
    /// Options for a store of `capacity` sessions, synced every second.
    pub fn new(capacity: usize) -> DurableOptions {
        DurableOptions {
            capacity,
            max_bytes: None,
            sync: SyncMode::default(),
            queue_limit: DEFAULT_QUEUE_LIMIT,
            log: Logger::default(),
        }
    }
}
