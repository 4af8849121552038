//! `rlrt record`: seeded episodes of a config's sim task, driven by the config's scripted
//! policy plus noise (or uniformly random actions), written as an rlrt dataset
//! (`rlrt_runtime::recording`).

use std::path::PathBuf;

use rlrt_runtime::recording::{DatasetInfo, DatasetWriter};

use rlrt_runtime::evaluation::Evaluation;
use rlrt_sim::rollout::{EpisodeRunner, Exploration};

/// `rlrt record`: seeded episodes of a config's sim task as an rlrt dataset.
#[derive(clap::Args, Clone, Debug)]
pub struct RecordArgs {
    /// The hw-config file (needs a [sim] table).
    pub config: PathBuf,
    #[arg(long, default_value_t = 50)]
    pub episodes: usize,
    /// Standard deviation of the Gaussian noise added to each action value (action
    /// units, such as m for ee_delta).
    #[arg(long, default_value_t = 0.0)]
    pub noise_std: f64,
    /// Uniformly random actions within the action bounds instead of the policy.
    #[arg(long, conflicts_with = "noise_std")]
    pub uniform: bool,
    /// Episode i resets with seed + i (numbering continues in an existing dataset).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The dataset folder (created, or continued if it holds a matching dataset).
    #[arg(long)]
    pub out: PathBuf,
    /// Also record every camera of the config, rendered offscreen at its rate, each frame
    /// with the task's ground-truth success (labels for `rlrt reward train-classifier`).
    #[arg(long)]
    pub frames: bool,
}

impl RecordArgs {
    /// The behaviour policy's exploration the flags choose.
    pub fn exploration(&self) -> Exploration {
        if self.uniform {
            Exploration::Uniform
        } else if self.noise_std > 0.0 {
            Exploration::Gaussian {
                std: self.noise_std,
            }
        } else {
            Exploration::None
        }
    }
}

#[derive(Debug, serde::Serialize)]
pub struct RecordOutcome {
    pub out: PathBuf,
    pub episodes_in_dataset: usize,
    /// The behaviour policy over the episodes of this run.
    pub behaviour: Evaluation,
}

impl std::fmt::Display for RecordOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "wrote {} ({} episodes in the dataset)",
            self.out.display(),
            self.episodes_in_dataset
        )?;
        writeln!(f, "behaviour policy: {}", self.behaviour)
    }
}

pub fn run(args: &RecordArgs, mut progress: impl FnMut(usize)) -> anyhow::Result<RecordOutcome> {
    let (config, text) = super::load_config(&args.config)?;
    let mut policy = rlrt_policies::build(&config)?;
    let mut runner = if args.frames {
        if config.observation.cameras.is_empty() {
            anyhow::bail!(
                "{}: --frames records camera frames, but the config has no [[observation.cameras]]",
                args.config.display()
            );
        }
        EpisodeRunner::with_frames(&config)?
    } else {
        EpisodeRunner::new(&config)?
    };
    let controller = match args.exploration() {
        Exploration::None => policy.name().to_owned(),
        Exploration::Gaussian { std } => format!("{} + gaussian(std {std})", policy.name()),
        Exploration::Uniform => "uniform random".to_owned(),
    };
    let cameras = if args.frames {
        rlrt_runtime::recording::camera_infos(&config)
    } else {
        Vec::new()
    };
    let reward = if runner.has_success_test() {
        "negative_task_distance".to_owned()
    } else {
        format!("task_reward ({})", runner.task_name())
    };
    let info = DatasetInfo::describe(&config, &args.config, reward, controller, cameras);
    let mut writer = DatasetWriter::create(&args.out, info, &text)?;
    let first = writer.episodes();
    let mut episodes = Vec::with_capacity(args.episodes);
    for i in 0..args.episodes {
        let index = (first + i) as u64;
        let episode = runner.run(
            policy.as_mut(),
            args.exploration(),
            args.seed.wrapping_add(index),
            args.seed.wrapping_mul(31).wrapping_add(index),
        )?;
        writer.write(&episode)?;
        // Keep only what the summary needs.
        episodes.push(rlrt_runtime::recording::Episode {
            observations: Vec::new(),
            actions: Vec::new(),
            frames: Vec::new(),
            ..episode
        });
        progress(i + 1);
    }
    Ok(RecordOutcome {
        out: args.out.clone(),
        episodes_in_dataset: writer.episodes(),
        behaviour: Evaluation::of(&episodes, runner.has_success_test()),
    })
}

/// `rlrt record`: records with a progress bar, then prints what was written.
pub fn execute(args: RecordArgs, output: super::Output) -> anyhow::Result<super::Exit> {
    let progress = super::Progress::new(args.episodes);
    let outcome = run(&args, |done| progress.set(done))?;
    drop(progress);
    output.print(&outcome)?;
    Ok(super::Exit::Success)
}
