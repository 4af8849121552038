//! Preference labels for offline data and the reward model fitted to them
//! (docs/frame-rewards.md): `rlrt reward label-pairs` (pairs of recorded frames labelled by
//! a VLM teacher or by the recorded task scores, appended to a JSON-lines file) and
//! `rlrt reward train-preferences` (a Bradley-Terry reward model on those labels, exported
//! to ONNX and checked with ONNX Runtime; `rlrt relabel --model` then writes a dataset with
//! its rewards). Here: the flags, the teacher they describe (the API key read from its
//! variable) and the printed outcome; the pipelines are `rlrt_rewards::offline::labelling`
//! and `rlrt_rewards::offline::training`.

use std::path::PathBuf;

use anyhow::Context;
use rlrt_rewards::offline::labelling::{label_pairs, LabelSpec, Selection, Teacher};
use rlrt_rewards::offline::training::{train_preferences, PreferenceSpec};
use rlrt_rewards::program::generate::ChatEndpoint;

use super::train_classifier::{train_and_print, NetArgs};

/// `rlrt reward label-pairs` on the command line.
#[derive(clap::Args)]
pub struct LabelPairsCommand {
    /// The dataset folder (`rlrt record --frames`).
    pub data: PathBuf,
    /// Which recorded camera (default: the only one).
    #[arg(long)]
    pub camera: Option<String>,
    /// How many pairs to label.
    #[arg(long, default_value_t = 1000)]
    pub pairs: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// `vlm` or `scores`.
    #[arg(long, default_value = "vlm")]
    pub teacher: String,
    /// Scores teacher: scores this close are labelled none.
    #[arg(long, default_value_t = 0.0)]
    pub tie: f64,
    /// VLM teacher: base URL of the API, such as http://127.0.0.1:8000/v1.
    #[arg(long)]
    pub base_url: Option<String>,
    /// VLM teacher: model name the endpoint knows (one that reads images).
    #[arg(long)]
    pub model: Option<String>,
    /// VLM teacher: the task, in one sentence.
    #[arg(long)]
    pub goal: Option<String>,
    /// VLM teacher: environment variable holding the API key (sent as a bearer token).
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// VLM teacher: limit for each request, reply included.
    #[arg(long, default_value_t = 60.0)]
    pub timeout_s: f64,
    /// VLM teacher: ask about each pair twice, frames swapped the second time, and keep
    /// only answers that agree (counts the pairs where the model chose by position).
    #[arg(long)]
    pub both_orders: bool,
    /// VLM teacher: requests in flight at once (servers such as vLLM batch them); labels
    /// are still written in pair order.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// The labels file (JSON lines).
    #[arg(long)]
    pub out: PathBuf,
    /// Add to an existing labels file, continuing its sequence of pairs.
    #[arg(long)]
    pub append: bool,
    /// Ask about the pairs this reward model (`reward train-preferences`, fitted to the
    /// labels so far) is least sure of: of --candidates uniform pairs, the one whose
    /// frames it scores closest.
    #[arg(long)]
    pub reward_model: Option<PathBuf>,
    /// With --reward-model: uniform pairs drawn to choose each pair from.
    #[arg(long, default_value_t = 10, requires = "reward_model")]
    pub candidates: usize,
    #[command(flatten)]
    pub output: super::Output,
}

impl LabelPairsCommand {
    /// The teacher the flags describe (the API key read from its variable).
    fn teacher(&self) -> anyhow::Result<Teacher> {
        match self.teacher.as_str() {
            "scores" if self.both_orders => anyhow::bail!(
                "--both-orders is for a VLM teacher (the scores teacher has no favourite \
                 position)"
            ),
            "scores" => Ok(Teacher::Scores { tie: self.tie }),
            "vlm" => {
                let need = |v: &Option<String>, flag: &str| {
                    v.clone()
                        .with_context(|| format!("--teacher vlm needs {flag}"))
                };
                let api_key = match &self.api_key_env {
                    Some(var) => Some(std::env::var(var).with_context(|| {
                        format!("--api-key-env {var}: the variable is not set")
                    })?),
                    None => None,
                };
                Ok(Teacher::Vlm {
                    endpoint: ChatEndpoint {
                        base_url: need(&self.base_url, "--base-url")?,
                        model: need(&self.model, "--model")?,
                        api_key,
                        timeout: std::time::Duration::from_secs_f64(self.timeout_s.max(0.001)),
                        temperature: 0.0,
                    },
                    goal: need(&self.goal, "--goal")?,
                    both_orders: self.both_orders,
                })
            }
            other => anyhow::bail!("--teacher {other:?}: expected vlm or scores"),
        }
    }
}

/// `rlrt reward label-pairs`: labels and prints what was written.
pub fn execute_label_pairs(command: LabelPairsCommand) -> anyhow::Result<super::Exit> {
    let outcome = label_pairs(&LabelSpec {
        teacher: command.teacher()?,
        data: command.data,
        camera: command.camera,
        pairs: command.pairs,
        seed: command.seed,
        out: command.out,
        append: command.append,
        select: command.reward_model.map(|model| Selection {
            model,
            candidates: command.candidates,
        }),
        concurrency: command.concurrency,
    })?;
    command.output.print(&outcome)?;
    Ok(super::Exit::Success)
}

/// `rlrt reward train-preferences` on the command line.
#[derive(clap::Args)]
pub struct TrainPreferencesCommand {
    /// The dataset folder the labels refer to.
    #[arg(long)]
    pub data: PathBuf,
    /// The labels file.
    #[arg(long)]
    pub labels: PathBuf,
    /// The ONNX file to write.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub learning_rate: f64,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub output: super::Output,
}

/// `rlrt reward train-preferences`: trains with a progress bar over the epochs, then prints
/// the outcome.
pub fn execute_train_preferences(command: TrainPreferencesCommand) -> anyhow::Result<super::Exit> {
    let spec = PreferenceSpec {
        config: command.net.config(command.epochs, command.learning_rate),
        validation_fraction: command.net.validation_fraction,
        data: command.data,
        labels: command.labels,
        out: command.out,
    };
    train_and_print(command.epochs, command.output, |progress| {
        train_preferences(&spec, progress)
    })
}
