//! `rlrt relabel`: a recorded dataset written again with its rewards computed by a reward
//! program (one a language model wrote, say), so that `rlrt train` learns from that reward
//! instead of the one the data was recorded with.
//!
//! Step `t`'s reward is the program evaluated on the observation the step led to (row
//! `t + 1`), with action `t` as `previous_action`: exactly what the same program returns in
//! the loop on the tick after that action. Observations, actions, terminal and timeout
//! flags, success verdicts, seeds and camera frames are copied unchanged.
//!
//! Nothing is written unless every step was scored: a program that fails on any step (an
//! evaluation error, a non-finite total) stops the command, naming the episode, the step and
//! the error, and the output folder is left as it was.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rlrt_rewards::program::ProgramState;
use rlrt_runtime::recording::{Dataset, DatasetInfo, DatasetWriter};
use rlrt_runtime::Observation;

use super::replay::{checked_program, dataset_config, mean_where};

#[derive(Clone, Debug)]
pub struct RelabelArgs {
    pub data: PathBuf,
    pub program: PathBuf,
    pub out: PathBuf,
    /// Read the dataset with this hw-config instead of the one saved with it.
    pub config: Option<PathBuf>,
}

/// One reward term over the relabelled steps.
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
    pub program: String,
    pub episodes: usize,
    pub steps: usize,
    /// The dataset's own reward, as `dataset.json` names it, and its mean episode return.
    pub recorded_reward: String,
    pub recorded_mean_return: f64,
    pub mean_return: f64,
    /// Mean return of successful episodes minus that of failed ones (`None` when either
    /// group is empty): how well the program's reward separates what the task's own
    /// success test separates.
    pub success_gap: Option<f64>,
    pub terms: Vec<TermSummary>,
}

impl std::fmt::Display for RelabelOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "wrote {}: {} episodes ({} steps) of {} with rewards from {}",
            self.out, self.episodes, self.steps, self.dataset, self.program
        )?;
        writeln!(
            f,
            "  mean return {:.3} (recorded {}: {:.3}), success gap {}",
            self.mean_return,
            self.recorded_reward,
            self.recorded_mean_return,
            self.success_gap
                .map_or_else(|| "n/a".to_owned(), |g| format!("{g:.3}"))
        )?;
        for t in &self.terms {
            writeln!(
                f,
                "  term {:<16} mean {:>9.4}  min {:>9.4}  max {:>9.4}",
                t.name, t.mean, t.min, t.max
            )?;
        }
        Ok(())
    }
}

pub fn relabel(args: &RelabelArgs) -> anyhow::Result<RelabelOutcome> {
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
    let (config, features) = dataset_config(&args.data, &dataset, args.config.as_deref())?;
    let name = args.program.file_name().map_or_else(
        || "program".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut program = checked_program(&name, &args.program, &config, &args.data, &dataset)?;

    // Score every step before writing anything.
    let (obs_len, act_len) = (dataset.info.observation_len, dataset.info.action_len);
    let mut obs = Observation::empty(config.dof(), config.observation.sensor_values);
    let mut rewards: Vec<Vec<f64>> = Vec::with_capacity(dataset.episodes.len());
    let mut term_names: Vec<String> = Vec::new();
    let mut term_stats: Vec<(f64, f64, f64)> = Vec::new();
    let mut steps = 0usize;
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
                    args.program.display(),
                    args.data.display(),
                    dataset.files[index].display()
                )
            })?;
            let total = terms.total();
            anyhow::ensure!(
                total.is_finite(),
                "{} returned {total} on episode {index}, step {t}; nothing was written",
                args.program.display()
            );
            if term_names.is_empty() {
                term_names = terms.names().to_vec();
                term_stats = vec![(0.0, f64::INFINITY, f64::NEG_INFINITY); term_names.len()];
            }
            for (stat, value) in term_stats.iter_mut().zip(terms.values()) {
                stat.0 += value;
                stat.1 = stat.1.min(*value);
                stat.2 = stat.2.max(*value);
            }
            episode_rewards.push(total);
        }
        steps += episode.steps();
        rewards.push(episode_rewards);
    }

    let info = DatasetInfo {
        reward: format!("program {name}"),
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
    let terms = term_names
        .into_iter()
        .zip(term_stats)
        .map(|(name, (sum, min, max))| TermSummary {
            name,
            mean: sum / steps.max(1) as f64,
            min,
            max,
        })
        .collect();
    Ok(RelabelOutcome {
        dataset: args.data.display().to_string(),
        out: args.out.display().to_string(),
        program: args.program.display().to_string(),
        episodes: dataset.episodes.len(),
        steps,
        recorded_reward: dataset.info.reward.clone(),
        recorded_mean_return: mean_where(&recorded, &successes, None).unwrap_or(0.0),
        mean_return: mean_where(&returns, &successes, None).unwrap_or(0.0),
        success_gap: mean_where(&returns, &successes, Some(true))
            .zip(mean_where(&returns, &successes, Some(false)))
            .map(|(a, b)| a - b),
        terms,
    })
}
