//! `NAL_encode_*` and `NAL_decode_*`: big-endian integers and byte strings
//! in a window given as a pointer and a length, both advanced on success
//! and left alone on failure.

use super::super::boundary::{bytes, bytes_mut, export, object_mut};
use crate::nal::codec::{put, take, take_into};
use std::ffi::{c_int, c_uchar, c_uint, c_ulong};

/// Runs `f` on the window of `*len` bytes at `*bin`; when it succeeds,
/// moves the window past what `f` took. False, with the window left alone,
/// when `f` fails.
///
/// # Safety
/// `*bin` is NULL or points to `*len` readable bytes.
unsafe fn decode(
    bin: &mut *const c_uchar,
    len: &mut c_uint,
    f: impl FnOnce(&mut &[u8]) -> bool,
) -> bool {
    let mut window: &[u8] = if bin.is_null() || *len == 0 {
        &[]
    } else {
        // SAFETY: `*bin` points to `*len` readable bytes per the contract.
        unsafe { std::slice::from_raw_parts(*bin, *len as usize) }
    };
    let before = window.len();
    if !f(&mut window) {
        return false;
    }
    let used = before - window.len();
    *bin = bin.wrapping_add(used);
    *len -= used as c_uint;
    true
}

/// Decodes one value of `N` bytes into `*val` with `from`: the body of
/// the `NAL_decode_*` functions for numbers and bytes.
///
/// # Safety
/// `bin`, `bin_len` and `val` are NULL or valid; `*bin` points to
/// `*bin_len` readable bytes.
unsafe fn decode_value<const N: usize, T>(
    bin: *mut *const c_uchar,
    bin_len: *mut c_uint,
    val: *mut T,
    from: impl FnOnce([u8; N]) -> T,
) -> c_int {
    export!(
        0,
        [object_mut(bin), object_mut(bin_len), object_mut(val)],
        // SAFETY: the window is forwarded from this function's contract.
        |bin, len, val| unsafe {
            decode(bin, len, |w| take::<N>(w).map(|b| *val = from(b)).is_some())
        }
    )
}

/// Encodes `bytes` into the window: the body of the `NAL_encode_*`
/// functions.
///
/// # Safety
/// `bin` and `bin_len` are NULL or valid; `*bin` points to `*bin_len`
/// writable bytes; `bytes` does not overlap the window.
unsafe fn encode_value(bin: *mut *mut c_uchar, bin_len: *mut c_uint, bytes: &[u8]) -> c_int {
    export!(
        0,
        [object_mut(bin), object_mut(bin_len)],
        // SAFETY: the window is forwarded from this function's contract.
        |bin, len| unsafe { encode(bin, len, |w| put(w, bytes)) }
    )
}

/// As [`decode`], for a window to write into.
///
/// # Safety
/// `*bin` is NULL or points to `*len` writable bytes.
unsafe fn encode(
    bin: &mut *mut c_uchar,
    len: &mut c_uint,
    f: impl FnOnce(&mut &mut [u8]) -> bool,
) -> bool {
    let mut window: &mut [u8] = if bin.is_null() || *len == 0 {
        &mut []
    } else {
        // SAFETY: `*bin` points to `*len` writable bytes per the contract.
        unsafe { std::slice::from_raw_parts_mut(*bin, *len as usize) }
    };
    let before = window.len();
    if !f(&mut window) {
        return false;
    }
    let used = before - window.len();
    *bin = bin.wrapping_add(used);
    *len -= used as c_uint;
    true
}

/// Decodes a big-endian 32-bit integer.
///
/// # Safety
/// `bin`, `bin_len` and `val` are NULL or valid; `*bin` points to
/// `*bin_len` readable bytes.
///
/// # Returns
/// 1 on success; 0 (changing nothing) for NULL or fewer than 4 bytes.
#[no_mangle]
pub unsafe extern "C" fn NAL_decode_uint32(
    bin: *mut *const c_uchar,
    bin_len: *mut c_uint,
    val: *mut c_ulong,
) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        decode_value(bin, bin_len, val, |b: [u8; 4]| {
            c_ulong::from(u32::from_be_bytes(b))
        })
    }
}

/// Decodes a big-endian 16-bit integer.
///
/// # Safety
/// As for `NAL_decode_uint32()`.
///
/// # Returns
/// 1 on success; 0 (changing nothing) for NULL or fewer than 2 bytes.
#[no_mangle]
pub unsafe extern "C" fn NAL_decode_uint16(
    bin: *mut *const c_uchar,
    bin_len: *mut c_uint,
    val: *mut c_uint,
) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        decode_value(bin, bin_len, val, |b: [u8; 2]| {
            c_uint::from(u16::from_be_bytes(b))
        })
    }
}

/// Decodes one byte.
///
/// # Safety
/// As for `NAL_decode_uint32()`.
///
/// # Returns
/// 1 on success; 0 (changing nothing) for NULL or no bytes left.
#[no_mangle]
pub unsafe extern "C" fn NAL_decode_char(
    bin: *mut *const c_uchar,
    bin_len: *mut c_uint,
    val: *mut c_uchar,
) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe { decode_value(bin, bin_len, val, |b: [u8; 1]| b[0]) }
}

/// Copies `val_len` bytes out of the window into `val`.
///
/// # Safety
/// As for `NAL_decode_uint32()`; `val` is NULL or points to `val_len`
/// writable bytes.
///
/// # Returns
/// 1 on success (also for `val_len` 0); 0 (changing nothing) for NULL or
/// fewer than `val_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn NAL_decode_bin(
    bin: *mut *const c_uchar,
    bin_len: *mut c_uint,
    val: *mut c_uchar,
    val_len: c_uint,
) -> c_int {
    // Nothing to move: success, whatever the window, as in the original.
    if val_len == 0 {
        return 1;
    }
    export!(
        0,
        [
            object_mut(bin),
            object_mut(bin_len),
            bytes_mut(val, val_len)
        ],
        // SAFETY: the window is forwarded from this function's contract.
        |bin, len, out| unsafe { decode(bin, len, |w| take_into(w, out)) }
    )
}

/// Encodes the low 32 bits of `val`, big-endian.
///
/// # Safety
/// `bin` and `bin_len` are NULL or valid; `*bin` points to `*bin_len`
/// writable bytes.
///
/// # Returns
/// 1 on success; 0 (changing nothing) for NULL or fewer than 4 bytes of room.
#[no_mangle]
pub unsafe extern "C" fn NAL_encode_uint32(
    bin: *mut *mut c_uchar,
    bin_len: *mut c_uint,
    val: c_ulong,
) -> c_int {
    // Only the low 32 bits go on the wire, as in the original.
    let v = (val & 0xffff_ffff) as u32;
    // SAFETY: forwarded from this function's contract.
    unsafe { encode_value(bin, bin_len, &v.to_be_bytes()) }
}

/// Encodes the low 16 bits of `val`, big-endian.
///
/// # Safety
/// As for `NAL_encode_uint32()`.
///
/// # Returns
/// 1 on success; 0 (changing nothing) for NULL or fewer than 2 bytes of room.
#[no_mangle]
pub unsafe extern "C" fn NAL_encode_uint16(
    bin: *mut *mut c_uchar,
    bin_len: *mut c_uint,
    val: c_uint,
) -> c_int {
    let v = (val & 0xffff) as u16;
    // SAFETY: forwarded from this function's contract.
    unsafe { encode_value(bin, bin_len, &v.to_be_bytes()) }
}

/// Encodes one byte.
///
/// # Safety
/// As for `NAL_encode_uint32()`.
///
/// # Returns
/// 1 on success; 0 (changing nothing) for NULL or no room.
#[no_mangle]
pub unsafe extern "C" fn NAL_encode_char(
    bin: *mut *mut c_uchar,
    bin_len: *mut c_uint,
    val: c_uchar,
) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe { encode_value(bin, bin_len, &[val]) }
}

/// Copies `val_len` bytes from `val` into the window.
///
/// # Safety
/// As for `NAL_encode_uint32()`; `val` is NULL or points to `val_len`
/// readable bytes that do not overlap the window.
///
/// # Returns
/// 1 on success (also for `val_len` 0); 0 (changing nothing) for NULL or
/// fewer than `val_len` bytes of room.
#[no_mangle]
pub unsafe extern "C" fn NAL_encode_bin(
    bin: *mut *mut c_uchar,
    bin_len: *mut c_uint,
    val: *const c_uchar,
    val_len: c_uint,
) -> c_int {
    // Nothing to move: success, whatever the window, as in the original.
    if val_len == 0 {
        return 1;
    }
    export!(
        0,
        [object_mut(bin), object_mut(bin_len), bytes(val, val_len)],
        // SAFETY: the window is forwarded from this function's contract.
        |bin, len, src| unsafe { encode(bin, len, |w| put(w, src)) }
    )
}
