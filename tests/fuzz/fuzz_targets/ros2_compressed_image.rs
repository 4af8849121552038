#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rlrt_fuzz::ros2_compressed_image(data);
});
