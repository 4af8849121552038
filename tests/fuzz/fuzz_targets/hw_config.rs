#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rlrt_fuzz::hw_config(data);
});
