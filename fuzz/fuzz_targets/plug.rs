#![no_main]
//! `distcache::fuzzing::plug`: see its documentation for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| distcache::fuzzing::plug(data));
