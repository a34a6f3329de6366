//! `NAL_encode_*` and `NAL_decode_*`: big-endian integers and byte strings
//! in a window given as a pointer and a length, both advanced on success
//! and left alone on failure.

use super::super::boundary::guard;
use crate::nal::codec::{put, take, take_into};
use std::ffi::{c_int, c_uchar, c_uint, c_ulong};

/// Runs `f` on the window of `*bin_len` bytes at `*bin`, made into a slice
/// by `view`, and moves the window past what `f` used when it succeeds.
///
/// # Safety
/// `bin` and `bin_len` are NULL or valid; when both are non-NULL and
/// `*bin_len` is not 0, `*bin` points to `*bin_len` bytes that `view` may
/// borrow for the call.
unsafe fn advance<P: Copy, S>(
    bin: *mut P,
    bin_len: *mut c_uint,
    view: impl FnOnce(P, usize) -> S,
    f: impl FnOnce(&mut S) -> Option<usize>,
    step: impl FnOnce(P, usize) -> P,
) -> c_int {
    guard(0, || {
        if bin.is_null() || bin_len.is_null() {
            return 0;
        }
        // SAFETY: both non-NULL and valid per the contract.
        let (start, len) = unsafe { (*bin, *bin_len as usize) };
        let mut window = view(start, len);
        let Some(used) = f(&mut window) else {
            return 0;
        };
        // SAFETY: `used <= len` (f reports what it took from the window),
        // and both out-pointers are valid.
        unsafe {
            *bin = step(start, used);
            *bin_len -= used as c_uint;
        }
        1
    })
}

/// Runs `f` on the readable window `*bin`/`*bin_len`.
///
/// # Safety
/// As for [`advance`], with the window readable.
unsafe fn decode(
    bin: *mut *const c_uchar,
    bin_len: *mut c_uint,
    f: impl FnOnce(&mut &[u8]) -> bool,
) -> c_int {
    let view = |p: *const c_uchar, len: usize| -> &[u8] {
        if p.is_null() || len == 0 {
            &[]
        } else {
            // SAFETY: `p` points to `len` readable bytes per the contract.
            unsafe { std::slice::from_raw_parts(p, len) }
        }
    };
    // SAFETY: forwarded from this function's contract.
    unsafe {
        advance(
            bin,
            bin_len,
            view,
            |w| {
                let before = w.len();
                f(w).then(|| before - w.len())
            },
            |p, used| p.wrapping_add(used),
        )
    }
}

/// Runs `f` on the writable window `*bin`/`*bin_len`.
///
/// # Safety
/// As for [`advance`], with the window writable.
unsafe fn encode(
    bin: *mut *mut c_uchar,
    bin_len: *mut c_uint,
    f: impl FnOnce(&mut &mut [u8]) -> bool,
) -> c_int {
    let view = |p: *mut c_uchar, len: usize| -> &mut [u8] {
        if p.is_null() || len == 0 {
            &mut []
        } else {
            // SAFETY: `p` points to `len` writable bytes per the contract.
            unsafe { std::slice::from_raw_parts_mut(p, len) }
        }
    };
    // SAFETY: forwarded from this function's contract.
    unsafe {
        advance(
            bin,
            bin_len,
            view,
            |w| {
                let before = w.len();
                f(w).then(|| before - w.len())
            },
            |p, used| p.wrapping_add(used),
        )
    }
}

/// Decodes `N` bytes into `*val` through `convert`.
///
/// # Safety
/// As for [`decode`]; `val` is NULL or valid for writing.
unsafe fn decode_value<const N: usize, T>(
    bin: *mut *const c_uchar,
    bin_len: *mut c_uint,
    val: *mut T,
    convert: impl FnOnce([u8; N]) -> T,
) -> c_int {
    if val.is_null() {
        return 0;
    }
    // SAFETY: forwarded from this function's contract; `val` is non-NULL.
    unsafe {
        decode(bin, bin_len, |w| {
            take::<N>(w).map(|b| *val = convert(b)).is_some()
        })
    }
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
    if val_len == 0 {
        return 1;
    }
    if val.is_null() {
        return 0;
    }
    // SAFETY: `val` is non-NULL with `val_len` writable bytes per the
    // contract; the rest is forwarded.
    unsafe {
        let out = std::slice::from_raw_parts_mut(val, val_len as usize);
        decode(bin, bin_len, |w| take_into(w, out))
    }
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
    unsafe { encode(bin, bin_len, |w| put(w, &v.to_be_bytes())) }
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
    unsafe { encode(bin, bin_len, |w| put(w, &v.to_be_bytes())) }
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
    unsafe { encode(bin, bin_len, |w| put(w, &[val])) }
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
    if val_len == 0 {
        return 1;
    }
    if val.is_null() {
        return 0;
    }
    // SAFETY: `val` is non-NULL with `val_len` readable bytes per the
    // contract; the rest is forwarded.
    unsafe {
        let src = std::slice::from_raw_parts(val, val_len as usize);
        encode(bin, bin_len, |w| put(w, src))
    }
}
