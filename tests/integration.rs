//! Every integration test of the `rlrt` crate in one test binary: each file beside this one is
//! a module (`cargo test --test integration <module>::` runs one), so the whole stack links once.

mod common;

mod cli;
mod config_check;
mod frame_rewards;
mod fuzz_corpus;
mod import;
mod link;
mod mujoco_link;
mod offline_rl;
mod preferences;
mod python_driver;
mod realtime_invariants;
mod relabel;
mod rerun;
mod reward_cli;
mod reward_clip;
mod reward_loop;
mod ros2_live;
mod ros2_wire;
mod run_record;
mod safety;
#[cfg(unix)]
mod signals;
mod tls;
mod train_anywhere;
