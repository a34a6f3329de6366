//! The `NAL_FD_FLAG_*` bits of the descriptor control commands, against
//! `poll(2)` events and a connection's readiness.

use super::types::{NAL_FD_FLAG_EXCEPT, NAL_FD_FLAG_READ, NAL_FD_FLAG_SEND};
use crate::nal::Ready;
use std::ffi::c_uchar;

/// The `poll(2)` events to wait for.
pub(crate) fn to_events(flags: c_uchar) -> libc::c_short {
    let mut events = 0;
    if flags & NAL_FD_FLAG_READ != 0 {
        events |= libc::POLLIN;
    }
    if flags & NAL_FD_FLAG_SEND != 0 {
        events |= libc::POLLOUT;
    }
    events
}

/// The flags of what `poll(2)` asked for or found. A hang-up counts as
/// readable, so that the read that follows sees the end of the stream.
pub(crate) fn from_revents(revents: libc::c_short) -> c_uchar {
    let mut flags = 0;
    if revents & (libc::POLLIN | libc::POLLHUP) != 0 {
        flags |= NAL_FD_FLAG_READ;
    }
    if revents & libc::POLLOUT != 0 {
        flags |= NAL_FD_FLAG_SEND;
    }
    if revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
        flags |= NAL_FD_FLAG_EXCEPT;
    }
    flags
}

/// The readiness a selector's answer means for a built-in object.
pub(crate) fn to_ready(flags: c_uchar) -> Ready {
    Ready {
        read: flags & NAL_FD_FLAG_READ != 0,
        send: flags & NAL_FD_FLAG_SEND != 0,
        error: flags & NAL_FD_FLAG_EXCEPT != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_events_agree() {
        for flags in 0..4 {
            assert_eq!(from_revents(to_events(flags)), flags);
        }
        assert_eq!(from_revents(libc::POLLHUP), NAL_FD_FLAG_READ);
        assert_eq!(from_revents(libc::POLLERR), NAL_FD_FLAG_EXCEPT);
        let r = to_ready(NAL_FD_FLAG_READ | NAL_FD_FLAG_EXCEPT);
        assert!(r.read && !r.send && r.error);
    }
}
