//! Calls into the C vtables of selectors and of the objects in them. Each
//! takes raw pointers and holds no reference across the call, since the
//! hooks call back into the library with the same objects.

use super::super::selector::Member;
use super::super::{NAL_ADDRESS, NAL_CONNECTION, NAL_LISTENER, NAL_SELECTOR};
use super::types::NAL_SELECTOR_vtable;
use super::types::{NAL_ADDRESS_vtable, NAL_CONNECTION_vtable, NAL_LISTENER_vtable};
use super::types::{NAL_SELECTOR_TOKEN, NAL_SELECTOR_TYPE, NAL_SELECTOR_TYPE_ERROR};
use std::ffi::{c_int, c_uint, c_ulong};
use std::ptr;

/// The vtable of a custom selector.
///
/// # Safety
/// `sel` is a live selector, not borrowed mutably.
unsafe fn sel_vt<'a>(sel: *const NAL_SELECTOR) -> Option<&'a NAL_SELECTOR_vtable> {
    // SAFETY: per this function's contract; a mapped vtable is static.
    unsafe { (*sel).mapped.vtable().as_ref() }
}

/// The vtable of an address of a linked-in type.
///
/// # Safety
/// `addr` is NULL or a live address, not borrowed mutably.
pub(crate) unsafe fn addr_vt<'a>(addr: *const NAL_ADDRESS) -> Option<&'a NAL_ADDRESS_vtable> {
    // SAFETY: per this function's contract; a mapped vtable is static.
    unsafe { addr.as_ref()?.mapped.vtable().as_ref() }
}

/// The vtable of a connection driven by C.
///
/// # Safety
/// `conn` is NULL or a live connection, not borrowed mutably.
pub(crate) unsafe fn conn_vt<'a>(conn: *const NAL_CONNECTION) -> Option<&'a NAL_CONNECTION_vtable> {
    // SAFETY: per this function's contract; a mapped vtable is static.
    unsafe { conn.as_ref()?.mapped.vtable().as_ref() }
}

/// The vtable of a listener driven by C.
///
/// # Safety
/// `list` is NULL or a live listener, not borrowed mutably.
pub(crate) unsafe fn list_vt<'a>(list: *const NAL_LISTENER) -> Option<&'a NAL_LISTENER_vtable> {
    // SAFETY: per this function's contract; a mapped vtable is static.
    unsafe { list.as_ref()?.mapped.vtable().as_ref() }
}

/// A custom selector's `add_connection` or `add_listener`: the token, NULL
/// when it refused or has no such handler.
///
/// # Safety
/// `sel` is a live custom selector; `member` is live; neither is borrowed.
pub(crate) unsafe fn selector_add(sel: *mut NAL_SELECTOR, member: Member) -> NAL_SELECTOR_TOKEN {
    // SAFETY: per this function's contract.
    let Some(vt) = (unsafe { sel_vt(sel) }) else {
        return ptr::null_mut();
    };
    // SAFETY: the selector's own handlers, given live objects.
    unsafe {
        match member {
            Member::Connection(c) => vt
                .add_connection
                .map_or(ptr::null_mut(), |f| f(sel, c.as_ptr())),
            Member::Listener(l) => vt
                .add_listener
                .map_or(ptr::null_mut(), |f| f(sel, l.as_ptr())),
        }
    }
}

/// A custom selector's `del_connection` or `del_listener`.
///
/// # Safety
/// As for [`selector_add`], with `token` the one it gave.
pub(crate) unsafe fn selector_del(
    sel: *mut NAL_SELECTOR,
    member: Member,
    token: NAL_SELECTOR_TOKEN,
) {
    // SAFETY: per this function's contract.
    let Some(vt) = (unsafe { sel_vt(sel) }) else {
        return;
    };
    // SAFETY: the selector's own handlers, given live objects.
    unsafe {
        match member {
            Member::Connection(c) => {
                if let Some(f) = vt.del_connection {
                    f(sel, c.as_ptr(), token);
                }
            }
            Member::Listener(l) => {
                if let Some(f) = vt.del_listener {
                    f(sel, l.as_ptr(), token);
                }
            }
        }
    }
}

/// A custom selector's `pre_close` and `on_reset` (its vtable stays).
///
/// # Safety
/// `sel` is a live selector, not borrowed.
pub(crate) unsafe fn selector_reset(sel: *mut NAL_SELECTOR) {
    // SAFETY: per this function's contract.
    let Some(vt) = (unsafe { sel_vt(sel) }) else {
        return;
    };
    // SAFETY: the selector's own hooks.
    unsafe {
        if let Some(f) = vt.pre_close {
            f(sel);
        }
        if let Some(f) = vt.on_reset {
            f(sel);
        }
    }
}

/// A custom selector's `select`; -1 when it has none.
///
/// # Safety
/// `sel` is a live selector, not borrowed.
pub(crate) unsafe fn selector_select(
    sel: *mut NAL_SELECTOR,
    usec: c_ulong,
    use_timeout: c_int,
) -> c_int {
    // SAFETY: per this function's contract; the selector's own handler.
    unsafe {
        sel_vt(sel)
            .and_then(|vt| vt.select)
            .map_or(-1, |f| f(sel, usec, use_timeout))
    }
}

/// A custom selector's `num_objects`; 0 when it has none.
///
/// # Safety
/// `sel` is a live selector, not borrowed mutably.
pub(crate) unsafe fn selector_num_objects(sel: *const NAL_SELECTOR) -> c_uint {
    // SAFETY: per this function's contract; the selector's own handler.
    unsafe {
        sel_vt(sel)
            .and_then(|vt| vt.num_objects)
            .map_or(0, |f| f(sel))
    }
}

/// A custom selector's `get_type`.
///
/// # Safety
/// `sel` is a live selector, not borrowed mutably.
pub(crate) unsafe fn selector_type(sel: *const NAL_SELECTOR) -> NAL_SELECTOR_TYPE {
    // SAFETY: per this function's contract; the selector's own handler.
    unsafe {
        sel_vt(sel)
            .and_then(|vt| vt.get_type)
            .map_or(NAL_SELECTOR_TYPE_ERROR, |f| f(sel))
    }
}

/// A C object's `pre_select` (`pre`) or `post_select`, with its selector
/// and token.
///
/// # Safety
/// `member` is a live object driven by C; `sel` is its live selector;
/// neither is borrowed.
pub(crate) unsafe fn member_select(
    member: Member,
    sel: *mut NAL_SELECTOR,
    token: NAL_SELECTOR_TOKEN,
    pre: bool,
) {
    // SAFETY: per this function's contract; the object's own hooks.
    unsafe {
        match member {
            Member::Connection(c) => {
                let vt = conn_vt(c.as_ptr());
                let hook = vt.and_then(|vt| if pre { vt.pre_select } else { vt.post_select });
                if let Some(f) = hook {
                    f(c.as_ptr(), sel, token);
                }
            }
            Member::Listener(l) => {
                let vt = list_vt(l.as_ptr());
                let hook = vt.and_then(|vt| if pre { vt.pre_select } else { vt.post_select });
                if let Some(f) = hook {
                    f(l.as_ptr(), sel, token);
                }
            }
        }
    }
}

/// A C object's `pre_selector_add`: whether it may join `sel` (yes when it
/// has no such hook).
///
/// # Safety
/// As for [`member_select`].
pub(crate) unsafe fn member_pre_add(member: Member, sel: *mut NAL_SELECTOR) -> bool {
    // SAFETY: per this function's contract; the object's own hooks.
    unsafe {
        match member {
            Member::Connection(c) => conn_vt(c.as_ptr())
                .and_then(|vt| vt.pre_selector_add)
                .is_none_or(|f| f(c.as_ptr(), sel) != 0),
            Member::Listener(l) => list_vt(l.as_ptr())
                .and_then(|vt| vt.pre_selector_add)
                .is_none_or(|f| f(l.as_ptr(), sel) != 0),
        }
    }
}

/// A C object's `post_selector_add`: whether it accepts the token (yes
/// when it has no such hook).
///
/// # Safety
/// As for [`member_select`].
pub(crate) unsafe fn member_post_add(
    member: Member,
    sel: *mut NAL_SELECTOR,
    token: NAL_SELECTOR_TOKEN,
) -> bool {
    // SAFETY: per this function's contract; the object's own hooks.
    unsafe {
        match member {
            Member::Connection(c) => conn_vt(c.as_ptr())
                .and_then(|vt| vt.post_selector_add)
                .is_none_or(|f| f(c.as_ptr(), sel, token) != 0),
            Member::Listener(l) => list_vt(l.as_ptr())
                .and_then(|vt| vt.post_selector_add)
                .is_none_or(|f| f(l.as_ptr(), sel, token) != 0),
        }
    }
}

/// A C object's `post_selector_del`, after a join that failed.
///
/// # Safety
/// As for [`member_select`].
pub(crate) unsafe fn member_post_del(member: Member, sel: *mut NAL_SELECTOR) {
    // SAFETY: per this function's contract; the object's own hooks.
    unsafe {
        match member {
            Member::Connection(c) => {
                if let Some(f) = conn_vt(c.as_ptr()).and_then(|vt| vt.post_selector_del) {
                    f(c.as_ptr(), sel);
                }
            }
            Member::Listener(l) => {
                if let Some(f) = list_vt(l.as_ptr()).and_then(|vt| vt.post_selector_del) {
                    f(l.as_ptr(), sel);
                }
            }
        }
    }
}
