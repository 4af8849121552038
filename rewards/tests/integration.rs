//! Every integration test of `rlrt-rewards` in one test binary: each file beside this one is a
//! module (`cargo test -p rlrt-rewards --test integration <module>::` runs one).

mod common;

mod clip;
#[cfg(feature = "cuda")]
mod clip_cuda;
mod clip_hub;
mod generate;
mod programs;
