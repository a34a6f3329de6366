//! What the listener and connection objects share: a built-in socket that
//! a selector polls, a place in at most one selector, and a C vtable that
//! may stand in for the built-in type. Freeing, resetting and mapping a
//! vtable run the same steps for both.

use super::super::boundary::{export, object};
use super::devel::mapping::{self, HasVtable};
use super::devel::types::{SelDel, SelTok, NAL_SELECTOR_TOKEN};
use super::selector::{leave, raw_link, Link, Member};
use super::NAL_SELECTOR;
use crate::nal::{RawPollFd, Ready};
use std::ffi::c_int;
use std::ptr::{self, NonNull};

/// A listener or connection object.
pub(crate) trait Socket: HasVtable + 'static {
    /// The object as a selector lists it.
    fn member(this: NonNull<Self>) -> Member;
    /// The vtable of the built-in type.
    fn builtin() -> &'static Self::Vt;
    /// Closes the built-in socket, so that the object can be set up again.
    fn close(&mut self);
    /// The descriptor and events the built-in socket waits for, if any.
    fn poll_entry(&self) -> Option<RawPollFd>;
    /// The descriptor whose readiness a wait reports, if any.
    fn ready_fd(&self) -> Option<c_int>;
    /// Records what the last wait found on the descriptor.
    fn set_ready(&mut self, ready: Ready);
    /// Forgets what the last wait found.
    fn clear_ready(&mut self);
    /// The object's place in a selector, if it is in one.
    fn link(&self) -> Option<Link>;
    /// Records the object's place in a selector.
    fn set_link(&mut self, link: Option<Link>);
    /// A vtable's `pre_selector_del` and `post_selector_del`.
    fn selector_del_hooks(vt: &Self::Vt) -> (SelTok<Self>, SelDel<Self>);
}

/// Takes an object out of its selector, with its type's selector hooks
/// around it.
///
/// # Safety
/// `obj` is live, not borrowed.
pub(super) unsafe fn leave_selector<O: Socket>(obj: *mut O) {
    // SAFETY: per this function's contract; each borrow ends at once.
    let Some(link) = (unsafe { (*obj).link() }) else {
        return;
    };
    let sel = link.selector.as_ptr();
    // SAFETY: per this function's contract; a mapped vtable is static.
    let hooks = unsafe { (*O::mapped(obj)).vtable().as_ref() }.map(O::selector_del_hooks);
    if let Some(f) = hooks.and_then(|(pre, _)| pre) {
        // SAFETY: the type's own hook, with its live selector.
        unsafe { f(obj, sel, link.token) };
    }
    // SAFETY: a current link names a live selector (it unlinks its objects
    // before it is freed); `obj` is not NULL.
    unsafe { leave(link, O::member(NonNull::new_unchecked(obj))) };
    // SAFETY: per this function's contract.
    unsafe {
        (*obj).set_link(None);
        (*obj).clear_ready();
    }
    if let Some(f) = hooks.and_then(|(_, post)| post) {
        // SAFETY: the type's own hook.
        unsafe { f(obj, sel) };
    }
}

/// Releases an object: out of its selector, its vtable's last
/// `on_destroy`, then the memory.
///
/// # Safety
/// `obj` came from `into_handle()`, is not yet freed and is not borrowed.
pub(super) unsafe fn free<O: Socket>(obj: *mut O) {
    // SAFETY: per this function's contract; once no selector links to it,
    // it is freed.
    unsafe {
        leave_selector(obj);
        mapping::free(obj);
    }
}

/// Takes an object out of its selector, closes it and unmaps its vtable,
/// so that it can be set up again.
///
/// # Safety
/// `obj` is live, not borrowed.
pub(super) unsafe fn reset<O: Socket>(obj: *mut O) {
    // SAFETY: per this function's contract; each borrow ends at once.
    unsafe {
        leave_selector(obj);
        (*obj).close();
        mapping::reset(obj);
    }
}

/// Resets an object and maps `vt` onto it; the built-in vtable leaves a
/// built-in object that is not set up yet. False when mapping failed.
///
/// # Safety
/// As for [`reset`]; `vt` is a valid vtable that lives as long as the
/// object uses it.
pub(super) unsafe fn set_vtable<O: Socket>(obj: *mut O, vt: &O::Vt) -> bool {
    // SAFETY: per this function's contract.
    unsafe {
        reset(obj);
        ptr::eq(vt, O::builtin()) || mapping::map(obj, vt)
    }
}

/// The object as its selector lists it, and its place there; None for
/// NULL or an object in no selector.
///
/// # Safety
/// `obj` is NULL or live, not borrowed mutably.
pub(super) unsafe fn linked<O: Socket>(obj: *mut O) -> Option<(Member, Link)> {
    // SAFETY: per this function's contract.
    let link = unsafe { obj.as_ref() }?.link()?;
    Some((O::member(NonNull::new(obj)?), link))
}

/// The body of `nal_*_get_selector()`: the object's selector, and its token
/// there through `token` (left alone when the object is in no selector or
/// `token` is NULL). NULL for NULL or an object in no selector.
///
/// # Safety
/// `obj` is NULL or live; `token` is NULL or writable.
pub(super) unsafe fn selector<O: Socket>(
    obj: *const O,
    token: *mut NAL_SELECTOR_TOKEN,
) -> *mut NAL_SELECTOR {
    export!(ptr::null_mut(), [object(obj).and_then(O::link)], |link| {
        // SAFETY: per this function's contract.
        if let Some(out) = unsafe { token.as_mut() } {
            *out = link.token;
        }
        link.selector.as_ptr()
    })
}

/// The body of `nal_*_set_selector_raw()`: records `sel` and `token` as the
/// object's selector without telling either side; NULL `sel` forgets it.
///
/// # Safety
/// `obj` is NULL or live, not borrowed; `sel` is NULL or a live selector
/// that lists the object under `token` until the object leaves it.
pub(super) unsafe fn set_selector_raw<O: Socket>(
    obj: *mut O,
    sel: *mut NAL_SELECTOR,
    token: NAL_SELECTOR_TOKEN,
) {
    export!((), [NonNull::new(obj)], |o| {
        // SAFETY: per this function's contract.
        unsafe { (*obj).set_link(raw_link(sel, O::member(o), token)) }
    })
}
