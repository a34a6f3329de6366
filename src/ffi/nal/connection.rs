//! `NAL_CONNECTION`: a non-blocking connection with read and send buffers.

use super::super::boundary::{free_handle, guard, int_bool, into_handle, object, object_mut};
use super::selector::{join, leave, Link, Member};
use super::{NAL_ADDRESS, NAL_BUFFER, NAL_LISTENER, NAL_SELECTOR};
use crate::nal::Connection;
use std::ffi::{c_int, c_uint};
use std::ptr::{self, NonNull};

/// A connection and its place in a selector. Opaque to C.
#[derive(Debug, Default)]
pub struct NAL_CONNECTION {
    pub(crate) conn: Connection,
    pub(crate) link: Option<Link>,
}

impl NAL_CONNECTION {
    /// Leaves the selector it is in, if any.
    fn leave_selector(&mut self) {
        if let Some(link) = self.link.take() {
            // SAFETY: a current link names a live selector (it unlinks its
            // objects before it is freed).
            unsafe { leave(link) };
            self.conn.clear_ready();
        }
    }
}

/// Creates a connection object that is not connected yet.
///
/// # Safety
/// None.
///
/// # Returns
/// The object, to be released with `NAL_CONNECTION_free()`.
#[no_mangle]
pub extern "C" fn NAL_CONNECTION_new() -> *mut NAL_CONNECTION {
    guard(ptr::null_mut(), || into_handle(NAL_CONNECTION::default()))
}

/// Closes and releases a connection, taking it out of its selector first.
/// NULL is ignored.
///
/// # Safety
/// `conn` is NULL or an object from `NAL_CONNECTION_new()` not yet freed
/// (and not owned by a `DC_PLUG` or `DC_SERVER` client that will free it).
#[no_mangle]
pub unsafe extern "C" fn NAL_CONNECTION_free(conn: *mut NAL_CONNECTION) {
    guard((), || {
        // SAFETY: forwarded from this function's contract.
        if let Some(c) = unsafe { object_mut(conn) } {
            c.leave_selector();
        }
        // SAFETY: forwarded from this function's contract; no selector
        // links to it any more.
        unsafe { free_handle(conn) }
    })
}

/// Closes a connection and takes it out of its selector, so that the
/// object can be connected again; its buffers keep their size.
///
/// # Safety
/// `conn` is NULL or a live connection object.
#[no_mangle]
pub unsafe extern "C" fn NAL_CONNECTION_reset(conn: *mut NAL_CONNECTION) {
    guard((), || {
        // SAFETY: forwarded from this function's contract.
        if let Some(c) = unsafe { object_mut(conn) } {
            c.leave_selector();
            c.conn.reset();
        }
    })
}

/// Starts a non-blocking connect to `addr`; both buffers get the address's
/// default size. A UNIX connect completes at once; a TCP one completes
/// during later `NAL_CONNECTION_io()` calls (see
/// `NAL_CONNECTION_is_established()`).
///
/// # Safety
/// `conn` and `addr` are NULL or live objects.
///
/// # Returns
/// 1 on success; 0 for NULL, a connection already in use, an address that
/// cannot be connected to, or a failed connect (refused, no such socket).
#[no_mangle]
pub unsafe extern "C" fn NAL_CONNECTION_create(
    conn: *mut NAL_CONNECTION,
    addr: *const NAL_ADDRESS,
) -> c_int {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let (Some(c), Some(a)) = (unsafe { object_mut(conn) }, unsafe { object(addr) }) else {
            return 0;
        };
        let Some(address) = &a.address else {
            return 0;
        };
        int_bool(c.conn.connect(address, a.buffer_size as usize).is_ok())
    })
}

/// Accepts the connection a selector found waiting on `list`; both
/// buffers get the listener's default size.
///
/// # Safety
/// `conn` and `list` are NULL or live objects.
///
/// # Returns
/// 1 on success; 0 for NULL, a connection already in use, or when the last
/// select found no connection waiting on `list`.
#[no_mangle]
pub unsafe extern "C" fn NAL_CONNECTION_accept(
    conn: *mut NAL_CONNECTION,
    list: *mut NAL_LISTENER,
) -> c_int {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let (Some(c), Some(l)) = (unsafe { object_mut(conn) }, unsafe { object_mut(list) }) else {
            return 0;
        };
        int_bool(c.conn.accept(&mut l.listener).is_ok())
    })
}

/// Resizes both buffers of a connection (a new size empties them).
///
/// # Safety
/// `conn` is NULL or a live connection object; no pointer into its buffers
/// is used afterwards.
///
/// # Returns
/// 1 on success; 0 for NULL, a connection not set up, or a size over 32768.
#[no_mangle]
pub unsafe extern "C" fn NAL_CONNECTION_set_size(conn: *mut NAL_CONNECTION, size: c_uint) -> c_int {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let Some(c) = (unsafe { object_mut(conn) }) else {
            return 0;
        };
        int_bool(c.conn.is_active() && c.conn.set_size(size as usize))
    })
}

/// The buffer of bytes received from the peer, to be read with
/// `NAL_BUFFER_read()`.
///
/// # Safety
/// `conn` is NULL or a live connection object. The buffer lives as long as
/// the connection object.
///
/// # Returns
/// The buffer; NULL for NULL or a connection not set up.
#[no_mangle]
pub unsafe extern "C" fn NAL_CONNECTION_get_read(conn: *mut NAL_CONNECTION) -> *mut NAL_BUFFER {
    guard(ptr::null_mut(), || {
        // SAFETY: forwarded from this function's contract.
        match unsafe { object_mut(conn) } {
            Some(c) if c.conn.is_active() => c.conn.read_buffer(),
            _ => ptr::null_mut(),
        }
    })
}

/// The buffer of bytes to send to the peer, to be filled with
/// `NAL_BUFFER_write()`.
///
/// # Safety
/// As for `NAL_CONNECTION_get_read()`.
///
/// # Returns
/// The buffer; NULL for NULL or a connection not set up.
#[no_mangle]
pub unsafe extern "C" fn NAL_CONNECTION_get_send(conn: *mut NAL_CONNECTION) -> *mut NAL_BUFFER {
    guard(ptr::null_mut(), || {
        // SAFETY: forwarded from this function's contract.
        match unsafe { object_mut(conn) } {
            Some(c) if c.conn.is_active() => c.conn.send_buffer(),
            _ => ptr::null_mut(),
        }
    })
}

/// `NAL_CONNECTION_get_read()` for looking only.
///
/// # Safety
/// As for `NAL_CONNECTION_get_read()`.
///
/// # Returns
/// The buffer; NULL for NULL or a connection not set up.
#[no_mangle]
pub unsafe extern "C" fn NAL_CONNECTION_get_read_c(
    conn: *const NAL_CONNECTION,
) -> *const NAL_BUFFER {
    // SAFETY: forwarded; the buffer is only looked at through the result.
    unsafe { NAL_CONNECTION_get_read(conn.cast_mut()) }
}

/// `NAL_CONNECTION_get_send()` for looking only.
///
/// # Safety
/// As for `NAL_CONNECTION_get_read()`.
///
/// # Returns
/// The buffer; NULL for NULL or a connection not set up.
#[no_mangle]
pub unsafe extern "C" fn NAL_CONNECTION_get_send_c(
    conn: *const NAL_CONNECTION,
) -> *const NAL_BUFFER {
    // SAFETY: forwarded; the buffer is only looked at through the result.
    unsafe { NAL_CONNECTION_get_send(conn.cast_mut()) }
}

/// Moves bytes as the last `NAL_SELECTOR_select()` found possible:
/// completes a pending connect, reads into the read buffer, sends from the
/// send buffer.
///
/// # Safety
/// `conn` is NULL or a live connection object.
///
/// # Returns
/// 1 when the connection is fine (also when nothing was ready); 0 when it
/// failed or the peer closed it (the caller then frees or resets it), for
/// NULL, and for a connection that is in no selector.
#[no_mangle]
pub unsafe extern "C" fn NAL_CONNECTION_io(conn: *mut NAL_CONNECTION) -> c_int {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        match unsafe { object_mut(conn) } {
            Some(c) if c.link.is_some() => int_bool(c.conn.io()),
            _ => 0,
        }
    })
}

/// Whether the connect has completed.
///
/// # Safety
/// `conn` is NULL or a live connection object.
///
/// # Returns
/// 1 or 0; 0 for NULL or a connection not set up.
#[no_mangle]
pub unsafe extern "C" fn NAL_CONNECTION_is_established(conn: *const NAL_CONNECTION) -> c_int {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let o = unsafe { object(conn) };
        int_bool(o.is_some_and(|c| c.conn.is_established()))
    })
}

/// Adds a connection to a selector, so that `NAL_SELECTOR_select()` waits
/// for it.
///
/// # Safety
/// `conn` and `sel` are NULL or live objects.
///
/// # Returns
/// 1 on success; 0 for NULL, a connection not set up, or one already in a
/// selector.
#[no_mangle]
pub unsafe extern "C" fn NAL_CONNECTION_add_to_selector(
    conn: *mut NAL_CONNECTION,
    sel: *mut NAL_SELECTOR,
) -> c_int {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let Some(c) = (unsafe { object_mut(conn) }) else {
            return 0;
        };
        if c.link.is_some() || !c.conn.is_active() {
            return 0;
        }
        let Some(member) = NonNull::new(conn).map(Member::Connection) else {
            return 0;
        };
        // SAFETY: `sel` per the contract; the connection is live and in no
        // selector.
        c.link = unsafe { join(sel, member) };
        int_bool(c.link.is_some())
    })
}

/// Takes a connection out of its selector. Nothing happens for NULL or a
/// connection in no selector.
///
/// # Safety
/// `conn` is NULL or a live connection object.
#[no_mangle]
pub unsafe extern "C" fn NAL_CONNECTION_del_from_selector(conn: *mut NAL_CONNECTION) {
    guard((), || {
        // SAFETY: forwarded from this function's contract.
        if let Some(c) = unsafe { object_mut(conn) } {
            c.leave_selector();
        }
    })
}

/// Connects two unused connection objects to each other (a UNIX socket
/// pair), both with buffers of `def_buffer_size` bytes.
///
/// # Safety
/// `conn1` and `conn2` are NULL or live connection objects.
///
/// # Returns
/// 1 on success; 0 for NULL, the same object twice, an object already in
/// use, or a size over 32768.
#[no_mangle]
pub unsafe extern "C" fn NAL_CONNECTION_create_pair(
    conn1: *mut NAL_CONNECTION,
    conn2: *mut NAL_CONNECTION,
    def_buffer_size: c_uint,
) -> c_int {
    guard(0, || {
        if ptr::eq(conn1, conn2) {
            return 0;
        }
        // SAFETY: forwarded from this function's contract; the two are
        // distinct objects.
        let (Some(a), Some(b)) = (unsafe { object_mut(conn1) }, unsafe { object_mut(conn2) })
        else {
            return 0;
        };
        int_bool(Connection::pair(&mut a.conn, &mut b.conn, def_buffer_size as usize).is_ok())
    })
}
