#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rlrt_fuzz::clip_prompt(data);
});
