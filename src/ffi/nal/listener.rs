//! `NAL_LISTENER`: a listening socket whose waiting connections a selector
//! reports.

use super::super::boundary::{
    c_str, free_handle, guard, int_bool, into_handle, object, object_mut,
};
use super::selector::{join, leave, Link, Member};
use super::{NAL_ADDRESS, NAL_SELECTOR};
use crate::nal::Acceptor;
use std::ffi::{c_char, c_int};
use std::ptr::{self, NonNull};

/// A listener and its place in a selector. Opaque to C.
#[derive(Debug, Default)]
pub struct NAL_LISTENER {
    pub(super) listener: Acceptor,
    pub(super) link: Option<Link>,
}

impl NAL_LISTENER {
    fn leave_selector(&mut self) {
        if let Some(link) = self.link.take() {
            // SAFETY: a current link names a live selector (it unlinks its
            // objects before it is freed).
            unsafe { leave(link) };
            self.listener.clear_ready();
        }
    }
}

/// Creates a listener object that is not listening yet.
///
/// # Safety
/// None.
///
/// # Returns
/// The object, to be released with `NAL_LISTENER_free()`.
#[no_mangle]
pub extern "C" fn NAL_LISTENER_new() -> *mut NAL_LISTENER {
    guard(ptr::null_mut(), || into_handle(NAL_LISTENER::default()))
}

/// Closes and releases a listener, taking it out of its selector first.
/// A UNIX listener removes the socket file it created (if that file is
/// still its own, and not from a forked child). NULL is ignored.
///
/// # Safety
/// `list` is NULL or an object from `NAL_LISTENER_new()` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn NAL_LISTENER_free(list: *mut NAL_LISTENER) {
    guard((), || {
        // SAFETY: forwarded from this function's contract.
        if let Some(l) = unsafe { object_mut(list) } {
            l.leave_selector();
        }
        // SAFETY: forwarded; no selector links to it any more.
        unsafe { free_handle(list) }
    })
}

/// Stops listening (removing the socket file it created, as
/// `NAL_LISTENER_free()` does) and takes the listener out of its selector,
/// so that the object can listen again.
///
/// # Safety
/// `list` is NULL or a live listener object.
#[no_mangle]
pub unsafe extern "C" fn NAL_LISTENER_reset(list: *mut NAL_LISTENER) {
    guard((), || {
        // SAFETY: forwarded from this function's contract.
        if let Some(l) = unsafe { object_mut(list) } {
            l.leave_selector();
            l.listener.reset();
        }
    })
}

/// Listens on `addr`; accepted connections get the address's default buffer
/// size. A UNIX address replaces a stale socket file, but never a regular
/// file or the socket of a server that is still running.
///
/// # Safety
/// `list` and `addr` are NULL or live objects.
///
/// # Returns
/// 1 on success; 0 for NULL, a listener already listening, an address that
/// cannot be listened on, or a failure to bind (address in use, path
/// taken).
#[no_mangle]
pub unsafe extern "C" fn NAL_LISTENER_create(
    list: *mut NAL_LISTENER,
    addr: *const NAL_ADDRESS,
) -> c_int {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let (Some(l), Some(a)) = (unsafe { object_mut(list) }, unsafe { object(addr) }) else {
            return 0;
        };
        match &a.address {
            Some(address) if address.can_listen() => {
                int_bool(l.listener.listen(address, a.buffer_size as usize).is_ok())
            }
            _ => 0,
        }
    })
}

/// Adds a listener to a selector, so that `NAL_SELECTOR_select()` reports
/// waiting connections.
///
/// # Safety
/// `list` and `sel` are NULL or live objects.
///
/// # Returns
/// 1 on success; 0 for NULL, a listener not listening, or one already in a
/// selector.
#[no_mangle]
pub unsafe extern "C" fn NAL_LISTENER_add_to_selector(
    list: *mut NAL_LISTENER,
    sel: *mut NAL_SELECTOR,
) -> c_int {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let Some(l) = (unsafe { object_mut(list) }) else {
            return 0;
        };
        if l.link.is_some() || !l.listener.is_active() {
            return 0;
        }
        let Some(member) = NonNull::new(list).map(Member::Listener) else {
            return 0;
        };
        // SAFETY: `sel` per the contract; the listener is live and in no
        // selector.
        l.link = unsafe { join(sel, member) };
        int_bool(l.link.is_some())
    })
}

/// Takes a listener out of its selector. Nothing happens for NULL or a
/// listener in no selector.
///
/// # Safety
/// `list` is NULL or a live listener object.
#[no_mangle]
pub unsafe extern "C" fn NAL_LISTENER_del_from_selector(list: *mut NAL_LISTENER) {
    guard((), || {
        // SAFETY: forwarded from this function's contract.
        if let Some(l) = unsafe { object_mut(list) } {
            l.leave_selector();
        }
    })
}

/// Whether the listener will accept no more connections. Socket listeners
/// never finish, so this is always 0, as in the original.
///
/// # Safety
/// `list` is NULL or a live listener object.
///
/// # Returns
/// 0.
#[no_mangle]
pub unsafe extern "C" fn NAL_LISTENER_finished(list: *const NAL_LISTENER) -> c_int {
    let _ = list;
    0
}

/// Gives a UNIX listener's socket file to a user and/or group (either may
/// be NULL; a user alone also sets the user's primary group).
///
/// # Safety
/// `list` is NULL or a live listener object; `ownername` and `groupname`
/// are NULL or NUL-terminated strings.
///
/// # Returns
/// 1 on success; 0 for a NULL listener, one that is not a UNIX listener, an
/// unknown user or group, or a failed `chown(2)`.
#[no_mangle]
pub unsafe extern "C" fn NAL_LISTENER_set_fs_owner(
    list: *mut NAL_LISTENER,
    ownername: *const c_char,
    groupname: *const c_char,
) -> c_int {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let (l, user, group) = unsafe { (object(list), c_str(ownername), c_str(groupname)) };
        let Some(l) = l else {
            return 0;
        };
        // A name that is given but not valid UTF-8 names no user or group.
        if (!ownername.is_null() && user.is_none()) || (!groupname.is_null() && group.is_none()) {
            return 0;
        }
        int_bool(l.listener.set_owner(user, group).is_ok())
    })
}

/// Sets a UNIX listener's socket file mode from an octal string such as
/// `"660"`.
///
/// # Safety
/// `list` is NULL or a live listener object; `octal_string` is NULL or a
/// NUL-terminated string.
///
/// # Returns
/// 1 on success; 0 for NULL, a listener that is not a UNIX listener, a
/// string that is not an octal mode, or a failed `chmod(2)`.
#[no_mangle]
pub unsafe extern "C" fn NAL_LISTENER_set_fs_perms(
    list: *mut NAL_LISTENER,
    octal_string: *const c_char,
) -> c_int {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let (Some(l), Some(octal)) = (unsafe { object(list) }, unsafe { c_str(octal_string) })
        else {
            return 0;
        };
        int_bool(l.listener.set_mode(octal).is_ok())
    })
}
