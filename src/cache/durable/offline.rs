//! A stopped server's store, opened to look at: list its sessions, read
//! one, remove one. Opening takes the directory's lock, so no server can
//! start on it meanwhile (and it cannot be opened while a server runs),
//! and reads the log without changing it; only [`OfflineStore::remove`]
//! writes.

use super::files::{DirLock, Paths};
use super::queue::wall_ms;
use super::record::Record;
use super::replay::{replay, Replay, ReplayError, StoredSession};
use super::DurableError;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One session of a store, without its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Its id.
    pub id: Vec<u8>,
    /// Bytes of data.
    pub data_len: usize,
    /// When it expires (or expired).
    pub expires: SystemTime,
    /// When it was added.
    pub added: SystemTime,
}

impl SessionInfo {
    /// How long ago it was added, at `now` (zero if in the future).
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.added).unwrap_or_default()
    }

    /// Whether it has expired at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires <= now
    }
}

fn to_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// A store directory opened while no server uses it.
#[derive(Debug)]
pub struct OfflineStore {
    paths: Paths,
    found: Replay,
    _lock: DirLock,
}

impl OfflineStore {
    /// Opens the store in `dir`, which must exist and hold a log. Fails if
    /// a server (or another tool) has it open.
    pub fn open(dir: &Path) -> Result<OfflineStore, DurableError> {
        let paths = Paths::new(dir);
        if !dir.is_dir() {
            return Err(DurableError::NoStore(dir.into()));
        }
        if !paths.log.exists() {
            return Err(DurableError::NoStore(dir.into()));
        }
        let lock = DirLock::acquire(dir)?;
        let file = OpenOptions::new()
            .read(true)
            .open(&paths.log)
            .map_err(|e| DurableError::Read(paths.log.clone(), e))?;
        let found = replay(&file).map_err(|e| match e {
            ReplayError::NotALog => DurableError::NotALog(paths.log.clone()),
            ReplayError::Io(e) => DurableError::Read(paths.log.clone(), e),
        })?;
        Ok(OfflineStore {
            paths,
            found,
            _lock: lock,
        })
    }

    /// Every session of the log, expired ones included (a server drops
    /// those when it starts), in no particular order.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.found
            .sessions
            .iter()
            .map(|(id, s)| SessionInfo {
                id: id.to_vec(),
                data_len: s.data.len(),
                expires: to_time(s.expires_ms),
                added: to_time(s.added_ms),
            })
            .collect()
    }

    /// The session stored under `id`, expired or not.
    pub fn get(&self, id: &[u8]) -> Option<(SessionInfo, &[u8])> {
        self.found.sessions.get(id).map(|s: &StoredSession| {
            (
                SessionInfo {
                    id: id.to_vec(),
                    data_len: s.data.len(),
                    expires: to_time(s.expires_ms),
                    added: to_time(s.added_ms),
                },
                &s.data[..],
            )
        })
    }

    /// Damaged records inside the log, and their bytes.
    pub fn corrupt(&self) -> (usize, u64) {
        (self.found.corrupt, self.found.corrupt_bytes)
    }

    /// Bytes at the end of the log that hold no good record (a write cut
    /// short).
    pub fn torn_bytes(&self) -> u64 {
        self.found.torn_bytes
    }

    /// The log's size.
    pub fn log_bytes(&self) -> u64 {
        self.found.file_len
    }

    /// Removes the session stored under `id`: appends a tombstone to the
    /// log (after cutting off a torn tail, if any) and syncs it. False if
    /// there was no such session.
    pub fn remove(&mut self, id: &[u8]) -> Result<bool, DurableError> {
        if !self.found.sessions.contains_key(id) {
            return Ok(false);
        }
        let write_err = |e| DurableError::Write(self.paths.log.clone(), e);
        let mut file = OpenOptions::new()
            .append(true)
            .open(&self.paths.log)
            .map_err(write_err)?;
        if self.found.valid_end < self.found.file_len {
            file.set_len(self.found.valid_end).map_err(write_err)?;
            self.found.file_len = self.found.valid_end;
        }
        let mut rec = Vec::new();
        Record::Remove {
            id,
            at_ms: wall_ms(),
        }
        .encode(&mut rec);
        file.write_all(&rec)
            .and_then(|()| file.sync_data())
            .map_err(write_err)?;
        self.found.sessions.remove(id);
        self.found.file_len += rec.len() as u64;
        self.found.valid_end = self.found.file_len;
        Ok(true)
    }
}
