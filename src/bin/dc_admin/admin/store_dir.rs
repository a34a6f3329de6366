//! The admin commands over a stopped server's store directory: the
//! sessions its log holds, read without a server.

use super::protocol::SessionEntry;
use super::{AdminError, AdminSource};
use distcache::internals::cache::OfflineStore;
use std::io;
use std::path::Path;
use std::time::SystemTime;

/// A stopped server's store directory, opened (and locked, so that no
/// server starts on it meanwhile) for the admin commands. Expired sessions
/// are left out, as a server starting on the directory would drop them.
#[derive(Debug)]
pub struct StoreDirSource {
    store: OfflineStore,
}

impl StoreDirSource {
    /// Opens the store in `dir`; fails while a server runs on it.
    pub fn open(dir: &Path) -> Result<StoreDirSource, AdminError> {
        let store = OfflineStore::open(dir).map_err(|e| AdminError::Store(e.to_string()))?;
        Ok(StoreDirSource { store })
    }
}

impl AdminSource for StoreDirSource {
    fn list(
        &mut self,
        each: &mut dyn FnMut(SessionEntry) -> io::Result<()>,
    ) -> Result<(), AdminError> {
        let now = SystemTime::now();
        let mut sessions: Vec<_> = self
            .store
            .sessions()
            .into_iter()
            .filter(|s| !s.is_expired(now))
            .collect();
        // Soonest expiry first, as a running server lists them.
        sessions.sort_by_key(|s| s.expires);
        for s in sessions {
            each(SessionEntry {
                size: s.data_len as u64,
                expires_in_ms: s
                    .expires
                    .duration_since(now)
                    .unwrap_or_default()
                    .as_millis() as u64,
                age_ms: s.age(now).as_millis() as u64,
                id: s.id,
            })
            .map_err(|source| AdminError::Output {
                what: "the listing".into(),
                source,
            })?;
        }
        Ok(())
    }

    fn get(&mut self, id: &[u8]) -> Result<Option<Vec<u8>>, AdminError> {
        let now = SystemTime::now();
        Ok(self
            .store
            .get(id)
            .filter(|(info, _)| !info.is_expired(now))
            .map(|(_, data)| data.to_vec()))
    }

    fn remove(&mut self, id: &[u8]) -> Result<bool, AdminError> {
        self.store
            .remove(id)
            .map_err(|e| AdminError::Store(e.to_string()))
    }

    fn stats(&mut self) -> Result<Vec<(String, u64)>, AdminError> {
        let now = SystemTime::now();
        let sessions = self.store.sessions();
        let live: Vec<_> = sessions.iter().filter(|s| !s.is_expired(now)).collect();
        let (corrupt, corrupt_bytes) = self.store.corrupt();
        Ok(vec![
            ("sessions".into(), live.len() as u64),
            ("bytes".into(), live.iter().map(|s| s.data_len as u64).sum()),
            ("expired".into(), (sessions.len() - live.len()) as u64),
            ("store.log_bytes".into(), self.store.log_bytes()),
            ("store.corrupt_records".into(), corrupt as u64),
            ("store.corrupt_bytes".into(), corrupt_bytes),
            ("store.torn_bytes".into(), self.store.torn_bytes()),
        ])
    }
}
