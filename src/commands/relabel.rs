//! `rlrt relabel`: a recorded dataset written again with its rewards computed by another
//! reward source (a reward program, a CLIP, classifier or preference_model source of the
//! config, an ONNX reward model file, or an ensemble of several), so that `rlrt train`
//! learns from that reward. The flags become a [`RelabelSpec`]; the work and the report are
//! `rlrt_rewards::offline::relabel`'s.

use std::path::PathBuf;

use rlrt_rewards::ensemble::Aggregate;
use rlrt_rewards::offline::relabel::{relabel, RelabelSpec, RewardChoice};

/// `rlrt relabel`: a dataset written again with its rewards from another source.
#[derive(clap::Args, Clone, Debug)]
#[command(group(
    clap::ArgGroup::new("source")
        .required(true)
        .multiple(true)
        .args(["program", "reward", "model"])
))]
pub struct RelabelArgs {
    /// The dataset folder (`rlrt record`, `rlrt import`).
    pub data: PathBuf,
    /// A reward program file (checked against the dataset's config before it runs).
    /// Repeatable, with --ensemble.
    #[arg(long)]
    pub program: Vec<PathBuf>,
    /// A `[[rewards]]` source of the config by name: program, clip, classifier or
    /// preference_model. Repeatable, with --ensemble.
    #[arg(long)]
    pub reward: Vec<String>,
    /// An ONNX reward model (such as `rlrt reward train-preferences` writes) scoring the
    /// recorded frames of --camera, as a `preference_model` source would: no config
    /// edit needed. Repeatable, with --ensemble.
    #[arg(long)]
    pub model: Vec<PathBuf>,
    /// The camera --model scores (default: the dataset's only camera).
    #[arg(long, requires = "model")]
    pub camera: Option<String>,
    /// Combine several rewards (the --program, --reward and --model given, in that
    /// order), each standardised over the dataset's steps first: mean, min,
    /// mean-minus-std[:K] (K standard deviations across members, default 1) or
    /// and[:REFERENCE] (the sum of log-sigmoid(r - REFERENCE), default 0). Reports
    /// where the members disagree.
    #[arg(long, value_name = "HOW")]
    pub ensemble: Option<Aggregate>,
    /// The new dataset's folder (must not exist or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Read the dataset with this hw-config instead of the one saved with it.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl RelabelArgs {
    /// What the flags ask for; the rewards in order: programs, the config's sources, then
    /// models.
    pub fn spec(self) -> RelabelSpec {
        let programs = self.program.into_iter().map(RewardChoice::Program);
        let sources = self.reward.into_iter().map(RewardChoice::Source);
        let camera = self.camera;
        let models = self.model.into_iter().map(|path| RewardChoice::Model {
            path,
            camera: camera.clone(),
        });
        RelabelSpec {
            data: self.data,
            rewards: programs.chain(sources).chain(models).collect(),
            ensemble: self.ensemble,
            out: self.out,
            config: self.config,
        }
    }
}

/// `rlrt relabel`: writes the relabelled dataset and prints the rewards' summary.
pub fn execute(args: RelabelArgs, output: super::Output) -> anyhow::Result<super::Exit> {
    output.print(&relabel(&args.spec())?)?;
    Ok(super::Exit::Success)
}
