//! The caches a `DC_SERVER` answers from: ours, or a program's own behind
//! its `DC_CACHE_cb` table, driven through our [`Store`] trait; and the
//! choice of cache that new servers get.

use crate::cache::{AddError, Millis, Store};
use crate::sys::clock::wall_ms;
use std::ffi::{c_int, c_uchar, c_uint, c_ulong};
use std::fmt;
use std::ptr::{self, NonNull};
use std::sync::Mutex;

/// `struct timeval`, as the callbacks receive the time.
pub type timeval = libc::timeval;

/// A program's cache, opaque to us.
#[repr(C)]
pub struct DC_CACHE {
    _private: [u8; 0],
}

/// A program's cache implementation: the C `DC_CACHE_cb` table.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DC_CACHE_cb {
    /// Creates a cache for up to `max_sessions` sessions (NULL: failure).
    pub cache_new: Option<unsafe extern "C" fn(c_uint) -> *mut DC_CACHE>,
    /// Destroys a cache.
    pub cache_free: Option<unsafe extern "C" fn(*mut DC_CACHE)>,
    /// Adds a session: non-zero on success, 0 when the id is already stored.
    pub cache_add: Option<
        unsafe extern "C" fn(
            *mut DC_CACHE,
            *const timeval,
            c_ulong,
            *const c_uchar,
            c_uint,
            *const c_uchar,
            c_uint,
        ) -> c_int,
    >,
    /// Copies a session into the store (at most store_size bytes); returns
    /// its length, 0 for a miss. With a NULL store, only the length.
    pub cache_get: Option<
        unsafe extern "C" fn(
            *mut DC_CACHE,
            *const timeval,
            *const c_uchar,
            c_uint,
            *mut c_uchar,
            c_uint,
        ) -> c_uint,
    >,
    /// Removes a session: non-zero if it was there.
    pub cache_remove: Option<
        unsafe extern "C" fn(*mut DC_CACHE, *const timeval, *const c_uchar, c_uint) -> c_int,
    >,
    /// Whether a session is there: non-zero if it is.
    pub cache_have: Option<
        unsafe extern "C" fn(*mut DC_CACHE, *const timeval, *const c_uchar, c_uint) -> c_int,
    >,
    /// The number of sessions stored.
    pub cache_num_items: Option<unsafe extern "C" fn(*mut DC_CACHE, *const timeval) -> c_uint>,
}

/// The cache new servers are created with.
#[derive(Debug, Clone, Copy)]
pub(super) enum CacheChoice {
    Ours,
    Program(DC_CACHE_cb),
}

static CACHE_CHOICE: Mutex<Option<CacheChoice>> = Mutex::new(None);

pub(super) fn cache_choice() -> Option<CacheChoice> {
    *CACHE_CHOICE.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn choose_cache(choice: CacheChoice) {
    *CACHE_CHOICE.lock().unwrap_or_else(|e| e.into_inner()) = Some(choice);
}

/// Makes new servers use the program's cache `table` if every function in
/// it is set; whether it was.
pub(super) fn choose_program_cache(table: &DC_CACHE_cb) -> bool {
    let complete = table.cache_new.is_some()
        && table.cache_free.is_some()
        && table.cache_add.is_some()
        && table.cache_get.is_some()
        && table.cache_remove.is_some()
        && table.cache_have.is_some()
        && table.cache_num_items.is_some();
    if complete {
        choose_cache(CacheChoice::Program(*table));
    }
    complete
}

/// A program's cache, driven through its callback table.
pub(super) struct ProgramCache {
    table: DC_CACHE_cb,
    cache: NonNull<DC_CACHE>,
}

// SAFETY: a ProgramCache is reachable only through its DC_SERVER, which the
// C contract confines to one thread at a time; it is never shared.
unsafe impl Send for ProgramCache {}
// SAFETY: as above; no two threads ever hold references to it at once.
unsafe impl Sync for ProgramCache {}

impl ProgramCache {
    /// Makes the program's cache for `max_sessions` sessions with its
    /// `cache_new`; `None` when that fails or is missing.
    pub(super) fn new(table: DC_CACHE_cb, max_sessions: c_uint) -> Option<ProgramCache> {
        let new = table.cache_new?;
        // SAFETY: the program's constructor, per its table's contract.
        let cache = NonNull::new(unsafe { new(max_sessions) })?;
        Some(ProgramCache { table, cache })
    }
}

impl fmt::Debug for ProgramCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProgramCache")
            .field("cache", &self.cache)
            .finish()
    }
}

fn to_timeval(now: Millis) -> timeval {
    timeval {
        tv_sec: libc::time_t::try_from(now / 1000).unwrap_or(libc::time_t::MAX),
        tv_usec: ((now % 1000) * 1000) as libc::suseconds_t,
    }
}

/// A length the C callbacks take: ids and sessions are at most 32 KiB.
fn len(b: &[u8]) -> c_uint {
    c_uint::try_from(b.len()).unwrap_or(c_uint::MAX)
}

impl Store for ProgramCache {
    fn add(&self, now: Millis, timeout_msecs: u32, id: &[u8], data: &[u8]) -> Result<(), AddError> {
        let Some(add) = self.table.cache_add else {
            return Err(AddError::Refused);
        };
        let tv = to_timeval(now);
        // SAFETY: the program's callback, with its own cache and pointers
        // valid for the lengths given, for the call's duration.
        let ok = unsafe {
            add(
                self.cache.as_ptr(),
                &tv,
                c_ulong::from(timeout_msecs),
                id.as_ptr(),
                len(id),
                data.as_ptr(),
                len(data),
            )
        };
        if ok != 0 {
            Ok(())
        } else {
            Err(AddError::Exists)
        }
    }

    fn get_into(&self, now: Millis, id: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(get) = self.table.cache_get else {
            return false;
        };
        let tv = to_timeval(now);
        // SAFETY: as in add; called below only with NULL and 0 (asking for
        // the length) and with `out`, which then has `size` writable bytes.
        let get = |store: *mut c_uchar, size: c_uint| unsafe {
            get(self.cache.as_ptr(), &tv, id.as_ptr(), len(id), store, size)
        };
        let size = get(ptr::null_mut(), 0);
        // A session too long for one message cannot be sent: a miss.
        if size == 0 || size as usize > crate::proto::MAX_TOTAL_DATA {
            return false;
        }
        out.clear();
        out.resize(size as usize, 0);
        let got = get(out.as_mut_ptr(), size);
        out.truncate((got as usize).min(size as usize));
        got != 0
    }

    fn remove(&self, now: Millis, id: &[u8]) -> bool {
        let tv = to_timeval(now);
        // SAFETY: as in add.
        self.table
            .cache_remove
            .is_some_and(|f| unsafe { f(self.cache.as_ptr(), &tv, id.as_ptr(), len(id)) } != 0)
    }

    fn take_into(&self, now: Millis, id: &[u8], out: &mut Vec<u8>) -> bool {
        // A lookup then a removal is one step here: the cache is reached
        // only through its DC_SERVER, by one thread at a time, so no other
        // request runs in between. Handed out only if the removal worked.
        let start = out.len();
        let taken = self.get_into(now, id, out) && self.remove(now, id);
        if !taken {
            out.truncate(start);
        }
        taken
    }

    fn have(&self, now: Millis, id: &[u8]) -> bool {
        let tv = to_timeval(now);
        // SAFETY: as in add.
        self.table
            .cache_have
            .is_some_and(|f| unsafe { f(self.cache.as_ptr(), &tv, id.as_ptr(), len(id)) } != 0)
    }

    fn len(&self, now: Millis) -> usize {
        let tv = to_timeval(now);
        // SAFETY: as in add.
        self.table
            .cache_num_items
            .map_or(0, |f| unsafe { f(self.cache.as_ptr(), &tv) } as usize)
    }
}

impl Drop for ProgramCache {
    fn drop(&mut self) {
        if let Some(free) = self.table.cache_free {
            // SAFETY: the program's own cache, freed once, by its callback.
            unsafe { free(self.cache.as_ptr()) };
        }
    }
}

/// Milliseconds since the epoch at `now`, or the current time for NULL.
///
/// # Safety
/// `now` is NULL or a valid timeval.
pub(super) unsafe fn millis(now: *const timeval) -> Millis {
    // SAFETY: forwarded from this function's contract.
    match unsafe { now.as_ref() } {
        Some(tv) => {
            let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
            let usecs = u64::try_from(tv.tv_usec).unwrap_or(0);
            secs.saturating_mul(1000).saturating_add(usecs / 1000)
        }
        None => wall_ms(),
    }
}
