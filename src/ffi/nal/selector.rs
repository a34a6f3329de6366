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

use super::super::boundary::{free_handle, guard, into_handle, object};
use super::devel::mapping::{self, Mapped};
use super::devel::types::{NAL_SELECTOR_vtable, NAL_SELECTOR_TOKEN};
use super::devel::{fd_flags, hooks};
use super::{NAL_CONNECTION, NAL_LISTENER};
use crate::nal::{poll_fds, RawPollFd, Ready};
use std::ffi::{c_int, c_uchar, c_uint, c_ulong};
use std::ptr::{self, NonNull};
use std::time::Duration;

/// How a selector waits. Both built-in kinds wait with `poll(2)`, which has
/// no limit on descriptor numbers (the original's `select(2)` kind broke
/// above 1023).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
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
pub(super) enum Member {
    Connection(NonNull<NAL_CONNECTION>),
    Listener(NonNull<NAL_LISTENER>),
}

/// An object's end of its link to a selector: the selector, the object's
/// slot in its list, and the token it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Link {
    pub(super) selector: NonNull<NAL_SELECTOR>,
    pub(super) slot: usize,
    pub(super) token: NAL_SELECTOR_TOKEN,
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
    pub(super) kind: Kind,
    pub(super) mapped: Mapped<NAL_SELECTOR_vtable>,
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
    pub(super) fn new(kind: Kind) -> NAL_SELECTOR {
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
    unsafe fn is_custom(self) -> bool {
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
    pub(super) unsafe fn poll_entry(self) -> Option<RawPollFd> {
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
    pub(super) unsafe fn set_ready(self, ready: Ready) {
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

/// Takes every object out of the selector at `sel`, leaving each usable.
///
/// # Safety
/// `sel` is a live selector; its objects are live (they unlink themselves
/// before they are freed); none of them is borrowed.
unsafe fn unlink_all(sel: *mut NAL_SELECTOR) {
    loop {
        // SAFETY: per this function's contract; the borrow ends here.
        let next = unsafe { (*sel).slots.iter().rposition(Option::is_some) };
        let Some(slot) = next else { break };
        // SAFETY: as above.
        let Some(Slot { member, token }) = (unsafe { (*sel).slot(slot) }) else {
            break;
        };
        // SAFETY: the object is live; its link names this selector.
        unsafe {
            leave(
                Link {
                    selector: NonNull::new_unchecked(sel),
                    slot,
                    token,
                },
                member,
            );
            member.forget_link();
        }
    }
    // SAFETY: per this function's contract.
    unsafe {
        (*sel).slots.clear();
        (*sel).polled.clear();
    }
}

/// Adds `member` to the selector at `sel`, returning the object's end of the
/// link; `None` for NULL, or when a C selector refused the object.
///
/// # Safety
/// `sel` is NULL or a live selector, not otherwise borrowed; `member` is
/// live, not borrowed, and in no selector.
pub(super) unsafe fn join(sel: *mut NAL_SELECTOR, member: Member) -> Option<Link> {
    let selector = NonNull::new(sel)?;
    // SAFETY: per this function's contract; the borrow ends here.
    let kind = unsafe {
        let s = &mut *sel;
        if s.kind == Kind::Undecided {
            s.kind = Kind::Poll;
        }
        s.kind
    };
    let token = if kind == Kind::Custom {
        // SAFETY: a custom selector's vtable is valid; its hook is given
        // live objects.
        let token = unsafe { hooks::selector_add(sel, member) };
        if token.is_null() {
            return None;
        }
        Some(token)
    } else {
        None
    };
    // SAFETY: per this function's contract; no hook runs in this scope.
    let s = unsafe { &mut *sel };
    let slot = match s.slots.iter().position(Option::is_none) {
        Some(free) => free,
        None => {
            s.slots.push(None);
            s.slots.len() - 1
        }
    };
    let token = token.unwrap_or_else(|| slot_token(slot));
    s.slots[slot] = Some(Slot { member, token });
    s.count += 1;
    Some(Link {
        selector,
        slot,
        token,
    })
}

/// Adds an object to a selector and records the link on the object, with
/// the `pre_selector_add` and `post_selector_add` hooks of an object driven
/// by C around it. False for NULL, or when the selector or a hook refused.
///
/// # Safety
/// `sel` is NULL or a live selector; `member` is live and in no selector;
/// neither is borrowed.
pub(super) unsafe fn add_member(sel: *mut NAL_SELECTOR, member: Member) -> bool {
    if sel.is_null() {
        return false;
    }
    // SAFETY: per this function's contract.
    let custom = unsafe { member.is_custom() };
    // SAFETY: as above; the object's own hook.
    if custom && !unsafe { hooks::member_pre_add(member, sel) } {
        return false;
    }
    // SAFETY: per this function's contract.
    let Some(link) = (unsafe { join(sel, member) }) else {
        if custom {
            // SAFETY: as above.
            unsafe { hooks::member_post_del(member, sel) };
        }
        return false;
    };
    // SAFETY: per this function's contract; the borrow ends at once.
    unsafe {
        match member {
            Member::Connection(mut c) => c.as_mut().link = Some(link),
            Member::Listener(mut l) => l.as_mut().link = Some(link),
        }
    }
    // SAFETY: as above.
    if custom && !unsafe { hooks::member_post_add(member, sel, link.token) } {
        // SAFETY: as above.
        unsafe {
            match member {
                Member::Connection(c) => super::connection::leave_selector(c.as_ptr()),
                Member::Listener(l) => super::listener::leave_selector(l.as_ptr()),
            }
        }
        return false;
    }
    true
}

/// Removes `member` from its selector (the selector's end of the link; the
/// caller clears its own). A C selector's `del_connection` or
/// `del_listener` is told.
///
/// # Safety
/// `link` is the object's current link, so its selector is live; neither
/// the selector nor the object is borrowed.
pub(super) unsafe fn leave(link: Link, member: Member) {
    let sel = link.selector.as_ptr();
    // SAFETY: per this function's contract; the borrow ends here.
    if unsafe { (*sel).kind } == Kind::Custom {
        // SAFETY: the selector's vtable is valid; the object is live.
        unsafe { hooks::selector_del(sel, member, link.token) };
    }
    // SAFETY: per this function's contract.
    let s = unsafe { &mut *sel };
    match s.slots.get_mut(link.slot) {
        Some(slot @ Some(_)) if slot.is_some_and(|s| s.member == member) => {
            *slot = None;
            s.count -= 1;
        }
        _ => {}
    }
}

/// The link `nal_*_set_selector_raw()` records: `member` in `sel` under
/// `token`, in the slot where `sel` lists it, if it does.
///
/// # Safety
/// `sel` is NULL or a live selector, not borrowed mutably.
pub(super) unsafe fn raw_link(
    sel: *mut NAL_SELECTOR,
    member: Member,
    token: NAL_SELECTOR_TOKEN,
) -> Option<Link> {
    let selector = NonNull::new(sel)?;
    // SAFETY: per this function's contract.
    let slot = unsafe { &(*sel).slots }
        .iter()
        .position(|s| s.is_some_and(|s| s.member == member && s.token == token))
        .unwrap_or(usize::MAX);
    Some(Link {
        selector,
        slot,
        token,
    })
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
        if sel.is_null() {
            return;
        }
        // SAFETY: forwarded from this function's contract.
        unsafe {
            unlink_all(sel);
            mapping::destroy(sel);
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
        if sel.is_null() {
            return;
        }
        // SAFETY: forwarded from this function's contract.
        unsafe {
            unlink_all(sel);
            hooks::selector_reset(sel);
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
    guard(-1, || {
        if sel.is_null() {
            set_errno(libc::EINVAL);
            return -1;
        }
        // SAFETY: forwarded from this function's contract.
        let (kind, count) = unsafe { ((*sel).kind, (*sel).count) };
        if kind == Kind::Custom {
            // SAFETY: forwarded; a custom selector's vtable is valid.
            return unsafe { hooks::selector_select(sel, usec_timeout, use_timeout) };
        }
        let timeout = (use_timeout != 0).then(|| Duration::from_micros(usec_timeout));
        if kind == Kind::Undecided || (count == 0 && timeout.is_none()) {
            set_errno(libc::EINVAL);
            return -1;
        }
        // SAFETY: forwarded from this function's contract.
        unsafe { wait(sel, timeout) }
    })
}

/// A built-in selector's wait: every object registers its descriptors, one
/// `poll(2)`, every object takes what was found.
///
/// # Safety
/// `sel` is a live built-in selector; its objects are live and not
/// borrowed.
unsafe fn wait(sel: *mut NAL_SELECTOR, timeout: Option<Duration>) -> c_int {
    // SAFETY: per this function's contract; each borrow ends before any
    // hook runs (a hook calls back with `sel`).
    let slots = unsafe {
        let s = &mut *sel;
        s.fds.clear();
        s.polled.clear();
        s.slots.len()
    };
    let mut custom = false;
    for slot in 0..slots {
        // SAFETY: as above.
        let Some(Slot { member, token }) = (unsafe { (*sel).slot(slot) }) else {
            continue;
        };
        // SAFETY: listed objects are live (see unlink_all).
        if unsafe { member.is_custom() } {
            custom = true;
            // SAFETY: as above; the hook registers through nal_selector_ctrl.
            unsafe { hooks::member_pre_select(member, sel, token) };
        // SAFETY: as above.
        } else if let Some(entry) = unsafe { member.poll_entry() } {
            // SAFETY: as above.
            unsafe { (*sel).push(slot, entry) };
        }
    }
    // SAFETY: as above.
    let result = unsafe { poll_fds(&mut (*sel).fds, timeout) };
    let n = match result {
        Ok(n) => n,
        Err(e) => {
            set_errno(e.raw_os_error().unwrap_or(libc::EIO));
            return -1;
        }
    };
    // SAFETY: as above.
    let entries = unsafe { (*sel).fds.len() };
    for i in 0..entries {
        // SAFETY: as above.
        let (slot, revents) = unsafe { ((&(*sel).polled)[i], (&(*sel).fds)[i].revents) };
        // SAFETY: as above.
        match unsafe { (*sel).slot(slot) } {
            // SAFETY: listed objects are live.
            Some(s) if !unsafe { s.member.is_custom() } => unsafe {
                s.member.set_ready(Ready::from_revents(revents))
            },
            _ => {}
        }
    }
    if custom {
        for slot in 0..slots {
            // SAFETY: as above.
            let Some(Slot { member, token }) = (unsafe { (*sel).slot(slot) }) else {
                continue;
            };
            // SAFETY: as above; the hook asks through nal_selector_ctrl.
            if unsafe { member.is_custom() } {
                // SAFETY: as above.
                unsafe { hooks::member_post_select(member, sel, token) };
            }
        }
    }
    c_int::try_from(n).unwrap_or(c_int::MAX)
}

impl NAL_SELECTOR {
    /// Adds a descriptor to the coming wait, for the object in `slot`.
    fn push(&mut self, slot: usize, entry: RawPollFd) {
        self.fds.push(entry);
        self.polled.push(slot);
    }

    /// `NAL_FD_CTRL_FDSET`: the object with `token` waits on `fd` too.
    pub(super) fn fd_set(&mut self, token: NAL_SELECTOR_TOKEN, fd: c_int, flags: c_uchar) -> bool {
        let Some(slot) = token_slot(token).filter(|s| self.slot(*s).is_some()) else {
            return false;
        };
        self.push(
            slot,
            RawPollFd {
                fd,
                events: fd_flags::to_events(flags),
                revents: 0,
            },
        );
        true
    }

    /// `NAL_FD_CTRL_FDTEST`: what the last wait found on `fd` for the
    /// object with `token` (nothing when it did not register `fd`).
    pub(super) fn fd_test(&self, token: NAL_SELECTOR_TOKEN, fd: c_int) -> c_uchar {
        let Some(slot) = token_slot(token) else {
            return 0;
        };
        self.polled
            .iter()
            .zip(&self.fds)
            .filter(|(s, e)| **s == slot && e.fd == fd)
            .fold(0, |flags, (_, e)| flags | fd_flags::from_revents(e.revents))
    }
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
    guard(0, || {
        // SAFETY: forwarded from this function's contract.
        let Some(s) = (unsafe { object(sel) }) else {
            return 0;
        };
        if s.kind == Kind::Custom {
            // SAFETY: forwarded; a custom selector's vtable is valid.
            return unsafe { hooks::selector_num_objects(sel) };
        }
        c_uint::try_from(s.count).unwrap_or(c_uint::MAX)
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
