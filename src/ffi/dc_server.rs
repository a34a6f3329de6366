//! `distcache/dc_server.h`: an embeddable cache server. The program owns
//! the sockets and the selector; a `DC_SERVER` answers the requests that
//! arrive on its clients' connections, from our cache or from a store the
//! program supplies as a `DC_CACHE_cb` table.
//!
//! Not thread-safe, like the original: a server and its clients are used by
//! one thread at a time, and the callbacks must not call back into the
//! server that called them.

use super::boundary::{free_handle, guard, int_bool, into_handle, object, object_mut};
use super::dc_plug::{DC_PLUG, FLAG_NOFREE_CONN};
use super::nal::NAL_CONNECTION;
use crate::cache::{AddError, MemoryStore, Millis, Store};
use crate::server::Embedded;
use std::ffi::{c_int, c_uchar, c_uint, c_ulong};
use std::fmt;
use std::ptr::{self, NonNull};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// `struct timeval`, as the callbacks receive the time.
pub type timeval = libc::timeval;

/// `DC_CLIENT_FLAG_NOFREE_CONN`: deleting the client leaves its connection.
const CLIENT_NOFREE_CONN: c_uint = 0x0001;
/// `DC_CLIENT_FLAG_IN_SERVER`: `DC_SERVER_clients_io()` drives the client,
/// and the server frees it.
const CLIENT_IN_SERVER: c_uint = 0x0002;

/// The session capacities the original's cache accepted
/// (`DC_CACHE_MIN_SIZE`, `DC_CACHE_MAX_SIZE`).
pub const CACHE_MIN_SIZE: c_uint = 64;
/// See [`CACHE_MIN_SIZE`].
pub const CACHE_MAX_SIZE: c_uint = 60000;

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
enum CacheChoice {
    Ours,
    Program(DC_CACHE_cb),
}

static CACHE_CHOICE: Mutex<Option<CacheChoice>> = Mutex::new(None);

fn cache_choice() -> Option<CacheChoice> {
    *CACHE_CHOICE.lock().unwrap_or_else(|e| e.into_inner())
}

fn choose_cache(choice: CacheChoice) {
    *CACHE_CHOICE.lock().unwrap_or_else(|e| e.into_inner()) = Some(choice);
}

/// A program's cache, driven through its callback table.
struct ProgramCache {
    table: DC_CACHE_cb,
    cache: NonNull<DC_CACHE>,
}

// SAFETY: a ProgramCache is reachable only through its DC_SERVER, which the
// C contract confines to one thread at a time; it is never shared.
unsafe impl Send for ProgramCache {}
// SAFETY: as above; no two threads ever hold references to it at once.
unsafe impl Sync for ProgramCache {}

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
        // SAFETY: as in add; a NULL store asks for the length only.
        let size = unsafe {
            get(
                self.cache.as_ptr(),
                &tv,
                id.as_ptr(),
                len(id),
                ptr::null_mut(),
                0,
            )
        };
        // A session too long for one message cannot be sent: a miss.
        if size == 0 || size as usize > crate::proto::MAX_TOTAL_DATA {
            return false;
        }
        out.clear();
        out.resize(size as usize, 0);
        // SAFETY: as in add; `out` has `size` writable bytes.
        let got = unsafe {
            get(
                self.cache.as_ptr(),
                &tv,
                id.as_ptr(),
                len(id),
                out.as_mut_ptr(),
                size,
            )
        };
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

/// A cache server. Opaque to C.
#[derive(Debug)]
pub struct DC_SERVER {
    core: Embedded,
    clients: Vec<NonNull<DC_CLIENT>>,
}

/// One client connection of a server. Opaque to C.
#[derive(Debug)]
pub struct DC_CLIENT {
    /// None once the server is freed (the client was left to the program).
    server: Option<NonNull<DC_SERVER>>,
    plug: DC_PLUG,
    in_server: bool,
}

/// Milliseconds since the epoch at `now`, or the current time for NULL.
///
/// # Safety
/// `now` is NULL or a valid timeval.
unsafe fn millis(now: *const timeval) -> Millis {
    // SAFETY: forwarded from this function's contract.
    match unsafe { now.as_ref() } {
        Some(tv) => {
            let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
            let usecs = u64::try_from(tv.tv_usec).unwrap_or(0);
            secs.saturating_mul(1000).saturating_add(usecs / 1000)
        }
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    }
}

/// Answers the request waiting on `client`'s connection, if any.
fn process(core: &mut Embedded, client: &mut DC_CLIENT, now: Millis) -> bool {
    client
        .plug
        .with_buffers(|plug, read, send| core.process(plug, read, send, now))
}

/// Frees a client (and its connection unless it was made with
/// `DC_CLIENT_FLAG_NOFREE_CONN`).
///
/// # Safety
/// `client` came from `DC_SERVER_new_client()` and is no longer listed by
/// any server.
unsafe fn free_client(client: NonNull<DC_CLIENT>) {
    // SAFETY: per this function's contract.
    unsafe { free_handle(client.as_ptr()) }
}

/// Makes new servers use our cache (expired sessions dropped on every
/// operation; when full, the sessions that expire soonest make room).
///
/// # Safety
/// None.
///
/// # Returns
/// 1.
#[no_mangle]
pub extern "C" fn DC_SERVER_set_default_cache() -> c_int {
    guard(0, || {
        choose_cache(CacheChoice::Ours);
        1
    })
}

/// Makes new servers use the program's cache implementation. The table is
/// copied: later changes to it do not affect servers.
///
/// # Safety
/// `impl_` is NULL or points to a valid table whose functions follow the
/// documented conventions.
///
/// # Returns
/// 1 on success; 0 for NULL or a table with a NULL function.
#[no_mangle]
pub unsafe extern "C" fn DC_SERVER_set_cache(impl_: *const DC_CACHE_cb) -> c_int {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let Some(t) = (unsafe { object(impl_) }) else {
            return 0;
        };
        let complete = t.cache_new.is_some()
            && t.cache_free.is_some()
            && t.cache_add.is_some()
            && t.cache_get.is_some()
            && t.cache_remove.is_some()
            && t.cache_have.is_some()
            && t.cache_num_items.is_some();
        if complete {
            choose_cache(CacheChoice::Program(*t));
        }
        int_bool(complete)
    })
}

/// Creates a server holding up to `max_sessions` sessions, in the cache
/// chosen with `DC_SERVER_set_default_cache()` or `DC_SERVER_set_cache()`.
///
/// # Safety
/// None beyond the chosen table's own contract.
///
/// # Returns
/// The server, to be released with `DC_SERVER_free()`; NULL when no cache
/// was chosen, when our cache is given fewer than `DC_CACHE_MIN_SIZE` or
/// more than `DC_CACHE_MAX_SIZE` sessions, or when the program's
/// `cache_new` fails.
#[no_mangle]
pub extern "C" fn DC_SERVER_new(max_sessions: c_uint) -> *mut DC_SERVER {
    guard(ptr::null_mut(), || {
        let store: Box<dyn Store> = match cache_choice() {
            None => return ptr::null_mut(),
            Some(CacheChoice::Ours) => {
                if !(CACHE_MIN_SIZE..=CACHE_MAX_SIZE).contains(&max_sessions) {
                    return ptr::null_mut();
                }
                Box::new(MemoryStore::new(max_sessions as usize))
            }
            Some(CacheChoice::Program(table)) => {
                let Some(new) = table.cache_new else {
                    return ptr::null_mut();
                };
                // SAFETY: the program's constructor, per its table's contract.
                let Some(cache) = NonNull::new(unsafe { new(max_sessions) }) else {
                    return ptr::null_mut();
                };
                Box::new(ProgramCache { table, cache })
            }
        };
        into_handle(DC_SERVER {
            core: Embedded::new(store),
            clients: Vec::new(),
        })
    })
}

/// Releases a server, its cache, and its `DC_CLIENT_FLAG_IN_SERVER`
/// clients. Other clients should be deleted first; any left are detached
/// and must still be deleted with `DC_SERVER_del_client()`. NULL is ignored.
///
/// # Safety
/// `ctx` is NULL or a server from `DC_SERVER_new()` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn DC_SERVER_free(ctx: *mut DC_SERVER) {
    guard((), || {
        // SAFETY: forwarded from this function's contract.
        let Some(s) = (unsafe { object_mut(ctx) }) else {
            return;
        };
        for client in s.clients.drain(..) {
            // SAFETY: listed clients are live.
            let c = unsafe { &mut *client.as_ptr() };
            if c.in_server {
                // SAFETY: no longer listed.
                unsafe { free_client(client) };
            } else {
                c.server = None;
            }
        }
        // SAFETY: forwarded from this function's contract.
        unsafe { free_handle(ctx) }
    })
}

/// The number of sessions stored at `now` (NULL: the current time), after
/// dropping expired ones.
///
/// # Safety
/// `ctx` is NULL or a live server; `now` is NULL or a valid timeval.
///
/// # Returns
/// The count; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn DC_SERVER_items_stored(
    ctx: *mut DC_SERVER,
    now: *const timeval,
) -> c_uint {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let (s, now) = unsafe { (object(ctx), millis(now)) };
        s.map_or(0, |s| {
            c_uint::try_from(s.core.items(now)).unwrap_or(c_uint::MAX)
        })
    })
}

/// Sets the server's operation count back to zero.
///
/// # Safety
/// `ctx` is NULL or a live server.
#[no_mangle]
pub unsafe extern "C" fn DC_SERVER_reset_operations(ctx: *mut DC_SERVER) {
    guard((), || {
        // SAFETY: forwarded from this function's contract.
        let o = unsafe { object_mut(ctx) };
        o.map_or((), |s| s.core.reset_operations())
    })
}

/// The number of requests answered since the server was created or its
/// count was reset.
///
/// # Safety
/// `ctx` is NULL or a live server.
///
/// # Returns
/// The count; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn DC_SERVER_num_operations(ctx: *mut DC_SERVER) -> c_ulong {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        unsafe { object(ctx) }.map_or(0, |s| {
            c_ulong::try_from(s.core.operations()).unwrap_or(c_ulong::MAX)
        })
    })
}

/// Makes `conn` a client of the server. The client owns the connection
/// (deleting it frees the connection) unless `DC_CLIENT_FLAG_NOFREE_CONN`
/// is given. With `DC_CLIENT_FLAG_IN_SERVER`, `DC_SERVER_clients_io()`
/// drives it and deletes it when its connection ends; otherwise the program
/// calls `NAL_CONNECTION_io()` and `DC_SERVER_process_client()` itself.
///
/// # Safety
/// `ctx` is NULL or a live server; `conn` is NULL or a live connection
/// (normally already in the program's selector) that outlives the client.
///
/// # Returns
/// The client; NULL for NULL arguments.
#[no_mangle]
pub unsafe extern "C" fn DC_SERVER_new_client(
    ctx: *mut DC_SERVER,
    conn: *mut NAL_CONNECTION,
    flags: c_uint,
) -> *mut DC_CLIENT {
    guard(ptr::null_mut(), || {
        // SAFETY: forwarded from this function's contract.
        let (Some(s), Some(server), Some(conn)) = (
            unsafe { object_mut(ctx) },
            NonNull::new(ctx),
            NonNull::new(conn),
        ) else {
            return ptr::null_mut();
        };
        let plug_flags = if flags & CLIENT_NOFREE_CONN != 0 {
            FLAG_NOFREE_CONN
        } else {
            0
        };
        let client = into_handle(DC_CLIENT {
            // The pointer C passed, not one taken from `s`: a later call
            // that borrows the server again would invalidate that.
            server: Some(server),
            plug: DC_PLUG::new(conn, plug_flags),
            in_server: flags & CLIENT_IN_SERVER != 0,
        });
        // into_handle never returns NULL.
        if let Some(c) = NonNull::new(client) {
            s.clients.push(c);
        }
        client
    })
}

/// Deletes a client: takes it off its server and frees it (and its
/// connection unless it was made with `DC_CLIENT_FLAG_NOFREE_CONN`).
///
/// # Safety
/// `clnt` is NULL or a client from `DC_SERVER_new_client()` not yet
/// deleted; its server, if not freed, is not in use elsewhere.
///
/// # Returns
/// 1 on success (also for a client whose server was freed); 0 for NULL or
/// a client its server does not list.
#[no_mangle]
pub unsafe extern "C" fn DC_SERVER_del_client(clnt: *mut DC_CLIENT) -> c_int {
    guard(0, || {
        let Some(client) = NonNull::new(clnt) else {
            return 0;
        };
        // SAFETY: forwarded from this function's contract.
        if let Some(server) = unsafe { client.as_ref() }.server {
            // SAFETY: a client's server, while set, is live.
            let s = unsafe { &mut *server.as_ptr() };
            let Some(at) = s.clients.iter().position(|c| *c == client) else {
                return 0;
            };
            s.clients.remove(at);
        }
        // SAFETY: no server lists it any more.
        unsafe { free_client(client) };
        1
    })
}

/// Answers the request that has arrived on the client's connection, if
/// any (decoding what the connection has read, and framing the reply into
/// its send buffer). One request per call; a request waits while the
/// client has not taken the previous reply.
///
/// # Safety
/// `clnt` is NULL or a live client whose server is live; `now` is NULL or
/// a valid timeval (NULL: the current time).
///
/// # Returns
/// 1 when all is well (also when nothing had arrived); 0 when the client
/// sent something corrupt or malformed and must be deleted, or for NULL or
/// a client whose server was freed.
#[no_mangle]
pub unsafe extern "C" fn DC_SERVER_process_client(
    clnt: *mut DC_CLIENT,
    now: *const timeval,
) -> c_int {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let (c, now) = unsafe { (object_mut(clnt), millis(now)) };
        let Some(c) = c else {
            return 0;
        };
        let Some(server) = c.server else {
            return 0;
        };
        // SAFETY: a client's server, while set, is live, and a separate
        // object from the client.
        let s = unsafe { &mut *server.as_ptr() };
        int_bool(process(&mut s.core, c, now))
    })
}

/// Drives every `DC_CLIENT_FLAG_IN_SERVER` client after a select: network
/// I/O, then answering a request. Clients whose connection ended or who
/// sent something corrupt are deleted.
///
/// # Safety
/// `ctx` is NULL or a live server; `now` is NULL or a valid timeval.
///
/// # Returns
/// 1; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn DC_SERVER_clients_io(ctx: *mut DC_SERVER, now: *const timeval) -> c_int {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let (s, now) = unsafe { (object_mut(ctx), millis(now)) };
        let Some(s) = s else {
            return 0;
        };
        let mut i = 0;
        while i < s.clients.len() {
            let client = s.clients[i];
            // SAFETY: listed clients are live and separate from the server.
            let c = unsafe { &mut *client.as_ptr() };
            if !c.in_server || (c.plug.io() && process(&mut s.core, c, now)) {
                i += 1;
                continue;
            }
            s.clients.remove(i);
            // SAFETY: no longer listed.
            unsafe { free_client(client) };
        }
        1
    })
}

/// Whether the server has no clients.
///
/// # Safety
/// `ctx` is NULL or a live server.
///
/// # Returns
/// 1 or 0; 1 for NULL (it has none).
#[no_mangle]
pub unsafe extern "C" fn DC_SERVER_clients_empty(ctx: *const DC_SERVER) -> c_int {
    guard(1, || {
        // SAFETY: forwarded from this function's contract.
        let o = unsafe { object(ctx) };
        int_bool(o.is_none_or(|s| s.clients.is_empty()))
    })
}

// A client names its server and its server lists it; both links must stay
// valid across calls that borrow the server again. Only `socketpair(2)` is
// called, so Miri can check the pointers: `cargo +nightly miri test --lib
// ffi::`.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::nal::{
        NAL_BUFFER_data, NAL_BUFFER_used, NAL_BUFFER_write, NAL_CONNECTION_create_pair,
        NAL_CONNECTION_free, NAL_CONNECTION_get_read, NAL_CONNECTION_get_send, NAL_CONNECTION_new,
    };
    use crate::proto::{decode_all, encode_message, Command, Role};

    #[test]
    fn clients_and_their_server_across_calls() {
        assert_eq!(DC_SERVER_set_default_cache(), 1);
        let ctx = DC_SERVER_new(64);
        assert!(!ctx.is_null());
        let (near, far) = (NAL_CONNECTION_new(), NAL_CONNECTION_new());
        let now = timeval {
            tv_sec: 1000,
            tv_usec: 0,
        };
        let mut request = Vec::new();
        encode_message(&mut request, false, 5, Command::Have, b"id").unwrap();
        // SAFETY: live objects from this test, each freed once, after its
        // last use; `now` outlives the calls.
        unsafe {
            assert_eq!(NAL_CONNECTION_create_pair(near, far, 4096), 1);
            let a = DC_SERVER_new_client(ctx, near, CLIENT_NOFREE_CONN);
            let b = DC_SERVER_new_client(ctx, NAL_CONNECTION_new(), 0);
            assert!(!a.is_null() && !b.is_null());
            // Calls that borrow the server again, between uses of the links.
            DC_SERVER_reset_operations(ctx);
            assert_eq!(DC_SERVER_clients_empty(ctx), 0);

            let read = NAL_CONNECTION_get_read(near);
            let len = request.len() as c_uint;
            assert_eq!(NAL_BUFFER_write(read, request.as_ptr(), len), len);
            assert_eq!(DC_SERVER_process_client(a, &now), 1);
            assert_eq!(DC_SERVER_num_operations(ctx), 1);
            let send = NAL_CONNECTION_get_send(near);
            let used = NAL_BUFFER_used(send) as usize;
            let reply = std::slice::from_raw_parts(NAL_BUFFER_data(send), used);
            let (replies, partial) = decode_all(Role::Client, reply).unwrap();
            assert_eq!(replies.len(), 1);
            assert_eq!(
                (replies[0].uid, &replies[0].payload[..], partial),
                (5, &[1][..], false)
            );

            assert_eq!(DC_SERVER_del_client(b), 1, "frees its connection too");
            assert_eq!(DC_SERVER_del_client(a), 1);
            assert_eq!(DC_SERVER_clients_empty(ctx), 1);

            // A client left to the program when its server is freed.
            let c = DC_SERVER_new_client(ctx, near, CLIENT_NOFREE_CONN);
            DC_SERVER_free(ctx);
            assert_eq!(DC_SERVER_process_client(c, &now), 0, "its server is gone");
            assert_eq!(DC_SERVER_del_client(c), 1);
            NAL_CONNECTION_free(near);
            NAL_CONNECTION_free(far);
        }
    }
}
