//! `libnal/nal.h`: addresses, buffers, non-blocking connections and
//! listeners driven by selectors, and the byte codecs.
//!
//! Like the original, these objects are not thread-safe: a selector and the
//! objects in it are used by one thread at a time.

mod address;
mod buffer;
mod codec;
mod connection;
mod devel;
mod listener;
mod selector;
mod socket;

pub use address::NAL_ADDRESS;
pub use buffer::NAL_BUFFER;
pub use connection::{NAL_CONNECTION_add_to_selector, NAL_CONNECTION_del_from_selector};
pub use connection::{NAL_CONNECTION_free, NAL_CONNECTION_io, NAL_CONNECTION};
pub use listener::NAL_LISTENER;
pub use selector::NAL_SELECTOR;

use super::boundary::export;
use std::ffi::c_int;

/// Turns Nagle's algorithm on (non-zero) or off (0, the default) for TCP
/// connections created or accepted from now on. Off sends small requests
/// and replies at once.
///
/// # Safety
/// None: any value is accepted.
#[no_mangle]
pub extern "C" fn NAL_config_set_nagle(enabled: c_int) {
    export!((), [], || crate::nal::set_nagle(enabled != 0))
}

#[cfg(test)]
pub(crate) use buffer::{NAL_BUFFER_data, NAL_BUFFER_used, NAL_BUFFER_write};
#[cfg(test)]
pub(crate) use connection::{
    NAL_CONNECTION_create_pair, NAL_CONNECTION_get_read, NAL_CONNECTION_get_send,
    NAL_CONNECTION_new,
};
