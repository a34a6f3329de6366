//! The C ABI: the only place with `extern "C"`. One file per C header, and
//! the boundary helpers every export goes through.
#![allow(non_camel_case_types)]
#![allow(unsafe_code)]

mod boundary;
pub mod dc_client;
pub mod dc_plug;
pub mod dc_server;
pub mod nal;
