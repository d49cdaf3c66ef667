#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| huizhen::fuzz::media_session(data));
