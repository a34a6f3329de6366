//! Every raw system call of the crate, and with them the only `unsafe` code
//! outside the C boundary (`ffi`). Each wrapper is safe to call. The `nix`
//! crate makes the calls it covers; what is left here calls `libc` directly,
//! each block saying why it is sound.
//!
//! Nothing of ours is imported here: `sys` is the bottom layer.
#![allow(unsafe_code)]

pub(crate) mod clock;
pub(crate) mod file;
pub(crate) mod pages;
pub(crate) mod poll;
pub(crate) mod process;
pub(crate) mod sched;
pub(crate) mod socket;
pub(crate) mod timer;
pub(crate) mod tls;
