//! `rlrt train iql|bc` and `rlrt eval`: the flags, the progress bar and plots, rollouts in
//! the simulated task where the config has one. The run itself (held-out episodes,
//! checkpoints that resume, offline diagnostics) is `rlrt_policies::training`.

use std::path::PathBuf;

use anyhow::Context;
use rlrt_policies::checkpoint::{check_fits, Algorithm, CheckpointMeta, CheckpointPolicy};
use rlrt_policies::iql::{cpu, ActorKind, CpuBackend, IqlConfig, Losses, Preset};
use rlrt_policies::training::{
    evaluate_offline, DiagnosticsLine, EvalRecord, Evaluate, Observer, OfflineEvaluation, Prepared,
    TrainOutcome, TrainSpec,
};
use rlrt_runtime::compute::ComputeDevice;
use rlrt_runtime::evaluation::Evaluation;
use rlrt_sim::rollout::{evaluate, EpisodeRunner};

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

/// Seeded rollouts of the actor in the config's simulated task.
struct Rollouts {
    runner: EpisodeRunner,
    episodes: usize,
    seed: u64,
}

impl Evaluate for Rollouts {
    fn evaluate(
        &mut self,
        policy: &mut CheckpointPolicy,
    ) -> Result<Evaluation, Box<dyn std::error::Error + Send + Sync>> {
        Ok(evaluate(
            &mut self.runner,
            policy,
            self.episodes,
            self.seed,
        )?)
    }
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
    let prepared = Prepared::open(TrainSpec {
        data: args.data.clone(),
        out: args.out.clone(),
        resume: args.resume,
        eval_every: args.eval_every,
        holdout: args.holdout,
        iql: iql_config(args)?,
    })?;
    let mut rollouts = match prepared.config.sim {
        Some(_) => Some(Rollouts {
            runner: EpisodeRunner::new(&prepared.config)?,
            episodes: args.eval_episodes,
            seed: args.seed,
        }),
        None => None,
    };
    let evaluator = rollouts.as_mut().map(|r| r as &mut dyn Evaluate);
    let mut progress = TrainProgress::new(args.steps, true);
    if let Some(d) = &args.rerun {
        progress.plots = Some(TrainPlots::open(
            d,
            &format!("rlrt train {}", args.out.display()),
        )?);
    }
    // Ctrl-C or SIGTERM: save at the current step and stop (a second one ends the process).
    let stop = crate::signals::stop_flag();
    #[cfg(feature = "cuda")]
    if let Some(device) = cuda {
        return Ok(prepared.run::<rlrt_policies::iql::CudaBackend>(
            device,
            evaluator,
            &mut progress,
            stop,
        )?);
    }
    Ok(prepared.run::<CpuBackend>(cpu(), evaluator, &mut progress, stop)?)
}

/// The progress bar of a run (losses in its message) and, with `--rerun`, its plots.
pub struct TrainProgress {
    bar: indicatif::ProgressBar,
    plots: Option<TrainPlots>,
}

impl TrainProgress {
    /// A bar of `total` steps, drawn on stderr when `visible` (and stderr is a terminal).
    pub fn new(total: usize, visible: bool) -> Self {
        let bar = if visible {
            indicatif::ProgressBar::new(total as u64)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} steps ({per_sec}, eta {eta}) {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        Self { bar, plots: None }
    }
}

impl Observer for TrainProgress {
    fn started(&mut self, step: usize, _total: usize) {
        self.bar.set_position(step as u64);
    }

    fn advanced(&mut self, _step: usize) {
        self.bar.inc(1);
    }

    fn losses(&mut self, step: usize, l: &Losses, iql: bool) {
        self.bar.set_message(format!(
            "V {:.3} Q {:.3} actor {:.3}",
            l.value, l.q, l.actor
        ));
        if let Some(p) = &self.plots {
            p.losses(step, l, iql);
        }
    }

    fn say(&mut self, line: &str) {
        // indicatif draws nothing when stderr is not a terminal; say it in the log then.
        if self.bar.is_hidden() {
            tracing::info!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    fn record(&mut self, record: &EvalRecord) {
        if let Some(p) = &self.plots {
            p.record(record);
        }
    }

    fn finished(&mut self) {
        self.bar.finish_and_clear();
        if let Some(p) = self.plots.take() {
            p.finish();
        }
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
            rlrt_runtime::config::parse(&text, &source)?
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
    let offline = evaluate_offline(dir, &meta, args.data.as_deref())?;
    Ok(EvalOutcome {
        checkpoint: dir.clone(),
        algorithm: meta.algorithm,
        step: meta.step,
        evaluation: None,
        offline: Some(offline),
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
