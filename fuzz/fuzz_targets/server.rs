#![no_main]
//! `distcache::internals::fuzzing::server`: see its documentation for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| distcache::internals::fuzzing::server(data));
