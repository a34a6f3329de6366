//! `NAL_ADDRESS`: a parsed address string and a default buffer size. An
//! address of a type that C code linked in (`libnal/nal_devel.h`) is held
//! by that type's vtable and data instead.

use super::super::boundary::{
    c_str, free_handle, guard, int_bool, into_handle, object, object_mut,
};
use super::devel::builtin;
use super::devel::hooks::addr_vt;
use super::devel::mapping::{self, Mapped};
use super::devel::types::NAL_ADDRESS_vtable;
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
    pub(super) mapped: Mapped<NAL_ADDRESS_vtable>,
}

impl NAL_ADDRESS {
    /// Whether the object holds an address of any type.
    pub(super) fn in_use(&self) -> bool {
        self.address.is_some() || !self.mapped.vtable().is_null()
    }
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
    guard((), || {
        if !addr.is_null() {
            // SAFETY: forwarded from this function's contract.
            unsafe { mapping::destroy(addr) };
        }
        // SAFETY: forwarded from this function's contract.
        unsafe { free_handle(addr) }
    })
}

/// Forgets the parsed address, so that the object can be created again (an
/// address of a linked-in type gets its `pre_close` and `on_reset`).
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
        if !addr.is_null() {
            // SAFETY: forwarded; the borrow above has ended.
            unsafe { mapping::reset(addr) };
        }
    })
}

/// Parses `addr_string` (`IP:port`, `IP:host:port`, `IPv4:...`, `IPv6:port`,
/// `IPv6:[addr]:port`, `UNIX:/path`, or a prefix of a type linked in with
/// `NAL_ADDRESS_vtable_link()`) into `addr`, resolving a host name, and sets
/// the default buffer size of connections made with it. The first
/// registered type with a prefix that starts the string parses it: the
/// built-in types first, then the linked-in ones in the order they were
/// linked.
///
/// # Safety
/// `addr` is NULL or a live address object; `addr_string` is NULL or a
/// NUL-terminated string.
///
/// # Returns
/// 1 on success; 0 if either pointer is NULL, `addr` already holds an
/// address, `def_buffer_size` exceeds 32768, no type has the string's
/// prefix, or the string is not a valid address (or is longer than 255
/// bytes, or shorter than 2).
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
        if a.in_use() || def_buffer_size as usize > MAX_BUFFER_SIZE {
            return 0;
        }
        if s.len() < 2 || s.len() > MAX_ADDRESS_LEN {
            return 0;
        }
        let Some(vt) = builtin::type_for(s.as_bytes()) else {
            return 0;
        };
        if ptr::eq(vt, builtin::sockets()) {
            return match Address::parse(s) {
                Ok(parsed) => {
                    a.address = Some(parsed);
                    a.buffer_size = def_buffer_size;
                    1
                }
                Err(_) => 0,
            };
        }
        a.buffer_size = def_buffer_size;
        // SAFETY: the borrow `a` has ended; a registered vtable lives as
        // long as the program; its hooks get the live object.
        let parsed = unsafe {
            mapping::map(addr, vt) && vt.parse.is_some_and(|f| f(addr, addr_string) != 0)
        };
        if !parsed {
            // SAFETY: forwarded from this function's contract.
            unsafe { NAL_ADDRESS_reset(addr) };
        }
        int_bool(parsed)
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

/// Whether a connection can be made to `addr` (every built-in form but the
/// host-less `IP:port` and `IPv6:port`; a linked-in type's `can_connect`
/// decides for its addresses).
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
        if let Some(vt) = unsafe { addr_vt(addr) } {
            // SAFETY: the type's own handler on its own object.
            return vt
                .can_connect
                .map_or(0, |f| int_bool(unsafe { f(addr) } != 0));
        }
        // SAFETY: forwarded from this function's contract.
        let a = unsafe { object(addr) };
        int_bool(
            a.and_then(|a| a.address.as_ref())
                .is_some_and(Address::can_connect),
        )
    })
}

/// Whether `addr` can be listened on (a linked-in type's `can_listen`
/// decides for its addresses).
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
        if let Some(vt) = unsafe { addr_vt(addr) } {
            // SAFETY: the type's own handler on its own object.
            return vt
                .can_listen
                .map_or(0, |f| int_bool(unsafe { f(addr) } != 0));
        }
        // SAFETY: forwarded from this function's contract.
        let a = unsafe { object(addr) };
        int_bool(
            a.and_then(|a| a.address.as_ref())
                .is_some_and(Address::can_listen),
        )
    })
}
