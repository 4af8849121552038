//! `rlrt check`: validate hw-config files, the reward sources they name (reward programs;
//! CLIP folders, classifiers and reward models on camera frames) and the policy they run (a
//! trained checkpoint, an ONNX or TorchScript file): each loaded and checked against the
//! config as a run loads it before its first tick.

use std::path::PathBuf;

use rlrt_runtime::config;

/// Checks each file; prints one line per valid file to stdout and every problem to stderr.
/// Returns the number of invalid files.
pub fn run(files: &[PathBuf]) -> usize {
    let mut invalid = 0;
    for file in files {
        let checked = config::load(file).map_err(|e| e.to_string()).and_then(|c| {
            rlrt_rewards::live::programs::ProgramRewards::load(&c).map_err(|e| {
                let e = anyhow::Error::new(e);
                format!("{}: reward program: {e:#}", file.display())
            })?;
            rlrt_rewards::live::frames::FrameRewards::load(&c).map_err(|e| {
                let e = anyhow::Error::new(e);
                format!("{}: frame reward: {e:#}", file.display())
            })?;
            rlrt_policies::build(&c).map_err(|e| {
                let e = anyhow::Error::new(e);
                format!("{}: policy: {e:#}", file.display())
            })?;
            Ok(c)
        });
        match checked {
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

/// `rlrt check`.
#[derive(clap::Args, Clone, Debug)]
pub struct CheckArgs {
    /// hw-config TOML files (see hw-configs/REFERENCE.toml for every key).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// `rlrt check`: exit code 0 when every file is valid, 2 when any is not.
pub fn execute(args: CheckArgs) -> anyhow::Result<super::Exit> {
    Ok(if run(&args.files) == 0 {
        super::Exit::Success
    } else {
        super::Exit::InvalidConfig
    })
}
