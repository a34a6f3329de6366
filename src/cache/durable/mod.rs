//! The durable store: sessions kept in memory, as in [`MemoryStore`], and
//! on disk in an append-only log, so that they survive a restart.
//!
//! Lookups are answered from memory alone. Every change of the memory
//! store (an ADD, a REMOVE, an eviction) is handed, in order, to a bounded
//! queue (`queue.rs`) and written by one writer thread (`writer.rs`) in
//! batches; expiry needs no write, since each record carries its absolute
//! wall-clock expiry. Under [`SyncMode::Interval`] an ADD is answered at
//! once and the log is synced at most an interval after a change; under
//! [`SyncMode::Always`] an ADD, and a REMOVE that removed a session, is
//! answered only once its record is synced (so that a removed session
//! never comes back), and changes arriving while a sync runs share the
//! next one.
//!
//! The log (`record.rs` has its format) is compacted when it holds more
//! than one and a half times the live sessions (plus 256 KiB). At start-up
//! it is read back (`replay.rs`): expired sessions are dropped, and damaged
//! or torn records are skipped and counted ([`LoadReport`]); if any was
//! found inside the log, or the log is oversized, a fresh log is written
//! before serving.
//!
//! When the writer falls behind, changes wait in the queue up to
//! [`DurableOptions::queue_limit`] bytes; no request waits for it under
//! [`SyncMode::Interval`]. Beyond the limit, sessions added stay in memory
//! without being written; tombstones are queued up to twice the limit, and
//! one that cannot be makes the writer compact the log against memory, so
//! that a removed session does not come back. Under [`SyncMode::Always`]
//! an ADD waits for room (within [`ALWAYS_ACK_WAIT`]) instead.
//!
//! [`OfflineStore`] opens the directory of a stopped server to list, read
//! and remove its sessions.

mod files;
mod offline;
mod options;
mod queue;
mod record;
mod replay;
mod scan;
mod writer;

pub use files::{LOCK_FILE, LOG_FILE};
pub use offline::OfflineStore;
#[cfg(test)]
use options::DEFAULT_QUEUE_LIMIT;
pub use options::{DurableOptions, Logger, SyncMode, ALWAYS_ACK_WAIT};
pub use queue::Dropped;
pub use writer::COMPACT_SLACK;

use super::{
    AddBegun, AddError, DropCounts, Journal, ListCursor, ListError, MemoryStore, Millis,
    ProgressFn, Receipt, Store,
};
use files::{write_fresh_log, DirLock, Paths};
use queue::{wall_ms, Queue};
use record::{put_len, Record};
use replay::{replay, ReplayError, StoredSession};
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thiserror::Error;
use writer::{Counters, Shared, Writer};

/// Why a store directory could not be opened or used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DurableError {
    /// The directory could not be created or is not a directory.
    #[error("can't use store directory '{}': {}", .0.display(), .1)]
    Directory(PathBuf, #[source] io::Error),
    /// The lock file could not be opened or locked.
    #[error("can't lock '{}': {}", .0.display(), .1)]
    Lock(PathBuf, #[source] io::Error),
    /// Another process holds the directory's lock.
    #[error("store directory '{}' is in use by another process{}: one server per store", .dir.display(), .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    InUse {
        /// The directory.
        dir: PathBuf,
        /// The holder's process id, if its lock file says.
        pid: Option<u32>,
    },
    /// The log is not one this version reads.
    #[error("'{}' is not a distcache session log (or a newer format of one)", .0.display())]
    NotALog(PathBuf),
    /// The directory holds no log.
    #[error("'{}' holds no session store ({} is missing)", .0.display(), LOG_FILE)]
    NoStore(PathBuf),
    /// Reading failed.
    #[error("can't read '{}': {}", .0.display(), .1)]
    Read(PathBuf, #[source] io::Error),
    /// Writing failed.
    #[error("can't write '{}': {}", .0.display(), .1)]
    Write(PathBuf, #[source] io::Error),
    /// The writer thread could not be started.
    #[error("can't start the store's writer thread: {0}")]
    Thread(#[source] io::Error),
}

/// What opening a store found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Sessions loaded.
    pub sessions: usize,
    /// Their bytes as records.
    pub live_bytes: u64,
    /// Sessions dropped because they had expired.
    pub expired: usize,
    /// Damaged records discarded from inside the log.
    pub corrupt: usize,
    /// Their bytes.
    pub corrupt_bytes: u64,
    /// Bytes cut off the end of the log: the last write, cut short by a
    /// crash or a `kill -9` (the kernel can stop a write between pages).
    pub torn_bytes: u64,
    /// Sessions beyond the capacity, dropped (those that expire soonest).
    pub over_capacity: usize,
    /// The log's size as found.
    pub log_bytes: u64,
    /// The log's size once opened.
    pub log_bytes_now: u64,
    /// Whether a fresh log was written in place of the one found (damage
    /// inside it, sessions beyond the capacity, or more than 1.5 times the
    /// live data).
    pub rewritten: bool,
    /// Whether there was no log: a new store.
    pub created: bool,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.created {
            return write!(f, "0 sessions loaded (a new store)");
        }
        write!(
            f,
            "{} sessions loaded ({} bytes), {} expired dropped, {} corrupt records discarded",
            self.sessions, self.live_bytes, self.expired, self.corrupt
        )?;
        if self.corrupt > 0 {
            write!(f, " ({} bytes)", self.corrupt_bytes)?;
        }
        if self.torn_bytes > 0 {
            write!(f, ", a torn last write of {} bytes cut", self.torn_bytes)?;
        }
        if self.over_capacity > 0 {
            write!(f, ", {} beyond -sessions dropped", self.over_capacity)?;
        }
        write!(f, "; log {} bytes", self.log_bytes)?;
        if self.log_bytes_now != self.log_bytes {
            write!(
                f,
                " -> {} bytes{}",
                self.log_bytes_now,
                if self.rewritten { " (rewritten)" } else { "" }
            )?;
        }
        Ok(())
    }
}

/// What a durable store has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DurableStats {
    /// The log's length.
    pub log_bytes: u64,
    /// Bytes the live sessions take as records.
    pub live_bytes: u64,
    /// Bytes of changes waiting for the writer.
    pub queued_bytes: usize,
    /// Changes the queue could not take.
    pub dropped: Dropped,
    /// Compactions completed.
    pub compactions: u64,
    /// Writes and syncs that failed.
    pub write_errors: u64,
}

/// A session store that survives restarts. See the module documentation.
#[derive(Debug)]
pub struct DurableStore {
    shared: Shared,
    writer: Mutex<Option<JoinHandle<()>>>,
    dir: PathBuf,
    _lock: DirLock,
}

impl DurableStore {
    /// Opens (creating it if need be) the store in `dir`: locks it, reads
    /// the log back into memory and starts the writer.
    ///
    /// Sessions are put back with the time they have left by the wall
    /// clock, counted from a memory clock reading 0 now: the server's clock
    /// starts when it binds, right after this returns.
    pub fn open(
        dir: &Path,
        options: DurableOptions,
    ) -> Result<(DurableStore, LoadReport), DurableError> {
        let lock = DirLock::acquire(dir)?;
        let paths = Paths::new(dir);
        match fs::remove_file(&paths.new_log) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(DurableError::Write(paths.new_log.clone(), e))
            }
            _ => {}
        }
        let read_err = |e| DurableError::Read(paths.log.clone(), e);
        let file = match OpenOptions::new().read(true).append(true).open(&paths.log) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(read_err(e)),
        };
        let found = match &file {
            Some(f) => replay(f).map_err(|e| match e {
                ReplayError::NotALog => DurableError::NotALog(paths.log.clone()),
                ReplayError::Io(e) => read_err(e),
            })?,
            None => replay::Replay::default(),
        };
        let now = wall_ms();
        let mut report = LoadReport {
            corrupt: found.corrupt,
            corrupt_bytes: found.corrupt_bytes,
            torn_bytes: found.torn_bytes,
            log_bytes: found.file_len,
            ..LoadReport::default()
        };
        let mut live: Vec<(Box<[u8]>, StoredSession)> = Vec::with_capacity(found.sessions.len());
        for (id, s) in found.sessions {
            if s.expires_ms > now {
                live.push((id, s));
            } else {
                report.expired += 1;
            }
        }
        let capacity = options.capacity.max(1);
        if live.len() > capacity {
            // Keep those that expire last, as eviction would have.
            live.sort_unstable_by_key(|(_, s)| std::cmp::Reverse(s.expires_ms));
            report.over_capacity = live.len() - capacity;
            live.truncate(capacity);
        }
        report.sessions = live.len();
        report.live_bytes = live
            .iter()
            .map(|(id, s)| put_len(id.len(), s.data.len()) as u64)
            .sum();
        let oversize = writer::oversized(found.file_len, report.live_bytes);
        let rewrite =
            file.is_none() || found.damaged_inside || report.over_capacity > 0 || oversize;
        let (file, len) = match file {
            Some(f) if !rewrite => {
                if found.valid_end < found.file_len {
                    // A torn tail: cut it off so that appends follow the
                    // last good record.
                    f.set_len(found.valid_end)
                        .and_then(|()| f.sync_data())
                        .map_err(|e| DurableError::Write(paths.log.clone(), e))?;
                }
                (f, found.valid_end)
            }
            _ => {
                report.rewritten = file.is_some();
                report.created = file.is_none();
                write_fresh_log(
                    &paths,
                    live.iter().map(|(id, s)| Record::Put {
                        id,
                        data: &s.data,
                        expires_ms: s.expires_ms,
                        added_ms: s.added_ms,
                    }),
                )?
            }
        };
        report.log_bytes_now = len;
        let queue = Arc::new(Queue::new(options.queue_limit, report.live_bytes));
        let memory = Arc::new(MemoryStore::with_journal(
            capacity,
            options.max_bytes,
            queue.clone() as Arc<dyn Journal>,
        ));
        for (id, s) in live {
            memory.restore(0, s.expires_ms - now, &id, &s.data);
        }
        let counters = Arc::new(Counters::default());
        let shared = Shared {
            memory,
            queue,
            sync: options.sync,
            counters,
        };
        let writer = Writer::new(paths, file, len, shared.clone(), options.log);
        let handle = std::thread::Builder::new()
            .name("dc-store-writer".into())
            .spawn(move || writer.run())
            .map_err(DurableError::Thread)?;
        Ok((
            DurableStore {
                shared,
                writer: Mutex::new(Some(handle)),
                dir: dir.into(),
                _lock: lock,
            },
            report,
        ))
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// When the log is synced.
    pub fn sync_mode(&self) -> SyncMode {
        self.shared.sync
    }

    /// The sessions in memory.
    pub fn memory(&self) -> &MemoryStore {
        &self.shared.memory
    }

    /// What the store has done so far.
    pub fn stats(&self) -> DurableStats {
        DurableStats {
            log_bytes: self.shared.counters.log_bytes.load(Ordering::Relaxed),
            live_bytes: self.shared.queue.live_bytes(),
            queued_bytes: self.shared.queue.queued_bytes(),
            dropped: self.shared.queue.dropped(),
            compactions: self.shared.counters.compactions.load(Ordering::Relaxed),
            write_errors: self.shared.counters.write_errors.load(Ordering::Relaxed),
        }
    }

    /// Writes and syncs every change made so far, and stops the writer;
    /// the store then takes no more changes (lookups still work). Waits
    /// at most `limit`; false if the writer had not finished by then.
    pub fn close(&self, limit: Duration) -> bool {
        self.shared.queue.close();
        let Some(handle) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return true;
        };
        let deadline = Instant::now() + limit;
        while !handle.is_finished() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        handle.join().is_ok()
    }
}

impl Drop for DurableStore {
    fn drop(&mut self) {
        self.close(Duration::from_secs(30));
    }
}

impl DurableStore {
    /// What a REMOVE or TAKE that removed a session answers, from the
    /// memory store's `removal` (its journal's receipt for the tombstone,
    /// decided under the queue's lock): under [`SyncMode::Always`] it
    /// waits for that very tombstone. A tombstone the queue could not take
    /// leaves the session in the log until the writer has compacted it,
    /// which nothing here waits for: such a removal is not said done.
    fn removal_answer(&self, removal: Option<Option<u64>>) -> (bool, Option<Receipt>) {
        between_change_and_receipt();
        match removal {
            None => (false, None),
            Some(_) if self.shared.sync != SyncMode::Always => (true, None),
            Some(seq) => (
                true,
                Some(Receipt {
                    seq: seq.unwrap_or(u64::MAX),
                    deadline: Instant::now() + ALWAYS_ACK_WAIT,
                }),
            ),
        }
    }
}

impl Store for DurableStore {
    fn add_begin(&self, now: Millis, timeout_msecs: u32, id: &[u8], data: &[u8]) -> AddBegun {
        if self.shared.sync != SyncMode::Always {
            return AddBegun::Done(self.shared.memory.add(now, timeout_msecs, id, data));
        }
        let deadline = Instant::now() + ALWAYS_ACK_WAIT;
        // Only a writer far behind leaves no room; waiting for it here is
        // the back-pressure that keeps the queue bounded.
        if !self.shared.queue.wait_for_room(deadline) {
            return AddBegun::Done(Err(AddError::Refused));
        }
        match self
            .shared
            .memory
            .add_with_receipt(now, timeout_msecs, id, data)
        {
            Err(e) => AddBegun::Done(Err(e)),
            Ok(Some(seq)) => AddBegun::Waiting(Receipt { seq, deadline }),
            // Not queued for the disk: in memory, but not said stored.
            Ok(None) => AddBegun::Done(Err(AddError::Refused)),
        }
    }

    fn remove_begin(&self, now: Millis, id: &[u8]) -> (bool, Option<Receipt>) {
        self.removal_answer(self.shared.memory.remove_with_receipt(now, id))
    }

    fn take_begin(&self, now: Millis, id: &[u8], out: &mut Vec<u8>) -> (bool, Option<Receipt>) {
        // The memory store takes it under its lock and queues the tombstone
        // in the same step, as a REMOVE does.
        self.removal_answer(self.shared.memory.take_with_receipt(now, id, out))
    }

    fn synced(&self, receipt: &Receipt) -> Option<bool> {
        match self.shared.queue.synced(receipt.seq) {
            Some(synced) => Some(synced),
            None if Instant::now() >= receipt.deadline => Some(false),
            None => None,
        }
    }

    fn on_progress(&self, f: ProgressFn) {
        self.shared.queue.on_progress(f);
    }

    fn add(&self, now: Millis, timeout_msecs: u32, id: &[u8], data: &[u8]) -> Result<(), AddError> {
        if self.shared.sync != SyncMode::Always {
            return self.shared.memory.add(now, timeout_msecs, id, data);
        }
        let deadline = Instant::now() + ALWAYS_ACK_WAIT;
        if !self.shared.queue.wait_for_room(deadline) {
            return Err(AddError::Refused);
        }
        match self
            .shared
            .memory
            .add_with_receipt(now, timeout_msecs, id, data)?
        {
            Some(receipt) if self.shared.queue.wait_synced(receipt, deadline) => Ok(()),
            // Not on disk: the session stays in memory, but the client is
            // not told it is stored.
            _ => Err(AddError::Refused),
        }
    }

    fn get_into(&self, now: Millis, id: &[u8], out: &mut Vec<u8>) -> bool {
        self.shared.memory.get_into(now, id, out)
    }

    fn remove(&self, now: Millis, id: &[u8]) -> bool {
        let (removed, receipt) = self.remove_begin(now, id);
        match receipt {
            Some(r) => self.shared.queue.wait_synced(r.seq, r.deadline),
            None => removed,
        }
    }

    fn take_into(&self, now: Millis, id: &[u8], out: &mut Vec<u8>) -> bool {
        let start = out.len();
        match self.take_begin(now, id, out) {
            (true, Some(r)) if !self.shared.queue.wait_synced(r.seq, r.deadline) => {
                // Gone from memory, but not known gone from the disk: not
                // handed out.
                out.truncate(start);
                false
            }
            (taken, _) => taken,
        }
    }

    fn have(&self, now: Millis, id: &[u8]) -> bool {
        self.shared.memory.have(now, id)
    }

    fn len(&self, now: Millis) -> usize {
        self.shared.memory.len(now)
    }

    fn data_bytes(&self, now: Millis) -> Option<u64> {
        self.shared.memory.data_bytes(now)
    }

    fn drop_counts(&self) -> DropCounts {
        self.shared.memory.drop_counts()
    }

    fn list(
        &self,
        now: Millis,
        from: Option<ListCursor>,
        max: usize,
        out: &mut Vec<super::SessionInfo>,
    ) -> Result<Option<ListCursor>, ListError> {
        self.shared.memory.list(now, from, max, out)
    }
}

/// Where a REMOVE or TAKE has changed memory and not yet asked for its
/// receipt, and so where the writer may start a compaction meanwhile: a
/// test runs the writer's side of that interleaving here.
#[cfg(not(test))]
fn between_change_and_receipt() {}
#[cfg(test)]
use tests::between_change_and_receipt;

#[cfg(test)]
mod tests;
