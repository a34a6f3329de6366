//! The address functions of `nal_devel.h` and the registry of address
//! types.

use super::super::NAL_ADDRESS;
use super::builtin::{self, CONNECTION, LISTENER};
use super::hooks::addr_vt;
use super::mapping;
use super::types::{NAL_ADDRESS_vtable, NAL_CONNECTION_vtable, NAL_LISTENER_vtable};
use crate::ffi::boundary::{export, object, object_mut};
use std::ffi::{c_int, c_void};
use std::ptr;

/// The registered address types: a list linked by `next`, headed by the
/// built-in socket type (prefixes `IP:`, `IPv4:`, `IPv6:`, `UNIX:`).
///
/// # Safety
/// None. The list is read, never changed, through the result; types are
/// linked in only with `NAL_ADDRESS_vtable_link()`.
///
/// # Returns
/// The head of the list, never NULL.
#[no_mangle]
pub extern "C" fn NAL_ADDRESS_vtable_builtins() -> *const NAL_ADDRESS_vtable {
    export!(ptr::null(), [], || builtin::sockets().cast_const())
}

/// Links in the address types of the list starting at `vt` (linked by
/// `next`), at the end of the registry, so that `NAL_ADDRESS_create()`
/// parses strings with their prefixes from now on. A type whose
/// `unique_name` is already registered (or NULL) is skipped; `next` of each
/// type linked in is rewritten. Safe to call from several threads.
///
/// # Safety
/// `vt` is NULL or a list of valid vtables that live, unchanged but for
/// `next`, as long as the program.
#[no_mangle]
pub unsafe extern "C" fn NAL_ADDRESS_vtable_link(vt: *mut NAL_ADDRESS_vtable) {
    // SAFETY: forwarded from this function's contract.
    export!((), [], || unsafe { builtin::link(vt) })
}

/// Maps `vtable` onto an address object: the vtable mapped now (if any)
/// gets `pre_close` and `on_reset`; a different vtable's data left by a
/// reset gets `on_destroy` and is zeroed; the data grows to `vtdata_size`
/// (zeroed) and `vtable`'s `on_create` runs. The built-in type's vtable
/// leaves an empty built-in address for its `parse`.
///
/// # Safety
/// `addr` is NULL or a live address object; `vtable` is NULL or a valid
/// vtable that lives as long as the object uses it.
///
/// # Returns
/// 1 on success; 0 for NULL, when memory ran out, or when `on_create` is
/// missing or returned 0.
#[no_mangle]
pub unsafe extern "C" fn nal_address_set_vtable(
    addr: *mut NAL_ADDRESS,
    vtable: *const NAL_ADDRESS_vtable,
) -> c_int {
    export!(0, [object_mut(addr), vtable.as_ref()], |a, vt| {
        a.address = None;
        if ptr::eq(vt, builtin::sockets()) {
            // SAFETY: forwarded; the borrow `a` has ended.
            unsafe { mapping::reset(addr) };
            true
        } else {
            // SAFETY: forwarded; the borrow `a` has ended.
            unsafe { mapping::map(addr, vt) }
        }
    })
}

/// The vtable of the address's type.
///
/// # Safety
/// `addr` is NULL or a live address object.
///
/// # Returns
/// The mapped vtable; `NAL_ADDRESS_vtable_builtins()` for a built-in
/// address; NULL for NULL or an object with no address.
#[no_mangle]
pub unsafe extern "C" fn nal_address_get_vtable(
    addr: *const NAL_ADDRESS,
) -> *const NAL_ADDRESS_vtable {
    export!(ptr::null(), [object(addr)], |a| match a.address {
        Some(_) => builtin::sockets(),
        None => a.mapped.vtable(),
    })
}

/// The address's implementation data, `vtdata_size` bytes of its type.
///
/// # Safety
/// `addr` is NULL or a live address object.
///
/// # Returns
/// The data (also while its type's `on_reset` or `on_destroy` runs); NULL
/// for NULL, a built-in address, or no data asked for.
#[no_mangle]
pub unsafe extern "C" fn nal_address_get_vtdata(addr: *const NAL_ADDRESS) -> *mut c_void {
    export!(ptr::null_mut(), [object(addr)], |a| match a.address {
        Some(_) => ptr::null_mut(),
        None => a.mapped.data(),
    })
}

/// The listener type that serves the address (its type's
/// `create_listener`).
///
/// # Safety
/// `addr` is NULL or a live address object.
///
/// # Returns
/// The vtable; NULL for NULL, an object with no address, or a type without
/// `create_listener`.
#[no_mangle]
pub unsafe extern "C" fn nal_address_get_listener(
    addr: *const NAL_ADDRESS,
) -> *const NAL_LISTENER_vtable {
    // SAFETY: forwarded from this function's contract.
    export!(ptr::null(), [], || unsafe {
        served_by(addr, |vt| vt.create_listener, &LISTENER)
    })
}

/// The connection type that serves the address (its type's
/// `create_connection`).
///
/// # Safety
/// `addr` is NULL or a live address object.
///
/// # Returns
/// The vtable; NULL for NULL, an object with no address, or a type without
/// `create_connection`.
#[no_mangle]
pub unsafe extern "C" fn nal_address_get_connection(
    addr: *const NAL_ADDRESS,
) -> *const NAL_CONNECTION_vtable {
    // SAFETY: forwarded from this function's contract.
    export!(ptr::null(), [], || unsafe {
        served_by(addr, |vt| vt.create_connection, &CONNECTION)
    })
}

/// The type that serves an address: for an address of a linked-in type,
/// what its vtable's `hook` returns; for a built-in address, `builtin`.
/// NULL for NULL, an object with no address, or a type without the hook.
///
/// # Safety
/// `addr` is NULL or a live address object.
unsafe fn served_by<V>(
    addr: *const NAL_ADDRESS,
    hook: impl FnOnce(
        &NAL_ADDRESS_vtable,
    ) -> Option<unsafe extern "C" fn(*const NAL_ADDRESS) -> *const V>,
    builtin: &'static V,
) -> *const V {
    // SAFETY: per this function's contract.
    match unsafe { addr_vt(addr) } {
        // SAFETY: the type's own handler on its own object.
        Some(vt) => hook(vt).map_or(ptr::null(), |f| unsafe { f(addr) }),
        // SAFETY: per this function's contract.
        None => match unsafe { object(addr) } {
            Some(a) if a.address.is_some() => builtin,
            _ => ptr::null(),
        },
    }
}
