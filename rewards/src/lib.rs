//! Reward sources for rlrt: sandboxed reward programs (`program`), CLIP (`clip`) and the
//! VLM-RM scoring of its embeddings (`vlm_rm`), success classifiers and preference reward
//! models trained in burn (`classifier`, `preference`) and run as ONNX models on camera
//! frames (`frame_model`), ensembles of several (`ensemble`), their evaluation while the
//! robot runs (`live`), and the offline pipelines on recorded datasets (`offline`:
//! relabelling, preference labelling, training the image reward models).

pub mod classifier;
pub mod clip;
pub mod ensemble;
pub mod frame_model;
pub mod live;
pub mod offline;
pub mod preference;
pub mod program;
mod training;
pub mod vlm_rm;
