//! What every export does at the edge, written once: catch panics, turn raw
//! pointers into references and slices (refusing NULL and zero lengths),
//! and map results to the C conventions.

use std::ffi::{c_char, c_int, c_uchar, c_uint, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, turning a panic into `fail` so that no unwinding crosses into C
/// and nothing aborts the host process.
pub(crate) fn guard<R>(fail: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fail)
}

/// `1` for true, `0` for false: the libraries' usual success convention.
pub(crate) fn int_bool(b: bool) -> c_int {
    c_int::from(b)
}

/// Borrows a caller's object.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` that is not freed while the
/// returned reference is in use.
pub(crate) unsafe fn object<'a, T>(ptr: *const T) -> Option<&'a T> {
    // SAFETY: the caller guarantees ptr is NULL or valid for 'a.
    unsafe { ptr.as_ref() }
}

/// Borrows a caller's object for changing it.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` that nothing else accesses while
/// the returned reference is in use.
pub(crate) unsafe fn object_mut<'a, T>(ptr: *mut T) -> Option<&'a mut T> {
    // SAFETY: the caller guarantees ptr is NULL or valid and unaliased for 'a.
    unsafe { ptr.as_mut() }
}

/// Borrows `len` bytes at `ptr`; `None` for NULL or a zero length.
///
/// # Safety
/// When non-NULL, `ptr` points to at least `len` readable bytes that are not
/// written during the call.
pub(crate) unsafe fn bytes<'a>(ptr: *const c_uchar, len: c_uint) -> Option<&'a [u8]> {
    if ptr.is_null() || len == 0 {
        return None;
    }
    // SAFETY: non-NULL, and the caller guarantees `len` readable bytes.
    Some(unsafe { std::slice::from_raw_parts(ptr, len as usize) })
}

/// Borrows a caller's writable buffer of `len` bytes; `None` for NULL (an
/// empty slice for a zero length).
///
/// # Safety
/// When non-NULL, `ptr` points to at least `len` writable bytes that nothing
/// else accesses during the call.
pub(crate) unsafe fn bytes_mut<'a>(ptr: *mut c_uchar, len: c_uint) -> Option<&'a mut [u8]> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-NULL, and the caller guarantees `len` writable bytes.
    Some(unsafe { std::slice::from_raw_parts_mut(ptr, len as usize) })
}

/// Borrows a NUL-terminated string as UTF-8; `None` for NULL or invalid
/// UTF-8.
///
/// # Safety
/// When non-NULL, `ptr` points to a NUL-terminated string.
pub(crate) unsafe fn c_str<'a>(ptr: *const c_char) -> Option<&'a str> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated per the caller.
    unsafe { CStr::from_ptr(ptr) }.to_str().ok()
}

/// Moves `value` to the heap and hands C an owning pointer.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Takes back and drops an object made by [`into_handle`]; NULL is a no-op.
///
/// # Safety
/// `ptr` is NULL or came from [`into_handle`] and was not freed before; no
/// other thread uses it.
pub(crate) unsafe fn free_handle<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: per the caller, ptr came from Box::into_raw and is unique.
        drop(unsafe { Box::from_raw(ptr) });
    }
}
