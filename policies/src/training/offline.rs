//! A checkpoint measured offline: no rollout, its networks on episodes of its dataset that
//! training did not see.

use std::path::{Path, PathBuf};

use rlrt_runtime::recording::Dataset;

use super::{read_held_out, saved_config, TrainingError};
use crate::checkpoint::CheckpointMeta;
use crate::iql::{cpu, CpuBackend, Diagnostics, Learner, Replay};

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

/// The checkpoint's networks (actor, and for IQL the critic and value) on its held-out
/// episodes, or on the given dataset's held-out episodes of the same split.
pub fn evaluate_offline(
    dir: &Path,
    meta: &CheckpointMeta,
    data: Option<&Path>,
) -> Result<OfflineEvaluation, TrainingError> {
    let held = read_held_out(dir)
        .map_err(|e| TrainingError::NoHeldOutRecord(dir.to_owned(), Box::new(e)))?;
    let data_dir = data.map(Path::to_path_buf).unwrap_or(held.data.clone());
    let dataset =
        Dataset::open(&data_dir).map_err(|e| TrainingError::DatasetMoved(dir.to_owned(), e))?;
    if dataset.episodes.len() != held.dataset_episodes {
        return Err(TrainingError::OtherDataset {
            data: data_dir,
            checkpoint: dir.to_owned(),
            has: dataset.episodes.len(),
            trained: held.dataset_episodes,
        });
    }
    let config = saved_config(&dataset, &data_dir)?;
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
    if !close(&n.observation_mean, &m.observation_mean)
        || !close(&n.observation_std, &m.observation_std)
    {
        return Err(TrainingError::OtherStatistics {
            data: data_dir,
            checkpoint: dir.to_owned(),
        });
    }
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
