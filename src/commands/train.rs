//! `rlrt train iql|bc` and `rlrt eval`: offline training on an rlrt dataset with periodic
//! evaluation in the config's sim task, checkpoints that resume, and seeded evaluation of a
//! checkpoint with a confidence interval.
//!
//! A checkpoint folder holds the learner's burn records and `checkpoint.json` (see
//! `rlrt_policies::checkpoint`), the resolved hw-config (`config.toml`) and `train_log.json`
//! (every evaluation so far). It is replaced whole: written next to its place as
//! `<out>.partial`, then swapped in by renames.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use burn::tensor::backend::AutodiffBackend;
use rlrt_policies::checkpoint::{check_fits, Algorithm, CheckpointMeta, CheckpointPolicy};
use rlrt_policies::iql::{cpu, ActorKind, CpuBackend, IqlConfig, Learner, Replay};
use rlrt_runtime::compute::ComputeDevice;
use rlrt_runtime::recording::{Dataset, Episode};
use rlrt_runtime::RobotConfig;

use crate::rollout::{eval_seed, EpisodeRunner, Evaluation, Exploration};

pub struct TrainArgs {
    pub algorithm: Algorithm,
    pub data: PathBuf,
    pub out: PathBuf,
    pub steps: usize,
    pub seed: u64,
    pub resume: bool,
    pub eval_every: usize,
    pub eval_episodes: usize,
    pub deterministic: bool,
    pub batch_size: Option<usize>,
    pub hidden: Option<Vec<usize>>,
    pub expectile: Option<f64>,
    pub temperature: Option<f64>,
    /// Where the updates run (evaluation episodes always run the actor on the CPU).
    pub device: ComputeDevice,
}

/// One evaluation during training.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EvalRecord {
    pub step: usize,
    pub seconds: f64,
    pub success_rate: f64,
    pub success_low: f64,
    pub success_high: f64,
    pub mean_return: f64,
    pub value_loss: f32,
    pub q_loss: f32,
    pub actor_loss: f32,
    /// Mean squared error of the actor's mean to the dataset's actions (in [-1, 1] units,
    /// first 10,000 transitions).
    pub actor_mse: f32,
}

#[derive(Debug, serde::Serialize)]
pub struct TrainOutcome {
    pub out: PathBuf,
    pub steps: usize,
    pub train_seconds: f64,
    pub dataset_success_rate: f64,
    /// Mean return of the dataset's episodes (in the dataset's own reward).
    pub dataset_mean_return: f64,
    /// The actor's error to the dataset's actions before this run's first step.
    pub initial_actor_mse: f32,
    pub final_eval: Option<Evaluation>,
    pub log: Vec<EvalRecord>,
    /// Stopped by Ctrl-C (or SIGTERM) before `steps`; the checkpoint holds the last step
    /// and `--resume` continues from it.
    pub interrupted: bool,
}

impl std::fmt::Display for TrainOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} steps in {:.1} s; checkpoint {}",
            self.steps,
            self.train_seconds,
            self.out.display()
        )?;
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
    let dataset = Dataset::open(&args.data)?;
    // A recorded run carries no rewards (`rlrt run --record`); behaviour cloning needs none.
    anyhow::ensure!(
        args.algorithm == Algorithm::Bc || dataset.info.reward != crate::run_recorder::NO_REWARD,
        "{}: its rewards are `none` (recorded by rlrt run --record); score it first with \
         rlrt relabel (a reward program, or a CLIP, classifier or preference_model source), \
         or train bc",
        args.data.display()
    );
    let source = PathBuf::from(&dataset.info.config_source);
    let config = config_from_text(&dataset.config_text, &source)
        .with_context(|| format!("the config saved in {}", args.data.display()))?;
    let mut iql = match args.algorithm {
        Algorithm::Iql => IqlConfig::default(),
        Algorithm::Bc => IqlConfig::behaviour_cloning(),
    };
    iql.steps = args.steps;
    iql.seed = args.seed;
    if args.deterministic {
        iql.actor = ActorKind::Deterministic;
    }
    if let Some(b) = args.batch_size {
        iql.batch_size = b;
    }
    if let Some(h) = &args.hidden {
        iql.hidden = h.clone();
    }
    if let Some(e) = args.expectile {
        iql.expectile = e;
    }
    if let Some(t) = args.temperature {
        iql.temperature = t;
    }
    let replay = Replay::from_dataset(&dataset, &config.action.min, &config.action.max, &iql)?;
    #[cfg(feature = "cuda")]
    if let Some(device) = cuda {
        let learner = Learner::<rlrt_policies::iql::CudaBackend>::new(iql, replay, device);
        return run(args, &dataset, &config, learner);
    }
    run(
        args,
        &dataset,
        &config,
        Learner::<CpuBackend>::new(iql, replay, cpu()),
    )
}

/// The training loop on any backend: resume, update, evaluate and save.
fn run<B: AutodiffBackend>(
    args: &TrainArgs,
    dataset: &Dataset,
    config: &RobotConfig,
    mut learner: Learner<B>,
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

    let mut runner = EpisodeRunner::new(config)?;
    let initial_actor_mse = learner.actor_mse(10_000);
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
    let mut final_eval = None;
    let save = |learner: &Learner<B>, log: &[EvalRecord]| -> anyhow::Result<()> {
        let _ = std::fs::remove_dir_all(&partial);
        learner.save(&partial)?;
        std::fs::write(partial.join("config.toml"), &dataset.config_text)?;
        std::fs::write(partial.join("config_source"), &dataset.info.config_source)?;
        std::fs::write(
            partial.join("train_log.json"),
            serde_json::to_string_pretty(log)?,
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
    while learner.step() < args.steps {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            save(&learner, &log)?;
            interrupted = true;
            break;
        }
        // Losses are read back (a synchronisation on a GPU) only to show and to log them.
        learner.advance();
        bar.inc(1);
        let step = learner.step();
        let last = step == args.steps;
        let evaluate_now = (args.eval_every > 0 && step % args.eval_every == 0) || last;
        if step % 100 != 0 && !evaluate_now {
            continue;
        }
        let recent = learner.losses();
        bar.set_message(format!(
            "V {:.3} Q {:.3} actor {:.3}",
            recent.value, recent.q, recent.actor
        ));
        if evaluate_now {
            let mut policy = CheckpointPolicy::from_parts(&learner.meta(), learner.actor_weights());
            let eval = evaluate(&mut runner, &mut policy, args.eval_episodes, args.seed)?;
            let record = EvalRecord {
                step,
                seconds: elapsed_before + start.elapsed().as_secs_f64(),
                success_rate: eval.success_rate,
                success_low: eval.success_low,
                success_high: eval.success_high,
                mean_return: eval.mean_return,
                value_loss: recent.value,
                q_loss: recent.q,
                actor_loss: recent.actor,
                actor_mse: learner.actor_mse(10_000),
            };
            // indicatif draws nothing when stderr is not a terminal; say it in the log then.
            if bar.is_hidden() {
                tracing::info!("step {step}: {eval}");
            } else {
                bar.println(format!("step {step}: {eval}"));
            }
            log.push(record);
            save(&learner, &log)?;
            final_eval = Some(eval);
        }
    }
    bar.finish_and_clear();
    Ok(TrainOutcome {
        out: args.out.clone(),
        steps: learner.step(),
        train_seconds: elapsed_before + start.elapsed().as_secs_f64(),
        dataset_success_rate: dataset.success_rate(),
        dataset_mean_return: dataset
            .episodes
            .iter()
            .map(|e| e.total_reward())
            .sum::<f64>()
            / dataset.episodes.len().max(1) as f64,
        initial_actor_mse,
        final_eval,
        log,
        interrupted,
    })
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    path.with_file_name(name)
}

pub struct EvalArgs {
    pub checkpoint: PathBuf,
    pub episodes: usize,
    pub seed: u64,
    /// Another config to run the actor in (default: the one saved in the checkpoint).
    pub config: Option<PathBuf>,
}

#[derive(Debug, serde::Serialize)]
pub struct EvalOutcome {
    pub checkpoint: PathBuf,
    pub algorithm: Algorithm,
    pub step: usize,
    pub evaluation: Evaluation,
}

impl std::fmt::Display for EvalOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} ({:?}, step {}): {}",
            self.checkpoint.display(),
            self.algorithm,
            self.step,
            self.evaluation
        )
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
    let mut policy = CheckpointPolicy::load(dir)?;
    let mut runner = EpisodeRunner::new(&config)?;
    let evaluation = evaluate(&mut runner, &mut policy, args.episodes, args.seed)?;
    Ok(EvalOutcome {
        checkpoint: dir.clone(),
        algorithm: meta.algorithm,
        step: meta.step,
        evaluation,
    })
}
