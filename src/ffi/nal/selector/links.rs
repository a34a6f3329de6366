//! The links between a selector and its objects, made and broken from both
//! ends at once.

use super::super::devel::hooks;
use super::super::devel::types::NAL_SELECTOR_TOKEN;
use super::{slot_token, Kind, Link, Member, Slot, NAL_SELECTOR};
use std::ptr::NonNull;

/// Takes every object out of the selector at `sel`, leaving each usable.
///
/// # Safety
/// `sel` is a live selector; its objects are live (they unlink themselves
/// before they are freed); none of them is borrowed.
pub(super) unsafe fn unlink_all(sel: *mut NAL_SELECTOR) {
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
pub(in crate::ffi::nal) unsafe fn join(sel: *mut NAL_SELECTOR, member: Member) -> Option<Link> {
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
pub(in crate::ffi::nal) unsafe fn add_member(sel: *mut NAL_SELECTOR, member: Member) -> bool {
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
                Member::Connection(c) => super::super::socket::leave_selector(c.as_ptr()),
                Member::Listener(l) => super::super::socket::leave_selector(l.as_ptr()),
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
pub(in crate::ffi::nal) unsafe fn leave(link: Link, member: Member) {
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
pub(in crate::ffi::nal) unsafe fn raw_link(
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
