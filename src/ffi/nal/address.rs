//! `NAL_ADDRESS`: a parsed address string and a default buffer size.

use super::super::boundary::{
    c_str, free_handle, guard, int_bool, into_handle, object, object_mut,
};
use crate::nal::{Address, MAX_BUFFER_SIZE};
use std::ffi::{c_char, c_int, c_uint};
use std::ptr;

/// Longest address string accepted, as in the original.
const MAX_ADDRESS_LEN: usize = 255;

/// An address (or none yet) and the buffer size for connections made with
/// it. Opaque to C.
#[derive(Debug, Default)]
pub struct NAL_ADDRESS {
    pub(super) address: Option<Address>,
    pub(super) buffer_size: c_uint,
}

/// Creates an empty address object.
///
/// # Safety
/// None.
///
/// # Returns
/// The object, to be released with `NAL_ADDRESS_free()`.
#[no_mangle]
pub extern "C" fn NAL_ADDRESS_new() -> *mut NAL_ADDRESS {
    guard(ptr::null_mut(), || into_handle(NAL_ADDRESS::default()))
}

/// Releases an address object. NULL is ignored.
///
/// # Safety
/// `addr` is NULL or an object from `NAL_ADDRESS_new()` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn NAL_ADDRESS_free(addr: *mut NAL_ADDRESS) {
    // SAFETY: forwarded from this function's contract.
    guard((), || unsafe { free_handle(addr) })
}

/// Forgets the parsed address, so that the object can be created again.
///
/// # Safety
/// `addr` is NULL or a live address object.
#[no_mangle]
pub unsafe extern "C" fn NAL_ADDRESS_reset(addr: *mut NAL_ADDRESS) {
    guard((), || {
        // SAFETY: forwarded from this function's contract.
        if let Some(a) = unsafe { object_mut(addr) } {
            a.address = None;
        }
    })
}

/// Parses `addr_string` (`IP:port`, `IP:host:port`, `IPv4:...`, `IPv6:port`,
/// `IPv6:[addr]:port`, `UNIX:/path`) into `addr`, resolving a host name,
/// and sets the default buffer size of connections made with it.
///
/// # Safety
/// `addr` is NULL or a live address object; `addr_string` is NULL or a
/// NUL-terminated string.
///
/// # Returns
/// 1 on success; 0 if either pointer is NULL, `addr` already holds an
/// address, `def_buffer_size` exceeds 32768, or the string is not a valid
/// address (or is longer than 255 bytes).
#[no_mangle]
pub unsafe extern "C" fn NAL_ADDRESS_create(
    addr: *mut NAL_ADDRESS,
    addr_string: *const c_char,
    def_buffer_size: c_uint,
) -> c_int {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let (Some(a), Some(s)) = (unsafe { object_mut(addr) }, unsafe { c_str(addr_string) })
        else {
            return 0;
        };
        if a.address.is_some() || def_buffer_size as usize > MAX_BUFFER_SIZE {
            return 0;
        }
        if s.len() < 2 || s.len() > MAX_ADDRESS_LEN {
            return 0;
        }
        match Address::parse(s) {
            Ok(parsed) => {
                a.address = Some(parsed);
                a.buffer_size = def_buffer_size;
                1
            }
            Err(_) => 0,
        }
    })
}

/// The default buffer size of connections made with `addr`.
///
/// # Safety
/// `addr` is NULL or a live address object.
///
/// # Returns
/// The size in bytes; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn NAL_ADDRESS_get_def_buffer_size(addr: *const NAL_ADDRESS) -> c_uint {
    // SAFETY: forwarded from this function's contract.
    guard(0, || unsafe { object(addr) }.map_or(0, |a| a.buffer_size))
}

/// Sets the default buffer size of connections made with `addr`.
///
/// # Safety
/// `addr` is NULL or a live address object.
///
/// # Returns
/// 1 on success; 0 for NULL or a size above 32768.
#[no_mangle]
pub unsafe extern "C" fn NAL_ADDRESS_set_def_buffer_size(
    addr: *mut NAL_ADDRESS,
    def_buffer_size: c_uint,
) -> c_int {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        match unsafe { object_mut(addr) } {
            Some(a) if def_buffer_size as usize <= MAX_BUFFER_SIZE => {
                a.buffer_size = def_buffer_size;
                1
            }
            _ => 0,
        }
    })
}

/// Whether a connection can be made to `addr` (every form but the host-less
/// `IP:port` and `IPv6:port`).
///
/// # Safety
/// `addr` is NULL or a live address object.
///
/// # Returns
/// 1 or 0; 0 for NULL or an object with no address.
#[no_mangle]
pub unsafe extern "C" fn NAL_ADDRESS_can_connect(addr: *const NAL_ADDRESS) -> c_int {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let a = unsafe { object(addr) };
        int_bool(
            a.and_then(|a| a.address.as_ref())
                .is_some_and(Address::can_connect),
        )
    })
}

/// Whether `addr` can be listened on.
///
/// # Safety
/// `addr` is NULL or a live address object.
///
/// # Returns
/// 1 or 0; 0 for NULL or an object with no address.
#[no_mangle]
pub unsafe extern "C" fn NAL_ADDRESS_can_listen(addr: *const NAL_ADDRESS) -> c_int {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let a = unsafe { object(addr) };
        int_bool(
            a.and_then(|a| a.address.as_ref())
                .is_some_and(Address::can_listen),
        )
    })
}
