#![no_main]
//! `distcache::internals::fuzzing::decoder`: see its documentation for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| distcache::internals::fuzzing::decoder(data));
