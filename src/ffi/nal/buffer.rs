//! `NAL_BUFFER`: a bounded FIFO of bytes, on its own or as one of a
//! connection's two buffers.

use super::super::boundary::{
    bytes, free_handle, guard, int_bool, into_handle, object, object_mut,
};
use crate::nal::Buffer;
use std::ffi::{c_int, c_uchar, c_uint};
use std::ptr;

/// A buffer. Opaque to C.
pub type NAL_BUFFER = Buffer;

/// A count the C API can return: buffers hold at most 32768 bytes.
fn count(n: usize) -> c_uint {
    c_uint::try_from(n).unwrap_or(c_uint::MAX)
}

/// Reads a property of a buffer, `fail` for NULL.
///
/// # Safety
/// `buf` is NULL or a live buffer.
unsafe fn with<R>(buf: *const NAL_BUFFER, fail: R, f: impl FnOnce(&Buffer) -> R) -> R
where
    R: Copy,
{
    // SAFETY: forwarded from this function's contract.
    guard(fail, || unsafe { object(buf) }.map_or(fail, f))
}

/// Creates a buffer of size 0; give it a size with `NAL_BUFFER_set_size()`.
///
/// # Safety
/// None.
///
/// # Returns
/// The buffer, to be released with `NAL_BUFFER_free()`.
#[no_mangle]
pub extern "C" fn NAL_BUFFER_new() -> *mut NAL_BUFFER {
    guard(ptr::null_mut(), || into_handle(Buffer::new()))
}

/// Releases a buffer made by `NAL_BUFFER_new()`. NULL is ignored.
///
/// # Safety
/// `buf` is NULL or a buffer from `NAL_BUFFER_new()` not yet freed (never a
/// connection's buffer).
#[no_mangle]
pub unsafe extern "C" fn NAL_BUFFER_free(buf: *mut NAL_BUFFER) {
    // SAFETY: forwarded from this function's contract.
    guard((), || unsafe { free_handle(buf) })
}

/// Empties a buffer, keeping its size.
///
/// # Safety
/// `buf` is NULL or a live buffer.
#[no_mangle]
pub unsafe extern "C" fn NAL_BUFFER_reset(buf: *mut NAL_BUFFER) {
    // SAFETY: forwarded from this function's contract.
    guard((), || unsafe { object_mut(buf) }.map_or((), Buffer::reset))
}

/// Resizes a buffer. A different size empties it; the same size keeps its
/// contents.
///
/// # Safety
/// `buf` is NULL or a live buffer, and no pointer from
/// `NAL_BUFFER_data()` or `NAL_BUFFER_write_ptr()` is used afterwards.
///
/// # Returns
/// 1 on success; 0 for NULL or a size above 32768.
#[no_mangle]
pub unsafe extern "C" fn NAL_BUFFER_set_size(buf: *mut NAL_BUFFER, size: c_uint) -> c_int {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let o = unsafe { object_mut(buf) };
        int_bool(o.is_some_and(|b| b.set_size(size as usize)))
    })
}

/// Whether the buffer holds nothing.
///
/// # Safety
/// `buf` is NULL or a live buffer.
///
/// # Returns
/// 1 or 0; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn NAL_BUFFER_empty(buf: *const NAL_BUFFER) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe { with(buf, 0, |b| int_bool(b.is_empty())) }
}

/// Whether the buffer has no room left.
///
/// # Safety
/// `buf` is NULL or a live buffer.
///
/// # Returns
/// 1 or 0; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn NAL_BUFFER_full(buf: *const NAL_BUFFER) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe { with(buf, 0, |b| int_bool(b.is_full())) }
}

/// Whether the buffer holds something.
///
/// # Safety
/// `buf` is NULL or a live buffer.
///
/// # Returns
/// 1 or 0; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn NAL_BUFFER_notempty(buf: *const NAL_BUFFER) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe { with(buf, 0, |b| int_bool(!b.is_empty())) }
}

/// Whether the buffer has room left.
///
/// # Safety
/// `buf` is NULL or a live buffer.
///
/// # Returns
/// 1 or 0; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn NAL_BUFFER_notfull(buf: *const NAL_BUFFER) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe { with(buf, 0, |b| int_bool(!b.is_full())) }
}

/// Bytes held.
///
/// # Safety
/// `buf` is NULL or a live buffer.
///
/// # Returns
/// The count; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn NAL_BUFFER_used(buf: *const NAL_BUFFER) -> c_uint {
    // SAFETY: forwarded from this function's contract.
    unsafe { with(buf, 0, |b| count(b.used())) }
}

/// Room left.
///
/// # Safety
/// `buf` is NULL or a live buffer.
///
/// # Returns
/// The count; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn NAL_BUFFER_unused(buf: *const NAL_BUFFER) -> c_uint {
    // SAFETY: forwarded from this function's contract.
    unsafe { with(buf, 0, |b| count(b.unused())) }
}

/// The buffer's size.
///
/// # Safety
/// `buf` is NULL or a live buffer.
///
/// # Returns
/// The size; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn NAL_BUFFER_size(buf: *const NAL_BUFFER) -> c_uint {
    // SAFETY: forwarded from this function's contract.
    unsafe { with(buf, 0, |b| count(b.size())) }
}

/// The bytes held, oldest first: `NAL_BUFFER_used()` of them.
///
/// # Safety
/// `buf` is NULL or a live buffer. The pointer is valid until the buffer is
/// next changed, resized or freed.
///
/// # Returns
/// A pointer to the first byte; NULL for NULL or a buffer of size 0.
#[no_mangle]
pub unsafe extern "C" fn NAL_BUFFER_data(buf: *const NAL_BUFFER) -> *const c_uchar {
    guard(ptr::null(), || {
        // SAFETY: forwarded from this function's contract; the storage is
        // only read through the pointer handed out.
        match unsafe { object_mut(buf.cast_mut()) } {
            Some(b) if b.size() > 0 => b.storage_mut().as_ptr(),
            _ => ptr::null(),
        }
    })
}

/// Appends up to `size` bytes from `ptr`, as many as fit.
///
/// # Safety
/// `buf` is NULL or a live buffer; `ptr` is NULL or points to `size`
/// readable bytes that do not overlap the buffer's storage.
///
/// # Returns
/// The number of bytes taken; 0 for NULL pointers or a full buffer.
#[no_mangle]
pub unsafe extern "C" fn NAL_BUFFER_write(
    buf: *mut NAL_BUFFER,
    ptr: *const c_uchar,
    size: c_uint,
) -> c_uint {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let (Some(b), Some(src)) = (unsafe { object_mut(buf) }, unsafe { bytes(ptr, size) }) else {
            return 0;
        };
        count(b.write(src))
    })
}

/// Takes up to `size` bytes from the head of the buffer, copying them to
/// `ptr` unless it is NULL (then they are discarded).
///
/// # Safety
/// `buf` is NULL or a live buffer; `ptr` is NULL or points to `size`
/// writable bytes that do not overlap the buffer's storage.
///
/// # Returns
/// The number of bytes taken; 0 for a NULL buffer or an empty one.
#[no_mangle]
pub unsafe extern "C" fn NAL_BUFFER_read(
    buf: *mut NAL_BUFFER,
    ptr: *mut c_uchar,
    size: c_uint,
) -> c_uint {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let Some(b) = (unsafe { object_mut(buf) }) else {
            return 0;
        };
        let n = (size as usize).min(b.used());
        if ptr.is_null() {
            return count(b.read(None, n));
        }
        // SAFETY: non-NULL, and the caller guarantees `size` (>= n) writable
        // bytes apart from the buffer.
        let out = unsafe { std::slice::from_raw_parts_mut(ptr, n) };
        count(b.read(Some(out), n))
    })
}

/// Moves up to `max` bytes (0: as many as fit) from the head of `src` to
/// the tail of `dest`.
///
/// # Safety
/// `dest` and `src` are NULL or live buffers.
///
/// # Returns
/// The number of bytes moved; 0 for NULL, or when both are the same buffer.
#[no_mangle]
pub unsafe extern "C" fn NAL_BUFFER_transfer(
    dest: *mut NAL_BUFFER,
    src: *mut NAL_BUFFER,
    max: c_uint,
) -> c_uint {
    guard(0, || {
        if ptr::eq(dest, src) {
            return 0;
        }
        // SAFETY: forwarded from this function's contract; the two are
        // distinct objects.
        let (Some(d), Some(s)) = (unsafe { object_mut(dest) }, unsafe { object_mut(src) }) else {
            return 0;
        };
        count(d.transfer_from(s, max as usize))
    })
}

/// The free space at the tail of the buffer, `NAL_BUFFER_unused()` bytes,
/// for writing in place; declare what was written with
/// `NAL_BUFFER_wrote()`.
///
/// # Safety
/// `buf` is NULL or a live buffer. The pointer is valid until the buffer is
/// next changed, resized or freed.
///
/// # Returns
/// The pointer; NULL for NULL or a buffer of size 0.
#[no_mangle]
pub unsafe extern "C" fn NAL_BUFFER_write_ptr(buf: *mut NAL_BUFFER) -> *mut c_uchar {
    guard(ptr::null_mut(), || {
        // SAFETY: forwarded from this function's contract.
        match unsafe { object_mut(buf) } {
            Some(b) if b.size() > 0 => {
                let used = b.used();
                // `used <= size`, so the offset stays within (or one past)
                // the storage.
                b.storage_mut()[used..].as_mut_ptr()
            }
            _ => ptr::null_mut(),
        }
    })
}

/// Declares `size` bytes written in place at `NAL_BUFFER_write_ptr()`.
/// A size beyond the room left is ignored (the original asserted).
///
/// # Safety
/// `buf` is NULL or a live buffer.
#[no_mangle]
pub unsafe extern "C" fn NAL_BUFFER_wrote(buf: *mut NAL_BUFFER, size: c_uint) {
    guard((), || {
        // SAFETY: forwarded from this function's contract.
        if let Some(b) = unsafe { object_mut(buf) } {
            b.wrote(size as usize);
        }
    })
}
