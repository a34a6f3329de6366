#![no_main]
//! `distcache::internals::fuzzing::address`: see its documentation for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| distcache::internals::fuzzing::address(data));
