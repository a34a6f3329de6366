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

use super::super::boundary::{free_handle, guard, into_handle, object, object_mut};
use super::{NAL_CONNECTION, NAL_LISTENER};
use crate::nal::{poll_fds, RawPollFd, Ready};
use std::ffi::{c_int, c_uint, c_ulong};
use std::ptr::{self, NonNull};
use std::time::Duration;

/// How a selector waits. Both kinds wait with `poll(2)`, which has no limit
/// on descriptor numbers (the original's `select(2)` kind broke above
/// 1023).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// From `NAL_SELECTOR_new()`: becomes `Poll` when the first object is
    /// added; until then a select fails, as the original's.
    Undecided,
    /// From `NAL_SELECTOR_new_fdselect()`.
    Select,
    /// From `NAL_SELECTOR_new_fdpoll()`.
    Poll,
}

/// An object in a selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Member {
    Connection(NonNull<NAL_CONNECTION>),
    Listener(NonNull<NAL_LISTENER>),
}

/// An object's end of its link to a selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Link {
    selector: NonNull<NAL_SELECTOR>,
    slot: usize,
}

/// A selector. Opaque to C.
#[derive(Debug)]
pub struct NAL_SELECTOR {
    kind: Kind,
    slots: Vec<Option<Member>>,
    count: usize,
    /// Scratch space for each select, kept to spare an allocation per wait:
    /// the entries waited on and the object each belongs to.
    fds: Vec<RawPollFd>,
    polled: Vec<Member>,
}

impl NAL_SELECTOR {
    fn new(kind: Kind) -> NAL_SELECTOR {
        NAL_SELECTOR {
            kind,
            slots: Vec::new(),
            count: 0,
            fds: Vec::new(),
            polled: Vec::new(),
        }
    }

    /// Breaks every link, leaving the objects out of any selector.
    fn unlink_all(&mut self) {
        for member in self.slots.drain(..).flatten() {
            // SAFETY: a listed object is live: it unlinks itself (removing
            // it from this list) before it is freed.
            unsafe { member.forget_link() };
        }
        self.count = 0;
        self.polled.clear();
    }
}

impl Member {
    /// # Safety
    /// The object is live and not otherwise borrowed.
    unsafe fn poll_entry(self) -> Option<RawPollFd> {
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
    unsafe fn set_ready(self, ready: Ready) {
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
    unsafe fn forget_link(self) {
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

/// Adds `member` to the selector at `sel`, returning the object's end of the
/// link; `None` for NULL.
///
/// # Safety
/// `sel` is NULL or a live selector, not otherwise borrowed; `member` is
/// live and in no selector.
pub(super) unsafe fn join(sel: *mut NAL_SELECTOR, member: Member) -> Option<Link> {
    // SAFETY: per this function's contract.
    let selector = unsafe { object_mut(sel) }?;
    if selector.kind == Kind::Undecided {
        selector.kind = Kind::Poll;
    }
    let slot = match selector.slots.iter().position(Option::is_none) {
        Some(free) => free,
        None => {
            selector.slots.push(None);
            selector.slots.len() - 1
        }
    };
    selector.slots[slot] = Some(member);
    selector.count += 1;
    Some(Link {
        selector: NonNull::new(sel)?,
        slot,
    })
}

/// Removes an object from its selector (the selector's end of the link; the
/// caller clears its own).
///
/// # Safety
/// `link` is an object's current link, so its selector is live; the
/// selector is not otherwise borrowed.
pub(super) unsafe fn leave(link: Link) {
    // SAFETY: per this function's contract.
    let selector = unsafe { &mut *link.selector.as_ptr() };
    if let Some(slot @ Some(_)) = selector.slots.get_mut(link.slot) {
        *slot = None;
        selector.count -= 1;
    }
}

/// Sets the calling thread's `errno`, so that a failed select reports why
/// as the original's did.
fn set_errno(code: c_int) {
    // SAFETY: __errno_location returns the calling thread's errno slot,
    // valid for the thread's lifetime.
    unsafe { *libc::__errno_location() = code };
}

fn new_selector(kind: Kind) -> *mut NAL_SELECTOR {
    guard(ptr::null_mut(), || into_handle(NAL_SELECTOR::new(kind)))
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
    new_selector(Kind::Undecided)
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
    new_selector(Kind::Select)
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
    new_selector(Kind::Poll)
}

/// Releases a selector. Objects still in it are taken out (they stay
/// usable and can be added to another selector). NULL is ignored.
///
/// # Safety
/// `sel` is NULL or a selector not yet freed, and neither it nor its
/// objects are in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn NAL_SELECTOR_free(sel: *mut NAL_SELECTOR) {
    guard((), || {
        // SAFETY: forwarded from this function's contract.
        if let Some(s) = unsafe { object_mut(sel) } {
            s.unlink_all();
        }
        // SAFETY: forwarded from this function's contract; no object links
        // to it any more.
        unsafe { free_handle(sel) }
    })
}

/// Takes every object out of the selector, keeping its kind.
///
/// # Safety
/// As for `NAL_SELECTOR_free()`, with `sel` live.
#[no_mangle]
pub unsafe extern "C" fn NAL_SELECTOR_reset(sel: *mut NAL_SELECTOR) {
    guard((), || {
        // SAFETY: forwarded from this function's contract.
        if let Some(s) = unsafe { object_mut(sel) } {
            s.unlink_all();
        }
    })
}

/// Waits until one of the selector's objects is ready (readable, writable
/// while it has bytes to send or a connect pending, a connection waiting on
/// a listener), or `usec_timeout` microseconds pass when `use_timeout` is
/// non-zero. Each object keeps what was found for its next
/// `NAL_CONNECTION_io()` or `NAL_CONNECTION_accept()`.
///
/// # Safety
/// `sel` is NULL or a live selector; its objects are not in use by another
/// thread.
///
/// # Returns
/// The number of ready objects; 0 when the time ran out; -1 with `errno`
/// set on failure, when a signal interrupted the wait (`EINTR`), for NULL,
/// for a `NAL_SELECTOR_new()` selector that never had an object, and for a
/// wait with no objects and no timeout (which could never end).
#[no_mangle]
pub unsafe extern "C" fn NAL_SELECTOR_select(
    sel: *mut NAL_SELECTOR,
    usec_timeout: c_ulong,
    use_timeout: c_int,
) -> c_int {
    guard(-1, || {
        // SAFETY: forwarded from this function's contract.
        let Some(s) = (unsafe { object_mut(sel) }) else {
            set_errno(libc::EINVAL);
            return -1;
        };
        let timeout = (use_timeout != 0).then(|| Duration::from_micros(usec_timeout));
        if s.kind == Kind::Undecided || (s.count == 0 && timeout.is_none()) {
            set_errno(libc::EINVAL);
            return -1;
        }
        let (fds, members) = (&mut s.fds, &mut s.polled);
        fds.clear();
        members.clear();
        for member in s.slots.iter().flatten() {
            // SAFETY: listed objects are live (see unlink_all).
            if let Some(entry) = unsafe { member.poll_entry() } {
                fds.push(entry);
                members.push(*member);
            }
        }
        match poll_fds(fds, timeout) {
            Ok(n) => {
                for (member, entry) in members.iter().zip(fds.iter()) {
                    // SAFETY: listed objects are live (see unlink_all).
                    unsafe { member.set_ready(Ready::from_revents(entry.revents)) };
                }
                c_int::try_from(n).unwrap_or(c_int::MAX)
            }
            Err(e) => {
                set_errno(e.raw_os_error().unwrap_or(libc::EIO));
                -1
            }
        }
    })
}

/// The number of connections and listeners in the selector.
///
/// # Safety
/// `sel` is NULL or a live selector.
///
/// # Returns
/// The count; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn NAL_SELECTOR_num_objects(sel: *const NAL_SELECTOR) -> c_uint {
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        unsafe { object(sel) }.map_or(0, |s| c_uint::try_from(s.count).unwrap_or(c_uint::MAX))
    })
}

// The links between a selector and its objects, made and broken in every
// order. Only `socketpair(2)` and `fcntl(2)` are called (no waiting), so
// Miri can check the pointers: `cargo +nightly miri test --lib ffi::`.
#[cfg(test)]
mod tests {
    use super::super::connection::{
        NAL_CONNECTION_create_pair, NAL_CONNECTION_new, NAL_CONNECTION_reset,
    };
    use super::super::{
        NAL_CONNECTION_add_to_selector, NAL_CONNECTION_del_from_selector, NAL_CONNECTION_free,
    };
    use super::*;

    /// Two connected connection objects.
    fn pair() -> (*mut NAL_CONNECTION, *mut NAL_CONNECTION) {
        let (a, b) = (NAL_CONNECTION_new(), NAL_CONNECTION_new());
        // SAFETY: two live, distinct, unused objects.
        assert_eq!(unsafe { NAL_CONNECTION_create_pair(a, b, 1024) }, 1);
        (a, b)
    }

    fn linked(conn: *mut NAL_CONNECTION) -> bool {
        // SAFETY: the tests pass live objects, not borrowed elsewhere.
        unsafe { (*conn).link.is_some() }
    }

    #[test]
    fn connection_freed_before_its_selector() {
        let sel = NAL_SELECTOR_new_fdpoll();
        let (a, b) = pair();
        // SAFETY: live objects from this test, each freed once, last.
        unsafe {
            assert_eq!(NAL_CONNECTION_add_to_selector(a, sel), 1);
            assert_eq!(NAL_CONNECTION_add_to_selector(a, sel), 0, "already in");
            assert_eq!(NAL_CONNECTION_add_to_selector(b, sel), 1);
            assert_eq!(NAL_SELECTOR_num_objects(sel), 2);
            NAL_CONNECTION_free(a);
            assert_eq!(NAL_SELECTOR_num_objects(sel), 1);
            NAL_CONNECTION_del_from_selector(b);
            assert!(!linked(b));
            assert_eq!(NAL_SELECTOR_num_objects(sel), 0);
            assert_eq!(
                NAL_CONNECTION_add_to_selector(b, sel),
                1,
                "the slot is reused"
            );
            assert_eq!((*sel).slots.len(), 2);
            NAL_CONNECTION_free(b);
            NAL_SELECTOR_free(sel);
        }
    }

    #[test]
    fn selector_freed_before_its_connections() {
        let (sel, other) = (NAL_SELECTOR_new(), NAL_SELECTOR_new_fdselect());
        let (a, b) = pair();
        // SAFETY: live objects from this test, each freed once.
        unsafe {
            assert_eq!(NAL_CONNECTION_add_to_selector(a, sel), 1);
            assert_eq!(NAL_CONNECTION_add_to_selector(b, sel), 1);
            NAL_SELECTOR_free(sel);
            assert!(!linked(a) && !linked(b), "the selector let go of both");
            // Still usable: they join another selector, and leave it.
            assert_eq!(NAL_CONNECTION_add_to_selector(a, other), 1);
            assert_eq!(NAL_CONNECTION_add_to_selector(b, other), 1);
            NAL_SELECTOR_reset(other);
            assert_eq!(NAL_SELECTOR_num_objects(other), 0);
            assert!(!linked(a) && !linked(b));
            assert_eq!(NAL_CONNECTION_add_to_selector(a, other), 1);
            NAL_CONNECTION_reset(a);
            assert!(!linked(a));
            assert_eq!(NAL_SELECTOR_num_objects(other), 0);
            NAL_CONNECTION_free(a);
            NAL_CONNECTION_free(b);
            NAL_SELECTOR_free(other);
        }
    }

    #[test]
    fn null_and_unconnected_objects_are_refused() {
        let sel = NAL_SELECTOR_new();
        let idle = NAL_CONNECTION_new();
        // SAFETY: NULL or live objects from this test, each freed once.
        unsafe {
            assert_eq!(
                NAL_CONNECTION_add_to_selector(idle, sel),
                0,
                "not connected"
            );
            assert_eq!(NAL_CONNECTION_add_to_selector(ptr::null_mut(), sel), 0);
            assert_eq!(NAL_SELECTOR_num_objects(ptr::null()), 0);
            assert_eq!(NAL_SELECTOR_num_objects(sel), 0);
            NAL_CONNECTION_del_from_selector(idle);
            NAL_CONNECTION_del_from_selector(ptr::null_mut());
            NAL_SELECTOR_reset(ptr::null_mut());
            NAL_SELECTOR_free(ptr::null_mut());
            NAL_CONNECTION_free(idle);
            NAL_SELECTOR_free(sel);
        }
    }
}
