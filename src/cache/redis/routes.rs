//! The slot map the workers' lanes route by, shared by them: replaced
//! when the cluster is asked for it again, corrected by `MOVED`, and
//! versioned so that a lane sees a change with one atomic read.

use super::slots::SlotMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the workers' lanes send each slot's requests: the slot map, and
/// a version that changes whenever the map does.
#[derive(Debug)]
pub(super) struct Routes {
    map: Mutex<Arc<SlotMap>>,
    version: AtomicU64,
    /// A refresh of the map from the cluster is under way.
    pub(super) refreshing: AtomicBool,
    /// When the last refresh began.
    refreshed: Mutex<Option<Instant>>,
}

/// A cluster's slot map is asked for again at most this often.
const REFRESH_EVERY: Duration = Duration::from_millis(250);

impl Routes {
    pub(super) fn new(map: SlotMap) -> Routes {
        Routes {
            map: Mutex::new(Arc::new(map)),
            version: AtomicU64::new(1),
            refreshing: AtomicBool::new(false),
            refreshed: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Arc<SlotMap>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The map and its version.
    pub(super) fn current(&self) -> (Arc<SlotMap>, u64) {
        let map = self.lock();
        (map.clone(), self.version.load(Ordering::Acquire))
    }

    /// The map, if it changed since version `seen`.
    pub(super) fn since(&self, seen: u64) -> Option<(Arc<SlotMap>, u64)> {
        (self.version.load(Ordering::Acquire) != seen).then(|| self.current())
    }

    /// Records that `to` is the master of `slot` now.
    pub(super) fn moved(&self, slot: u16, to: SocketAddr) {
        let mut map = self.lock();
        if map.node(slot) != Some(to) {
            Arc::make_mut(&mut map).set(slot, to);
            self.version.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Puts `new` in place of the map, if it differs.
    pub(super) fn replace(&self, new: SlotMap) {
        let mut map = self.lock();
        if **map != new {
            *map = Arc::new(new);
            self.version.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Whether a refresh may begin now; if so, it is under way.
    pub(super) fn begin_refresh(&self) -> bool {
        let mut last = self.refreshed.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < REFRESH_EVERY)
            || self.refreshing.swap(true, Ordering::AcqRel)
        {
            return false;
        }
        *last = Some(now);
        true
    }
}
