//! `libnal/nal_devel.h`: the vtables through which C code adds its own
//! address types (with their listeners and connections) and selectors, the
//! registry of address types, and the calls a transport makes from inside
//! its hooks.
//!
//! The built-in types keep their Rust implementations; what a C program
//! sees of them through this API (the vtables `NAL_ADDRESS_vtable_builtins()`,
//! `nal_address_get_listener()`, `sel_fdpoll()` and the others return) is a
//! set of static vtables whose handlers call the same code as the `nal.h`
//! functions. A C transport works with the built-in selectors by
//! registering descriptors with `nal_selector_ctrl()` (`NAL_FD_CTRL_FDSET`
//! from its `pre_select`, `NAL_FD_CTRL_FDTEST` from its `post_select`), and
//! the built-in connections and listeners do the same in a C selector.

mod address;
pub(super) mod builtin;
mod connection;
pub(super) mod fd_flags;
pub(super) mod hooks;
mod listener;
pub(super) mod mapping;
mod selector;
pub(super) mod types;

pub(super) use address::nal_address_get_connection;
pub(super) use address::nal_address_get_listener;

#[cfg(test)]
mod tests;
