//! `NAL_ADDRESS`: a parsed address string and a default buffer size. An
//! address of a type that C code linked in (`libnal/nal_devel.h`) is held
//! by that type's vtable and data instead.

use super::super::boundary::{c_str, export, into_handle, object, object_mut};
use super::devel::builtin;
use super::devel::hooks::addr_vt;
use super::devel::mapping::{self, Mapped};
use super::devel::types::NAL_ADDRESS_vtable;
use crate::nal::{Address, MAX_BUFFER_SIZE};
use std::ffi::{c_char, c_int, c_uint};
use std::ptr::{self, NonNull};

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
    export!(ptr::null_mut(), [], || into_handle(NAL_ADDRESS::default()))
}

/// Releases an address object. NULL is ignored.
///
/// # Safety
/// `addr` is NULL or an object from `NAL_ADDRESS_new()` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn NAL_ADDRESS_free(addr: *mut NAL_ADDRESS) {
    export!((), [NonNull::new(addr)], |addr| {
        // SAFETY: forwarded from this function's contract.
        unsafe { mapping::free(addr.as_ptr()) }
    })
}

/// Forgets the parsed address, so that the object can be created again (an
/// address of a linked-in type gets its `pre_close` and `on_reset`).
///
/// # Safety
/// `addr` is NULL or a live address object.
#[no_mangle]
pub unsafe extern "C" fn NAL_ADDRESS_reset(addr: *mut NAL_ADDRESS) {
    export!((), [object_mut(addr)], |a| {
        a.address = None;
        // SAFETY: forwarded; the borrow `a` has ended.
        unsafe { mapping::reset(addr) }
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
    export!(0, [object_mut(addr), c_str(addr_string)], |a, s| {
        // SAFETY: forwarded from this function's contract.
        unsafe { create(addr, a, s, addr_string, def_buffer_size) }
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
    export!(0, [object(addr)], |a| a.buffer_size)
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
    let size = (def_buffer_size as usize <= MAX_BUFFER_SIZE).then_some(def_buffer_size);
    export!(0, [object_mut(addr), size], |a, size| {
        a.buffer_size = size;
        true
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
    export!(0, [], || {
        // SAFETY: forwarded from this function's contract.
        unsafe { can(addr, |vt| vt.can_connect, Address::can_connect) }
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
    export!(0, [], || {
        // SAFETY: forwarded from this function's contract.
        unsafe { can(addr, |vt| vt.can_listen, Address::can_listen) }
    })
}

/// The body of `NAL_ADDRESS_create()`, with `a` borrowed from `addr` and
/// `s` read from `addr_string`.
///
/// # Safety
/// As `NAL_ADDRESS_create()`; `a` is not used once a hook may run.
unsafe fn create(
    addr: *mut NAL_ADDRESS,
    a: &mut NAL_ADDRESS,
    s: &str,
    addr_string: *const c_char,
    def_buffer_size: c_uint,
) -> bool {
    if a.in_use() || def_buffer_size as usize > MAX_BUFFER_SIZE {
        return false;
    }
    if s.len() < 2 || s.len() > MAX_ADDRESS_LEN {
        return false;
    }
    let Some(vt) = builtin::type_for(s.as_bytes()) else {
        return false;
    };
    if ptr::eq(vt, builtin::sockets()) {
        let Ok(parsed) = Address::parse(s) else {
            return false;
        };
        a.address = Some(parsed);
        a.buffer_size = def_buffer_size;
        return true;
    }
    a.buffer_size = def_buffer_size;
    // SAFETY: the borrow `a` has ended; a registered vtable lives as
    // long as the program; its hooks get the live object.
    let parsed =
        unsafe { mapping::map(addr, vt) && vt.parse.is_some_and(|f| f(addr, addr_string) != 0) };
    if !parsed {
        // SAFETY: forwarded from this function's contract.
        unsafe { NAL_ADDRESS_reset(addr) };
    }
    parsed
}

/// A handler of an address type's vtable that answers yes or no.
type Question = Option<unsafe extern "C" fn(*const NAL_ADDRESS) -> c_int>;

/// The body of `NAL_ADDRESS_can_connect()` and `NAL_ADDRESS_can_listen()`:
/// a linked-in type's `handler` answers for its addresses, `builtin` for
/// ours; false for NULL or an empty object.
///
/// # Safety
/// `addr` is NULL or a live address object.
unsafe fn can(
    addr: *const NAL_ADDRESS,
    handler: impl FnOnce(&NAL_ADDRESS_vtable) -> Question,
    builtin: impl FnOnce(&Address) -> bool,
) -> bool {
    // SAFETY: forwarded from this function's contract.
    if let Some(vt) = unsafe { addr_vt(addr) } {
        // SAFETY: the type's own handler on its own object.
        return handler(vt).is_some_and(|f| unsafe { f(addr) } != 0);
    }
    // SAFETY: forwarded from this function's contract.
    let a = unsafe { object(addr) };
    a.and_then(|a| a.address.as_ref()).is_some_and(builtin)
}
