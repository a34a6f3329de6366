#![no_main]
//! `distcache::fuzzing::server`: see its documentation for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| distcache::fuzzing::server(data));
