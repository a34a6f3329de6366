//! `NAL_SELECTOR`: waits for any of the connections and listeners added to
//! it, and leaves each one's readiness with it for the next
//! `NAL_CONNECTION_io()` or `NAL_CONNECTION_accept()`.
//!
//! A selector and its objects point at each other: the selector lists its
//! objects, each object names its selector and its slot there. Every link is
//! made and broken from both ends at once, whichever of the two is reset or
//! freed first, so neither ever points at a freed object. The pointers kept
//! are the ones C passed in, never ones taken from a reference made during
//! a call: such a pointer would be invalidated as soon as a later call
//! borrows the object again.
//!
//! A selector can also be driven by a C vtable (`nal_selector_new()` of
//! `libnal/nal_devel.h`), and its objects by theirs: the hooks of
//! `devel::hooks` are called then, and no reference to a selector or an
//! object is held across them, since they call back with the same objects.

mod links;
#[cfg(test)]
mod tests;
mod wait;

pub(super) use links::{add_member, join, leave, raw_link};

use super::super::boundary::{export, into_handle, object};
use super::devel::hooks;
use super::devel::mapping::{self, Mapped};
use super::devel::types::{NAL_SELECTOR_vtable, NAL_SELECTOR_TOKEN};
use super::{NAL_CONNECTION, NAL_LISTENER};
use crate::nal::{RawPollFd, Ready};
use links::unlink_all;
use std::ffi::{c_int, c_uint, c_ulong};
use std::ptr::{self, NonNull};
use wait::{select, set_errno};

/// How a selector waits. Both built-in kinds wait with `poll(2)`, which has
/// no limit on descriptor numbers (the original's `select(2)` kind broke
/// above 1023).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::ffi::nal) enum Kind {
    /// From `NAL_SELECTOR_new()`: becomes `Poll` when the first object is
    /// added; until then a select fails, as the original's.
    Undecided,
    /// From `NAL_SELECTOR_new_fdselect()`.
    Select,
    /// From `NAL_SELECTOR_new_fdpoll()`.
    Poll,
    /// Driven by the C vtable in `mapped`.
    Custom,
}

/// An object in a selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::ffi::nal) enum Member {
    Connection(NonNull<NAL_CONNECTION>),
    Listener(NonNull<NAL_LISTENER>),
}

/// An object's end of its link to a selector: the selector, the object's
/// slot in its list, and the token it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Link {
    pub(in crate::ffi::nal) selector: NonNull<NAL_SELECTOR>,
    pub(in crate::ffi::nal) slot: usize,
    pub(in crate::ffi::nal) token: NAL_SELECTOR_TOKEN,
}

/// A listed object and its token.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    member: Member,
    token: NAL_SELECTOR_TOKEN,
}

/// A selector. Opaque to C.
#[derive(Debug)]
pub struct NAL_SELECTOR {
    pub(in crate::ffi::nal) kind: Kind,
    pub(in crate::ffi::nal) mapped: Mapped<NAL_SELECTOR_vtable>,
    slots: Vec<Option<Slot>>,
    count: usize,
    /// Scratch space for each select, kept to spare an allocation per wait:
    /// the entries waited on and the slot of the object each belongs to.
    fds: Vec<RawPollFd>,
    polled: Vec<usize>,
}

/// The token of a built-in selector's slot (never NULL).
fn slot_token(slot: usize) -> NAL_SELECTOR_TOKEN {
    ptr::without_provenance_mut(slot + 1)
}

/// The slot a built-in selector's token names.
fn token_slot(token: NAL_SELECTOR_TOKEN) -> Option<usize> {
    token.addr().checked_sub(1)
}

impl NAL_SELECTOR {
    pub(in crate::ffi::nal) fn new(kind: Kind) -> NAL_SELECTOR {
        NAL_SELECTOR {
            kind,
            mapped: Mapped::default(),
            slots: Vec::new(),
            count: 0,
            fds: Vec::new(),
            polled: Vec::new(),
        }
    }

    /// The object listed in `slot`, with its token.
    fn slot(&self, slot: usize) -> Option<Slot> {
        self.slots.get(slot).copied().flatten()
    }
}

impl Member {
    /// Whether the object is driven by a C vtable.
    ///
    /// # Safety
    /// The object is live and not borrowed mutably elsewhere.
    pub(super) unsafe fn is_custom(self) -> bool {
        // SAFETY: per this function's contract.
        unsafe {
            match self {
                Member::Connection(c) => !c.as_ref().mapped.vtable().is_null(),
                Member::Listener(l) => !l.as_ref().mapped.vtable().is_null(),
            }
        }
    }

    /// # Safety
    /// The object is live and not otherwise borrowed.
    pub(in crate::ffi::nal) unsafe fn poll_entry(self) -> Option<RawPollFd> {
        // SAFETY: per this function's contract.
        unsafe {
            match self {
                Member::Connection(c) => c.as_ref().conn.poll_entry(),
                Member::Listener(l) => l.as_ref().listener.poll_entry(),
            }
        }
    }

    /// # Safety
    /// The object is live and not otherwise borrowed.
    pub(in crate::ffi::nal) unsafe fn set_ready(self, ready: Ready) {
        // SAFETY: per this function's contract.
        unsafe {
            match self {
                Member::Connection(mut c) => c.as_mut().conn.set_ready(ready),
                Member::Listener(mut l) => l.as_mut().listener.set_ready(ready),
            }
        }
    }

    /// Clears the object's end of its link (the selector clears its own).
    ///
    /// # Safety
    /// The object is live and not otherwise borrowed.
    pub(super) unsafe fn forget_link(self) {
        // SAFETY: per this function's contract.
        unsafe {
            match self {
                Member::Connection(mut c) => {
                    let c = c.as_mut();
                    c.link = None;
                    c.conn.clear_ready();
                }
                Member::Listener(mut l) => {
                    let l = l.as_mut();
                    l.link = None;
                    l.listener.clear_ready();
                }
            }
        }
    }
}

/// A new selector of `kind`, for C.
fn new_selector(kind: Kind) -> *mut NAL_SELECTOR {
    into_handle(NAL_SELECTOR::new(kind))
}

/// Creates a selector whose kind is chosen when the first object is added.
///
/// # Safety
/// None.
///
/// # Returns
/// The selector, to be released with `NAL_SELECTOR_free()`.
#[no_mangle]
pub extern "C" fn NAL_SELECTOR_new() -> *mut NAL_SELECTOR {
    export!(ptr::null_mut(), [], || new_selector(Kind::Undecided))
}

/// Creates a selector of the original's `select(2)` kind (it waits with
/// `poll(2)`, so descriptors above 1023 work too).
///
/// # Safety
/// None.
///
/// # Returns
/// The selector, to be released with `NAL_SELECTOR_free()`.
#[no_mangle]
pub extern "C" fn NAL_SELECTOR_new_fdselect() -> *mut NAL_SELECTOR {
    export!(ptr::null_mut(), [], || new_selector(Kind::Select))
}

/// Creates a selector that waits with `poll(2)`.
///
/// # Safety
/// None.
///
/// # Returns
/// The selector, to be released with `NAL_SELECTOR_free()`.
#[no_mangle]
pub extern "C" fn NAL_SELECTOR_new_fdpoll() -> *mut NAL_SELECTOR {
    export!(ptr::null_mut(), [], || new_selector(Kind::Poll))
}

/// Releases a selector. Objects still in it are taken out (they stay
/// usable and can be added to another selector). NULL is ignored.
///
/// # Safety
/// `sel` is NULL or a selector not yet freed, and neither it nor its
/// objects are in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn NAL_SELECTOR_free(sel: *mut NAL_SELECTOR) {
    export!((), [NonNull::new(sel)], |sel| {
        // SAFETY: forwarded from this function's contract; once no object
        // links to it, it is freed.
        unsafe {
            unlink_all(sel.as_ptr());
            mapping::free(sel.as_ptr());
        }
    })
}

/// Takes every object out of the selector, keeping its kind.
///
/// # Safety
/// As for `NAL_SELECTOR_free()`, with `sel` live.
#[no_mangle]
pub unsafe extern "C" fn NAL_SELECTOR_reset(sel: *mut NAL_SELECTOR) {
    export!((), [NonNull::new(sel)], |sel| {
        // SAFETY: forwarded from this function's contract.
        unsafe {
            unlink_all(sel.as_ptr());
            hooks::selector_reset(sel.as_ptr());
        }
    })
}

/// Waits until one of the selector's objects is ready (readable, writable
/// while it has bytes to send or a connect pending, a connection waiting on
/// a listener), or `usec_timeout` microseconds pass when `use_timeout` is
/// non-zero. Each object keeps what was found for its next
/// `NAL_CONNECTION_io()` or `NAL_CONNECTION_accept()`. A selector made from
/// a C vtable waits as that vtable's `select` does.
///
/// # Safety
/// `sel` is NULL or a live selector; its objects are not in use by another
/// thread.
///
/// # Returns
/// The number of ready descriptors; 0 when the time ran out; -1 with
/// `errno` set on failure, when a signal interrupted the wait (`EINTR`),
/// for NULL, for a `NAL_SELECTOR_new()` selector that never had an object,
/// and for a wait with no objects and no timeout (which could never end).
#[no_mangle]
pub unsafe extern "C" fn NAL_SELECTOR_select(
    sel: *mut NAL_SELECTOR,
    usec_timeout: c_ulong,
    use_timeout: c_int,
) -> c_int {
    export!(-1, [], || {
        // SAFETY: forwarded from this function's contract.
        unsafe { select(sel, usec_timeout, use_timeout) }.map_err(set_errno)
    })
}

/// The number of connections and listeners in the selector.
///
/// # Safety
/// `sel` is NULL or a live selector.
///
/// # Returns
/// The count; 0 for NULL. A selector made from a C vtable answers with its
/// `num_objects`.
#[no_mangle]
pub unsafe extern "C" fn NAL_SELECTOR_num_objects(sel: *const NAL_SELECTOR) -> c_uint {
    export!(0, [object(sel)], |s| match s.kind {
        // SAFETY: forwarded; a custom selector's vtable is valid.
        Kind::Custom => unsafe { hooks::selector_num_objects(sel) },
        _ => c_uint::try_from(s.count).unwrap_or(c_uint::MAX),
    })
}
