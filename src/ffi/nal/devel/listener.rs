//! The listener functions of `nal_devel.h`.

use super::super::socket;
use super::super::{NAL_LISTENER, NAL_SELECTOR};
use super::builtin::{self, CONNECTION, LISTENER};
use super::hooks::{self, list_vt};
use super::types::{NAL_CONNECTION_vtable, NAL_LISTENER_vtable, NAL_SELECTOR_TOKEN};
use crate::ffi::boundary::{export, object};
use crate::ffi::nal::selector::{Link, Member};
use std::ffi::{c_int, c_void};
use std::ptr::{self, NonNull};

/// Maps `vtable` onto a listener, as `nal_address_set_vtable()` does for an
/// address; the listener first leaves its selector and stops listening.
/// The built-in listener vtable leaves a built-in listener that is not
/// listening yet, for its `listen`.
///
/// # Safety
/// `list` is NULL or a live listener object; `vtable` is NULL or a valid
/// vtable that lives as long as the object uses it.
///
/// # Returns
/// 1 on success; 0 for NULL, when memory ran out, or when `on_create` is
/// missing or returned 0.
#[no_mangle]
pub unsafe extern "C" fn nal_listener_set_vtable(
    list: *mut NAL_LISTENER,
    vtable: *const NAL_LISTENER_vtable,
) -> c_int {
    // SAFETY: forwarded from this function's contract.
    export!(0, [vtable.as_ref(), NonNull::new(list)], |vt, l| unsafe {
        socket::set_vtable(l.as_ptr(), vt)
    })
}

/// The vtable of the listener's type.
///
/// # Safety
/// `list` is NULL or a live listener object.
///
/// # Returns
/// The mapped vtable; the built-in listener vtable for a built-in listener
/// that is listening; NULL for NULL or a listener not set up.
#[no_mangle]
pub unsafe extern "C" fn nal_listener_get_vtable(
    list: *const NAL_LISTENER,
) -> *const NAL_LISTENER_vtable {
    export!(
        ptr::null(),
        [object(list)],
        |l| match l.listener.is_active() {
            true => ptr::from_ref(&LISTENER),
            false => l.mapped.vtable(),
        }
    )
}

/// The listener's implementation data, `vtdata_size` bytes of its type.
///
/// # Safety
/// `list` is NULL or a live listener object.
///
/// # Returns
/// The data (also while its type's `on_reset` or `on_destroy` runs); NULL
/// for NULL, a built-in listener, or no data asked for.
#[no_mangle]
pub unsafe extern "C" fn nal_listener_get_vtdata(list: *const NAL_LISTENER) -> *mut c_void {
    export!(
        ptr::null_mut(),
        [object(list)],
        |l| match l.listener.is_active() {
            true => ptr::null_mut(),
            false => l.mapped.data(),
        }
    )
}

/// The connection type of the next connection to accept from the listener
/// (its type's `pre_accept`, which may also prepare the accept).
///
/// # Safety
/// `list` is NULL or a live listener object.
///
/// # Returns
/// The vtable; the built-in connection vtable for a built-in listener that
/// is listening; NULL for NULL, a listener not set up, or when the type
/// has nothing to accept.
#[no_mangle]
pub unsafe extern "C" fn nal_listener_pre_accept(
    list: *mut NAL_LISTENER,
) -> *const NAL_CONNECTION_vtable {
    export!(ptr::null(), [], || {
        // SAFETY: forwarded from this function's contract.
        match unsafe { list_vt(list) } {
            // SAFETY: the type's own handler on its own object.
            Some(vt) => vt.pre_accept.map_or(ptr::null(), |f| unsafe { f(list) }),
            // SAFETY: forwarded from this function's contract.
            None => match unsafe { object(list) } {
                Some(l) if l.listener.is_active() => &CONNECTION,
                _ => ptr::null(),
            },
        }
    })
}

/// Runs the listener's `pre_select` with its selector and token: a
/// selector implementation calls this for each listener before it waits.
/// Nothing happens for NULL or a listener in no selector.
///
/// # Safety
/// `list` is NULL or a live listener object.
#[no_mangle]
pub unsafe extern "C" fn nal_listener_pre_select(list: *mut NAL_LISTENER) {
    export!((), [socket::linked(list)], |(member, link)| {
        // SAFETY: forwarded from this function's contract; the link names
        // its live selector.
        unsafe { select_hook(member, link, true) }
    })
}

/// Runs the listener's `post_select` with its selector and token: a
/// selector implementation calls this for each listener after it waited.
/// Nothing happens for NULL or a listener in no selector.
///
/// # Safety
/// `list` is NULL or a live listener object.
#[no_mangle]
pub unsafe extern "C" fn nal_listener_post_select(list: *mut NAL_LISTENER) {
    export!((), [socket::linked(list)], |(member, link)| {
        // SAFETY: forwarded from this function's contract; the link names
        // its live selector.
        unsafe { select_hook(member, link, false) }
    })
}

/// Runs an object's `pre_select` or `post_select`: the C hook of an
/// object driven by C, the built-in vtable's for a built-in one.
///
/// # Safety
/// `member` is live and linked by `link` to a live selector; neither is
/// borrowed.
pub(super) unsafe fn select_hook(member: Member, link: Link, pre: bool) {
    let sel = link.selector.as_ptr();
    // SAFETY: per this function's contract; the hooks get live objects.
    unsafe {
        match member {
            Member::Listener(l) if l.as_ref().mapped.vtable().is_null() => {
                builtin::select(l.as_ptr(), sel, link.token, pre);
            }
            Member::Connection(c) if c.as_ref().mapped.vtable().is_null() => {
                builtin::select(c.as_ptr(), sel, link.token, pre);
            }
            _ => hooks::member_select(member, sel, link.token, pre),
        }
    }
}

/// The listener's selector, and its token there through `token` (left
/// alone when the listener is in no selector or `token` is NULL).
///
/// # Safety
/// `list` is NULL or a live listener object; `token` is NULL or writable.
///
/// # Returns
/// The selector; NULL for NULL or a listener in no selector.
#[no_mangle]
pub unsafe extern "C" fn nal_listener_get_selector(
    list: *const NAL_LISTENER,
    token: *mut NAL_SELECTOR_TOKEN,
) -> *mut NAL_SELECTOR {
    // SAFETY: forwarded from this function's contract.
    unsafe { socket::selector(list, token) }
}

/// Records `sel` and `token` as the listener's selector without telling
/// either side: for a selector implementation that lists the listener
/// itself. NULL `sel` forgets the selector.
///
/// # Safety
/// `list` is NULL or a live listener object; `sel` is NULL or a live
/// selector that lists the listener under `token` until the listener
/// leaves it.
#[no_mangle]
pub unsafe extern "C" fn nal_listener_set_selector_raw(
    list: *mut NAL_LISTENER,
    sel: *mut NAL_SELECTOR,
    token: NAL_SELECTOR_TOKEN,
) {
    // SAFETY: forwarded from this function's contract.
    unsafe { socket::set_selector_raw(list, sel, token) }
}
