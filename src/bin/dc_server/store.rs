//! The store dc_server serves from: in memory, on disk (`-store <dir>`)
//! or in Redis (`-store redis://...`).

use crate::options::Config;
use distcache::internals::cache::redis;
use distcache::internals::cache::Logger;
use distcache::internals::daemon::{self, log, Level};
use distcache::{DurableOptions, DurableStore, MemoryStore, RedisOptions, RedisStore, Store};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long a clean stop waits for the store's last writes.
pub(crate) const STORE_CLOSE_LIMIT: Duration = Duration::from_secs(30);

/// Opens the store in `dir` (taking its lock first) and logs what it held.
pub(crate) fn open_store(
    dir: &Path,
    config: &Config,
    user: Option<&str>,
) -> Result<Arc<DurableStore>, String> {
    let options = DurableOptions {
        sync: config.sync,
        log: Logger::new(|line| log(Level::Warning, &format!("store: {line}"))),
        max_bytes: config.max_bytes,
        ..DurableOptions::new(config.server.sessions)
    };
    let (store, report) = DurableStore::open(dir, options).map_err(|e| e.to_string())?;
    log(
        Level::Notice,
        &format!("store '{}' (sync {}): {report}", dir.display(), config.sync),
    );
    if let Some(user) = user {
        // The server writes its store after becoming the user.
        give_store_to(dir, user).map_err(|e| format!("-user: {e}"))?;
    }
    Ok(Arc::new(store))
}

/// Makes the store's directory and files belong to `user` (and its group).
fn give_store_to(dir: &Path, user: &str) -> Result<(), String> {
    use distcache::internals::cache::{LOCK_FILE, LOG_FILE};
    let u = daemon::lookup_user(user).map_err(|e| e.to_string())?;
    for path in [dir.to_path_buf(), dir.join(LOCK_FILE), dir.join(LOG_FILE)] {
        std::os::unix::fs::chown(&path, Some(u.uid), Some(u.gid))
            .map_err(|e| format!("can't give '{}' to '{user}': {e}", path.display()))?;
    }
    Ok(())
}

/// Connects to Redis (after -daemon's fork: the client's threads are the
/// child's) and says what it found.
fn connect_redis(options: &RedisOptions) -> Result<RedisStore, String> {
    let seeds: Vec<String> = options.seeds.iter().map(|s| s.to_string()).collect();
    let store = RedisStore::connect(options.clone()).map_err(|e| format!("-store: {e}"))?;
    log(
        Level::Notice,
        &format!(
            "store: Redis {} at {}{} (prefix '{}', timeout {} ms, remove-sync {})",
            match store.kind() {
                redis::Kind::Single => "server",
                redis::Kind::Cluster => "cluster",
            },
            seeds.join(","),
            if options.tls.is_some() {
                " over TLS"
            } else {
                ""
            },
            String::from_utf8_lossy(&options.prefix),
            options.timeout.as_millis(),
            if options.remove_sync { "on" } else { "off" },
        ),
    );
    Ok(store)
}

/// The store to serve from: the durable store already opened, Redis, or
/// memory.
pub(crate) fn serving_store(
    config: &Config,
    durable: Option<&Arc<DurableStore>>,
) -> Result<Arc<dyn Store>, String> {
    Ok(match (durable, &config.redis) {
        (Some(d), _) => d.clone(),
        (None, Some(options)) => Arc::new(connect_redis(options)?),
        (None, None) => Arc::new(MemoryStore::with_max_bytes(
            config.server.sessions,
            config.max_bytes,
        )),
    })
}
