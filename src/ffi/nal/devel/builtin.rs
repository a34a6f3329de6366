//! What C sees of the built-in types through `nal_devel.h`: the registry of
//! address types (headed by the built-in socket type), and static vtables
//! for the built-in address, listener, connection and selector types whose
//! handlers run the same Rust code as the `nal.h` functions.
//!
//! The built-in objects never carry one of these vtables in their mapping:
//! an object with no C vtable mapped is a built-in one, and the functions
//! of `nal.h` take their Rust paths for it.

use super::super::selector::{join, leave, Kind, Link, Member};
use super::super::socket::Socket;
use super::super::{NAL_ADDRESS, NAL_BUFFER, NAL_CONNECTION, NAL_LISTENER, NAL_SELECTOR};
use super::fd_flags;
use super::selector::nal_selector_ctrl;
use super::types::*;
use crate::ffi::boundary::{c_str, guard, int_bool, object_mut};
use crate::nal::{Address, RawPollFd, Ready};
use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr};
use std::ptr::{self, NonNull};
use std::sync::Mutex;

/// The head of the registry: the built-in socket address type, whose `next`
/// is the first type a program linked in.
pub(crate) struct AddressTypes(UnsafeCell<NAL_ADDRESS_vtable>);

// SAFETY: the vtable's only changing field, `next`, is written and read
// under REGISTRY's lock; the rest is constant.
unsafe impl Sync for AddressTypes {}

struct Prefixes([*const c_char; 5]);

// SAFETY: pointers to string literals, never written.
unsafe impl Sync for Prefixes {}

/// The prefixes of the built-in address strings.
static PREFIXES: Prefixes = Prefixes([
    c"IP:".as_ptr(),
    c"IPv4:".as_ptr(),
    c"IPv6:".as_ptr(),
    c"UNIX:".as_ptr(),
    ptr::null(),
]);

pub(crate) static SOCKETS: AddressTypes = AddressTypes(UnsafeCell::new(NAL_ADDRESS_vtable {
    unique_name: c"sockets".as_ptr(),
    vtdata_size: 0,
    prefixes: PREFIXES.0.as_ptr(),
    on_create: Some(created),
    on_destroy: Some(addr_forget),
    on_reset: Some(addr_forget),
    pre_close: None,
    parse: Some(addr_parse),
    can_connect: Some(super::super::address::NAL_ADDRESS_can_connect),
    can_listen: Some(super::super::address::NAL_ADDRESS_can_listen),
    create_listener: Some(addr_listener),
    create_connection: Some(addr_connection),
    next: ptr::null_mut(),
}));

/// Held while the registry's links are read or written.
static REGISTRY: Mutex<()> = Mutex::new(());

fn registry() -> std::sync::MutexGuard<'static, ()> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// The built-in address type, the head of the registry.
pub(crate) fn sockets() -> *mut NAL_ADDRESS_vtable {
    SOCKETS.0.get()
}

/// The NUL-terminated name or prefix at `p` as bytes; empty for NULL.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn text<'a>(p: *const c_char) -> &'a [u8] {
    if p.is_null() {
        return b"";
    }
    // SAFETY: per this function's contract.
    unsafe { CStr::from_ptr(p) }.to_bytes()
}

/// The first registered type with a prefix that starts `s`.
pub(crate) fn type_for(s: &[u8]) -> Option<&'static NAL_ADDRESS_vtable> {
    let _held = registry();
    let mut vt: *const NAL_ADDRESS_vtable = sockets();
    // SAFETY: the registry holds the built-in type and types linked in by
    // programs, which nal_devel.h requires to live as long as the program;
    // their `next` links are only changed under the lock held here.
    while let Some(t) = unsafe { vt.as_ref() } {
        let mut pre = t.prefixes;
        // SAFETY: a NULL-terminated array of NUL-terminated strings.
        while !pre.is_null() && !unsafe { *pre }.is_null() {
            // SAFETY: as above.
            let p = unsafe { text(*pre) };
            if !p.is_empty() && s.starts_with(p) {
                return Some(t);
            }
            // SAFETY: within the array, before its NULL.
            pre = unsafe { pre.add(1) };
        }
        vt = t.next;
    }
    None
}

/// Links in the types of the list starting at `vt`, skipping those whose
/// unique name is already registered (or missing).
///
/// # Safety
/// `vt` is NULL or a list of vtables, linked by `next`, that live as long as
/// the program; nothing else links them concurrently.
pub(crate) unsafe fn link(mut vt: *mut NAL_ADDRESS_vtable) {
    let _held = registry();
    // SAFETY: per this function's contract, and the lock for the links.
    while let Some(t) = unsafe { vt.as_mut() } {
        let next = t.next;
        // SAFETY: as above.
        let name = unsafe { text(t.unique_name) };
        let mut last = sockets();
        let mut known = name.is_empty();
        // SAFETY: registered vtables are live; links change only here.
        while let Some(r) = unsafe { last.as_mut() } {
            // SAFETY: as above.
            if ptr::eq(r, t) || unsafe { text(r.unique_name) } == name {
                known = true;
                break;
            }
            if r.next.is_null() {
                break;
            }
            last = r.next;
        }
        if !known {
            t.next = ptr::null_mut();
            // SAFETY: `last` is the registry's tail (the loop ended there).
            unsafe { (*last).next = vt };
        }
        vt = next;
    }
}

unsafe extern "C" fn created<T>(_: *mut T) -> c_int {
    1
}

unsafe extern "C" fn nothing<T>(_: *mut T) {}

unsafe extern "C" fn addr_forget(addr: *mut NAL_ADDRESS) {
    guard((), || {
        // SAFETY: called by the library or by C with a live address.
        if let Some(a) = unsafe { object_mut(addr) } {
            a.address = None;
        }
    })
}

unsafe extern "C" fn addr_parse(addr: *mut NAL_ADDRESS, s: *const c_char) -> c_int {
    guard(0, || {
        // SAFETY: called with a live address and a NUL-terminated string.
        let (Some(a), Some(s)) = (unsafe { object_mut(addr) }, unsafe { c_str(s) }) else {
            return 0;
        };
        a.address = Address::parse(s).ok();
        int_bool(a.address.is_some())
    })
}

unsafe extern "C" fn addr_listener(_: *const NAL_ADDRESS) -> *const NAL_LISTENER_vtable {
    &LISTENER
}

unsafe extern "C" fn addr_connection(_: *const NAL_ADDRESS) -> *const NAL_CONNECTION_vtable {
    &CONNECTION
}

/// Registers a built-in object's descriptor with its selector, through the
/// selector's control command (so that a C selector learns it too).
///
/// # Safety
/// `sel` is a live selector, not borrowed.
unsafe fn fd_set(sel: *mut NAL_SELECTOR, token: NAL_SELECTOR_TOKEN, entry: Option<RawPollFd>) {
    let Some(entry) = entry else { return };
    let mut args = NAL_FD_FDSET {
        token,
        fd: entry.fd,
        flags: fd_flags::from_revents(entry.events),
    };
    // SAFETY: per this function's contract; `args` outlives the call.
    unsafe { nal_selector_ctrl(sel, NAL_FD_CTRL_FDSET, (&raw mut args).cast::<c_void>()) };
}

/// What the selector found for a built-in object's descriptor.
///
/// # Safety
/// As for [`fd_set`].
unsafe fn fd_test(sel: *mut NAL_SELECTOR, token: NAL_SELECTOR_TOKEN, fd: Option<c_int>) -> Ready {
    let Some(fd) = fd else {
        return Ready::default();
    };
    let mut args = NAL_FD_FDTEST {
        flags: 0,
        token,
        fd,
    };
    // SAFETY: per this function's contract; `args` outlives the call.
    unsafe { nal_selector_ctrl(sel, NAL_FD_CTRL_FDTEST, (&raw mut args).cast::<c_void>()) };
    fd_flags::to_ready(args.flags)
}

unsafe extern "C" fn selector_add<T>(_: *mut T, _: *mut NAL_SELECTOR) -> c_int {
    1
}

unsafe extern "C" fn selector_del<T>(_: *mut T, _: *mut NAL_SELECTOR) {}

/// A built-in object's `pre_select`: registers its descriptor.
unsafe extern "C" fn pre_select<O: Socket>(
    obj: *mut O,
    sel: *mut NAL_SELECTOR,
    token: NAL_SELECTOR_TOKEN,
) {
    guard((), || {
        // SAFETY: called with a live object, borrowed only here.
        let entry = unsafe { obj.as_ref() }.and_then(O::poll_entry);
        // SAFETY: called with its live selector.
        unsafe { fd_set(sel, token, entry) }
    })
}

/// A built-in object's `post_select`: takes in what the wait found.
unsafe extern "C" fn post_select<O: Socket>(
    obj: *mut O,
    sel: *mut NAL_SELECTOR,
    token: NAL_SELECTOR_TOKEN,
) {
    guard((), || {
        // SAFETY: called with a live object, borrowed only here.
        let fd = unsafe { obj.as_ref() }.and_then(O::ready_fd);
        // SAFETY: called with its live selector.
        let ready = unsafe { fd_test(sel, token, fd) };
        // SAFETY: as above.
        if let Some(o) = unsafe { object_mut(obj) } {
            o.set_ready(ready);
        }
    })
}

/// Runs a built-in object's `pre_select` (`pre`) or `post_select`.
///
/// # Safety
/// `obj` is a live built-in object in the live selector `sel` under
/// `token`; neither is borrowed.
pub(super) unsafe fn select<O: Socket>(
    obj: *mut O,
    sel: *mut NAL_SELECTOR,
    token: NAL_SELECTOR_TOKEN,
    pre: bool,
) {
    // SAFETY: per this function's contract.
    unsafe {
        if pre {
            pre_select(obj, sel, token);
        } else {
            post_select(obj, sel, token);
        }
    }
}

/// A built-in object's `on_reset` and `on_destroy`: closes its socket.
unsafe extern "C" fn close<O: Socket>(obj: *mut O) {
    guard((), || {
        // SAFETY: called with a live object.
        if let Some(o) = unsafe { object_mut(obj) } {
            o.close();
        }
    })
}

unsafe extern "C" fn list_listen(list: *mut NAL_LISTENER, addr: *const NAL_ADDRESS) -> c_int {
    // SAFETY: forwarded; for a built-in listener this is the nal.h call.
    unsafe { super::super::listener::NAL_LISTENER_create(list, addr) }
}

unsafe extern "C" fn list_pre_accept(list: *mut NAL_LISTENER) -> *const NAL_CONNECTION_vtable {
    guard(ptr::null(), || {
        // SAFETY: called with a live listener.
        match unsafe { list.as_ref() } {
            Some(l) if l.listener.is_active() => &CONNECTION,
            _ => ptr::null(),
        }
    })
}

unsafe extern "C" fn never_finished(_: *const NAL_LISTENER) -> c_int {
    0
}

/// The built-in listener type (TCP and UNIX sockets).
pub(crate) static LISTENER: NAL_LISTENER_vtable = NAL_LISTENER_vtable {
    vtdata_size: 0,
    on_create: Some(created),
    on_destroy: Some(close),
    on_reset: Some(close),
    pre_close: None,
    listen: Some(list_listen),
    pre_accept: Some(list_pre_accept),
    finished: Some(never_finished),
    pre_selector_add: Some(selector_add),
    post_selector_add: None,
    pre_selector_del: None,
    post_selector_del: Some(selector_del),
    pre_select: Some(pre_select),
    post_select: Some(post_select),
    set_fs_owner: Some(super::super::listener::NAL_LISTENER_set_fs_owner),
    set_fs_perms: Some(super::super::listener::NAL_LISTENER_set_fs_perms),
};

unsafe extern "C" fn conn_connect(conn: *mut NAL_CONNECTION, addr: *const NAL_ADDRESS) -> c_int {
    // SAFETY: forwarded; for a built-in connection this is the nal.h call.
    unsafe { super::super::connection::NAL_CONNECTION_create(conn, addr) }
}

unsafe extern "C" fn conn_accept(conn: *mut NAL_CONNECTION, list: *const NAL_LISTENER) -> c_int {
    // SAFETY: forwarded; for a built-in connection this is the nal.h call,
    // which takes the waiting connection from the listener.
    unsafe { super::super::connection::NAL_CONNECTION_accept(conn, list.cast_mut()) }
}

unsafe extern "C" fn conn_get_read(conn: *const NAL_CONNECTION) -> *mut NAL_BUFFER {
    // SAFETY: forwarded.
    unsafe { super::super::connection::NAL_CONNECTION_get_read(conn.cast_mut()) }
}

unsafe extern "C" fn conn_get_send(conn: *const NAL_CONNECTION) -> *mut NAL_BUFFER {
    // SAFETY: forwarded.
    unsafe { super::super::connection::NAL_CONNECTION_get_send(conn.cast_mut()) }
}

unsafe extern "C" fn conn_io(conn: *mut NAL_CONNECTION) -> c_int {
    guard(0, || {
        // SAFETY: called with a live connection.
        unsafe { object_mut(conn) }.map_or(0, |c| int_bool(c.conn.io()))
    })
}

/// The built-in connection type.
pub(crate) static CONNECTION: NAL_CONNECTION_vtable = NAL_CONNECTION_vtable {
    vtdata_size: 0,
    on_create: Some(created),
    on_destroy: Some(close),
    on_reset: Some(close),
    pre_close: None,
    connect: Some(conn_connect),
    accept: Some(conn_accept),
    set_size: Some(super::super::connection::NAL_CONNECTION_set_size),
    get_read: Some(conn_get_read),
    get_send: Some(conn_get_send),
    is_established: Some(super::super::connection::NAL_CONNECTION_is_established),
    pre_selector_add: Some(selector_add),
    post_selector_add: None,
    pre_selector_del: None,
    post_selector_del: Some(selector_del),
    pre_select: Some(pre_select),
    post_select: Some(post_select),
    do_io: Some(conn_io),
};

unsafe extern "C" fn sel_select(
    sel: *mut NAL_SELECTOR,
    usec: c_ulong,
    use_timeout: c_int,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { super::super::selector::NAL_SELECTOR_select(sel, usec, use_timeout) }
}

unsafe extern "C" fn sel_num_objects(sel: *const NAL_SELECTOR) -> c_uint {
    // SAFETY: forwarded.
    unsafe { super::super::selector::NAL_SELECTOR_num_objects(sel) }
}

/// A built-in selector's `add_listener` and `add_connection`.
unsafe extern "C" fn sel_add<O: Socket>(sel: *mut NAL_SELECTOR, obj: *mut O) -> NAL_SELECTOR_TOKEN {
    let Some(o) = NonNull::new(obj) else {
        return ptr::null_mut();
    };
    // SAFETY: called with a live selector and object, neither borrowed.
    guard(ptr::null_mut(), || {
        // SAFETY: forwarded from this function's contract.
        unsafe { join(sel, O::member(o)) }.map_or(ptr::null_mut(), |k| k.token)
    })
}

/// Takes the object with `token` out of the built-in selector's list.
///
/// # Safety
/// `sel` is NULL or a live selector, not borrowed.
unsafe fn sel_del(sel: *mut NAL_SELECTOR, member: Option<Member>, token: NAL_SELECTOR_TOKEN) {
    let (Some(selector), Some(member)) = (NonNull::new(sel), member) else {
        return;
    };
    if let Some(slot) = token.addr().checked_sub(1) {
        // SAFETY: per this function's contract.
        guard((), || unsafe {
            leave(
                Link {
                    selector,
                    slot,
                    token,
                },
                member,
            )
        })
    }
}

/// A built-in selector's `del_listener` and `del_connection`.
unsafe extern "C" fn sel_del_member<O: Socket>(
    sel: *mut NAL_SELECTOR,
    obj: *mut O,
    token: NAL_SELECTOR_TOKEN,
) {
    // SAFETY: forwarded.
    unsafe { sel_del(sel, NonNull::new(obj).map(O::member), token) }
}

macro_rules! builtin_selector {
    ($name:ident, $type:expr, $doc:literal) => {
        #[doc = $doc]
        pub(crate) static $name: NAL_SELECTOR_vtable = NAL_SELECTOR_vtable {
            vtdata_size: 0,
            on_create: Some(created),
            on_destroy: Some(nothing),
            on_reset: Some(nothing),
            pre_close: None,
            get_type: Some({
                unsafe extern "C" fn get_type(_: *const NAL_SELECTOR) -> NAL_SELECTOR_TYPE {
                    $type
                }
                get_type
            }),
            select: Some(sel_select),
            num_objects: Some(sel_num_objects),
            add_listener: Some(sel_add),
            add_connection: Some(sel_add),
            del_listener: Some(sel_del_member),
            del_connection: Some(sel_del_member),
            ctrl: Some(nal_selector_ctrl),
        };
    };
}
builtin_selector!(
    FDSELECT,
    NAL_SELECTOR_TYPE_FDSELECT,
    "The built-in selector of the `select(2)` kind."
);
builtin_selector!(
    FDPOLL,
    NAL_SELECTOR_TYPE_FDPOLL,
    "The built-in `poll(2)` selector."
);
builtin_selector!(
    DYNAMIC,
    NAL_SELECTOR_TYPE_DYNAMIC,
    "The kind of a `NAL_SELECTOR_new()` selector until its first object."
);

/// The static vtable a built-in selector kind shows C.
pub(crate) fn selector_vtable(kind: Kind) -> Option<&'static NAL_SELECTOR_vtable> {
    match kind {
        Kind::Undecided => Some(&DYNAMIC),
        Kind::Select => Some(&FDSELECT),
        Kind::Poll => Some(&FDPOLL),
        Kind::Custom => None,
    }
}

/// The built-in kind a vtable stands for, if it is one of ours.
pub(crate) fn builtin_kind(vt: *const NAL_SELECTOR_vtable) -> Option<Kind> {
    [
        (&DYNAMIC, Kind::Undecided),
        (&FDSELECT, Kind::Select),
        (&FDPOLL, Kind::Poll),
    ]
    .into_iter()
    .find(|(b, _)| ptr::eq(*b, vt))
    .map(|(_, k)| k)
}
