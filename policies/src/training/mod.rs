//! Offline training as a whole run: a dataset in, a checkpoint folder out, evaluations on the
//! way. [`Prepared::open`] reads the dataset and its config and chooses the held-out
//! episodes; [`Prepared::run`] trains on any burn backend, evaluates every so often and saves.
//!
//! With a `[sim]` table in the dataset's config the caller passes an [`Evaluate`] (seeded
//! rollouts in the simulated task). Without one (a real robot's recording, an imported
//! dataset of a task rlrt does not simulate), a few episodes are held out of training, spread
//! over the dataset, and the run reports offline diagnostics on them instead
//! ([`Diagnostics`]: action error and log-likelihood of the held-out actions, TD error, V and
//! Q statistics, the expectile loss and the advantage weights). Those say whether learning is
//! sound; they are not a measure of how well the policy acts, and the reports say so.
//!
//! A checkpoint folder holds the learner's burn records and `checkpoint.json` (see
//! [`crate::checkpoint`]: hyperparameters, preset and reward scale included), the resolved
//! hw-config (`config.toml`), `train_log.json` (every evaluation so far) and `held_out.json`
//! (the dataset and its held-out episodes). It is replaced whole: written next to its place
//! as `<out>.partial`, then swapped in by renames.

mod folder;
mod offline;
mod report;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use rlrt_runtime::evaluation::Evaluation;
use rlrt_runtime::recording::{Dataset, RecordingError};
use rlrt_runtime::RobotConfig;

use crate::checkpoint::CheckpointPolicy;
use crate::iql::{Diagnostics, Learner, Losses, Replay, TrainError};
use crate::iql_config::{ActorKind, Algorithm, IqlConfig, Preset};

pub use folder::read_held_out;
pub use offline::{evaluate_offline, OfflineEvaluation};
pub use report::DiagnosticsLine;

/// Losses are read back to the host (a synchronisation on a GPU) every this many updates,
/// for the progress line and the plots.
pub const READBACK_EVERY: usize = 100;

/// At most this many transitions go into one offline diagnosis (spread over the data).
pub const DIAGNOSE_LIMIT: usize = 20_000;

/// Why a training run or an offline evaluation could not go on.
#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    #[error(transparent)]
    Dataset(#[from] RecordingError),
    #[error("the config saved in {}", data.display())]
    Config {
        data: PathBuf,
        #[source]
        source: rlrt_runtime::config::ConfigError,
    },
    #[error(
        "{}: its rewards are `none` (recorded by rlrt run --record); score it first with \
         rlrt relabel (a reward program, or a CLIP, classifier or preference_model source), \
         or train bc",
        .0.display()
    )]
    NoRewards(PathBuf),
    #[error(
        "--resume: {} was trained on a dataset of {trained} episodes with episodes {held:?} \
         held out; {} has {now}",
        out.display(),
        data.display()
    )]
    ResumeOtherData {
        out: PathBuf,
        data: PathBuf,
        trained: usize,
        held: Vec<usize>,
        now: usize,
    },
    #[error(
        "{} already holds a checkpoint: pass --resume to continue it, or choose another --out",
        .0.display()
    )]
    CheckpointExists(PathBuf),
    #[error(transparent)]
    Learner(#[from] TrainError),
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("evaluating the actor")]
    Evaluate(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(
        "{}: no sim to roll out in, and no record of the held-out episodes (checkpoints \
         written by rlrt train keep one in held_out.json)",
        .0.display()
    )]
    NoHeldOutRecord(PathBuf, #[source] Box<TrainingError>),
    #[error(
        "the dataset {} was trained on (pass --data to name where it is now)",
        .0.display()
    )]
    DatasetMoved(PathBuf, #[source] RecordingError),
    #[error("{}: has {has} episodes; {} was trained on one of {trained}", data.display(), checkpoint.display())]
    OtherDataset {
        data: PathBuf,
        checkpoint: PathBuf,
        has: usize,
        trained: usize,
    },
    #[error(
        "{}: its observation statistics differ from what {} was trained with: not the same \
         data",
        data.display(),
        checkpoint.display()
    )]
    OtherStatistics { data: PathBuf, checkpoint: PathBuf },
}

/// What a run is asked to do (the learner's hyperparameters in `iql`).
#[derive(Clone, Debug)]
pub struct TrainSpec {
    /// The dataset folder (`rlrt record --out`, `rlrt import`, `rlrt run --record`).
    pub data: PathBuf,
    /// The checkpoint folder.
    pub out: PathBuf,
    /// Continue the checkpoint in `out` (weights, optimizer state, step, sampler).
    pub resume: bool,
    /// Evaluate (and save) every this many steps (0: only at the end).
    pub eval_every: usize,
    /// Share of episodes held out for the offline diagnostics (`None`: 0.05 without a
    /// `[sim]` table, else 0).
    pub holdout: Option<f64>,
    /// Algorithm, steps, seed and the rest.
    pub iql: IqlConfig,
}

/// Judges an actor during training: seeded rollouts in a simulator.
pub trait Evaluate {
    fn evaluate(
        &mut self,
        policy: &mut CheckpointPolicy,
    ) -> Result<Evaluation, Box<dyn std::error::Error + Send + Sync>>;
}

/// Watches a run: progress, losses, evaluations. Every method does nothing by default.
pub trait Observer {
    /// Updates run from `step` towards `total`.
    fn started(&mut self, _step: usize, _total: usize) {}
    /// One update done; the learner is at `step`.
    fn advanced(&mut self, _step: usize) {}
    /// Losses read back at `step`.
    fn losses(&mut self, _step: usize, _losses: &Losses, _iql: bool) {}
    /// An evaluation's line for the user.
    fn say(&mut self, _line: &str) {}
    /// An evaluation's record (also in `train_log.json`).
    fn record(&mut self, _record: &EvalRecord) {}
    /// The run is over.
    fn finished(&mut self) {}
}

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
    /// Stopped by the stop flag (Ctrl-C) before the last step; the checkpoint holds the last
    /// step and resuming continues from it.
    pub interrupted: bool,
}

/// The config a dataset or checkpoint was made with, parsed as if it were still at its
/// source path (so relative task paths resolve as they did).
pub fn saved_config(dataset: &Dataset, data: &Path) -> Result<RobotConfig, TrainingError> {
    let source = PathBuf::from(&dataset.info.config_source);
    rlrt_runtime::config::parse(&dataset.config_text, &source).map_err(|source| {
        TrainingError::Config {
            data: data.to_owned(),
            source,
        }
    })
}

/// A run ready to start: the dataset read, its config parsed, the held-out episodes chosen.
pub struct Prepared {
    pub spec: TrainSpec,
    pub dataset: Dataset,
    /// The config the dataset was recorded with.
    pub config: RobotConfig,
    replay: Replay,
    held: Option<Replay>,
    split: HeldOut,
}

impl Prepared {
    /// Reads the dataset and chooses the held-out episodes: those of the checkpoint being
    /// resumed, else a share spread over the dataset.
    pub fn open(spec: TrainSpec) -> Result<Self, TrainingError> {
        let dataset = Dataset::open(&spec.data)?;
        // A recorded run carries no rewards; behaviour cloning needs none.
        if spec.iql.algorithm != Algorithm::Bc
            && dataset.info.reward == rlrt_runtime::hub::recorder::NO_REWARD
        {
            return Err(TrainingError::NoRewards(spec.data.clone()));
        }
        let config = saved_config(&dataset, &spec.data)?;
        let previous = spec.resume.then(|| read_held_out(&spec.out).ok()).flatten();
        let held_out = match previous {
            Some(h) => {
                if h.dataset_episodes != dataset.episodes.len() {
                    return Err(TrainingError::ResumeOtherData {
                        out: spec.out.clone(),
                        data: spec.data.clone(),
                        trained: h.dataset_episodes,
                        held: h.episodes,
                        now: dataset.episodes.len(),
                    });
                }
                h.episodes
            }
            None => {
                let fraction =
                    spec.holdout
                        .unwrap_or(if config.sim.is_some() { 0.0 } else { 0.05 });
                Replay::held_out_episodes(&dataset, fraction)
            }
        };
        let (min, max) = (&config.action.min, &config.action.max);
        let (replay, held) = if held_out.is_empty() {
            (Replay::from_dataset(&dataset, min, max, &spec.iql)?, None)
        } else {
            let (replay, held) = Replay::split(&dataset, &held_out, min, max, &spec.iql)?;
            (replay, Some(held))
        };
        let split = HeldOut {
            data: spec.data.clone(),
            dataset_episodes: dataset.episodes.len(),
            episodes: held_out,
        };
        Ok(Self {
            spec,
            dataset,
            config,
            replay,
            held,
            split,
        })
    }

    /// Trains on backend `B` until the spec's step count or until `stop` is raised (then
    /// saves at the step reached): evaluates every `eval_every` steps (rollouts through
    /// `evaluator` where there is one, offline diagnostics where episodes are held out or
    /// there is no evaluator) and saves the checkpoint folder after each evaluation.
    pub fn run<B: AutodiffBackend>(
        self,
        device: B::Device,
        mut evaluator: Option<&mut dyn Evaluate>,
        observer: &mut dyn Observer,
        stop: &AtomicBool,
    ) -> Result<TrainOutcome, TrainingError> {
        let Self {
            spec,
            dataset,
            config,
            replay,
            held,
            split,
        } = self;
        let folder = folder::Folder::new(&spec.out, &dataset, &split);
        let learner = Learner::<B>::new(spec.iql.clone(), replay, device);
        let (mut learner, log, elapsed_before) = if spec.resume {
            folder.resume(learner)?
        } else if folder.holds_checkpoint() {
            return Err(TrainingError::CheckpointExists(spec.out.clone()));
        } else {
            (learner, Vec::new(), 0.0)
        };
        // Offline diagnostics always when episodes are held out, and on the training data
        // when there is no rollout and nothing to hold out.
        let diagnostics_on = match (&held, &evaluator) {
            (Some(_), _) => Some("held_out"),
            (None, None) => Some("training"),
            (None, Some(_)) => None,
        };
        if evaluator.is_none() {
            let what = match &held {
                Some(h) => format!(
                    "{} held-out episodes ({} transitions)",
                    split.episodes.len(),
                    h.len()
                ),
                None => "the training data (one episode: nothing to hold out)".into(),
            };
            tracing::info!(
                "{}: no [sim] table, so no rollouts: progress shows offline diagnostics on {what}",
                config.source.display()
            );
        }
        let diagnose = |learner: &Learner<B>| {
            diagnostics_on
                .map(|_| learner.diagnose(held.as_ref().unwrap_or(&learner.replay), DIAGNOSE_LIMIT))
        };
        let mut run = Run {
            total: spec.iql.steps,
            eval_every: spec.eval_every,
            start: Instant::now(),
            elapsed_before,
            first_step: learner.step(),
            update_seconds: 0.0,
            log,
            final_eval: None,
            final_diagnostics: None,
            interrupted: false,
            last_losses: None,
        };
        let initial_actor_mse = learner.actor_mse(10_000);
        let initial_diagnostics = diagnose(&learner);
        observer.started(learner.step(), run.total);
        while learner.step() < run.total {
            let Some(due) = run.updates(&mut learner, observer, stop) else {
                folder.save(&learner, &run.log)?;
                run.interrupted = true;
                break;
            };
            if !due {
                continue;
            }
            let recent = run.last_losses.take().unwrap_or_else(|| learner.losses());
            let eval = match evaluator.as_mut() {
                Some(e) => {
                    let mut policy =
                        CheckpointPolicy::from_parts(&learner.meta(), learner.actor_weights());
                    Some(e.evaluate(&mut policy).map_err(TrainingError::Evaluate)?)
                }
                None => None,
            };
            let diagnostics = diagnose(&learner);
            observer.say(&report::eval_line(
                learner.step(),
                eval.as_ref(),
                diagnostics.as_ref(),
                diagnostics_on,
            ));
            let record = EvalRecord {
                step: learner.step(),
                seconds: run.seconds(),
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
            observer.record(&record);
            run.log.push(record);
            folder.save(&learner, &run.log)?;
            run.final_eval = eval.or(run.final_eval);
            run.final_diagnostics = diagnostics.or(run.final_diagnostics);
        }
        observer.finished();
        let c = &learner.config;
        Ok(TrainOutcome {
            out: spec.out.clone(),
            algorithm: c.algorithm,
            steps: learner.step(),
            train_seconds: run.seconds(),
            steps_per_s: (learner.step() - run.first_step) as f64 / run.update_seconds.max(1e-9),
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
            evaluation: if evaluator.is_some() {
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
            final_eval: run.final_eval,
            initial_diagnostics,
            final_diagnostics: run.final_diagnostics,
            log: run.log,
            interrupted: run.interrupted,
        })
    }
}

/// The bookkeeping of one [`Prepared::run`].
struct Run {
    total: usize,
    eval_every: usize,
    start: Instant,
    /// Wall time of the runs this one resumes.
    elapsed_before: f64,
    first_step: usize,
    update_seconds: f64,
    log: Vec<EvalRecord>,
    final_eval: Option<Evaluation>,
    final_diagnostics: Option<Diagnostics>,
    interrupted: bool,
    /// The losses the last read-back gave, if it was the last update.
    last_losses: Option<Losses>,
}

impl Run {
    fn seconds(&self) -> f64 {
        self.elapsed_before + self.start.elapsed().as_secs_f64()
    }

    /// Updates up to the next read-back (every [`READBACK_EVERY`] steps, for the plots) or
    /// evaluation (every `eval_every` steps and at the end). `Some(true)` when an evaluation
    /// is due, `None` when `stop` was raised.
    fn updates<B: AutodiffBackend>(
        &mut self,
        learner: &mut Learner<B>,
        observer: &mut dyn Observer,
        stop: &AtomicBool,
    ) -> Option<bool> {
        let step = learner.step();
        let next_eval = step
            .checked_div(self.eval_every)
            .map_or(self.total, |k| (k + 1) * self.eval_every);
        let until = next_eval.min(self.total);
        let chunk_end = ((step / READBACK_EVERY) + 1) * READBACK_EVERY;
        let done = run_updates(
            learner,
            until.min(chunk_end),
            READBACK_EVERY,
            stop,
            observer,
        );
        self.update_seconds += done.seconds;
        self.last_losses = done.losses;
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        Some(learner.step() == until)
    }
}

/// What one run of [`run_updates`] did.
pub struct UpdatesDone {
    /// The losses last read back (after the last update when it ended on a read-back step).
    pub losses: Option<Losses>,
    /// Time spent in the loop.
    pub seconds: f64,
}

/// The update loop of a training run, also what `rlrt bench iql` times: updates until the
/// learner reaches step `until` or `stop` is raised, the observer told of each, the losses
/// read back every `readback_every` steps (a host-device synchronisation on a GPU) and
/// given to the observer.
pub fn run_updates<B: AutodiffBackend>(
    learner: &mut Learner<B>,
    until: usize,
    readback_every: usize,
    stop: &AtomicBool,
    observer: &mut dyn Observer,
) -> UpdatesDone {
    let start = Instant::now();
    let iql = learner.config.algorithm == Algorithm::Iql;
    let mut losses = None;
    while learner.step() < until && !stop.load(Ordering::Relaxed) {
        learner.advance();
        observer.advanced(learner.step());
        if learner.step() % readback_every.max(1) == 0 {
            let recent = learner.losses();
            observer.losses(learner.step(), &recent, iql);
            losses = Some(recent);
        }
    }
    UpdatesDone {
        losses,
        seconds: start.elapsed().as_secs_f64(),
    }
}
