//! Reward sources for rlrt. This crate starts with the model-independent parts: the VLM-RM
//! scoring of embeddings (`vlm_rm`) and the aggregation of several reward models
//! (`ensemble`). The CLIP encoders, reward classifiers and sandboxed reward programs that
//! produce the inputs build on them.

pub mod classifier;
pub mod clip;
pub mod ensemble;
pub mod preference;
pub mod program;
pub mod vlm_rm;
