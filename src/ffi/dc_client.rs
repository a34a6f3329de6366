//! `distcache/dc_client.h`: the blocking `DC_CTX` client API.

use super::boundary::{bytes, bytes_mut, c_str, export, free_handle, into_handle, object};
use crate::client::{Client, Flags};
use std::ffi::{c_char, c_int, c_uchar, c_uint, c_ulong};
use std::num::NonZeroU64;
use std::ptr;
use std::time::Duration;

/// A distcache client context: an address, flags, a timeout and any
/// persistent connections. Opaque to C.
pub struct DC_CTX {
    client: Client,
}

/// Creates a client context for the server at `target`.
///
/// `target` uses the libnal address syntax (`UNIX:/path`, `IP:host:port`,
/// `IPv4:host:port`, `IPv6:[addr]:port`). With `DC_CTX_FLAG_PERSISTENT` and
/// without `DC_CTX_FLAG_PERSISTENT_LATE` the connection is made now;
/// otherwise nothing touches the network until the first operation.
///
/// # Safety
/// `target` is NULL or a NUL-terminated string.
///
/// # Returns
/// A new context, to be released with `DC_CTX_free()`; NULL if `target` is
/// NULL or not a connectable address, or if the immediate connection fails.
#[no_mangle]
pub unsafe extern "C" fn DC_CTX_new(target: *const c_char, flags: c_uint) -> *mut DC_CTX {
    export!(ptr::null_mut(), [c_str(target)], |target| {
        Client::new(target, Flags::from_bits(flags)).map(|client| into_handle(DC_CTX { client }))
    })
}

/// Releases a context and closes its connections. NULL is ignored.
///
/// # Safety
/// `ctx` is NULL or a context from `DC_CTX_new()` not yet freed, and no
/// other thread is using it.
#[no_mangle]
pub unsafe extern "C" fn DC_CTX_free(ctx: *mut DC_CTX) {
    // SAFETY: forwarded from this function's contract.
    export!((), [], || unsafe { free_handle(ctx) })
}

/// Adds a session of `sess_len` bytes under an id of `id_len` bytes, to
/// expire `timeout_msecs` milliseconds after the server stores it.
///
/// A timeout below `DC_MIN_TIMEOUT` is sent as it is; one above 2^32-1 is
/// sent as 2^32-1 (the server refuses anything over seven days).
///
/// # Safety
/// `ctx` is NULL or a live context; `id_data` and `sess_data` are NULL or
/// point to `id_len` and `sess_len` readable bytes.
///
/// # Returns
/// 1 when the server stored the session; 0 on any failure: NULL or empty
/// arguments, a request over 32768 bytes, a refusal (for instance the id is
/// already stored), a network error or timeout.
#[no_mangle]
pub unsafe extern "C" fn DC_CTX_add_session(
    ctx: *mut DC_CTX,
    id_data: *const c_uchar,
    id_len: c_uint,
    sess_data: *const c_uchar,
    sess_len: c_uint,
    timeout_msecs: c_ulong,
) -> c_int {
    let timeout = u32::try_from(timeout_msecs).unwrap_or(u32::MAX);
    export!(
        0,
        [
            object(ctx),
            bytes(id_data, id_len),
            bytes(sess_data, sess_len)
        ],
        |ctx, id, sess| ctx.client.add(id, sess, timeout).map(|()| true)
    )
}

/// Removes the session stored under an id.
///
/// # Safety
/// `ctx` is NULL or a live context; `id_data` is NULL or points to `id_len`
/// readable bytes.
///
/// # Returns
/// 1 when the server removed a session; 0 when it had none, and on any
/// failure.
#[no_mangle]
pub unsafe extern "C" fn DC_CTX_remove_session(
    ctx: *mut DC_CTX,
    id_data: *const c_uchar,
    id_len: c_uint,
) -> c_int {
    export!(0, [ctx_and_id(ctx, id_data, id_len)], |(ctx, id)| {
        ctx.client.remove(id)
    })
}

/// Fetches the session stored under an id into `result_storage`.
///
/// On success `*result_used` is set to the session's full length and
/// `min(result_size, length)` bytes are copied; when the buffer was too
/// small, `DC_CTX_reget_session()` returns the whole session without
/// network traffic. `result_storage` may be NULL when `result_size` is 0.
///
/// # Safety
/// `ctx` is NULL or a live context; `id_data` is NULL or points to `id_len`
/// readable bytes; `result_storage` is NULL or points to `result_size`
/// writable bytes; `result_used` is NULL or points to a writable
/// `unsigned int`.
///
/// # Returns
/// 1 when the session was found; 0 on a miss (`*result_used` untouched) and
/// on any failure. As with the original library, a session shorter than 5
/// bytes is never returned.
#[no_mangle]
pub unsafe extern "C" fn DC_CTX_get_session(
    ctx: *mut DC_CTX,
    id_data: *const c_uchar,
    id_len: c_uint,
    result_storage: *mut c_uchar,
    result_size: c_uint,
    result_used: *mut c_uint,
) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        fetch(
            ctx,
            id_data,
            id_len,
            result_storage,
            result_size,
            result_used,
            |c, id| c.get(id).ok().flatten(),
        )
    }
}

/// Returns again the session the calling thread's last `DC_CTX_get_session()`
/// (or `DC_CTX_take_session()`) on this context fetched, without network
/// traffic.
///
/// # Safety
/// As `DC_CTX_get_session()`.
///
/// # Returns
/// 1 with the session delivered as by `DC_CTX_get_session()`; 0 when this
/// thread's last operation on `ctx` was not a successful get of the same id.
#[no_mangle]
pub unsafe extern "C" fn DC_CTX_reget_session(
    ctx: *mut DC_CTX,
    id_data: *const c_uchar,
    id_len: c_uint,
    result_storage: *mut c_uchar,
    result_size: c_uint,
    result_used: *mut c_uint,
) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        fetch(
            ctx,
            id_data,
            id_len,
            result_storage,
            result_size,
            result_used,
            |c, id| c.reget(id),
        )
    }
}

/// Fetches the session stored under an id into `result_storage` and
/// deletes it on the server in the same step: of any number of takes of one
/// id, from any processes, at most one finds the session. For single-use
/// sessions, such as TLS 1.3 tickets that allow early data. An extension,
/// present when `DISTCACHE_HAVE_TAKE_SESSION` is defined; the original's
/// server does not know the operation and closes the connection, so that a
/// take sent to it fails.
///
/// The session is delivered as by `DC_CTX_get_session()`, and
/// `DC_CTX_reget_session()` returns it again when the buffer was too small.
///
/// # Safety
/// As `DC_CTX_get_session()`.
///
/// # Returns
/// 1 when the session was found (and is now deleted); 0 on a miss
/// (`*result_used` untouched) and on any failure. As with
/// `DC_CTX_get_session()`, a session shorter than 5 bytes is never returned.
#[no_mangle]
pub unsafe extern "C" fn DC_CTX_take_session(
    ctx: *mut DC_CTX,
    id: *const c_uchar,
    id_len: c_uint,
    result_storage: *mut c_uchar,
    result_size: c_uint,
    result_used: *mut c_uint,
) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        fetch(
            ctx,
            id,
            id_len,
            result_storage,
            result_size,
            result_used,
            |c, id| c.take(id).ok().flatten(),
        )
    }
}

/// Asks whether the server holds a session under an id.
///
/// # Safety
/// `ctx` is NULL or a live context; `id_data` is NULL or points to `id_len`
/// readable bytes.
///
/// # Returns
/// 1 when it does, 0 when it does not, -1 on any failure (bad arguments,
/// network error, timeout, unexpected reply).
#[no_mangle]
pub unsafe extern "C" fn DC_CTX_has_session(
    ctx: *mut DC_CTX,
    id_data: *const c_uchar,
    id_len: c_uint,
) -> c_int {
    export!(-1, [ctx_and_id(ctx, id_data, id_len)], |(ctx, id)| {
        ctx.client.have(id)
    })
}

/// Sets the time limit of every later operation on `ctx` (connecting,
/// sending and receiving together), in milliseconds. An extension: the
/// original had no timeouts. The default is 1000 ms, or the value of the
/// environment variable `DISTCACHE_TIMEOUT_MS` when the context was made.
///
/// An operation that times out, or whose connection is refused, marks the
/// server's address down for the process: every operation on it, on any
/// context, then fails at once until a back-off period is over (1 s,
/// doubling up to 30 s; `DISTCACHE_DOWN_MS=MIN[:MAX]`, 0 turns it off).
///
/// # Safety
/// `ctx` is NULL or a live context.
///
/// # Returns
/// 1 on success; 0 when `ctx` is NULL or `msecs` is 0.
#[no_mangle]
pub unsafe extern "C" fn DC_CTX_set_timeout(ctx: *mut DC_CTX, msecs: c_ulong) -> c_int {
    // c_ulong is 32 bits wide on some targets.
    #[allow(clippy::useless_conversion)]
    let msecs = u64::from(msecs);
    export!(0, [object(ctx), NonZeroU64::new(msecs)], |ctx, msecs| {
        ctx.client.set_timeout(Duration::from_millis(msecs.get()));
        Some(true)
    })
}

/// The context and id of a lookup, or `None` if either is missing.
///
/// # Safety
/// As the lookup functions' `ctx`, `id_data` and `id_len`.
unsafe fn ctx_and_id<'a>(
    ctx: *mut DC_CTX,
    id_data: *const c_uchar,
    id_len: c_uint,
) -> Option<(&'a DC_CTX, &'a [u8])> {
    // SAFETY: forwarded from the caller's contract.
    unsafe { Some((object(ctx)?, bytes(id_data, id_len)?)) }
}

/// The body of `DC_CTX_get_session()`, `DC_CTX_reget_session()` and
/// `DC_CTX_take_session()`, which
/// differ only in where the session comes from.
///
/// # Safety
/// As `DC_CTX_get_session()`.
unsafe fn fetch(
    ctx: *mut DC_CTX,
    id_data: *const c_uchar,
    id_len: c_uint,
    result_storage: *mut c_uchar,
    result_size: c_uint,
    result_used: *mut c_uint,
    lookup: impl FnOnce(&Client, &[u8]) -> Option<Vec<u8>>,
) -> c_int {
    export!(0, [ctx_and_id(ctx, id_data, id_len)], |(ctx, id)| {
        let data = lookup(&ctx.client, id);
        // SAFETY: forwarded from the caller's contract.
        data.map(|data| unsafe { deliver(&data, result_storage, result_size, result_used) })
    })
}

/// Copies a fetched session out as `DC_CTX_get_session()` documents.
///
/// # Safety
/// As `DC_CTX_get_session()`'s `result_storage`, `result_size` and
/// `result_used`.
unsafe fn deliver(
    data: &[u8],
    result_storage: *mut c_uchar,
    result_size: c_uint,
    result_used: *mut c_uint,
) -> c_int {
    let Ok(len) = c_uint::try_from(data.len()) else {
        return 0;
    };
    // SAFETY: forwarded from the caller's contract.
    let Some(used) = (unsafe { result_used.as_mut() }) else {
        return 0;
    };
    let n = data.len().min(result_size as usize);
    if n > 0 {
        // SAFETY: forwarded from the caller's contract.
        let Some(out) = (unsafe { bytes_mut(result_storage, result_size) }) else {
            return 0;
        };
        out[..n].copy_from_slice(&data[..n]);
    }
    *used = len;
    1
}
