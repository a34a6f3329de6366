//! The connection functions of `nal_devel.h`.

use super::super::socket;
use super::super::{NAL_CONNECTION, NAL_SELECTOR};
use super::builtin::CONNECTION;
use super::listener::select_hook;
use super::types::{NAL_CONNECTION_vtable, NAL_SELECTOR_TOKEN};
use crate::ffi::boundary::{export, object};
use std::ffi::{c_int, c_void};
use std::ptr::{self, NonNull};

/// Maps `vtable` onto a connection, as `nal_address_set_vtable()` does for
/// an address; the connection first leaves its selector and is closed.
/// The built-in connection vtable leaves a built-in connection that is not
/// set up yet, for its `connect` or `accept`.
///
/// # Safety
/// `conn` is NULL or a live connection object; `vtable` is NULL or a valid
/// vtable that lives as long as the object uses it.
///
/// # Returns
/// 1 on success; 0 for NULL, when memory ran out, or when `on_create` is
/// missing or returned 0.
#[no_mangle]
pub unsafe extern "C" fn nal_connection_set_vtable(
    conn: *mut NAL_CONNECTION,
    vtable: *const NAL_CONNECTION_vtable,
) -> c_int {
    // SAFETY: forwarded from this function's contract.
    export!(0, [vtable.as_ref(), NonNull::new(conn)], |vt, c| unsafe {
        socket::set_vtable(c.as_ptr(), vt)
    })
}

/// The vtable of the connection's type.
///
/// # Safety
/// `conn` is NULL or a live connection object.
///
/// # Returns
/// The mapped vtable; the built-in connection vtable for a built-in
/// connection that is set up; NULL for NULL or a connection not set up.
#[no_mangle]
pub unsafe extern "C" fn nal_connection_get_vtable(
    conn: *const NAL_CONNECTION,
) -> *const NAL_CONNECTION_vtable {
    export!(ptr::null(), [object(conn)], |c| match c.conn.is_active() {
        true => ptr::from_ref(&CONNECTION),
        false => c.mapped.vtable(),
    })
}

/// The connection's implementation data, `vtdata_size` bytes of its type.
///
/// # Safety
/// `conn` is NULL or a live connection object.
///
/// # Returns
/// The data (also while its type's `on_reset` or `on_destroy` runs); NULL
/// for NULL, a built-in connection, or no data asked for.
#[no_mangle]
pub unsafe extern "C" fn nal_connection_get_vtdata(conn: *const NAL_CONNECTION) -> *mut c_void {
    export!(
        ptr::null_mut(),
        [object(conn)],
        |c| match c.conn.is_active() {
            true => ptr::null_mut(),
            false => c.mapped.data(),
        }
    )
}

/// Runs the connection's `pre_select` with its selector and token: a
/// selector implementation calls this for each connection before it
/// waits. Nothing happens for NULL or a connection in no selector.
///
/// # Safety
/// `conn` is NULL or a live connection object.
#[no_mangle]
pub unsafe extern "C" fn nal_connection_pre_select(conn: *mut NAL_CONNECTION) {
    export!((), [socket::linked(conn)], |(member, link)| {
        // SAFETY: forwarded from this function's contract; the link names
        // its live selector.
        unsafe { select_hook(member, link, true) }
    })
}

/// Runs the connection's `post_select` with its selector and token: a
/// selector implementation calls this for each connection after it
/// waited. Nothing happens for NULL or a connection in no selector.
///
/// # Safety
/// `conn` is NULL or a live connection object.
#[no_mangle]
pub unsafe extern "C" fn nal_connection_post_select(conn: *mut NAL_CONNECTION) {
    export!((), [socket::linked(conn)], |(member, link)| {
        // SAFETY: forwarded from this function's contract; the link names
        // its live selector.
        unsafe { select_hook(member, link, false) }
    })
}

/// The connection's selector, and its token there through `token` (left
/// alone when the connection is in no selector or `token` is NULL).
///
/// # Safety
/// `conn` is NULL or a live connection object; `token` is NULL or
/// writable.
///
/// # Returns
/// The selector; NULL for NULL or a connection in no selector.
#[no_mangle]
pub unsafe extern "C" fn nal_connection_get_selector(
    conn: *const NAL_CONNECTION,
    token: *mut NAL_SELECTOR_TOKEN,
) -> *mut NAL_SELECTOR {
    // SAFETY: forwarded from this function's contract.
    unsafe { socket::selector(conn, token) }
}

/// Records `sel` and `token` as the connection's selector without telling
/// either side: for a selector implementation that lists the connection
/// itself. NULL `sel` forgets the selector.
///
/// # Safety
/// `conn` is NULL or a live connection object; `sel` is NULL or a live
/// selector that lists the connection under `token` until the connection
/// leaves it.
#[no_mangle]
pub unsafe extern "C" fn nal_connection_set_selector_raw(
    conn: *mut NAL_CONNECTION,
    sel: *mut NAL_SELECTOR,
    token: NAL_SELECTOR_TOKEN,
) {
    // SAFETY: forwarded from this function's contract.
    unsafe { socket::set_selector_raw(conn, sel, token) }
}
