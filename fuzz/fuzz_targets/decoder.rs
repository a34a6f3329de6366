#![no_main]
//! `distcache::fuzzing::decoder`: see its documentation for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| distcache::fuzzing::decoder(data));
