//! `distcache/dc_server.h`: an embeddable cache server. The program owns
//! the sockets and the selector; a `DC_SERVER` answers the requests that
//! arrive on its clients' connections, from our cache or from a store the
//! program supplies as a `DC_CACHE_cb` table.
//!
//! Not thread-safe, like the original: a server and its clients are used by
//! one thread at a time, and the callbacks must not call back into the
//! server that called them.

mod cache;
mod clients;
#[cfg(test)]
mod tests;

pub use cache::{timeval, DC_CACHE_cb};
pub use clients::DC_CLIENT;

use super::boundary::{export, free_handle, into_handle, object, object_mut};
use super::nal::NAL_CONNECTION;
use crate::server::Embedded;
use cache::{cache_choice, choose_cache, choose_program_cache, millis, CacheChoice, ProgramCache};
use clients::del_client;
use std::ffi::{c_int, c_uint, c_ulong};
use std::ptr::{self, NonNull};

/// A cache server. Opaque to C.
#[derive(Debug)]
pub struct DC_SERVER {
    core: Embedded,
    clients: Vec<NonNull<DC_CLIENT>>,
}

/// The body of `DC_SERVER_new()`: the chosen cache decides how many
/// sessions it takes (ours: `64..=60000`).
fn new_server(max_sessions: c_uint) -> Option<*mut DC_SERVER> {
    let core = match cache_choice()? {
        CacheChoice::Ours => Embedded::with_memory_store(max_sessions as usize)?,
        CacheChoice::Program(table) => {
            Embedded::new(Box::new(ProgramCache::new(table, max_sessions)?))
        }
    };
    Some(into_handle(DC_SERVER {
        core,
        clients: Vec::new(),
    }))
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
    export!(0, [], || {
        choose_cache(CacheChoice::Ours);
        true
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
    export!(0, [object(impl_)], |table| choose_program_cache(table))
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
    export!(ptr::null_mut(), [], || new_server(max_sessions))
}

/// Releases a server, its cache, and its `DC_CLIENT_FLAG_IN_SERVER`
/// clients. Other clients should be deleted first; any left are detached
/// and must still be deleted with `DC_SERVER_del_client()`. NULL is ignored.
///
/// # Safety
/// `ctx` is NULL or a server from `DC_SERVER_new()` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn DC_SERVER_free(ctx: *mut DC_SERVER) {
    export!((), [object_mut(ctx)], |s| {
        s.release_clients();
        // SAFETY: forwarded from this function's contract; `s` is not used
        // again.
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
    export!(0, [object(ctx), Some(millis(now))], |s, now| {
        Some(c_uint::try_from(s.core.items(now)).unwrap_or(c_uint::MAX))
    })
}

/// Sets the server's operation count back to zero.
///
/// # Safety
/// `ctx` is NULL or a live server.
#[no_mangle]
pub unsafe extern "C" fn DC_SERVER_reset_operations(ctx: *mut DC_SERVER) {
    export!((), [object_mut(ctx)], |s| s.core.reset_operations())
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
    export!(0, [object(ctx)], |s| {
        Some(c_ulong::try_from(s.core.operations()).unwrap_or(c_ulong::MAX))
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
    export!(
        ptr::null_mut(),
        // The server as C passed it, besides the borrow: see new_client.
        [object_mut(ctx), NonNull::new(ctx), NonNull::new(conn)],
        |s, server, conn| Some(s.new_client(server, conn, flags))
    )
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
    export!(0, [NonNull::new(clnt)], |client| {
        // SAFETY: forwarded from this function's contract.
        unsafe { del_client(client) }
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
    export!(0, [object_mut(clnt), Some(millis(now))], |c, now| {
        c.process(now)
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
    export!(0, [object_mut(ctx), Some(millis(now))], |s, now| {
        s.clients_io(now);
        true
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
    export!(1, [object(ctx)], |s| s.clients.is_empty())
}
