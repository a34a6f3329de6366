//! `NAL_LISTENER`: a listening socket whose waiting connections a selector
//! reports, or a listener of a type C code linked in (`libnal/nal_devel.h`),
//! driven by that type's vtable.

use super::super::boundary::{
    c_str, c_str_or_null, export, int_bool, into_handle, object, object_mut,
};
use super::devel::builtin::LISTENER;
use super::devel::hooks::{addr_vt, list_vt};
use super::devel::mapping::{self, Mapped};
use super::devel::types::{NAL_LISTENER_vtable, SelDel, SelTok};
use super::selector::{Link, Member};
use super::socket::{self, Socket};
use super::{NAL_ADDRESS, NAL_SELECTOR};
use crate::nal::{Acceptor, RawPollFd, Ready};
use std::ffi::{c_char, c_int};
use std::ptr::{self, NonNull};

/// A listener and its place in a selector. Opaque to C.
#[derive(Debug, Default)]
pub struct NAL_LISTENER {
    pub(super) listener: Acceptor,
    pub(super) link: Option<Link>,
    pub(super) mapped: Mapped<NAL_LISTENER_vtable>,
}

impl Socket for NAL_LISTENER {
    fn member(this: NonNull<Self>) -> Member {
        Member::Listener(this)
    }
    fn builtin() -> &'static NAL_LISTENER_vtable {
        &LISTENER
    }
    fn close(&mut self) {
        self.listener.reset();
    }
    fn poll_entry(&self) -> Option<RawPollFd> {
        self.listener.poll_entry()
    }
    fn ready_fd(&self) -> Option<c_int> {
        self.listener.poll_entry().map(|e| e.fd)
    }
    fn set_ready(&mut self, ready: Ready) {
        self.listener.set_ready(ready);
    }
    fn clear_ready(&mut self) {
        self.listener.clear_ready();
    }
    fn link(&self) -> Option<Link> {
        self.link
    }
    fn set_link(&mut self, link: Option<Link>) {
        self.link = link;
    }
    fn selector_del_hooks(vt: &NAL_LISTENER_vtable) -> (SelTok<Self>, SelDel<Self>) {
        (vt.pre_selector_del, vt.post_selector_del)
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
    export!(ptr::null_mut(), [], || into_handle(NAL_LISTENER::default()))
}

/// Closes and releases a listener, taking it out of its selector first.
/// A UNIX listener removes the socket file it created (if that file is
/// still its own, and not from a forked child). NULL is ignored.
///
/// # Safety
/// `list` is NULL or an object from `NAL_LISTENER_new()` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn NAL_LISTENER_free(list: *mut NAL_LISTENER) {
    // SAFETY: forwarded from this function's contract.
    export!((), [NonNull::new(list)], |l| unsafe {
        socket::free(l.as_ptr())
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
    // SAFETY: forwarded from this function's contract.
    export!((), [NonNull::new(list)], |l| unsafe {
        socket::reset(l.as_ptr())
    })
}

/// Listens on `addr`; accepted connections get the address's default buffer
/// size. A UNIX address replaces a stale socket file, but never a regular
/// file or the socket of a server that is still running. An address of a
/// linked-in type maps its listener type onto `list` and calls its
/// `listen`.
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
    export!(0, [object_mut(list), object(addr)], |l, a| {
        // SAFETY: forwarded from this function's contract.
        unsafe { create(list, l, addr, a) }
    })
}

/// The body of `NAL_LISTENER_create()`, with `l` and `a` borrowed from
/// `list` and `addr`.
///
/// # Safety
/// As `NAL_LISTENER_create()`; `l` and `a` are not used once a hook may
/// run.
unsafe fn create(
    list: *mut NAL_LISTENER,
    l: &mut NAL_LISTENER,
    addr: *const NAL_ADDRESS,
    a: &NAL_ADDRESS,
) -> c_int {
    if l.listener.is_active() || !l.mapped.vtable().is_null() {
        return 0;
    }
    // SAFETY: forwarded from this function's contract.
    if unsafe { addr_vt(addr) }.is_some() {
        // SAFETY: forwarded; the borrows above are not used again.
        return unsafe { listen_custom(list, addr) };
    }
    match &a.address {
        Some(address) if address.can_listen() => {
            int_bool(l.listener.listen(address, a.buffer_size as usize).is_ok())
        }
        _ => 0,
    }
}

/// Maps the listener type of a linked-in address onto `list` and listens.
///
/// # Safety
/// `list` and `addr` are live objects, not borrowed; `addr` is of a
/// linked-in type.
unsafe fn listen_custom(list: *mut NAL_LISTENER, addr: *const NAL_ADDRESS) -> c_int {
    // SAFETY: per this function's contract.
    let vt = unsafe { super::devel::nal_address_get_listener(addr).as_ref() };
    // SAFETY: a transport's vtable is static; its hooks get live objects.
    let ok = vt.is_some_and(|vt| unsafe {
        mapping::map(list, vt) && vt.listen.is_some_and(|f| f(list, addr) != 0)
    });
    if !ok {
        // SAFETY: per this function's contract.
        unsafe { NAL_LISTENER_reset(list) };
    }
    int_bool(ok)
}

/// Adds a listener to a selector, so that `NAL_SELECTOR_select()` reports
/// waiting connections.
///
/// # Safety
/// `list` and `sel` are NULL or live objects.
///
/// # Returns
/// 1 on success; 0 for NULL, a listener not listening, or one already in a
/// selector, or when its type's `pre_selector_add` or `post_selector_add`
/// (or a selector made from a C vtable) refused.
#[no_mangle]
pub unsafe extern "C" fn NAL_LISTENER_add_to_selector(
    list: *mut NAL_LISTENER,
    sel: *mut NAL_SELECTOR,
) -> c_int {
    export!(0, [object(list), NonNull::new(list)], |l, member| {
        let custom = !l.mapped.vtable().is_null();
        let free = l.link.is_none() && (custom || l.listener.is_active());
        // SAFETY: the borrow `l` has ended; `sel` per the contract.
        free && unsafe { super::selector::add_member(sel, Member::Listener(member)) }
    })
}

/// Takes a listener out of its selector. Nothing happens for NULL or a
/// listener in no selector.
///
/// # Safety
/// `list` is NULL or a live listener object.
#[no_mangle]
pub unsafe extern "C" fn NAL_LISTENER_del_from_selector(list: *mut NAL_LISTENER) {
    export!((), [NonNull::new(list)], |list| {
        // SAFETY: forwarded from this function's contract.
        unsafe { socket::leave_selector(list.as_ptr()) }
    })
}

/// Whether the listener will accept no more connections. Socket listeners
/// never finish, as in the original; a linked-in type's `finished` decides
/// for its listeners.
///
/// # Safety
/// `list` is NULL or a live listener object.
///
/// # Returns
/// 0 for a socket listener and for NULL; what `finished` returns.
#[no_mangle]
pub unsafe extern "C" fn NAL_LISTENER_finished(list: *const NAL_LISTENER) -> c_int {
    export!(0, [], || {
        // SAFETY: forwarded from this function's contract; the type's own
        // handler on its own object.
        unsafe { list_vt(list) }
            .and_then(|vt| vt.finished)
            .map(|f| unsafe { f(list) })
    })
}

/// Gives a UNIX listener's socket file to a user and/or group (either may
/// be NULL; a user alone also sets the user's primary group). Each is a
/// name or a numeric id, by the rules of `dc_server -sockowner` and
/// `-sockgroup`: a user is looked up by name, then by id (an id needs an
/// account); a group by name, then a number is taken as it is.
///
/// # Safety
/// `list` is NULL or a live listener object; `ownername` and `groupname`
/// are NULL or NUL-terminated strings.
///
/// # Returns
/// 1 on success; 0 for a NULL listener, one that is not a UNIX listener, an
/// unknown user or group, or a failed `chown(2)`. A linked-in type's
/// `set_fs_owner` decides for its listeners (0 when it has none).
#[no_mangle]
pub unsafe extern "C" fn NAL_LISTENER_set_fs_owner(
    list: *mut NAL_LISTENER,
    ownername: *const c_char,
    groupname: *const c_char,
) -> c_int {
    export!(0, [], || {
        // SAFETY: forwarded from this function's contract.
        match unsafe { list_vt(list) } {
            // SAFETY: the type's own handler, with the caller's strings.
            Some(vt) => vt
                .set_fs_owner
                .map_or(0, |f| unsafe { f(list, ownername, groupname) }),
            None => {
                // SAFETY: forwarded from this function's contract.
                let (l, user, group) = unsafe {
                    (
                        object(list),
                        c_str_or_null(ownername),
                        c_str_or_null(groupname),
                    )
                };
                int_bool(matches!((l, user, group),
                    (Some(l), Some(user), Some(group)) if l.listener.set_owner(user, group).is_ok()))
            }
        }
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
/// string that is not an octal mode, or a failed `chmod(2)`. A linked-in
/// type's `set_fs_perms` decides for its listeners (0 when it has none).
#[no_mangle]
pub unsafe extern "C" fn NAL_LISTENER_set_fs_perms(
    list: *mut NAL_LISTENER,
    octal_string: *const c_char,
) -> c_int {
    export!(0, [], || {
        // SAFETY: forwarded from this function's contract.
        match unsafe { list_vt(list) } {
            // SAFETY: the type's own handler, with the caller's string.
            Some(vt) => vt
                .set_fs_perms
                .map_or(0, |f| unsafe { f(list, octal_string) }),
            None => {
                // SAFETY: forwarded from this function's contract.
                let (l, octal) = unsafe { (object(list), c_str(octal_string)) };
                int_bool(matches!((l, octal),
                    (Some(l), Some(octal)) if l.listener.set_mode(octal).is_ok()))
            }
        }
    })
}
