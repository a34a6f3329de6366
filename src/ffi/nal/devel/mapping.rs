//! Mapping a vtable onto an object and off it again, with the lifecycle
//! `nal_devel.h` promises a transport: `on_create` when the vtable is
//! mapped (on zeroed data, or on the data its own `on_reset` left when the
//! object is reused with the same vtable), `pre_close` then `on_reset` when
//! the object is reset, and `on_destroy` before the data is released or
//! handed to another vtable.
//!
//! The hooks are C code that calls back into the library with the object
//! (`nal_*_get_vtdata()`), so no Rust reference to the object is held
//! across a hook: every field is read or written through the object
//! pointer in a scope that ends before the call.

use super::super::{NAL_ADDRESS, NAL_CONNECTION, NAL_LISTENER, NAL_SELECTOR};
use super::types::{
    Lifecycle, NAL_ADDRESS_vtable, NAL_CONNECTION_vtable, NAL_LISTENER_vtable, NAL_SELECTOR_vtable,
};
use crate::ffi::boundary::free_handle;
use std::ffi::c_void;
use std::ptr;

/// An object's vtable, the one its last reset left (kept for reuse), and
/// its zero-initialised implementation data.
#[derive(Debug)]
pub struct Mapped<V> {
    vt: *const V,
    reset: *const V,
    data: *mut c_void,
    size: usize,
}

impl<V> Default for Mapped<V> {
    fn default() -> Self {
        Mapped {
            vt: ptr::null(),
            reset: ptr::null(),
            data: ptr::null_mut(),
            size: 0,
        }
    }
}

impl<V> Drop for Mapped<V> {
    fn drop(&mut self) {
        // SAFETY: `data` is NULL or came from calloc and is released once,
        // here.
        unsafe { libc::free(self.data) };
    }
}

impl<V> Mapped<V> {
    /// The mapped vtable; NULL when none is.
    pub fn vtable(&self) -> *const V {
        self.vt
    }

    /// The implementation data; NULL when no vtable ever asked for any.
    pub fn data(&self) -> *mut c_void {
        self.data
    }
}

/// An object that can carry a C vtable.
pub(crate) trait HasVtable: Sized {
    type Vt: Lifecycle<Self>;
    /// The object's mapping.
    ///
    /// # Safety
    /// `this` is a live object.
    unsafe fn mapped(this: *mut Self) -> *mut Mapped<Self::Vt>;
}

/// `HasVtable` for an object type whose `mapped` field holds its mapping.
macro_rules! has_vtable {
    ($($obj:ty => $vt:ty),+ $(,)?) => {$(
        impl HasVtable for $obj {
            type Vt = $vt;
            unsafe fn mapped(this: *mut Self) -> *mut Mapped<$vt> {
                // SAFETY: per the trait's contract, `this` is live.
                unsafe { &raw mut (*this).mapped }
            }
        }
    )+};
}
has_vtable!(
    NAL_ADDRESS => NAL_ADDRESS_vtable,
    NAL_CONNECTION => NAL_CONNECTION_vtable,
    NAL_LISTENER => NAL_LISTENER_vtable,
    NAL_SELECTOR => NAL_SELECTOR_vtable,
);

/// Reads the mapping of `obj` in a scope of its own.
///
/// # Safety
/// `obj` is live and not borrowed mutably elsewhere.
unsafe fn with<O: HasVtable, R>(obj: *mut O, f: impl FnOnce(&mut Mapped<O::Vt>) -> R) -> R {
    // SAFETY: per this function's contract; the borrow ends with `f`.
    f(unsafe { &mut *O::mapped(obj) })
}

/// Unmaps the current vtable as a reset does: `pre_close`, `on_reset`,
/// then remembers it for reuse. Nothing happens when none is mapped.
///
/// # Safety
/// `obj` is live and not borrowed elsewhere; the vtable (and the one kept
/// from the last reset) is still valid.
pub(crate) unsafe fn reset<O: HasVtable>(obj: *mut O) {
    // SAFETY: per this function's contract.
    let vt = unsafe { with(obj, |m| m.vt) };
    // SAFETY: a mapped vtable is valid (per the contract).
    let Some(vt) = (unsafe { vt.as_ref() }) else {
        return;
    };
    if let Some(f) = vt.pre_close() {
        // SAFETY: the transport's own hook on its own object.
        unsafe { f(obj) };
    }
    if let Some(f) = vt.on_reset() {
        // SAFETY: as above.
        unsafe { f(obj) };
    }
    // SAFETY: per this function's contract.
    unsafe {
        with(obj, |m| {
            m.reset = m.vt;
            m.vt = ptr::null();
        })
    };
}

/// Calls the last `on_destroy` before the object is released: the mapped
/// vtable's (after its `pre_close`), or the one its last reset left.
///
/// # Safety
/// As for [`reset`].
unsafe fn destroy<O: HasVtable>(obj: *mut O) {
    // SAFETY: per this function's contract.
    let (vt, kept) = unsafe { with(obj, |m| (m.vt, m.reset)) };
    // SAFETY: mapped and kept vtables are valid (per the contract).
    if let Some(vt) = unsafe { vt.as_ref() } {
        if let Some(f) = vt.pre_close() {
            // SAFETY: the transport's own hook on its own object.
            unsafe { f(obj) };
        }
        if let Some(f) = vt.on_destroy() {
            // SAFETY: as above.
            unsafe { f(obj) };
        }
    } else {
        // SAFETY: a kept vtable is valid (per the contract).
        if let Some(f) = unsafe { kept.as_ref() }.and_then(Lifecycle::on_destroy) {
            // SAFETY: the transport's own hook on its own object.
            unsafe { f(obj) };
        }
    }
    // SAFETY: per this function's contract.
    unsafe {
        with(obj, |m| {
            m.vt = ptr::null();
            m.reset = ptr::null();
        })
    };
}

/// Releases an object made by `into_handle()`, after the last
/// `on_destroy` of its vtable.
///
/// # Safety
/// As for [`reset`]; `obj` came from `into_handle()` and is not used
/// again.
pub(crate) unsafe fn free<O: HasVtable>(obj: *mut O) {
    // SAFETY: per this function's contract.
    unsafe {
        destroy(obj);
        free_handle(obj);
    }
}

/// Maps `vt` onto `obj`: resets the vtable mapped now, destroys the data
/// of a different one kept from a reset, makes sure the data is as large
/// as `vt` asks (zeroed), and calls `vt`'s `on_create`. False when the
/// memory could not be had, `vt` has no `on_create`, or it failed (the
/// object is then left with no vtable mapped).
///
/// # Safety
/// As for [`reset`]; `vt` is a valid vtable that outlives the object's use
/// of it.
pub(crate) unsafe fn map<O: HasVtable>(obj: *mut O, vt: &O::Vt) -> bool {
    let vt_ptr: *const O::Vt = vt;
    // SAFETY: per this function's contract.
    unsafe { reset(obj) };
    // SAFETY: per this function's contract.
    let kept = unsafe { with(obj, |m| m.reset) };
    if !kept.is_null() && kept != vt_ptr {
        // SAFETY: a kept vtable is valid; its hook on its own object.
        if let Some(f) = unsafe { (*kept).on_destroy() } {
            // SAFETY: as above.
            unsafe { f(obj) };
        }
        // SAFETY: per this function's contract; `data` is NULL or holds
        // `size` bytes from calloc.
        unsafe {
            with(obj, |m| {
                m.reset = ptr::null();
                if !m.data.is_null() {
                    // `data` holds `size` bytes from calloc.
                    ptr::write_bytes(m.data.cast::<u8>(), 0, m.size);
                }
            })
        };
    }
    let size = vt.vtdata_size();
    // SAFETY: per this function's contract; `data` is NULL or `size` bytes
    // from calloc, released once when replaced.
    let room = unsafe {
        with(obj, |m| {
            if size > m.size {
                // `data` is NULL or from calloc, and replaced at once;
                // calloc's NULL is handled.
                libc::free(m.data);
                m.reset = ptr::null();
                m.data = libc::calloc(1, size);
                m.size = if m.data.is_null() { 0 } else { size };
            }
            size <= m.size
        })
    };
    let Some(create) = vt.on_create() else {
        return false;
    };
    // SAFETY: the transport's own hook, on data of the size it asked for.
    if !room || unsafe { create(obj) } == 0 {
        return false;
    }
    // SAFETY: per this function's contract.
    unsafe {
        with(obj, |m| {
            m.vt = vt_ptr;
            m.reset = ptr::null();
        })
    };
    true
}
