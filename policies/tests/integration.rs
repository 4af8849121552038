//! Every integration test of `rlrt-policies` in one test binary: each file beside this one is a
//! module (`cargo test -p rlrt-policies --test integration <module>::` runs one).

mod common;

#[cfg(feature = "cuda")]
mod iql_cuda;
#[cfg(feature = "onnx")]
mod onnx;
#[cfg(feature = "tch")]
mod torchscript;
