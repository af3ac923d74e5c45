//! Fuzz target: see `remex_fuzz::frame::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| remex_fuzz::frame::check(data));
