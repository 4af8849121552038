//! `rlrt relabel`: a recorded dataset written again with its rewards computed by another
//! reward source, so that `rlrt train` learns from that reward instead of the one the data
//! was recorded with: a reward program (one a language model wrote, say), or a CLIP reward
//! or success classifier of the config scoring the dataset's camera frames.
//!
//! - A program: step `t`'s reward is the program evaluated on the observation the step led
//!   to (row `t + 1`), with action `t` as `previous_action`: exactly what the same program
//!   returns in the loop on the tick after that action.
//! - A frame source: every recorded frame of its camera is scored once (same model,
//!   preprocessing and reward as in a run); step `t`'s reward is that of the newest frame
//!   rendered at or before row `t + 1`, as a run holds a frame's reward until the next.
//! - An ensemble (`--ensemble`) of several of these: each member's step rewards are
//!   standardised over the dataset (zero mean, unit deviation, so that models on different
//!   scales weigh the same), then combined step by step (mean, min, mean minus k deviations,
//!   or the log-sigmoid AND; `rlrt_rewards::ensemble`). The report gives each member's own
//!   success gap, the members' pairwise correlations, their mean spread and the steps where
//!   they disagree most: a policy that exploits one reward model is rarely rewarded by all.
//!
//! Observations, actions, terminal and timeout flags, success verdicts, seeds and camera
//! frames are copied unchanged. Nothing is written unless every step was scored: a source
//! that fails on any step or frame (an evaluation error, a model error, a non-finite reward)
//! stops the command, naming the episode, the step or frame and the error, and the output
//! folder is left as it was.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rlrt_rewards::ensemble::{self, Aggregate};
use rlrt_rewards::program::{
    check_file, CheckOptions, Environment, Limits, ProgramState, RewardProgram,
};
use rlrt_runtime::config::{RewardKind, RewardSourceConfig};
use rlrt_runtime::recording::{Dataset, DatasetInfo, DatasetWriter};
use rlrt_runtime::{FeatureBuilder, Observation, RobotConfig};

use super::preferences::pick_camera;
use rlrt_rewards::live::frames::FrameRewards;

/// Where the new rewards come from.
#[derive(Clone, Debug)]
pub enum RewardChoice {
    /// A reward program file.
    Program(PathBuf),
    /// A `[[rewards]]` source of the config, by name: a program, a CLIP reward, a success
    /// classifier or a reward model (the last three score the dataset's camera frames).
    Source(String),
    /// An ONNX reward model file scoring one recorded camera's frames, as a
    /// `kind = "preference_model"` source naming it would (camera: the dataset's only one
    /// when `None`).
    Model {
        path: PathBuf,
        camera: Option<String>,
    },
}

/// The name `--model`'s source gets in the config it is added to (`model-2`, `model-3`, ..
/// for more).
const MODEL_SOURCE: &str = "model";

/// Steps listed as where an ensemble's members disagree most.
const MOST_DISAGREED: usize = 5;

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
    /// The rewards asked for, in order: programs, the config's sources, then models.
    pub fn rewards(&self) -> Vec<RewardChoice> {
        let programs = self.program.iter().cloned().map(RewardChoice::Program);
        let sources = self.reward.iter().cloned().map(RewardChoice::Source);
        let models = self.model.iter().map(|path| RewardChoice::Model {
            path: path.clone(),
            camera: self.camera.clone(),
        });
        programs.chain(sources).chain(models).collect()
    }
}

/// One reward term over the relabelled steps (program) or scored frames (CLIP, classifier).
#[derive(Clone, Debug, serde::Serialize)]
pub struct TermSummary {
    pub name: String,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct RelabelOutcome {
    pub dataset: String,
    pub out: String,
    /// The new rewards, as the new `dataset.json` names them.
    pub reward: String,
    pub episodes: usize,
    pub steps: usize,
    /// Camera frames scored (CLIP and classifier sources; 0 for a program).
    pub frames_scored: usize,
    /// The dataset's own reward, as `dataset.json` names it, and its mean episode return.
    pub recorded_reward: String,
    pub recorded_mean_return: f64,
    pub mean_return: f64,
    /// Mean return of successful episodes minus that of failed ones (`None` when either
    /// group is empty): how well the new reward separates what the task's own success test
    /// separates.
    pub success_gap: Option<f64>,
    /// For a CLIP or classifier source: how its frame rewards line up with the success
    /// labels the frames were recorded with (the task's ground truth in that state).
    pub frame_labels: Option<LabelAgreement>,
    /// What the terms are summarised over: `steps` or `frames`.
    pub terms_over: &'static str,
    pub terms: Vec<TermSummary>,
    /// With `--ensemble`: each member, and where they disagree.
    pub ensemble: Option<EnsembleReport>,
}

/// An ensemble's members and their disagreement, over the dataset's steps.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EnsembleReport {
    pub aggregate: String,
    pub members: Vec<MemberSummary>,
    /// Pearson correlation of every pair of members' step rewards.
    pub correlations: Vec<MemberCorrelation>,
    /// The standard deviation across the standardised members, averaged over steps: 0 when
    /// they agree everywhere, larger the less they agree (for unrelated members about 0.56
    /// with two, towards 1 with many).
    pub mean_spread: f64,
    /// The steps with the largest spread.
    pub most_disagreed: Vec<Disagreement>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct MemberSummary {
    /// What the member is, as `dataset.json` would name it alone.
    pub reward: String,
    /// Mean and standard deviation of its step rewards (what it is standardised with).
    pub mean: f64,
    pub std: f64,
    /// Its own success gap (mean return of successful episodes minus failed ones).
    pub success_gap: Option<f64>,
    /// Frame sources: agreement with the frames' success labels.
    pub frame_labels: Option<LabelAgreement>,
    /// Its terms, over `steps` (programs) or `frames` (frame sources).
    pub terms_over: &'static str,
    pub terms: Vec<TermSummary>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct MemberCorrelation {
    pub a: usize,
    pub b: usize,
    pub r: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Disagreement {
    pub episode: usize,
    pub step: usize,
    pub spread: f64,
    /// Each member's standardised reward at that step.
    pub standardised: Vec<f64>,
}

/// Frame rewards against the recorded ground-truth success labels.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LabelAgreement {
    /// Frames labelled successful, and the others.
    pub positives: usize,
    pub negatives: usize,
    /// The mean reward of each group (`None` for an empty group).
    pub mean_reward_positive: Option<f64>,
    pub mean_reward_negative: Option<f64>,
    /// Classifier sources: of the frames it rewarded, the share labelled successful; of the
    /// frames labelled successful, the share it rewarded.
    pub precision: Option<f64>,
    pub recall: Option<f64>,
}

impl LabelAgreement {
    fn of(rewards: &[f64], labels: &[bool], sparse: bool) -> Self {
        let mean = |want: bool| -> Option<f64> {
            let v: Vec<f64> = rewards
                .iter()
                .zip(labels)
                .filter(|(_, l)| **l == want)
                .map(|(r, _)| *r)
                .collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        let positives = labels.iter().filter(|l| **l).count();
        let rewarded = rewards.iter().filter(|r| **r > 0.5).count();
        let both = rewards
            .iter()
            .zip(labels)
            .filter(|(r, l)| **r > 0.5 && **l)
            .count();
        let ratio = |a: usize, b: usize| (sparse && b > 0).then(|| a as f64 / b as f64);
        Self {
            positives,
            negatives: labels.len() - positives,
            mean_reward_positive: mean(true),
            mean_reward_negative: mean(false),
            precision: ratio(both, rewarded),
            recall: ratio(both, positives),
        }
    }
}

impl std::fmt::Display for RelabelOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "wrote {}: {} episodes ({} steps) of {} with rewards from {}",
            self.out, self.episodes, self.steps, self.dataset, self.reward
        )?;
        if self.frames_scored > 0 {
            writeln!(f, "  {} camera frames scored", self.frames_scored)?;
        }
        writeln!(
            f,
            "  mean return {:.3} (recorded {}: {:.3}), success gap {}",
            self.mean_return,
            self.recorded_reward,
            self.recorded_mean_return,
            self.success_gap
                .map_or_else(|| "n/a".to_owned(), |g| format!("{g:.3}"))
        )?;
        if let Some(l) = &self.frame_labels {
            let show = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"));
            writeln!(
                f,
                "  frames labelled successful: {} (mean reward {}), others: {} (mean reward {})",
                l.positives,
                show(l.mean_reward_positive),
                l.negatives,
                show(l.mean_reward_negative)
            )?;
            if l.precision.is_some() || l.recall.is_some() {
                writeln!(
                    f,
                    "  against the labels: precision {}, recall {}",
                    show(l.precision),
                    show(l.recall)
                )?;
            }
        }
        write_terms(f, "  ", &self.terms, self.terms_over)?;
        if let Some(e) = &self.ensemble {
            for (i, m) in e.members.iter().enumerate() {
                writeln!(
                    f,
                    "  member {i}: {} (mean {:.4}, std {:.4}, success gap {})",
                    m.reward,
                    m.mean,
                    m.std,
                    m.success_gap
                        .map_or_else(|| "n/a".to_owned(), |g| format!("{g:.3}"))
                )?;
                write_terms(f, "    ", &m.terms, m.terms_over)?;
            }
            for c in &e.correlations {
                writeln!(
                    f,
                    "  correlation of members {} and {}: {:.3}",
                    c.a, c.b, c.r
                )?;
            }
            writeln!(
                f,
                "  mean spread across members {:.3} (standardised units)",
                e.mean_spread
            )?;
            for d in &e.most_disagreed {
                writeln!(
                    f,
                    "  disagree at episode {} step {}: spread {:.3}, members {:?}",
                    d.episode,
                    d.step,
                    d.spread,
                    d.standardised
                        .iter()
                        .map(|v| (v * 1000.0).round() / 1000.0)
                        .collect::<Vec<_>>()
                )?;
            }
        }
        Ok(())
    }
}

/// One line per term: mean, minimum and maximum over steps or frames.
fn write_terms(
    f: &mut std::fmt::Formatter<'_>,
    indent: &str,
    terms: &[TermSummary],
    over: &str,
) -> std::fmt::Result {
    for t in terms {
        writeln!(
            f,
            "{indent}term {:<20} mean {:>9.4}  min {:>9.4}  max {:>9.4}  (over {over})",
            t.name, t.mean, t.min, t.max
        )?;
    }
    Ok(())
}

/// Every step's new reward, and the terms behind them.
struct Scored {
    /// What `dataset.json`'s `reward` becomes.
    reward: String,
    rewards: Vec<Vec<f64>>,
    frames: usize,
    frame_labels: Option<LabelAgreement>,
    terms_over: &'static str,
    terms: Vec<TermSummary>,
}

/// Running minimum, maximum and sum of each named term.
#[derive(Default)]
struct TermStats {
    names: Vec<String>,
    /// (sum, min, max)
    stats: Vec<(f64, f64, f64)>,
    count: usize,
}

impl TermStats {
    fn add(&mut self, names: &[String], values: &[f64]) {
        if self.names.is_empty() {
            self.names = names.to_vec();
            self.stats = vec![(0.0, f64::INFINITY, f64::NEG_INFINITY); names.len()];
        }
        for (stat, value) in self.stats.iter_mut().zip(values) {
            stat.0 += value;
            stat.1 = stat.1.min(*value);
            stat.2 = stat.2.max(*value);
        }
        self.count += 1;
    }

    fn summaries(self) -> Vec<TermSummary> {
        let count = self.count.max(1) as f64;
        self.names
            .into_iter()
            .zip(self.stats)
            .map(|(name, (sum, min, max))| TermSummary {
                name,
                mean: sum / count,
                min,
                max,
            })
            .collect()
    }
}

pub fn relabel(args: &RelabelArgs) -> anyhow::Result<RelabelOutcome> {
    let rewards = args.rewards();
    match (rewards.len(), args.ensemble) {
        (0, _) => anyhow::bail!("name a reward: --program, --reward or --model"),
        (1, Some(how)) => anyhow::bail!(
            "--ensemble {how} combines several rewards; name two or more (--program, \
             --reward, --model)"
        ),
        (n, None) if n > 1 => anyhow::bail!(
            "{n} rewards named; relabel takes one, or several with --ensemble mean|min|\
             mean-minus-std[:K]|and[:REFERENCE]"
        ),
        _ => {}
    }

    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    anyhow::ensure!(
        !same(&args.data, &args.out),
        "--out {} is the dataset itself; write the relabelled dataset to a new folder",
        args.out.display()
    );
    anyhow::ensure!(
        std::fs::read_dir(&args.out).map_or(true, |mut entries| entries.next().is_none()),
        "--out {} exists and is not empty; relabel into a new folder",
        args.out.display()
    );
    let dataset = Dataset::open(&args.data)?;
    let (mut config, features) = dataset_config(&args.data, &dataset, args.config.as_deref())?;
    // Score every step before writing anything.
    let mut members = Vec::with_capacity(rewards.len());
    let mut models = 0;
    for choice in &rewards {
        members.push(score_choice(
            args,
            &dataset,
            &mut config,
            &features,
            choice,
            &mut models,
        )?);
    }
    let mut ensemble = None;
    let scored = match args.ensemble {
        None => members.pop().expect("one reward, checked above"),
        Some(how) => {
            let (scored, report) = combine_members(&dataset, members, how)?;
            ensemble = Some(report);
            scored
        }
    };
    let rewards = scored.rewards;
    let steps = dataset.transitions();

    let info = DatasetInfo {
        reward: scored.reward.clone(),
        ..dataset.info.clone()
    };
    let mut writer = DatasetWriter::create(&args.out, info, &dataset.config_text)
        .with_context(|| format!("creating {}", args.out.display()))?;
    for (index, (episode, episode_rewards)) in
        dataset.episodes.iter().zip(rewards.iter()).enumerate()
    {
        let mut relabelled = episode.clone();
        relabelled.rewards.clone_from(episode_rewards);
        if !dataset.info.cameras.is_empty() {
            relabelled.frames = dataset.frames(index)?;
        }
        writer.write(&relabelled)?;
    }

    let returns: Vec<f64> = rewards.iter().map(|r| r.iter().sum()).collect();
    let recorded: Vec<f64> = dataset.episodes.iter().map(|e| e.total_reward()).collect();
    let successes: Vec<bool> = dataset.episodes.iter().map(|e| e.success).collect();
    Ok(RelabelOutcome {
        dataset: args.data.display().to_string(),
        out: args.out.display().to_string(),
        reward: scored.reward,
        episodes: dataset.episodes.len(),
        steps,
        frames_scored: scored.frames,
        frame_labels: scored.frame_labels,
        recorded_reward: dataset.info.reward.clone(),
        recorded_mean_return: mean_where(&recorded, &successes, None).unwrap_or(0.0),
        mean_return: mean_where(&returns, &successes, None).unwrap_or(0.0),
        success_gap: mean_where(&returns, &successes, Some(true))
            .zip(mean_where(&returns, &successes, Some(false)))
            .map(|(a, b)| a - b),
        terms_over: scored.terms_over,
        terms: scored.terms,
        ensemble,
    })
}

/// Every step's reward from one choice. `models` counts the `--model` sources added so far.
fn score_choice(
    args: &RelabelArgs,
    dataset: &Dataset,
    config: &mut RobotConfig,
    features: &FeatureBuilder,
    choice: &RewardChoice,
    models: &mut usize,
) -> anyhow::Result<Scored> {
    match choice {
        RewardChoice::Program(path) => score_program(args, dataset, config, features, path, None),
        RewardChoice::Source(name) => {
            let Some(source) = config.rewards.iter().find(|r| &r.name == name) else {
                let names: Vec<&str> = config.rewards.iter().map(|r| r.name.as_str()).collect();
                anyhow::bail!(
                    "{} has no [[rewards]] source named {name:?} (it has {names:?}); name one, \
                     or pass --config with a hw-config that defines it",
                    config.source.display()
                );
            };
            match source.kind {
                RewardKind::Program => {
                    let path = source
                        .program_path
                        .clone()
                        .context("a program source without program_path")?;
                    score_program(args, dataset, config, features, &path, Some(name))
                }
                _ => score_frames(args, dataset, config, name),
            }
        }
        RewardChoice::Model { path, camera } => {
            *models += 1;
            let name = match *models {
                1 => MODEL_SOURCE.to_owned(),
                n => format!("{MODEL_SOURCE}-{n}"),
            };
            add_model_source(config, dataset, &args.data, path, camera.as_deref(), &name)?;
            score_frames(args, dataset, config, &name)
                .with_context(|| format!("--model {}", path.display()))
        }
    }
}

/// Standardises each member over the dataset's steps, combines them step by step and reports
/// where they disagree.
fn combine_members(
    dataset: &Dataset,
    members: Vec<Scored>,
    how: Aggregate,
) -> anyhow::Result<(Scored, EnsembleReport)> {
    let flat: Vec<Vec<f64>> = members
        .iter()
        .map(|m| m.rewards.iter().flatten().copied().collect())
        .collect();
    let steps = flat[0].len().max(1) as f64;
    let mut summaries = Vec::with_capacity(members.len());
    let mut standardised = Vec::with_capacity(members.len());
    let successes: Vec<bool> = dataset.episodes.iter().map(|e| e.success).collect();
    for (m, values) in members.iter().zip(&flat) {
        let mean = values.iter().sum::<f64>() / steps;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / steps).sqrt();
        anyhow::ensure!(
            std > 1e-12,
            "ensemble member {} is the same ({mean}) on every step; it cannot be standardised \
             and adds nothing to the ensemble; nothing was written",
            m.reward
        );
        let returns: Vec<f64> = m.rewards.iter().map(|r| r.iter().sum()).collect();
        summaries.push(MemberSummary {
            reward: m.reward.clone(),
            mean,
            std,
            success_gap: mean_where(&returns, &successes, Some(true))
                .zip(mean_where(&returns, &successes, Some(false)))
                .map(|(a, b)| a - b),
            frame_labels: m.frame_labels.clone(),
            terms_over: m.terms_over,
            terms: m.terms.clone(),
        });
        standardised.push(
            values
                .iter()
                .map(|v| (v - mean) / std)
                .collect::<Vec<f64>>(),
        );
    }

    let mut correlations = Vec::new();
    for a in 0..standardised.len() {
        for b in a + 1..standardised.len() {
            // Standardised series: the correlation is the mean product.
            let r = standardised[a]
                .iter()
                .zip(&standardised[b])
                .map(|(x, y)| x * y)
                .sum::<f64>()
                / steps;
            correlations.push(MemberCorrelation { a, b, r });
        }
    }

    let mut rewards = Vec::with_capacity(dataset.episodes.len());
    let mut spreads = Vec::new();
    let mut row = vec![0.0; members.len()];
    for e in &dataset.episodes {
        let mut episode_rewards = Vec::with_capacity(e.steps());
        for _ in 0..e.steps() {
            let index = spreads.len();
            for (slot, z) in row.iter_mut().zip(&standardised) {
                *slot = z[index];
            }
            let combined = ensemble::combine(&row, how)
                .context("standardised finite rewards always combine")?;
            episode_rewards.push(combined.value);
            spreads.push(combined.std);
        }
        rewards.push(episode_rewards);
    }
    // Step `index` of the flattened dataset as (episode, step).
    let locate = |mut index: usize| {
        let mut episode = 0;
        while index >= dataset.episodes[episode].steps() {
            index -= dataset.episodes[episode].steps();
            episode += 1;
        }
        (episode, index)
    };
    let mean_spread = spreads.iter().sum::<f64>() / steps;
    let mut order: Vec<usize> = (0..spreads.len()).collect();
    order.sort_by(|&a, &b| spreads[b].total_cmp(&spreads[a]).then(a.cmp(&b)));
    let most_disagreed = order
        .into_iter()
        .take(MOST_DISAGREED)
        .map(|i| Disagreement {
            episode: locate(i).0,
            step: locate(i).1,
            spread: spreads[i],
            standardised: standardised.iter().map(|z| z[i]).collect(),
        })
        .collect();
    let described: Vec<&str> = members.iter().map(|m| m.reward.as_str()).collect();
    let scored = Scored {
        reward: format!("ensemble {how} of standardised [{}]", described.join("; ")),
        rewards,
        frames: members.iter().map(|m| m.frames).sum(),
        frame_labels: None,
        // Each member's own terms are in its summary.
        terms_over: "steps",
        terms: Vec::new(),
    };
    let report = EnsembleReport {
        aggregate: how.to_string(),
        members: summaries,
        correlations,
        mean_spread,
        most_disagreed,
    };
    Ok((scored, report))
}

/// Step `t`'s reward: the program on observation row `t + 1`, action `t` as
/// `previous_action`. `source`: the config's source name, when it came from one.
fn score_program(
    args: &RelabelArgs,
    dataset: &Dataset,
    config: &RobotConfig,
    features: &FeatureBuilder,
    path: &Path,
    source: Option<&str>,
) -> anyhow::Result<Scored> {
    let file = path.file_name().map_or_else(
        || "program".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    let name = source.unwrap_or(&file);
    let mut program = checked_program(name, path, config, &args.data, dataset)?;
    let (obs_len, act_len) = (dataset.info.observation_len, dataset.info.action_len);
    let mut obs = Observation::empty(config.dof(), config.observation.sensor_values);
    let mut rewards: Vec<Vec<f64>> = Vec::with_capacity(dataset.episodes.len());
    let mut stats = TermStats::default();
    for (index, episode) in dataset.episodes.iter().enumerate() {
        let mut episode_rewards = Vec::with_capacity(episode.steps());
        for t in 0..episode.steps() {
            features.read(
                &episode.observations[(t + 1) * obs_len..(t + 2) * obs_len],
                &mut obs,
            );
            let action = &episode.actions[t * act_len..(t + 1) * act_len];
            let state = ProgramState::new(obs, action);
            let terms = program.evaluate(&state).map_err(|e| {
                anyhow::anyhow!(
                    "{} failed on {}, episode {index} ({}), step {t}: {e}; nothing was written",
                    path.display(),
                    args.data.display(),
                    dataset.files[index].display()
                )
            })?;
            let total = terms.total();
            anyhow::ensure!(
                total.is_finite(),
                "{} returned {total} on episode {index}, step {t}; nothing was written",
                path.display()
            );
            stats.add(terms.names(), terms.values());
            episode_rewards.push(total);
        }
        rewards.push(episode_rewards);
    }
    Ok(Scored {
        reward: format!("program {file}"),
        rewards,
        frames: 0,
        frame_labels: None,
        terms_over: "steps",
        terms: stats.summaries(),
    })
}

/// Adds a `preference_model` source for `--model` to the config the dataset is read with,
/// on `camera` (or the dataset's only recorded one).
fn add_model_source(
    config: &mut RobotConfig,
    dataset: &Dataset,
    data: &Path,
    path: &Path,
    camera: Option<&str>,
    name: &str,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        path.is_file(),
        "--model {}: no such file (an ONNX reward model, such as rlrt reward \
         train-preferences writes)",
        path.display()
    );
    let (_, camera) = pick_camera(data, dataset, camera)?;
    anyhow::ensure!(
        config.rewards.iter().all(|r| r.name != name),
        "{} already has a [[rewards]] source named {name:?}; name it with --reward",
        config.source.display()
    );
    config.rewards.push(RewardSourceConfig {
        name: name.to_owned(),
        kind: RewardKind::PreferenceModel,
        weight: 1.0,
        program_path: None,
        model_path: Some(path.to_path_buf()),
        camera: Some(camera.name.clone()),
        goal: None,
        baseline: None,
        alpha: 0.0,
        threshold: 0.5,
        resize: Default::default(),
        device: Default::default(),
        precision: Default::default(),
    });
    Ok(())
}

/// Every recorded frame of the source's camera scored once; step `t`'s reward is the
/// reward of the newest frame rendered at or before observation row `t + 1` (the state the
/// step led to), as the loop holds a frame reward until the next frame is scored.
fn score_frames(
    args: &RelabelArgs,
    dataset: &Dataset,
    config: &RobotConfig,
    name: &str,
) -> anyhow::Result<Scored> {
    let mut model =
        FrameRewards::load_named(config, name)?.context("the source was found above")?;
    let (_, camera, term_names) = model.describe(0);
    let (camera, term_names) = (camera.to_owned(), term_names.to_vec());
    let spec = config
        .observation
        .cameras
        .iter()
        .find(|c| c.name == camera)
        .context("a loaded source names one of the config's cameras")?;
    let recorded: Vec<&str> = dataset
        .info
        .cameras
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let Some(track) = recorded.iter().position(|c| *c == camera) else {
        anyhow::bail!(
            "reward {name:?} scores camera {camera:?}, whose frames {} did not record (it \
             recorded {recorded:?}); record with rlrt record --frames",
            args.data.display()
        );
    };
    let info = &dataset.info.cameras[track];
    anyhow::ensure!(
        info.width == spec.width
            && info.height == spec.height
            && info.encoding == spec.encoding.as_str(),
        "camera {camera:?}: {} recorded {}x{} {} frames, {} describes {}x{} {}",
        args.data.display(),
        info.width,
        info.height,
        info.encoding,
        config.source.display(),
        spec.width,
        spec.height,
        spec.encoding.as_str()
    );
    let sparse = config
        .rewards
        .iter()
        .any(|r| r.name == name && r.kind == RewardKind::Classifier);
    // What dataset.json will say made the rewards: the kind, the source, its model.
    let kind = match config.rewards.iter().find(|r| r.name == name) {
        Some(r) => {
            let model = r
                .model_path
                .as_ref()
                .map_or_else(String::new, |p| p.display().to_string());
            match r.kind {
                RewardKind::Classifier => {
                    format!("classifier {name} ({model}, threshold {})", r.threshold)
                }
                RewardKind::PreferenceModel => format!("preference_model {name} ({model})"),
                _ => format!("clip {name} ({model})"),
            }
        }
        None => name.to_owned(),
    };
    let (mut frame_rewards, mut frame_labels) = (Vec::new(), Vec::new());

    let mut rewards: Vec<Vec<f64>> = Vec::with_capacity(dataset.episodes.len());
    let mut stats = TermStats::default();
    let mut frames = 0usize;
    for (index, episode) in dataset.episodes.iter().enumerate() {
        let tracks = dataset.frames(index)?;
        let frames_of = &tracks[track];
        anyhow::ensure!(
            !frames_of.is_empty(),
            "episode {index} ({}) has no frames of camera {camera:?}; nothing was written",
            dataset.files[index].display()
        );
        anyhow::ensure!(
            frames_of.rows.windows(2).all(|w| w[0] <= w[1]),
            "episode {index} ({}): the frames of camera {camera:?} are not in row order",
            dataset.files[index].display()
        );
        let pixels: Vec<&[u8]> = (0..frames_of.len()).map(|i| frames_of.frame(i)).collect();
        let mut scores = Vec::with_capacity(pixels.len());
        for (i, result) in model.score_frames(0, spec, &pixels).into_iter().enumerate() {
            let (reward, terms) = result.map_err(|e| {
                anyhow::anyhow!(
                    "reward {name:?} failed on episode {index} ({}), frame {i} (row {}): {e}; \
                     nothing was written",
                    dataset.files[index].display(),
                    frames_of.rows[i]
                )
            })?;
            anyhow::ensure!(
                reward.is_finite(),
                "reward {name:?} returned {reward} on episode {index}, frame {i}; nothing was \
                 written"
            );
            stats.add(&term_names, &terms);
            scores.push(reward);
        }
        frames += scores.len();
        frame_rewards.extend_from_slice(&scores);
        frame_labels.extend_from_slice(&frames_of.success);
        // The newest frame at or before row t + 1; before the first frame, the first.
        let mut k = 0usize;
        let episode_rewards = (0..episode.steps())
            .map(|t| {
                while k + 1 < scores.len() && frames_of.rows[k + 1] as usize <= t + 1 {
                    k += 1;
                }
                scores[k]
            })
            .collect();
        rewards.push(episode_rewards);
    }
    Ok(Scored {
        reward: format!("{kind}, camera {camera}"),
        rewards,
        frames,
        frame_labels: Some(LabelAgreement::of(&frame_rewards, &frame_labels, sparse)),
        terms_over: "frames",
        terms: stats.summaries(),
    })
}

/// `rlrt relabel`: writes the relabelled dataset and prints the rewards' summary.
pub fn execute(args: RelabelArgs, output: super::Output) -> anyhow::Result<super::Exit> {
    output.print(&relabel(&args)?)?;
    Ok(super::Exit::Success)
}

/// The hw-config a dataset's steps are read with: `config`, or the one saved with the
/// dataset; it must describe the dataset's observation and action sizes.
pub(crate) fn dataset_config(
    data: &Path,
    dataset: &Dataset,
    config: Option<&Path>,
) -> anyhow::Result<(RobotConfig, FeatureBuilder)> {
    let config = match config {
        Some(path) => rlrt_runtime::config::load(path)?,
        None => rlrt_runtime::config::parse(
            &dataset.config_text,
            &PathBuf::from(&dataset.info.config_source),
        )
        .with_context(|| format!("the config saved in {}", data.display()))?,
    };
    let features = FeatureBuilder::new(&config);
    anyhow::ensure!(
        features.len() == dataset.info.observation_len
            && config.action.len() == dataset.info.action_len,
        "{}: the dataset holds {} observation and {} action values per step, the config {} \
         describes {} and {}",
        data.display(),
        dataset.info.observation_len,
        dataset.info.action_len,
        config.source.display(),
        features.len(),
        config.action.len()
    );
    Ok((config, features))
}

/// Checks the reward program in `path` against `config` (compile, names, dry run) and
/// that it reads only what `dataset` recorded.
pub(crate) fn checked_program(
    name: &str,
    path: &Path,
    config: &RobotConfig,
    data: &Path,
    dataset: &Dataset,
) -> anyhow::Result<RewardProgram> {
    let env = Environment::from_config(config)?;
    let (program, _) = check_file(&env, path, &Limits::default(), &CheckOptions::default())?;
    let allowed = replayable(dataset);
    let missing: Vec<&str> = program
        .fields_read()
        .into_iter()
        .filter(|f| !allowed.iter().any(|a| a == f))
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "reward program {} ({}) reads {:?}, which {} did not record (it holds {:?})",
        name,
        path.display(),
        missing,
        data.display(),
        dataset.info.observation_fields
    );
    Ok(program)
}

/// Mean of the episode `returns` whose success flag equals `want` (all when `None`); `None`
/// when no episode qualifies. The success gap of a reward is
/// `mean_where(.., Some(true)) - mean_where(.., Some(false))`.
pub(crate) fn mean_where(returns: &[f64], successes: &[bool], want: Option<bool>) -> Option<f64> {
    let picked: Vec<f64> = returns
        .iter()
        .zip(successes)
        .filter(|(_, ok)| want.is_none_or(|w| **ok == w))
        .map(|(r, _)| *r)
        .collect();
    (!picked.is_empty()).then(|| picked.iter().sum::<f64>() / picked.len() as f64)
}

/// Names a program may read from a replayed state: the recorded observation fields and
/// what is derived from the config or the actions.
fn replayable(dataset: &Dataset) -> Vec<String> {
    let mut names: Vec<String> = dataset
        .info
        .observation_fields
        .iter()
        .map(|n| n.replace('-', "_"))
        .collect();
    names.extend(
        [
            "joint_position_min",
            "joint_position_max",
            "previous_action",
            "dt",
        ]
        .iter()
        .map(|s| (*s).to_owned()),
    );
    names
}
