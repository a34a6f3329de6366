//! The selector functions of `nal_devel.h`.

use super::super::selector::Kind;
use super::super::NAL_SELECTOR;
use super::builtin::{builtin_kind, selector_vtable, FDPOLL, FDSELECT};
use super::hooks;
use super::mapping;
use super::types::*;
use crate::ffi::boundary::{export, free_handle, int_bool, into_handle, object};
use std::ffi::{c_int, c_void};
use std::ptr::{self, NonNull};

/// The vtable of the built-in selectors of the `select(2)` kind (they wait
/// with `poll(2)`, like the others).
///
/// # Safety
/// None.
///
/// # Returns
/// A static vtable, for `nal_selector_new()` or `nal_selector_dynamic_set()`.
#[no_mangle]
pub extern "C" fn sel_fdselect() -> *const NAL_SELECTOR_vtable {
    export!(ptr::null(), [], || ptr::from_ref(&FDSELECT))
}

/// The vtable of the built-in `poll(2)` selectors.
///
/// # Safety
/// None.
///
/// # Returns
/// A static vtable, for `nal_selector_new()` or `nal_selector_dynamic_set()`.
#[no_mangle]
pub extern "C" fn sel_fdpoll() -> *const NAL_SELECTOR_vtable {
    export!(ptr::null(), [], || ptr::from_ref(&FDPOLL))
}

/// Creates a selector driven by `vtable`: one of the built-in kinds for
/// `sel_fdselect()`, `sel_fdpoll()` or the vtable of a `NAL_SELECTOR_new()`
/// selector, else a selector whose every operation is the vtable's, with
/// `vtdata_size` zeroed bytes of its own data, after its `on_create`.
///
/// # Safety
/// `vtable` is NULL or a vtable that lives as long as every selector made
/// from it.
///
/// # Returns
/// The selector, to be released with `NAL_SELECTOR_free()`; NULL for NULL,
/// when memory ran out, or when `on_create` is missing or returned 0.
#[no_mangle]
pub unsafe extern "C" fn nal_selector_new(vtable: *const NAL_SELECTOR_vtable) -> *mut NAL_SELECTOR {
    export!(ptr::null_mut(), [], || {
        // SAFETY: forwarded from this function's contract.
        unsafe { new_selector(vtable) }
    })
}

/// The vtable driving `sel`: the static vtable of its built-in kind, or the
/// one it was made from.
///
/// # Safety
/// `sel` is NULL or a live selector.
///
/// # Returns
/// The vtable; NULL for NULL.
#[no_mangle]
pub unsafe extern "C" fn nal_selector_get_vtable(
    sel: *const NAL_SELECTOR,
) -> *const NAL_SELECTOR_vtable {
    export!(ptr::null(), [object(sel)], |s| {
        selector_vtable(s.kind).map_or(s.mapped.vtable(), ptr::from_ref)
    })
}

/// The implementation data of a selector made from a C vtable.
///
/// # Safety
/// `sel` is NULL or a live selector.
///
/// # Returns
/// The data (`vtdata_size` bytes); NULL for NULL, for a built-in selector,
/// and for a vtable that asked for none.
#[no_mangle]
pub unsafe extern "C" fn nal_selector_get_vtdata(sel: *const NAL_SELECTOR) -> *mut c_void {
    export!(ptr::null_mut(), [object(sel)], |s| s.mapped.data())
}

/// The kind of a selector.
///
/// # Safety
/// `sel` is NULL or a live selector.
///
/// # Returns
/// `NAL_SELECTOR_TYPE_DYNAMIC` for a `NAL_SELECTOR_new()` selector with no
/// kind yet, `NAL_SELECTOR_TYPE_FDSELECT` or `NAL_SELECTOR_TYPE_FDPOLL`
/// for the built-in kinds, what its `get_type` says for a selector made
/// from a C vtable; `NAL_SELECTOR_TYPE_ERROR` for NULL.
#[no_mangle]
pub unsafe extern "C" fn nal_selector_get_type(sel: *const NAL_SELECTOR) -> NAL_SELECTOR_TYPE {
    export!(NAL_SELECTOR_TYPE_ERROR, [object(sel)], |s| match s.kind {
        Kind::Undecided => NAL_SELECTOR_TYPE_DYNAMIC,
        Kind::Select => NAL_SELECTOR_TYPE_FDSELECT,
        Kind::Poll => NAL_SELECTOR_TYPE_FDPOLL,
        // SAFETY: forwarded; the borrow above is not used across it.
        Kind::Custom => unsafe { hooks::selector_type(sel) },
    })
}

/// Sends a control command to a selector. The built-in selectors know
/// `NAL_FD_CTRL_FDSET` (`p` is a `NAL_FD_FDSET`: the object with that
/// token waits on that descriptor during the select under way; called
/// from a `pre_select` hook) and `NAL_FD_CTRL_FDTEST` (`p` is a
/// `NAL_FD_FDTEST`: its `flags` are set to what the wait found on that
/// descriptor, 0 when it was not registered; called from a `post_select`
/// hook). A selector made from a C vtable hands every command to its
/// `ctrl`.
///
/// # Safety
/// `sel` is NULL or a live selector; `p` is NULL or points to the
/// argument structure of `cmd`.
///
/// # Returns
/// 1 when the command was understood and carried out; 0 for NULL, an
/// unknown command, a token that names no object of the selector, or a
/// C selector without `ctrl`.
#[no_mangle]
pub unsafe extern "C" fn nal_selector_ctrl(
    sel: *mut NAL_SELECTOR,
    cmd: c_int,
    p: *mut c_void,
) -> c_int {
    export!(0, [NonNull::new(sel), NonNull::new(p)], |sel, p| {
        // SAFETY: forwarded from this function's contract.
        unsafe { ctrl(sel.as_ptr(), cmd, p.as_ptr()) }
    })
}

/// Gives a `NAL_SELECTOR_new()` selector that has no kind yet the kind of
/// `vtable`: a built-in kind, or a C vtable (mapped as by
/// `nal_selector_new()`). Transports call it from `pre_selector_add` when
/// `nal_selector_get_type()` says `NAL_SELECTOR_TYPE_DYNAMIC`.
///
/// # Safety
/// `sel` is NULL or a live selector; `vtable` is NULL or a vtable that
/// lives as long as the selector.
///
/// # Returns
/// 1 on success; 0 for NULL, a selector that already has a kind, or a C
/// vtable whose `on_create` is missing or failed (the selector then keeps
/// no kind).
#[no_mangle]
pub unsafe extern "C" fn nal_selector_dynamic_set(
    sel: *mut NAL_SELECTOR,
    vtable: *const NAL_SELECTOR_vtable,
) -> c_int {
    let undecided = |s: &NAL_SELECTOR| s.kind == Kind::Undecided;
    export!(0, [object(sel).filter(|s| undecided(s))], |_undecided| {
        // SAFETY: forwarded from this function's contract; the borrow is
        // not used again.
        unsafe { dynamic_set(sel, vtable) }
    })
}

/// The body of `nal_selector_new()`.
///
/// # Safety
/// As `nal_selector_new()`.
unsafe fn new_selector(vtable: *const NAL_SELECTOR_vtable) -> Option<*mut NAL_SELECTOR> {
    if let Some(kind) = builtin_kind(vtable) {
        return Some(into_handle(NAL_SELECTOR::new(kind)));
    }
    // SAFETY: forwarded from this function's contract.
    let vt = unsafe { vtable.as_ref() }?;
    let sel = into_handle(NAL_SELECTOR::new(Kind::Custom));
    // SAFETY: a new selector, not borrowed; `vt` per the contract.
    if unsafe { mapping::map(sel, vt) } {
        Some(sel)
    } else {
        // SAFETY: made above, with no vtable mapped and no objects.
        unsafe { free_handle(sel) };
        None
    }
}

/// The body of `nal_selector_ctrl()`, with `sel` and `p` not NULL.
///
/// # Safety
/// As `nal_selector_ctrl()`.
unsafe fn ctrl(sel: *mut NAL_SELECTOR, cmd: c_int, p: *mut c_void) -> c_int {
    // SAFETY: forwarded from this function's contract.
    if unsafe { (*sel).kind } == Kind::Custom {
        // SAFETY: a custom selector's vtable is static; its own handler.
        let vt = unsafe { (*sel).mapped.vtable().as_ref() };
        // SAFETY: as above.
        return vt
            .and_then(|vt| vt.ctrl)
            .map_or(0, |f| unsafe { f(sel, cmd, p) });
    }
    // SAFETY: forwarded; no hook runs while these borrows live.
    let s = unsafe { &mut *sel };
    match cmd {
        NAL_FD_CTRL_FDSET => {
            // SAFETY: `p` points to a NAL_FD_FDSET (the contract).
            let args = unsafe { *p.cast::<NAL_FD_FDSET>() };
            int_bool(s.fd_set(args.token, args.fd, args.flags))
        }
        NAL_FD_CTRL_FDTEST => {
            // SAFETY: `p` points to a NAL_FD_FDTEST (the contract).
            let args = unsafe { &mut *p.cast::<NAL_FD_FDTEST>() };
            args.flags = s.fd_test(args.token, args.fd);
            1
        }
        _ => 0,
    }
}

/// The body of `nal_selector_dynamic_set()`, for a selector still
/// undecided.
///
/// # Safety
/// As `nal_selector_dynamic_set()`, with `sel` live and not borrowed.
unsafe fn dynamic_set(sel: *mut NAL_SELECTOR, vtable: *const NAL_SELECTOR_vtable) -> bool {
    if let Some(kind) = builtin_kind(vtable) {
        // SAFETY: forwarded; no other borrow is live.
        unsafe { (*sel).kind = kind };
        return true;
    }
    // SAFETY: forwarded from this function's contract.
    let Some(vt) = (unsafe { vtable.as_ref() }) else {
        return false;
    };
    // SAFETY: forwarded; an undecided selector has no objects.
    let mapped = unsafe { mapping::map(sel, vt) };
    if mapped {
        // SAFETY: as above.
        unsafe { (*sel).kind = Kind::Custom };
    }
    mapped
}
