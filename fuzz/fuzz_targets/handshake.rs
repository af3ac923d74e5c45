//! Fuzz target: see `remex_fuzz::handshake::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| remex_fuzz::handshake::check(data));
