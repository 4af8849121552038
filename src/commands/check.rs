//! `rlrt check`: validate hw-config files.

use std::path::PathBuf;

use rlrt_runtime::config;

/// Checks each file; prints one line per valid file to stdout and every problem to stderr.
/// Returns the number of invalid files.
pub fn run(files: &[PathBuf]) -> usize {
    let mut invalid = 0;
    for file in files {
        match config::load(file) {
            Ok(c) => println!(
                "ok: {} ({:?} {:?}, {} joints, {} Hz, action {:?}, {} observation values)",
                file.display(),
                c.kind,
                c.name,
                c.dof(),
                c.control_rate_hz,
                c.action.mode,
                c.observation.feature_len
            ),
            Err(e) => {
                invalid += 1;
                eprintln!("{e}");
            }
        }
    }
    invalid
}
