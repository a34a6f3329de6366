//! A selector's wait: a C vtable's `select`, or for the built-in kinds one
//! `poll(2)` over the descriptors every object registers.

use super::super::devel::types::NAL_SELECTOR_TOKEN;
use super::super::devel::{fd_flags, hooks};
use super::{token_slot, Kind, Slot, NAL_SELECTOR};
use crate::nal::{poll_fds, RawPollFd, Ready};
use std::ffi::{c_int, c_uchar, c_ulong};
use std::time::Duration;

/// Sets the calling thread's `errno`, so that a failed select reports why
/// as the original's did.
pub(super) fn set_errno(code: c_int) {
    // SAFETY: __errno_location returns the calling thread's errno slot,
    // valid for the thread's lifetime.
    unsafe { *libc::__errno_location() = code };
}

/// The body of `NAL_SELECTOR_select()`: the number of ready descriptors,
/// or the `errno` of a failure.
///
/// # Safety
/// `sel` is NULL or a live selector; its objects are not in use by another
/// thread.
pub(super) unsafe fn select(
    sel: *mut NAL_SELECTOR,
    usec_timeout: c_ulong,
    use_timeout: c_int,
) -> Result<c_int, c_int> {
    if sel.is_null() {
        return Err(libc::EINVAL);
    }
    // SAFETY: forwarded from this function's contract.
    let (kind, count) = unsafe { ((*sel).kind, (*sel).count) };
    if kind == Kind::Custom {
        // SAFETY: forwarded; a custom selector's vtable is valid.
        return Ok(unsafe { hooks::selector_select(sel, usec_timeout, use_timeout) });
    }
    let timeout = (use_timeout != 0).then(|| Duration::from_micros(usec_timeout));
    if kind == Kind::Undecided || (count == 0 && timeout.is_none()) {
        return Err(libc::EINVAL);
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { wait(sel, timeout) }
}

/// A built-in selector's wait: every object registers its descriptors, one
/// `poll(2)`, every object takes what was found. `Err` carries the
/// `errno` of a failed wait.
///
/// # Safety
/// `sel` is a live built-in selector; its objects are live and not
/// borrowed.
unsafe fn wait(sel: *mut NAL_SELECTOR, timeout: Option<Duration>) -> Result<c_int, c_int> {
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
            unsafe { hooks::member_select(member, sel, token, true) };
        // SAFETY: as above.
        } else if let Some(entry) = unsafe { member.poll_entry() } {
            // SAFETY: as above.
            unsafe { (*sel).push(slot, entry) };
        }
    }
    // SAFETY: as above.
    let result = unsafe { poll_fds(&mut (*sel).fds, timeout) };
    let n = result.map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
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
                unsafe { hooks::member_select(member, sel, token, false) };
            }
        }
    }
    Ok(c_int::try_from(n).unwrap_or(c_int::MAX))
}

impl NAL_SELECTOR {
    /// Adds a descriptor to the coming wait, for the object in `slot`.
    fn push(&mut self, slot: usize, entry: RawPollFd) {
        self.fds.push(entry);
        self.polled.push(slot);
    }

    /// `NAL_FD_CTRL_FDSET`: the object with `token` waits on `fd` too.
    pub(in crate::ffi::nal) fn fd_set(
        &mut self,
        token: NAL_SELECTOR_TOKEN,
        fd: c_int,
        flags: c_uchar,
    ) -> bool {
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
    pub(in crate::ffi::nal) fn fd_test(&self, token: NAL_SELECTOR_TOKEN, fd: c_int) -> c_uchar {
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
