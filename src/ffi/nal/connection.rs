//! `NAL_CONNECTION`: a non-blocking connection with read and send buffers,
//! or a connection of a type C code linked in (`libnal/nal_devel.h`),
//! driven by that type's vtable.

use super::super::boundary::{export, int_bool, into_handle, object, object_mut, two_objects_mut};
use super::devel::builtin::CONNECTION;
use super::devel::hooks::{addr_vt, conn_vt, list_vt};
use super::devel::mapping::{self, Mapped};
use super::devel::types::{NAL_CONNECTION_vtable, SelDel, SelTok};
use super::selector::{Link, Member};
use super::socket::{self, Socket};
use super::{NAL_ADDRESS, NAL_BUFFER, NAL_LISTENER, NAL_SELECTOR};
use crate::nal::{Connection, RawPollFd, Ready, MAX_BUFFER_SIZE};
use std::ffi::{c_int, c_uint};
use std::ptr::{self, NonNull};

/// A vtable's `get_read` or `get_send`.
type GetBuffer = Option<unsafe extern "C" fn(*const NAL_CONNECTION) -> *mut NAL_BUFFER>;

/// A connection and its place in a selector. Opaque to C.
#[derive(Debug, Default)]
pub struct NAL_CONNECTION {
    pub(crate) conn: Connection,
    pub(crate) link: Option<Link>,
    pub(super) mapped: Mapped<NAL_CONNECTION_vtable>,
}

impl NAL_CONNECTION {
    /// Whether the object is set up, as a built-in connection or by a C
    /// vtable.
    fn in_use(&self) -> bool {
        self.conn.is_active() || !self.mapped.vtable().is_null()
    }
}

impl Socket for NAL_CONNECTION {
    fn member(this: NonNull<Self>) -> Member {
        Member::Connection(this)
    }
    fn builtin() -> &'static NAL_CONNECTION_vtable {
        &CONNECTION
    }
    fn close(&mut self) {
        self.conn.reset();
    }
    fn poll_entry(&self) -> Option<RawPollFd> {
        self.conn.poll_entry()
    }
    fn ready_fd(&self) -> Option<c_int> {
        self.conn.raw_fd()
    }
    fn set_ready(&mut self, ready: Ready) {
        self.conn.set_ready(ready);
    }
    fn clear_ready(&mut self) {
        self.conn.clear_ready();
    }
    fn link(&self) -> Option<Link> {
        self.link
    }
    fn set_link(&mut self, link: Option<Link>) {
        self.link = link;
    }
    fn selector_del_hooks(vt: &NAL_CONNECTION_vtable) -> (SelTok<Self>, SelDel<Self>) {
        (vt.pre_selector_del, vt.post_selector_del)
    }
}

/// One of the connection's buffers: for a connection driven by C, what its
/// vtable's `hook` returns; for a built-in one, `own`'s buffer once it is
/// set up. NULL otherwise.
///
/// # Safety
/// `conn` is NULL or a live connection object.
unsafe fn buffer(
    conn: *mut NAL_CONNECTION,
    hook: impl FnOnce(&NAL_CONNECTION_vtable) -> GetBuffer,
    own: impl FnOnce(&mut Connection) -> &mut NAL_BUFFER,
) -> *mut NAL_BUFFER {
    // SAFETY: per this function's contract.
    match unsafe { conn_vt(conn) } {
        // SAFETY: the type's own handler on its own object.
        Some(vt) => hook(vt).map_or(ptr::null_mut(), |f| unsafe { f(conn) }),
        // SAFETY: per this function's contract.
        None => match unsafe { object_mut(conn) } {
            Some(c) if c.conn.is_active() => own(&mut c.conn),
            _ => ptr::null_mut(),
        },
    }
}

/// Maps `vt` onto `conn` and runs `start` (its `connect` or `accept`);
/// resets the connection when either fails.
///
/// # Safety
/// `conn` is a live, unused connection, not borrowed; `vt` is NULL or a
/// static vtable.
unsafe fn start_custom(
    conn: *mut NAL_CONNECTION,
    vt: *const NAL_CONNECTION_vtable,
    start: impl FnOnce(&NAL_CONNECTION_vtable) -> c_int,
) -> c_int {
    // SAFETY: per this function's contract; the hooks get the live object.
    let ok = unsafe { vt.as_ref() }
        .is_some_and(|vt| unsafe { mapping::map(conn, vt) } && start(vt) != 0);
    if !ok {
        // SAFETY: per this function's contract.
        unsafe { NAL_CONNECTION_reset(conn) };
    }
    int_bool(ok)
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
    export!(ptr::null_mut(), [], || into_handle(
        NAL_CONNECTION::default()
    ))
}

/// Closes and releases a connection, taking it out of its selector first.
/// NULL is ignored.
///
/// # Safety
/// `conn` is NULL or an object from `NAL_CONNECTION_new()` not yet freed
/// (and not owned by a `DC_PLUG` or `DC_SERVER` client that will free it).
#[no_mangle]
pub unsafe extern "C" fn NAL_CONNECTION_free(conn: *mut NAL_CONNECTION) {
    // SAFETY: forwarded from this function's contract.
    export!((), [NonNull::new(conn)], |c| unsafe {
        socket::free(c.as_ptr())
    })
}

/// Closes a connection and takes it out of its selector, so that the
/// object can be connected again; its buffers keep their size.
///
/// # Safety
/// `conn` is NULL or a live connection object.
#[no_mangle]
pub unsafe extern "C" fn NAL_CONNECTION_reset(conn: *mut NAL_CONNECTION) {
    // SAFETY: forwarded from this function's contract.
    export!((), [NonNull::new(conn)], |c| unsafe {
        socket::reset(c.as_ptr())
    })
}

/// Starts a non-blocking connect to `addr`; both buffers get the address's
/// default size. A UNIX connect completes at once; a TCP one completes
/// during later `NAL_CONNECTION_io()` calls (see
/// `NAL_CONNECTION_is_established()`). An address of a linked-in type maps
/// its connection type onto `conn` and calls its `connect`.
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
    export!(0, [object_mut(conn), object(addr)], |c, a| {
        // SAFETY: forwarded from this function's contract.
        unsafe { create(conn, c, addr, a) }
    })
}

/// Accepts the connection a selector found waiting on `list`; both
/// buffers get the listener's default size. A listener of a linked-in type
/// names the connection type (its `pre_accept`), which is mapped onto
/// `conn` and given the listener (its `accept`).
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
    export!(0, [object_mut(conn), object_mut(list)], |c, l| {
        // SAFETY: forwarded from this function's contract.
        unsafe { accept(conn, c, list, l) }
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
    export!(0, [], || {
        // SAFETY: forwarded from this function's contract.
        match unsafe { conn_vt(conn) } {
            Some(_) if size as usize > MAX_BUFFER_SIZE => 0,
            // SAFETY: the type's own handler on its own object.
            Some(vt) => vt.set_size.map_or(0, |f| unsafe { f(conn, size) }),
            // SAFETY: forwarded from this function's contract.
            None => int_bool(
                unsafe { object_mut(conn) }
                    .is_some_and(|c| c.conn.is_active() && c.conn.set_size(size as usize)),
            ),
        }
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
    // SAFETY: forwarded from this function's contract.
    export!(ptr::null_mut(), [], || unsafe {
        buffer(conn, |vt| vt.get_read, Connection::read_buffer)
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
    // SAFETY: forwarded from this function's contract.
    export!(ptr::null_mut(), [], || unsafe {
        buffer(conn, |vt| vt.get_send, Connection::send_buffer)
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
    export!(ptr::null(), [], || unsafe {
        NAL_CONNECTION_get_read(conn.cast_mut())
    }
    .cast_const())
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
    export!(ptr::null(), [], || unsafe {
        NAL_CONNECTION_get_send(conn.cast_mut())
    }
    .cast_const())
}

/// Moves bytes as the last `NAL_SELECTOR_select()` found possible:
/// completes a pending connect, reads into the read buffer, sends from the
/// send buffer. A connection of a linked-in type runs its `do_io`.
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
    export!(0, [], || {
        // SAFETY: forwarded from this function's contract.
        match unsafe { conn_vt(conn) } {
            // SAFETY: forwarded; the borrow ends at once.
            Some(_) if unsafe { (*conn).link }.is_none() => 0,
            // SAFETY: the type's own handler on its own object.
            Some(vt) => vt.do_io.map_or(0, |f| int_bool(unsafe { f(conn) } != 0)),
            // SAFETY: forwarded from this function's contract.
            None => int_bool(
                unsafe { object_mut(conn) }.is_some_and(|c| c.link.is_some() && c.conn.io()),
            ),
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
    export!(0, [], || {
        // SAFETY: forwarded from this function's contract.
        match unsafe { conn_vt(conn) } {
            // SAFETY: the type's own handler on its own object.
            Some(vt) => vt
                .is_established
                .map_or(0, |f| int_bool(unsafe { f(conn) } != 0)),
            // SAFETY: forwarded from this function's contract.
            None => int_bool(unsafe { object(conn) }.is_some_and(|c| c.conn.is_established())),
        }
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
/// selector, or when its type's `pre_selector_add` or `post_selector_add`
/// (or a selector made from a C vtable) refused.
#[no_mangle]
pub unsafe extern "C" fn NAL_CONNECTION_add_to_selector(
    conn: *mut NAL_CONNECTION,
    sel: *mut NAL_SELECTOR,
) -> c_int {
    export!(0, [object(conn), NonNull::new(conn)], |c, member| {
        let free = c.link.is_none() && c.in_use();
        // SAFETY: the borrow `c` has ended; `sel` per the contract.
        free && unsafe { super::selector::add_member(sel, Member::Connection(member)) }
    })
}

/// Takes a connection out of its selector. Nothing happens for NULL or a
/// connection in no selector.
///
/// # Safety
/// `conn` is NULL or a live connection object.
#[no_mangle]
pub unsafe extern "C" fn NAL_CONNECTION_del_from_selector(conn: *mut NAL_CONNECTION) {
    export!((), [NonNull::new(conn)], |conn| {
        // SAFETY: forwarded from this function's contract.
        unsafe { socket::leave_selector(conn.as_ptr()) }
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
    let size = def_buffer_size as usize;
    export!(0, [two_objects_mut(conn1, conn2)], |(a, b)| {
        let ours = a.mapped.vtable().is_null() && b.mapped.vtable().is_null();
        ours && Connection::pair(&mut a.conn, &mut b.conn, size).is_ok()
    })
}

/// The body of `NAL_CONNECTION_create()`, with `c` and `a` borrowed from
/// `conn` and `addr`.
///
/// # Safety
/// As `NAL_CONNECTION_create()`; `c` and `a` are not used once a hook may
/// run.
unsafe fn create(
    conn: *mut NAL_CONNECTION,
    c: &mut NAL_CONNECTION,
    addr: *const NAL_ADDRESS,
    a: &NAL_ADDRESS,
) -> c_int {
    if c.in_use() {
        return 0;
    }
    // SAFETY: forwarded from this function's contract.
    if unsafe { addr_vt(addr) }.is_some() {
        // SAFETY: forwarded; the borrows above are not used again.
        unsafe {
            if super::address::NAL_ADDRESS_can_connect(addr) == 0 {
                return 0;
            }
            let vt = super::devel::nal_address_get_connection(addr);
            return start_custom(conn, vt, |vt| vt.connect.map_or(0, |f| f(conn, addr)));
        }
    }
    let Some(address) = &a.address else {
        return 0;
    };
    int_bool(c.conn.connect(address, a.buffer_size as usize).is_ok())
}

/// The body of `NAL_CONNECTION_accept()`, with `c` and `l` borrowed from
/// `conn` and `list`.
///
/// # Safety
/// As `NAL_CONNECTION_accept()`; `c` and `l` are not used once a hook may
/// run.
unsafe fn accept(
    conn: *mut NAL_CONNECTION,
    c: &mut NAL_CONNECTION,
    list: *mut NAL_LISTENER,
    l: &mut NAL_LISTENER,
) -> c_int {
    if c.in_use() {
        return 0;
    }
    // SAFETY: forwarded from this function's contract.
    if let Some(lvt) = unsafe { list_vt(list) } {
        let Some(pre_accept) = lvt.pre_accept else {
            return 0;
        };
        // SAFETY: the listener type's own handlers; the borrows above are
        // not used again.
        return unsafe {
            let vt = pre_accept(list);
            start_custom(conn, vt, |vt| vt.accept.map_or(0, |f| f(conn, list)))
        };
    }
    int_bool(c.conn.accept(&mut l.listener).is_ok())
}
