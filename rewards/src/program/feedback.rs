//! Recorded episodes, per-term statistics over them, the refinement prompt that shows both
//! to a language model (reward reflection), and relabelling a recording with a program.
//!
//! # Episode recordings (JSON lines)
//!
//! One JSON object per line, one line per control tick, episodes one after the other:
//!
//! ```json
//! {"episode": 0, "t": 0.01, "success": false,
//!  "state": {"joint_positions": [0.1, 0.2, 0.3], "joint_velocities": [0, 0, 0],
//!            "previous_action": [0.01, 0, 0],
//!            "sensors": {"ee_position": [0.3, 0, 0.2], "target_position": [0.35, 0.1, 0.2]}}}
//! ```
//!
//! `episode` (integer) groups lines; `t` (s) is optional; `success` (the task's ground
//! truth at that tick) is optional and an episode succeeded when its last line says so.
//! In `state`, `joint_positions` is required; `joint_velocities`, `joint_efforts` and
//! `previous_action` default to zeros; every sensor of the environment is required, by
//! its program name. Unknown keys are errors, so a typo is not silently a zero.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::env::{Environment, ProgramState};
use super::prompt::rules;
use super::RewardProgram;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    episode: u64,
    #[serde(default)]
    t: Option<f64>,
    #[serde(default)]
    success: Option<bool>,
    state: RawState,
    // Written by `relabel`; accepted on input so a relabelled file can be read again.
    #[serde(default, rename = "reward")]
    _reward: Option<serde_json::Value>,
    #[serde(default, rename = "terms")]
    _terms: Option<serde_json::Value>,
    #[serde(default, rename = "reward_error")]
    _reward_error: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    joint_positions: Vec<f64>,
    #[serde(default)]
    joint_velocities: Option<Vec<f64>>,
    #[serde(default)]
    joint_efforts: Option<Vec<f64>>,
    #[serde(default)]
    previous_action: Option<Vec<f64>>,
    #[serde(default)]
    sensors: BTreeMap<String, Vec<f64>>,
}

/// One recorded tick.
#[derive(Clone, Debug)]
pub struct Record {
    pub episode: u64,
    pub t: Option<f64>,
    pub success: Option<bool>,
    pub state: ProgramState,
    /// The line as read, for relabelling.
    raw: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum EpisodeError {
    #[error("{}: cannot read", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", file.display())]
    Invalid {
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}:{line}: not a record of the environment", file.display())]
    Json {
        file: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: cannot write", file.display())]
    Write {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads a recording; every line must fit the environment.
pub fn read_episodes(env: &Environment, path: &Path) -> Result<Vec<Record>, EpisodeError> {
    let file = std::fs::File::open(path).map_err(|source| EpisodeError::Read {
        file: path.to_owned(),
        source,
    })?;
    let mut records = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| EpisodeError::Read {
            file: path.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let invalid = |message: String| EpisodeError::Invalid {
            file: path.to_owned(),
            line: i + 1,
            message,
        };
        let json = |source| EpisodeError::Json {
            file: path.to_owned(),
            line: i + 1,
            source,
        };
        let raw: serde_json::Value = serde_json::from_str(&line).map_err(json)?;
        let record: RawRecord = serde_json::from_value(raw.clone()).map_err(json)?;
        let state = to_state(env, &record.state).map_err(|e| invalid(e.0))?;
        records.push(Record {
            episode: record.episode,
            t: record.t,
            success: record.success,
            state,
            raw,
        });
    }
    Ok(records)
}

fn to_state(env: &Environment, raw: &RawState) -> Result<ProgramState, BadState> {
    let mut state = env.zero_state();
    let dof = env.dof();
    let obs = &mut state.observation;
    let fill = |key: &str, values: Option<&Vec<f64>>, into: &mut [f64]| match values {
        Some(v) if v.len() == into.len() => {
            into.copy_from_slice(v);
            Ok(())
        }
        Some(v) => Err(BadState(format!(
            "state.{key}: {} values, expected {}",
            v.len(),
            into.len()
        ))),
        None => Ok(()),
    };
    fill(
        "joint_positions",
        Some(&raw.joint_positions),
        &mut obs.joint_positions[..dof],
    )?;
    fill(
        "joint_velocities",
        raw.joint_velocities.as_ref(),
        &mut obs.joint_velocities[..dof],
    )?;
    fill(
        "joint_efforts",
        raw.joint_efforts.as_ref(),
        &mut obs.joint_efforts[..dof],
    )?;
    let action_len = env.action_len();
    fill(
        "previous_action",
        raw.previous_action.as_ref(),
        &mut state.previous_action[..action_len],
    )?;
    for name in raw.sensors.keys() {
        if env.sensor(&state, name).is_none() {
            return Err(BadState(format!(
                "state.sensors.{name}: not a sensor of this robot; expected {}",
                env.sensor_names().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let names: Vec<String> = env.sensor_names().map(str::to_owned).collect();
    for name in names {
        let Some(values) = raw.sensors.get(&name) else {
            return Err(BadState(format!("state.sensors.{name}: missing")));
        };
        if !env.set_sensor(&mut state, &name, values) {
            return Err(BadState(format!(
                "state.sensors.{name}: {} values, expected {}",
                values.len(),
                env.sensor(&state, &name).map_or(0, <[f64]>::len)
            )));
        }
    }
    Ok(state)
}

/// A recorded state that does not fit the program's environment.
#[derive(Debug)]
struct BadState(String);

/// Statistics of one term over a recording.
#[derive(Clone, Debug, PartialEq)]
pub struct TermStats {
    pub name: String,
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    /// Pearson correlation of the term's per-episode mean with episode success (1 or 0);
    /// `None` when every episode succeeded or every one failed, or the term is constant.
    pub success_correlation: Option<f64>,
}

/// What a program made of a recording.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedbackStats {
    pub episodes: usize,
    pub successes: usize,
    pub ticks: usize,
    /// Ticks whose evaluation failed (their reward is invalid).
    pub invalid: usize,
    /// The first failure, as an example for the model.
    pub first_error: Option<String>,
    /// One per term, the total last.
    pub terms: Vec<TermStats>,
}

/// Evaluates the program on every record and summarises each term.
pub fn summarize(program: &mut RewardProgram, records: &[Record]) -> FeedbackStats {
    let mut names: Vec<String> = program.term_names().to_vec();
    names.push("total".to_owned());
    let n = names.len();
    let mut min = vec![f64::INFINITY; n];
    let mut max = vec![f64::NEG_INFINITY; n];
    let mut sum = vec![0.0; n];
    let mut valid = 0usize;
    let mut invalid = 0usize;
    let mut first_error = None;
    // Per episode: sums of each term, valid ticks, success of the last tick.
    let mut episodes: BTreeMap<u64, (Vec<f64>, usize, bool)> = BTreeMap::new();
    for record in records {
        let entry = episodes
            .entry(record.episode)
            .or_insert_with(|| (vec![0.0; n], 0, false));
        entry.2 = record.success.unwrap_or(false);
        match program.evaluate(&record.state) {
            Ok(terms) => {
                valid += 1;
                entry.1 += 1;
                let values = terms.values().iter().copied().chain([terms.total()]);
                for (i, v) in values.enumerate() {
                    min[i] = min[i].min(v);
                    max[i] = max[i].max(v);
                    sum[i] += v;
                    entry.0[i] += v;
                }
            }
            Err(e) => {
                invalid += 1;
                first_error.get_or_insert_with(|| format!("episode {}: {e}", record.episode));
            }
        }
    }
    let per_episode: Vec<(Vec<f64>, f64)> = episodes
        .values()
        .filter(|(_, count, _)| *count > 0)
        .map(|(sums, count, success)| {
            (
                sums.iter().map(|s| s / *count as f64).collect(),
                f64::from(u8::from(*success)),
            )
        })
        .collect();
    let terms = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let xs: Vec<f64> = per_episode.iter().map(|(m, _)| m[i]).collect();
            let ys: Vec<f64> = per_episode.iter().map(|(_, s)| *s).collect();
            TermStats {
                name,
                min: min[i],
                mean: if valid > 0 {
                    sum[i] / valid as f64
                } else {
                    f64::NAN
                },
                max: max[i],
                success_correlation: pearson(&xs, &ys),
            }
        })
        .collect();
    FeedbackStats {
        episodes: episodes.len(),
        successes: episodes.values().filter(|e| e.2).count(),
        ticks: records.len(),
        invalid,
        first_error,
        terms,
    }
}

fn pearson(xs: &[f64], ys: &[f64]) -> Option<f64> {
    let n = xs.len() as f64;
    if xs.len() < 2 {
        return None;
    }
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    if sxx <= 1e-300 || syy <= 1e-300 {
        None
    } else {
        Some(sxy / (sxx * syy).sqrt())
    }
}

impl std::fmt::Display for FeedbackStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} episodes ({} successful), {} ticks, {} invalid evaluations",
            self.episodes, self.successes, self.ticks, self.invalid
        )?;
        if let Some(e) = &self.first_error {
            writeln!(f, "first invalid evaluation: {e}")?;
        }
        writeln!(
            f,
            "{:<20} {:>10} {:>10} {:>10} {:>22}",
            "term", "min", "mean", "max", "corr. with success"
        )?;
        for t in &self.terms {
            let corr = t
                .success_correlation
                .map_or("n/a".to_owned(), |c| format!("{c:.2}"));
            writeln!(
                f,
                "{:<20} {:>10.4} {:>10.4} {:>10.4} {:>22}",
                t.name, t.min, t.mean, t.max, corr
            )?;
        }
        Ok(())
    }
}

/// The refinement prompt: the task, the environment, the previous program, what it did on
/// the recorded episodes, and what the user saw.
pub fn feedback_prompt(
    program: &RewardProgram,
    task: &str,
    stats: &FeedbackStats,
    user_feedback: &str,
    max_abs_term: f64,
) -> String {
    let user = if user_feedback.trim().is_empty() {
        "(none)".to_owned()
    } else {
        user_feedback.trim().to_owned()
    };
    format!(
        "You write dense reward functions for reinforcement learning on a robot. A policy \
         was trained or run with the reward program below; improve the program.\n\n\
         Task: {task}\n\n\
         {}\n{}\n\
         Previous program:\n```rhai\n{}\n```\n\n\
         What it did on the recorded episodes (per tick; the correlation is between a \
         term's mean over an episode and whether that episode succeeded):\n{stats}\n\
         Feedback from the person watching the robot: {user}\n\n\
         How to read this: a term whose range is tiny next to the others barely matters, \
         scale it up or drop it; a term that is high in failed episodes (negative \
         correlation) rewards something other than the task, so change it; if no episode \
         succeeded, make the dense terms lead more directly to the success condition. \
         Answer with the whole improved program in one ```rhai code block.\n",
        program.environment().describe(),
        rules(program.limits(), max_abs_term),
        program.source().trim_end(),
    )
}

/// Writes the recording again with each line's `reward` (the total, or null when invalid),
/// `terms` and, when invalid, `reward_error`. Returns the number of invalid lines.
pub fn relabel(
    program: &mut RewardProgram,
    records: &[Record],
    out: &Path,
) -> Result<usize, EpisodeError> {
    let write_error = |source| EpisodeError::Write {
        file: out.to_owned(),
        source,
    };
    let mut writer = std::io::BufWriter::new(std::fs::File::create(out).map_err(write_error)?);
    let mut invalid = 0;
    for record in records {
        let mut line = record.raw.clone();
        let object = line.as_object_mut().expect("records are JSON objects");
        object.remove("reward_error");
        match program.evaluate(&record.state) {
            Ok(terms) => {
                object.insert("reward".into(), terms.total().into());
                let map: serde_json::Map<String, serde_json::Value> = terms
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.into()))
                    .collect();
                object.insert("terms".into(), map.into());
            }
            Err(e) => {
                invalid += 1;
                object.insert("reward".into(), serde_json::Value::Null);
                object.insert("terms".into(), serde_json::Value::Null);
                object.insert("reward_error".into(), e.to_string().into());
            }
        }
        writeln!(writer, "{line}").map_err(write_error)?;
    }
    writer.flush().map_err(write_error)?;
    Ok(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_is_undefined_without_variation() {
        assert_eq!(pearson(&[1.0, 2.0], &[1.0, 1.0]), None);
        assert!((pearson(&[1.0, 2.0, 3.0], &[0.0, 1.0, 1.0]).unwrap() - 0.866).abs() < 1e-3);
    }
}
