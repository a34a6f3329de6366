//! `NAL_BUFFER`: a bounded FIFO of bytes, on its own or as one of a
//! connection's two buffers.

use super::super::boundary::{
    bytes, export, free_handle, into_handle, object, object_mut, two_objects_mut,
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

/// Creates a buffer of size 0; give it a size with `NAL_BUFFER_set_size()`.
///
/// # Safety
/// None.
///
/// # Returns
/// The buffer, to be released with `NAL_BUFFER_free()`.
#[no_mangle]
pub extern "C" fn NAL_BUFFER_new() -> *mut NAL_BUFFER {
    export!(ptr::null_mut(), [], || into_handle(Buffer::new()))
}

/// Releases a buffer made by `NAL_BUFFER_new()`. NULL is ignored.
///
/// # Safety
/// `buf` is NULL or a buffer from `NAL_BUFFER_new()` not yet freed (never a
/// connection's buffer).
#[no_mangle]
pub unsafe extern "C" fn NAL_BUFFER_free(buf: *mut NAL_BUFFER) {
    // SAFETY: forwarded from this function's contract.
    export!((), [], || unsafe { free_handle(buf) })
}

/// Empties a buffer, keeping its size.
///
/// # Safety
/// `buf` is NULL or a live buffer.
#[no_mangle]
pub unsafe extern "C" fn NAL_BUFFER_reset(buf: *mut NAL_BUFFER) {
    export!((), [object_mut(buf)], |b| b.reset())
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
    export!(0, [object_mut(buf)], |b| b.set_size(size as usize))
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
    export!(0, [object(buf)], |b| b.is_empty())
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
    export!(0, [object(buf)], |b| b.is_full())
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
    export!(0, [object(buf)], |b| !b.is_empty())
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
    export!(0, [object(buf)], |b| !b.is_full())
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
    export!(0, [object(buf)], |b| count(b.used()))
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
    export!(0, [object(buf)], |b| count(b.unused()))
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
    export!(0, [object(buf)], |b| count(b.size()))
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
    // The storage is only read through the pointer handed out.
    export!(ptr::null(), [object_mut(buf.cast_mut())], |b| {
        (b.size() > 0).then(|| b.storage_mut().as_ptr())
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
    export!(0, [object_mut(buf), bytes(ptr, size)], |b, src| {
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
    export!(0, [object_mut(buf)], |b| {
        let n = (size as usize).min(b.used());
        // SAFETY: non-NULL, and the caller guarantees `size` (>= n)
        // writable bytes apart from the buffer.
        let out = (!ptr.is_null()).then(|| unsafe { std::slice::from_raw_parts_mut(ptr, n) });
        count(b.read(out, n))
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
    let max = max as usize;
    export!(0, [two_objects_mut(dest, src)], |(d, s)| count(
        d.transfer_from(s, max)
    ))
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
    export!(ptr::null_mut(), [object_mut(buf)], |b| {
        (b.size() > 0).then(|| {
            let used = b.used();
            // `used <= size`, so the offset stays within (or one past) the
            // storage.
            b.storage_mut()[used..].as_mut_ptr()
        })
    })
}

/// Declares `size` bytes written in place at `NAL_BUFFER_write_ptr()`.
/// A size beyond the room left is ignored (the original asserted).
///
/// # Safety
/// `buf` is NULL or a live buffer.
#[no_mangle]
pub unsafe extern "C" fn NAL_BUFFER_wrote(buf: *mut NAL_BUFFER, size: c_uint) {
    export!((), [object_mut(buf)], |b| {
        b.wrote(size as usize);
    })
}
