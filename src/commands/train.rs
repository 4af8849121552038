//! `rlrt train iql|bc` and `rlrt eval`: offline training on an rlrt dataset of any task,
//! checkpoints that resume, and evaluation of a checkpoint.
//!
//! With a `[sim]` table in the dataset's config, training evaluates the actor by seeded
//! rollouts in the simulated task as it goes, and `rlrt eval` runs seeded episodes with a
//! confidence interval. Without one (a real robot's recording, an imported dataset of a task
//! rlrt does not simulate), a few episodes are held out of training, spread over the dataset,
//! and both commands report offline diagnostics on them instead ([`Diagnostics`]: action
//! error and log-likelihood of the held-out actions, TD error, V and Q statistics, the
//! expectile loss and the advantage weights). Those say whether learning is sound; they are
//! not a measure of how well the policy acts, and the output says so.
//!
//! A checkpoint folder holds the learner's burn records and `checkpoint.json` (see
//! `rlrt_policies::checkpoint`: hyperparameters, preset and reward scale included), the
//! resolved hw-config (`config.toml`), `train_log.json` (every evaluation so far) and
//! `held_out.json` (the dataset and its held-out episodes). It is replaced whole: written
//! next to its place as `<out>.partial`, then swapped in by renames.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, Context};
use burn::tensor::backend::AutodiffBackend;
use rlrt_policies::checkpoint::{check_fits, Algorithm, CheckpointMeta, CheckpointPolicy};
use rlrt_policies::iql::{
    cpu, ActorKind, CpuBackend, Diagnostics, IqlConfig, Learner, Losses, Preset, Replay,
};
use rlrt_runtime::compute::ComputeDevice;
use rlrt_runtime::recording::{Dataset, Episode};
use rlrt_runtime::RobotConfig;

use crate::rollout::{eval_seed, EpisodeRunner, Evaluation, Exploration};
use crate::timeline::Destination;

/// `rlrt train`: a policy trained offline on an rlrt dataset.
#[derive(clap::Args, Clone, Debug)]
pub struct TrainArgs {
    /// iql or bc.
    #[arg(value_parser = parse_algorithm)]
    pub algorithm: Algorithm,
    /// The dataset folder (`rlrt record --out`).
    #[arg(long)]
    pub data: PathBuf,
    /// The checkpoint folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Gradient steps (also the length of the actor's cosine schedule).
    #[arg(long, default_value_t = 100_000)]
    pub steps: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Continue the checkpoint in --out (weights, optimizer state, step, sampler).
    #[arg(long)]
    pub resume: bool,
    /// Evaluate (and save a checkpoint) every this many steps (0: only at the end).
    #[arg(long, default_value_t = 5000)]
    pub eval_every: usize,
    /// Episodes per evaluation.
    #[arg(long, default_value_t = 20)]
    pub eval_episodes: usize,
    /// A deterministic actor (weighted squared error) instead of the Gaussian.
    #[arg(long)]
    pub deterministic: bool,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Hidden layer widths, such as 256,256.
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// IQL's settings for a kind of task (the paper's, Appendix B): locomotion (default;
    /// expectile 0.7, temperature 3, rewards scaled to a return range of 1000),
    /// manipulation (0.7, 0.5, rewards as they are) or navigation (0.9, 10, rewards
    /// shifted by -1). The flags below override single values.
    #[arg(long)]
    pub preset: Option<Preset>,
    /// IQL expectile tau (the preset's by default).
    #[arg(long)]
    pub expectile: Option<f64>,
    /// IQL inverse temperature beta (the preset's by default).
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Multiply every reward by this (the preset's rule by default).
    #[arg(long)]
    pub reward_scale: Option<f64>,
    /// Share of episodes held out of training for the offline diagnostics, spread over
    /// the dataset (default 0.05 when the config has no [sim] table, else 0).
    #[arg(long, value_name = "SHARE")]
    pub holdout: Option<f64>,
    /// Plot losses, rollouts and offline diagnostics on a rerun timeline `step`:
    /// save=<file.rrd>, spawn or connect[=<host:port>].
    #[arg(long, value_name = "DESTINATION")]
    pub rerun: Option<Destination>,
    /// Where the updates run: cpu, cuda or cuda:N (CUDA needs rlrt built with `--features
    /// cuda`). Evaluation episodes run the actor on the CPU either way.
    #[arg(long, default_value = "cpu")]
    pub device: ComputeDevice,
}

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    match s {
        "iql" => Ok(Algorithm::Iql),
        "bc" => Ok(Algorithm::Bc),
        other => Err(format!("{other:?}: expected iql or bc")),
    }
}

/// Losses are read back to the host (a synchronisation on a GPU) every this many updates,
/// for the progress line and the rerun plots.
pub const READBACK_EVERY: usize = 100;

/// At most this many transitions go into one offline diagnosis (spread over the data).
pub const DIAGNOSE_LIMIT: usize = 20_000;

/// One evaluation during training.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EvalRecord {
    pub step: usize,
    pub seconds: f64,
    /// Rollouts in the sim (with a `[sim]` table only).
    #[serde(flatten)]
    pub rollout: Option<RolloutRecord>,
    pub value_loss: f32,
    pub q_loss: f32,
    pub actor_loss: f32,
    /// Mean squared error of the actor's mean to the dataset's actions (in [-1, 1] units,
    /// up to 10,000 training transitions).
    pub actor_mse: f32,
    /// Offline diagnostics ([`TrainOutcome::diagnostics_on`] says on what).
    #[serde(default)]
    pub diagnostics: Option<Diagnostics>,
}

/// The rollout part of an [`EvalRecord`].
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RolloutRecord {
    pub success_rate: f64,
    pub success_low: f64,
    pub success_high: f64,
    pub mean_return: f64,
}

/// The dataset a checkpoint was trained on and the episodes held out of it
/// (`held_out.json`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldOut {
    /// The dataset folder as given to `rlrt train --data`.
    pub data: PathBuf,
    /// Episodes in the dataset.
    pub dataset_episodes: usize,
    /// Indices of the held-out episodes (none: diagnostics ran on the training data).
    pub episodes: Vec<usize>,
}

/// The hyperparameters a run used, as the report states them.
#[derive(Debug, serde::Serialize)]
pub struct Hyperparameters {
    pub preset: Option<Preset>,
    pub expectile: f64,
    pub temperature: f64,
    pub discount: f64,
    /// The factor rewards were multiplied by (resolved: the preset's rule applied to this
    /// dataset).
    pub reward_scale: f64,
    pub reward_shift: f64,
    pub batch_size: usize,
    pub hidden: Vec<usize>,
    pub learning_rate: f64,
    pub actor: ActorKind,
}

#[derive(Debug, serde::Serialize)]
pub struct TrainOutcome {
    pub out: PathBuf,
    pub algorithm: Algorithm,
    pub steps: usize,
    /// Wall time of the whole run (evaluations and saves included; resumed runs add
    /// their earlier time).
    pub train_seconds: f64,
    /// Update steps per second of this run's update loop (sampling, update, bookkeeping),
    /// evaluations and saves excluded: the figure `rlrt bench iql` measures.
    pub steps_per_s: f64,
    /// Threads of the rayon pool the updates ran on.
    pub threads: usize,
    pub hyperparameters: Hyperparameters,
    /// How the policy was evaluated: "rollouts" in the config's sim task, or "offline"
    /// (diagnostics on held-out episodes; not a rollout).
    pub evaluation: &'static str,
    /// "held_out" episodes (`held_out_episodes`), or "training" data when none could be held
    /// out; `None` with a sim and no hold-out.
    pub diagnostics_on: Option<&'static str>,
    pub held_out_episodes: Vec<usize>,
    pub training_transitions: usize,
    pub dataset_success_rate: f64,
    /// Mean return of the dataset's episodes (in the dataset's own reward).
    pub dataset_mean_return: f64,
    /// The actor's error to the dataset's actions before this run's first step.
    pub initial_actor_mse: f32,
    pub final_eval: Option<Evaluation>,
    /// Offline diagnostics before this run's first step (the baseline the later ones are
    /// read against).
    pub initial_diagnostics: Option<Diagnostics>,
    /// The last offline diagnostics.
    pub final_diagnostics: Option<Diagnostics>,
    pub log: Vec<EvalRecord>,
    /// Stopped by Ctrl-C (or SIGTERM) before `steps`; the checkpoint holds the last step
    /// and `--resume` continues from it.
    pub interrupted: bool,
}

impl std::fmt::Display for TrainOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} steps in {:.1} s, updates at {:.0} steps/s on {} thread{}; checkpoint {}",
            self.steps,
            self.train_seconds,
            self.steps_per_s,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.out.display()
        )?;
        let h = &self.hyperparameters;
        if self.algorithm == Algorithm::Iql {
            writeln!(
                f,
                "preset {}: expectile {}, temperature {}, rewards x {:.4} {:+}",
                h.preset.map_or("none".into(), |p| p.to_string()),
                h.expectile,
                h.temperature,
                h.reward_scale,
                h.reward_shift
            )?;
        }
        if self.interrupted {
            writeln!(
                f,
                "interrupted: the checkpoint holds step {}; continue with --resume",
                self.steps
            )?;
        }
        // Tasks without a success test (Gymnasium's) are judged by return alone.
        if self.final_eval.is_none_or(|e| e.success_test) {
            writeln!(
                f,
                "dataset (behaviour) success rate: {:.0}%",
                self.dataset_success_rate * 100.0
            )?;
        }
        writeln!(
            f,
            "dataset (behaviour) mean return: {:.2}",
            self.dataset_mean_return
        )?;
        if let Some(e) = &self.final_eval {
            writeln!(f, "final evaluation: {e}")?;
        }
        if let Some(d) = &self.final_diagnostics {
            writeln!(
                f,
                "final offline diagnostics ({}; not a rollout): {}",
                self.diagnostics_on_text(),
                DiagnosticsLine(d)
            )?;
        }
        Ok(())
    }
}

impl TrainOutcome {
    fn diagnostics_on_text(&self) -> String {
        match self.diagnostics_on {
            Some("held_out") => format!("{} held-out episodes", self.held_out_episodes.len()),
            _ => "training data".into(),
        }
    }
}

/// Diagnostics on one line.
pub struct DiagnosticsLine<'a>(pub &'a Diagnostics);

impl std::fmt::Display for DiagnosticsLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.0;
        write!(
            f,
            "{} transitions, action error {:.4} (mean abs, action units)",
            d.transitions, d.action_mae
        )?;
        if let Some(ll) = d.log_likelihood {
            write!(f, ", log-likelihood {ll:.3}")?;
        }
        if let Some(c) = &d.critic {
            write!(
                f,
                ", TD error {:.3} (rms), V {:.2}+-{:.2}, Q {:.2}+-{:.2}, expectile loss {:.4}, \
                 advantage {:+.3}, weight {:.2} ({:.1}% clipped)",
                c.td_error_rms,
                c.v_mean,
                c.v_std,
                c.q_mean,
                c.q_std,
                c.expectile_loss,
                c.advantage_mean,
                c.weight_mean,
                100.0 * c.clipped_share
            )?;
        }
        Ok(())
    }
}

/// The config a dataset or checkpoint was made with, parsed as if it were still at its
/// source path (so relative task paths resolve as they did).
fn config_from_text(text: &str, source: &Path) -> anyhow::Result<RobotConfig> {
    Ok(rlrt_runtime::config::parse(text, source)?)
}

/// Runs `episodes` seeded evaluation episodes of an actor.
pub fn evaluate(
    runner: &mut EpisodeRunner,
    policy: &mut CheckpointPolicy,
    episodes: usize,
    seed: u64,
) -> Result<Evaluation, crate::rollout::RolloutError> {
    let done: Vec<Episode> = (0..episodes)
        .map(|i| runner.run(policy, Exploration::None, eval_seed(seed, i), 0))
        .collect::<Result<_, _>>()?;
    Ok(Evaluation::of(&done, runner.has_success_test()))
}

/// The hyperparameters of a run from its flags: the algorithm's defaults, the preset, then
/// every explicit flag over them.
pub fn iql_config(args: &TrainArgs) -> anyhow::Result<IqlConfig> {
    let mut iql = match args.algorithm {
        Algorithm::Iql => IqlConfig::preset(args.preset.unwrap_or(Preset::Locomotion)),
        Algorithm::Bc => {
            anyhow::ensure!(
                args.preset.is_none()
                    && args.expectile.is_none()
                    && args.temperature.is_none()
                    && args.reward_scale.is_none(),
                "--preset, --expectile, --temperature and --reward-scale are IQL's; \
                 behaviour cloning has no critic"
            );
            IqlConfig::behaviour_cloning()
        }
    };
    iql.steps = args.steps;
    iql.seed = args.seed;
    if args.deterministic {
        iql.actor = ActorKind::Deterministic;
    }
    if let Some(b) = args.batch_size {
        anyhow::ensure!(b > 0, "--batch-size must be above zero");
        iql.batch_size = b;
    }
    if let Some(h) = &args.hidden {
        anyhow::ensure!(
            !h.is_empty() && h.iter().all(|&w| w > 0),
            "--hidden needs at least one width above zero"
        );
        iql.hidden = h.clone();
    }
    if let Some(e) = args.expectile {
        anyhow::ensure!(
            e > 0.0 && e < 1.0,
            "--expectile {e}: expected a value between 0 and 1 (0.7 locomotion, 0.9 navigation)"
        );
        iql.expectile = e;
    }
    if let Some(t) = args.temperature {
        anyhow::ensure!(
            t.is_finite() && t >= 0.0,
            "--temperature {t}: expected a finite value of at least 0"
        );
        iql.temperature = t;
    }
    if let Some(s) = args.reward_scale {
        anyhow::ensure!(
            s.is_finite() && s > 0.0,
            "--reward-scale {s}: expected a finite value above 0"
        );
        iql.reward_scale = Some(s);
    }
    Ok(iql)
}

pub fn train(args: &TrainArgs) -> anyhow::Result<TrainOutcome> {
    // The device is checked before a large dataset is read.
    #[cfg(not(feature = "cuda"))]
    if args.device.is_cuda() {
        return Err(super::no_cuda());
    }
    #[cfg(feature = "cuda")]
    let cuda = match args.device {
        ComputeDevice::Cuda(index) => Some(super::cuda_device(index)?),
        ComputeDevice::Cpu => None,
    };
    if let Some(h) = args.holdout {
        anyhow::ensure!(
            (0.0..1.0).contains(&h),
            "--holdout {h}: expected a share of episodes in [0, 1)"
        );
    }
    let iql = iql_config(args)?;
    let dataset = Dataset::open(&args.data)?;
    // A recorded run carries no rewards (`rlrt run --record`); behaviour cloning needs none.
    anyhow::ensure!(
        args.algorithm == Algorithm::Bc
            || dataset.info.reward != rlrt_runtime::hub::recorder::NO_REWARD,
        "{}: its rewards are `none` (recorded by rlrt run --record); score it first with \
         rlrt relabel (a reward program, or a CLIP, classifier or preference_model source), \
         or train bc",
        args.data.display()
    );
    let source = PathBuf::from(&dataset.info.config_source);
    let config = config_from_text(&dataset.config_text, &source)
        .with_context(|| format!("the config saved in {}", args.data.display()))?;

    // The held-out episodes: those of the checkpoint being resumed, else chosen now.
    let previous = args.resume.then(|| read_held_out(&args.out).ok()).flatten();
    let held_out = match previous {
        Some(h) => {
            anyhow::ensure!(
                h.dataset_episodes == dataset.episodes.len(),
                "--resume: {} was trained on a dataset of {} episodes with episodes {:?} held \
                 out; {} has {}",
                args.out.display(),
                h.dataset_episodes,
                h.episodes,
                args.data.display(),
                dataset.episodes.len()
            );
            h.episodes
        }
        None => {
            let fraction = args
                .holdout
                .unwrap_or(if config.sim.is_some() { 0.0 } else { 0.05 });
            Replay::held_out_episodes(&dataset, fraction)
        }
    };
    let (min, max) = (&config.action.min, &config.action.max);
    let (replay, held) = if held_out.is_empty() {
        (Replay::from_dataset(&dataset, min, max, &iql)?, None)
    } else {
        let (replay, held) = Replay::split(&dataset, &held_out, min, max, &iql)?;
        (replay, Some(held))
    };
    let split = HeldOut {
        data: args.data.clone(),
        dataset_episodes: dataset.episodes.len(),
        episodes: held_out,
    };
    #[cfg(feature = "cuda")]
    if let Some(device) = cuda {
        let learner = Learner::<rlrt_policies::iql::CudaBackend>::new(iql, replay, device);
        return run(args, &dataset, &config, learner, held, split);
    }
    run(
        args,
        &dataset,
        &config,
        Learner::<CpuBackend>::new(iql, replay, cpu()),
        held,
        split,
    )
}

fn read_held_out(dir: &Path) -> anyhow::Result<HeldOut> {
    let path = dir.join("held_out.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}", path.display()))
}

/// What one run of [`run_updates`] did.
pub struct UpdatesDone {
    /// The losses last read back (after the last update when it ended on a read-back step).
    pub losses: Option<Losses>,
    /// Time spent in the loop.
    pub seconds: f64,
}

/// The update loop of `rlrt train`, also what `rlrt bench iql` times: updates until the
/// learner reaches step `until` or `stop` is raised, the progress bar moved on each, the
/// losses read back every `readback_every` steps (a host-device synchronisation on a GPU)
/// and shown.
pub fn run_updates<B: AutodiffBackend>(
    learner: &mut Learner<B>,
    until: usize,
    readback_every: usize,
    stop: &AtomicBool,
    bar: &indicatif::ProgressBar,
) -> UpdatesDone {
    let start = Instant::now();
    let mut losses = None;
    while learner.step() < until && !stop.load(Ordering::Relaxed) {
        learner.advance();
        bar.inc(1);
        if learner.step() % readback_every.max(1) == 0 {
            let recent = learner.losses();
            bar.set_message(format!(
                "V {:.3} Q {:.3} actor {:.3}",
                recent.value, recent.q, recent.actor
            ));
            losses = Some(recent);
        }
    }
    UpdatesDone {
        losses,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Training plots on a rerun timeline `step` (`--rerun`); logging failures are not errors of
/// the run (a viewer closed mid-run loses plots, not the checkpoint).
struct TrainPlots {
    plots: rlrt_rerun::Plots,
}

impl TrainPlots {
    fn open(destination: &Destination, name: &str) -> anyhow::Result<Self> {
        Ok(Self {
            plots: rlrt_rerun::Plots::open(destination, name)?,
        })
    }

    fn scalar(&self, path: &str, value: f64) {
        self.plots.scalar(path, value);
    }

    fn losses(&self, step: usize, l: &Losses, iql: bool) {
        self.plots.set_time("step", step as i64);
        self.scalar("train/loss/actor", l.actor as f64);
        if iql {
            self.scalar("train/loss/value", l.value as f64);
            self.scalar("train/loss/q", l.q as f64);
            self.scalar("train/batch/advantage", l.advantage as f64);
            self.scalar("train/batch/weight", l.weight as f64);
            self.scalar("train/batch/clipped_share", l.clipped as f64);
        }
    }

    fn record(&self, r: &EvalRecord) {
        self.plots.set_time("step", r.step as i64);
        self.scalar("train/actor_mse", r.actor_mse as f64);
        if let Some(e) = &r.rollout {
            self.scalar("eval/success_rate", e.success_rate);
            self.scalar("eval/mean_return", e.mean_return);
        }
        if let Some(d) = &r.diagnostics {
            self.scalar("offline/action_mse", d.action_mse as f64);
            self.scalar("offline/action_mae", d.action_mae as f64);
            if let Some(ll) = d.log_likelihood {
                self.scalar("offline/log_likelihood", ll as f64);
            }
            if let Some(c) = &d.critic {
                self.scalar("offline/td_error_rms", c.td_error_rms as f64);
                self.scalar("offline/v_mean", c.v_mean as f64);
                self.scalar("offline/v_std", c.v_std as f64);
                self.scalar("offline/q_mean", c.q_mean as f64);
                self.scalar("offline/q_std", c.q_std as f64);
                self.scalar("offline/expectile_loss", c.expectile_loss as f64);
                self.scalar("offline/advantage_mean", c.advantage_mean as f64);
                self.scalar("offline/weight_mean", c.weight_mean as f64);
                self.scalar("offline/clipped_share", c.clipped_share as f64);
            }
        }
    }

    fn finish(self) {
        self.plots.flush();
    }
}

/// The training loop on any backend: resume, update, evaluate and save.
fn run<B: AutodiffBackend>(
    args: &TrainArgs,
    dataset: &Dataset,
    config: &RobotConfig,
    mut learner: Learner<B>,
    held: Option<Replay>,
    split: HeldOut,
) -> anyhow::Result<TrainOutcome> {
    let partial = sibling(&args.out, "partial");
    let old = sibling(&args.out, "old");
    let mut log: Vec<EvalRecord> = Vec::new();
    let mut elapsed_before = 0.0;
    if args.resume {
        // A crash between the two renames of a save leaves only `<out>.old`.
        if !args.out.exists() && old.exists() {
            std::fs::rename(&old, &args.out)?;
        }
        if args.out.join("checkpoint.json").exists() {
            learner = learner.resume(&args.out)?;
            if let Ok(text) = std::fs::read_to_string(args.out.join("train_log.json")) {
                log = serde_json::from_str(&text).unwrap_or_default();
            }
            elapsed_before = log.last().map_or(0.0, |r| r.seconds);
            tracing::info!(step = learner.step(), "resumed from {}", args.out.display());
        } else {
            tracing::warn!(
                "--resume: no checkpoint in {}; starting fresh",
                args.out.display()
            );
        }
    } else if args.out.join("checkpoint.json").exists() {
        bail!(
            "{} already holds a checkpoint: pass --resume to continue it, or choose another --out",
            args.out.display()
        );
    }

    // Rollouts where the config simulates its task; offline diagnostics always when episodes
    // are held out, and on the training data when there is no sim and nothing to hold out.
    let mut runner = match config.sim {
        Some(_) => Some(EpisodeRunner::new(config)?),
        None => None,
    };
    let diagnostics_on = match (&held, &runner) {
        (Some(_), _) => Some("held_out"),
        (None, None) => Some("training"),
        (None, Some(_)) => None,
    };
    if runner.is_none() {
        let what = match &held {
            Some(h) => format!(
                "{} held-out episodes ({} transitions)",
                split.episodes.len(),
                h.len()
            ),
            None => "the training data (one episode: nothing to hold out)".into(),
        };
        let text = format!(
            "{}: no [sim] table, so no rollouts: progress shows offline diagnostics on {what}",
            config.source.display()
        );
        // Said once, in the log (stderr), whatever the output format.
        tracing::info!("{text}");
    }
    let plots = match &args.rerun {
        Some(d) => Some(TrainPlots::open(
            d,
            &format!("rlrt train {}", args.out.display()),
        )?),
        None => None,
    };
    let iql = learner.config.algorithm == Algorithm::Iql;
    let initial_actor_mse = learner.actor_mse(10_000);
    let initial_diagnostics = diagnostics_on
        .map(|_| learner.diagnose(held.as_ref().unwrap_or(&learner.replay), DIAGNOSE_LIMIT));
    let bar = indicatif::ProgressBar::new(args.steps as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} steps ({per_sec}, eta {eta}) {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_position(learner.step() as u64);
    let start = Instant::now();
    let first_step = learner.step();
    let mut update_seconds = 0.0;
    let mut final_eval = None;
    let mut final_diagnostics = None;
    let save = |learner: &Learner<B>, log: &[EvalRecord]| -> anyhow::Result<()> {
        let _ = std::fs::remove_dir_all(&partial);
        learner.save(&partial)?;
        std::fs::write(partial.join("config.toml"), &dataset.config_text)?;
        std::fs::write(partial.join("config_source"), &dataset.info.config_source)?;
        std::fs::write(
            partial.join("train_log.json"),
            serde_json::to_string_pretty(log)?,
        )?;
        std::fs::write(
            partial.join("held_out.json"),
            serde_json::to_string_pretty(&split)?,
        )?;
        let _ = std::fs::remove_dir_all(&old);
        if args.out.exists() {
            std::fs::rename(&args.out, &old)?;
        }
        std::fs::rename(&partial, &args.out)?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    };
    // Ctrl-C or SIGTERM: save at the current step and stop (a second one ends the process).
    let stop = crate::signals::stop_flag();
    let mut interrupted = false;
    let say = |line: String| {
        // indicatif draws nothing when stderr is not a terminal; say it in the log then.
        if bar.is_hidden() {
            tracing::info!("{line}");
        } else {
            bar.println(line);
        }
    };
    while learner.step() < args.steps {
        let step = learner.step();
        // Read back at every multiple of READBACK_EVERY for the plots, and evaluate at every
        // multiple of --eval-every and at the end.
        let next_eval = step
            .checked_div(args.eval_every)
            .map_or(args.steps, |k| (k + 1) * args.eval_every);
        let until = next_eval.min(args.steps);
        let chunk_end = ((step / READBACK_EVERY) + 1) * READBACK_EVERY;
        let done = run_updates(
            &mut learner,
            until.min(chunk_end),
            READBACK_EVERY,
            stop,
            &bar,
        );
        update_seconds += done.seconds;
        if let (Some(p), Some(l)) = (&plots, &done.losses) {
            p.losses(learner.step(), l, iql);
        }
        if stop.load(Ordering::Relaxed) {
            save(&learner, &log)?;
            interrupted = true;
            break;
        }
        let step = learner.step();
        if step != until {
            continue;
        }
        let recent = done.losses.unwrap_or_else(|| learner.losses());
        let eval = match runner.as_mut() {
            Some(runner) => {
                let mut policy =
                    CheckpointPolicy::from_parts(&learner.meta(), learner.actor_weights());
                Some(evaluate(
                    runner,
                    &mut policy,
                    args.eval_episodes,
                    args.seed,
                )?)
            }
            None => None,
        };
        let diagnostics = diagnostics_on
            .map(|_| learner.diagnose(held.as_ref().unwrap_or(&learner.replay), DIAGNOSE_LIMIT));
        let mut line = format!("step {step}:");
        if let Some(e) = &eval {
            line += &format!(" {e}");
        }
        if let Some(d) = &diagnostics {
            line += &format!(
                " offline ({}; not a rollout): {}",
                diagnostics_on.map_or("", |o| if o == "held_out" {
                    "held-out"
                } else {
                    "training data"
                }),
                DiagnosticsLine(d)
            );
        }
        say(line);
        let record = EvalRecord {
            step,
            seconds: elapsed_before + start.elapsed().as_secs_f64(),
            rollout: eval.as_ref().map(|e| RolloutRecord {
                success_rate: e.success_rate,
                success_low: e.success_low,
                success_high: e.success_high,
                mean_return: e.mean_return,
            }),
            value_loss: recent.value,
            q_loss: recent.q,
            actor_loss: recent.actor,
            actor_mse: learner.actor_mse(10_000),
            diagnostics: diagnostics.clone(),
        };
        if let Some(p) = &plots {
            p.record(&record);
        }
        log.push(record);
        save(&learner, &log)?;
        if eval.is_some() {
            final_eval = eval;
        }
        if diagnostics.is_some() {
            final_diagnostics = diagnostics;
        }
    }
    bar.finish_and_clear();
    if let Some(p) = plots {
        p.finish();
    }
    let c = &learner.config;
    Ok(TrainOutcome {
        out: args.out.clone(),
        algorithm: c.algorithm,
        steps: learner.step(),
        train_seconds: elapsed_before + start.elapsed().as_secs_f64(),
        steps_per_s: (learner.step() - first_step) as f64 / update_seconds.max(1e-9),
        threads: rayon::current_num_threads(),
        hyperparameters: Hyperparameters {
            preset: c.preset,
            expectile: c.expectile,
            temperature: c.temperature,
            discount: c.discount,
            reward_scale: learner.replay.reward_scale,
            reward_shift: c.reward_shift,
            batch_size: c.batch_size,
            hidden: c.hidden.clone(),
            learning_rate: c.learning_rate,
            actor: c.actor,
        },
        evaluation: if runner.is_some() {
            "rollouts"
        } else {
            "offline"
        },
        diagnostics_on,
        held_out_episodes: split.episodes.clone(),
        training_transitions: learner.replay.len(),
        dataset_success_rate: dataset.success_rate(),
        dataset_mean_return: dataset
            .episodes
            .iter()
            .map(|e| e.total_reward())
            .sum::<f64>()
            / dataset.episodes.len().max(1) as f64,
        initial_actor_mse,
        final_eval,
        initial_diagnostics,
        final_diagnostics,
        log,
        interrupted,
    })
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    path.with_file_name(name)
}

/// `rlrt eval`: a checkpoint's actor for seeded episodes (or on held-out recorded ones).
#[derive(clap::Args, Clone, Debug)]
pub struct EvalArgs {
    /// The checkpoint folder (`rlrt train --out`).
    pub checkpoint: PathBuf,
    #[arg(long, default_value_t = 50)]
    pub episodes: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run in this hw-config instead of the one saved in the checkpoint.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Evaluate offline on the held-out episodes of this dataset (default, when the
    /// config has no [sim] table: the dataset the checkpoint was trained on, from
    /// `held_out.json`).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// An offline evaluation: no rollout, the checkpoint's networks measured on episodes of its
/// dataset that training did not see.
#[derive(Debug, serde::Serialize)]
pub struct OfflineEvaluation {
    /// Always "offline: held-out episodes, not a rollout" (or "...training data...").
    pub kind: String,
    pub data: PathBuf,
    pub episodes: Vec<usize>,
    pub diagnostics: Diagnostics,
    /// Mean return of the measured episodes in the dataset (the behaviour's, not the
    /// policy's).
    pub behaviour_mean_return: f64,
}

#[derive(Debug, serde::Serialize)]
pub struct EvalOutcome {
    pub checkpoint: PathBuf,
    pub algorithm: Algorithm,
    pub step: usize,
    /// Seeded rollouts in the config's sim task (with a `[sim]` table).
    pub evaluation: Option<Evaluation>,
    /// Without a sim.
    pub offline: Option<OfflineEvaluation>,
}

impl std::fmt::Display for EvalOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(e) = &self.evaluation {
            writeln!(
                f,
                "{} ({:?}, step {}): {e}",
                self.checkpoint.display(),
                self.algorithm,
                self.step,
            )?;
        }
        if let Some(o) = &self.offline {
            writeln!(
                f,
                "{} ({:?}, step {}): {} of {} (episodes {:?})",
                self.checkpoint.display(),
                self.algorithm,
                self.step,
                o.kind,
                o.data.display(),
                o.episodes
            )?;
            writeln!(f, "  {}", DiagnosticsLine(&o.diagnostics))?;
            writeln!(
                f,
                "  the behaviour's mean return on these episodes: {:.2}",
                o.behaviour_mean_return
            )?;
        }
        Ok(())
    }
}

pub fn eval(args: &EvalArgs) -> anyhow::Result<EvalOutcome> {
    let dir = &args.checkpoint;
    let meta = CheckpointMeta::read(&dir.join("checkpoint.json"))?;
    let config = match &args.config {
        Some(path) => rlrt_runtime::config::load(path)?,
        None => {
            let text = std::fs::read_to_string(dir.join("config.toml"))
                .with_context(|| format!("reading {}", dir.join("config.toml").display()))?;
            let source = std::fs::read_to_string(dir.join("config_source"))
                .map(PathBuf::from)
                .unwrap_or_else(|_| dir.join("config.toml"));
            config_from_text(&text, &source)?
        }
    };
    check_fits(dir, &meta, &config)?;
    if config.sim.is_some() && args.data.is_none() {
        let mut policy = CheckpointPolicy::load(dir)?;
        let mut runner = EpisodeRunner::new(&config)?;
        let evaluation = evaluate(&mut runner, &mut policy, args.episodes, args.seed)?;
        return Ok(EvalOutcome {
            checkpoint: dir.clone(),
            algorithm: meta.algorithm,
            step: meta.step,
            evaluation: Some(evaluation),
            offline: None,
        });
    }
    let offline = eval_offline(dir, &meta, args.data.as_deref())?;
    Ok(EvalOutcome {
        checkpoint: dir.clone(),
        algorithm: meta.algorithm,
        step: meta.step,
        evaluation: None,
        offline: Some(offline),
    })
}

/// The checkpoint's networks (actor, and for IQL the critic and value) on its held-out
/// episodes, or on the given dataset's held-out episodes of the same split.
fn eval_offline(
    dir: &Path,
    meta: &CheckpointMeta,
    data: Option<&Path>,
) -> anyhow::Result<OfflineEvaluation> {
    let held = read_held_out(dir).with_context(|| {
        format!(
            "{}: no sim to roll out in, and no record of the held-out episodes \
             (checkpoints written by rlrt train keep one in held_out.json)",
            dir.display()
        )
    })?;
    let data_dir = data.map(Path::to_path_buf).unwrap_or(held.data.clone());
    let dataset = Dataset::open(&data_dir).with_context(|| {
        format!(
            "the dataset {} was trained on (pass --data to name where it is now)",
            dir.display()
        )
    })?;
    anyhow::ensure!(
        dataset.episodes.len() == held.dataset_episodes,
        "{}: has {} episodes; {} was trained on one of {}",
        data_dir.display(),
        dataset.episodes.len(),
        dir.display(),
        held.dataset_episodes
    );
    let source = PathBuf::from(&dataset.info.config_source);
    let config = config_from_text(&dataset.config_text, &source)?;
    let (kind, episodes) = if held.episodes.is_empty() {
        (
            "offline: the training data (nothing was held out), not a rollout",
            (0..dataset.episodes.len()).collect::<Vec<_>>(),
        )
    } else {
        (
            "offline: held-out episodes, not a rollout",
            held.episodes.clone(),
        )
    };
    let (min, max) = (&config.action.min, &config.action.max);
    let mut iql = meta.config.clone();
    // The scale the checkpoint was trained with, whatever rule chose it.
    iql.reward_scale = Some(meta.reward_scale);
    let (replay, measured) = if held.episodes.is_empty() {
        (Replay::from_dataset(&dataset, min, max, &iql)?, None)
    } else {
        let (r, h) = Replay::split(&dataset, &held.episodes, min, max, &iql)?;
        (r, Some(h))
    };
    // (checkpoint.json holds them in decimal: equal to rounding.)
    let close = |a: &[f64], b: &[f64]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-9 * (1.0 + y.abs()))
    };
    let (n, m) = (&replay.normalisation, &meta.normalisation);
    anyhow::ensure!(
        close(&n.observation_mean, &m.observation_mean)
            && close(&n.observation_std, &m.observation_std),
        "{}: its observation statistics differ from what {} was trained with: not the same \
         data",
        data_dir.display(),
        dir.display()
    );
    let learner = Learner::<CpuBackend>::new(iql, replay, cpu()).resume(dir)?;
    let diagnostics = learner.diagnose(measured.as_ref().unwrap_or(&learner.replay), usize::MAX);
    let behaviour_mean_return = episodes
        .iter()
        .map(|&i| dataset.episodes[i].total_reward())
        .sum::<f64>()
        / episodes.len().max(1) as f64;
    Ok(OfflineEvaluation {
        kind: kind.into(),
        data: data_dir,
        episodes,
        diagnostics,
        behaviour_mean_return,
    })
}

/// `rlrt train`: trains and prints the outcome; a run Ctrl-C stopped (its checkpoint saved)
/// exits with 130.
pub fn execute_train(args: TrainArgs, output: super::Output) -> anyhow::Result<super::Exit> {
    crate::signals::stop_flag();
    let outcome = train(&args)?;
    output.print(&outcome)?;
    Ok(if outcome.interrupted {
        super::Exit::Interrupted
    } else {
        super::Exit::Success
    })
}

/// `rlrt eval`: evaluates and prints the outcome.
pub fn execute_eval(args: EvalArgs, output: super::Output) -> anyhow::Result<super::Exit> {
    output.print(&eval(&args)?)?;
    Ok(super::Exit::Success)
}
