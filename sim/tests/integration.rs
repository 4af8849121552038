//! Every integration test of `rlrt-sim` in one test binary: each file beside this one is a
//! module (`cargo test -p rlrt-sim --test integration <module>::` runs one).

mod common;

#[cfg(feature = "mujoco")]
mod gymnasium;
#[cfg(feature = "mujoco")]
mod mujoco_tasks;
