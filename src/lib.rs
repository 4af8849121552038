//! The `rlrt` command line as a library: one module per command in `commands` (its arguments,
//! one entry function, its outcome's output), and the assembly they share: a loop on a link
//! (`linked`), a run's telemetry consumers (`telemetry`), a MuJoCo server on a loopback link
//! (`loopback`), signals and the CPU pool. The domain lives in the library crates.
//! Integration tests in `tests/` call the binary itself.
//!
//! Features: `sim` (MuJoCo: `sim`, `demo`, `record`, `train`, `eval`, `run --sim`; implies
//! `rerun`), `rerun` (`--rerun`, `replay`), `datasets` (`import`, `export lerobot`: libhdf5,
//! Arrow and Parquet), all in the default `workstation`; `robot` is the lean build without
//! them (`check`, `run` on the link, rewards, exports, benches of the loop and policies).

pub mod commands;
pub mod linked;
#[cfg(feature = "sim")]
pub mod loopback;
pub mod signals;
pub mod telemetry;
pub mod threads;
pub mod timeline;

/// Exit code for a config the user must fix.
pub const EXIT_INVALID_CONFIG: i32 = 2;
/// Exit code for a run that ended unsafely or failed its own checks.
pub const EXIT_RUN_FAILED: i32 = 3;
