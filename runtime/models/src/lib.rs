//! Model plumbing that is not the real-time runtime's business, shared by the crates that run
//! and train models: writing ONNX files, opening ONNX Runtime sessions, handling CUDA
//! devices for burn, and comparing model outputs. `rlrt-runtime` depends on no ML backend;
//! this crate holds what would otherwise pull one into it.

pub mod compare;
pub mod cuda;
pub mod onnx_proto;
#[cfg(feature = "onnx")]
pub mod ort;
