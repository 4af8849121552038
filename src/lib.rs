//! The `rlrt` command line as a library: each command is a function that takes parsed
//! arguments and returns a result; `main.rs` only parses arguments and maps errors to exit
//! codes. Integration tests in `tests/` call the binary itself.

pub mod commands;
pub mod fault_log;
pub mod frame_rewards;
pub mod linked;
pub mod loopback;
pub mod rerun_log;
pub mod reward_programs;
pub mod rollout;
pub mod run_recorder;
pub mod signals;
pub mod telemetry_hub;
pub mod threads;

/// Exit code for a config the user must fix.
pub const EXIT_INVALID_CONFIG: i32 = 2;
/// Exit code for a run that ended unsafely or failed its own checks.
pub const EXIT_RUN_FAILED: i32 = 3;
