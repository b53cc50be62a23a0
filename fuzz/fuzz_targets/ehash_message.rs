#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hashpool_fuzz_bodies::ehash_message(data));
