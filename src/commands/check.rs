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
        // The whole cause chain: library errors keep their cause as a source.
        let failed = |what: &str, e: anyhow::Error| format!("{}: {what}: {e:#}", file.display());
        let checked = config::load(file)
            .map_err(|e| format!("{:#}", anyhow::Error::new(e)))
            .and_then(|c| {
                rlrt_rewards::live::programs::ProgramRewards::load(&c)
                    .map_err(|e| failed("reward program", e.into()))?;
                rlrt_rewards::live::frames::FrameRewards::load(&c)
                    .map_err(|e| failed("frame reward", e.into()))?;
                rlrt_policies::build(&c).map_err(|e| failed("policy", e.into()))?;
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
