//! Trained actors in the loop: a checkpoint written by `rlrt train` (see [`crate::iql`])
//! becomes an [`rlrt_runtime::Policy`].
//!
//! A checkpoint is a folder: `checkpoint.json` ([`CheckpointMeta`]: sizes, observation
//! normalisation, action bounds, hyperparameters), `config.toml` (the resolved hw-config
//! of the training data), `actor.bin` (burn record of the actor) and, for resuming, the
//! critic, value, target and optimizer records.
//!
//! At load the actor's weights are copied out of burn into plain `f32` arrays and every
//! shape is checked against the hw-config once. [`CheckpointPolicy::act`] then runs a
//! batch-1 MLP forward pass over preallocated buffers: no allocation, no burn, no locks on
//! the tick (burn's own forward allocates tensors per call and costs tens of microseconds
//! for a 2x256 MLP; `rlrt bench policy` measures both).

use std::path::{Path, PathBuf};

use rlrt_runtime::{Policy, PolicyError, RobotConfig};

use crate::iql::IqlConfig;

/// Which learner produced a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Implicit Q-Learning.
    Iql,
    /// Behaviour cloning.
    Bc,
}

/// Observation normalisation (dataset mean and std) and the action bounds that map the
/// actor's [-1, 1] outputs to commands.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalisation {
    pub observation_mean: Vec<f64>,
    pub observation_std: Vec<f64>,
    pub action_mid: Vec<f64>,
    pub action_half_range: Vec<f64>,
}

impl Normalisation {
    /// (x - mean) / std.
    pub fn observation(&self, raw: &[f64], out: &mut [f32]) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = ((raw[i] - self.observation_mean[i]) / self.observation_std[i]) as f32;
        }
    }

    /// An action in config units to [-1, 1].
    pub fn action_to_unit(&self, raw: &[f64], out: &mut [f32]) {
        for (j, o) in out.iter_mut().enumerate() {
            *o = ((raw[j] - self.action_mid[j]) / self.action_half_range[j]) as f32;
        }
    }

    /// An action in [-1, 1] to config units.
    pub fn action_from_unit(&self, unit: &[f32], out: &mut [f64]) {
        for (j, o) in out.iter_mut().enumerate() {
            *o = self.action_mid[j] + self.action_half_range[j] * unit[j] as f64;
        }
    }
}

/// One dense layer as plain arrays: `weight[out][in]` (row per output), `bias[out]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layer {
    pub inputs: usize,
    pub outputs: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// An MLP (ReLU between layers, linear output) as plain arrays.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MlpWeights {
    pub layers: Vec<Layer>,
}

impl MlpWeights {
    pub fn push(&mut self, inputs: usize, outputs: usize, weight: Vec<f32>, bias: Vec<f32>) {
        self.layers.push(Layer {
            inputs,
            outputs,
            weight,
            bias,
        });
    }

    /// (inputs, outputs) of each layer.
    pub fn shapes(&self) -> Vec<(usize, usize)> {
        self.layers.iter().map(|l| (l.inputs, l.outputs)).collect()
    }

    /// The widest layer: the size of each scratch buffer.
    pub fn widest(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.inputs.max(l.outputs))
            .max()
            .unwrap_or(0)
    }

    /// Batch-1 forward pass. `input` and both scratch buffers are at least
    /// [`MlpWeights::widest`] long; the result is in the first `outputs` values of the
    /// returned buffer. Allocates nothing.
    pub fn forward<'a>(&self, input: &'a mut [f32], scratch: &'a mut [f32]) -> &'a [f32] {
        let (mut x, mut y) = (input, scratch);
        let last = self.layers.len() - 1;
        for (k, layer) in self.layers.iter().enumerate() {
            let xin = &x[..layer.inputs];
            for (j, out) in y[..layer.outputs].iter_mut().enumerate() {
                let row = &layer.weight[j * layer.inputs..(j + 1) * layer.inputs];
                let v = layer.bias[j] + dot(row, xin);
                *out = if k < last { v.max(0.0) } else { v };
            }
            std::mem::swap(&mut x, &mut y);
        }
        &x[..self.layers[last].outputs]
    }
}

/// A dot product in eight independent lanes, so the compiler can vectorise it without
/// reassociating a single sum.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    let mut sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5]))
        + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

/// `checkpoint.json`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointMeta {
    pub algorithm: Algorithm,
    /// Gradient steps taken.
    pub step: usize,
    pub observation_len: usize,
    pub action_len: usize,
    /// `observation.state` of the training data, in order.
    pub observation_fields: Vec<String>,
    /// `action.mode` of the training data.
    pub action_mode: String,
    pub hidden: Vec<usize>,
    pub normalisation: Normalisation,
    /// The factor rewards were multiplied by.
    pub reward_scale: f64,
    pub config: IqlConfig,
    /// The minibatch sampler's state (for an exact resume).
    pub rng_state: u64,
}

/// Why a checkpoint could not be loaded or does not fit a config.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("checkpoint {checkpoint} does not fit {config}: {message}")]
    Mismatch {
        checkpoint: PathBuf,
        config: String,
        message: String,
    },
}

impl CheckpointMeta {
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).expect("CheckpointMeta serialises");
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(tmp, path)
    }

    pub fn read(path: &Path) -> Result<Self, CheckpointError> {
        let invalid = |message: String| CheckpointError::Invalid {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
        let meta: Self = serde_json::from_str(&text)
            .map_err(|e| invalid(format!("line {}, column {}: {e}", e.line(), e.column())))?;
        let n = &meta.normalisation;
        let (o, a) = (meta.observation_len, meta.action_len);
        if n.observation_mean.len() != o || n.observation_std.len() != o {
            return Err(invalid(format!(
                "normalisation has {} means and {} stds for {o} observation values",
                n.observation_mean.len(),
                n.observation_std.len()
            )));
        }
        if n.action_mid.len() != a || n.action_half_range.len() != a {
            return Err(invalid(format!("action bounds do not have {a} values")));
        }
        let finite = n
            .observation_mean
            .iter()
            .chain(&n.action_mid)
            .all(|v| v.is_finite())
            && n.observation_std
                .iter()
                .chain(&n.action_half_range)
                .all(|v| v.is_finite() && *v > 0.0);
        if !finite {
            return Err(invalid(
                "normalisation holds a non-finite value or a std/range that is not above zero"
                    .into(),
            ));
        }
        Ok(meta)
    }
}

/// A trained actor on the tick: normalise, batch-1 MLP, tanh, scale to the action bounds.
pub struct CheckpointPolicy {
    name: String,
    weights: MlpWeights,
    normalisation: Normalisation,
    input_len: usize,
    output_len: usize,
    input: Vec<f32>,
    scratch: Vec<f32>,
}

impl CheckpointPolicy {
    /// Loads `checkpoint.json` and `actor.bin` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, CheckpointError> {
        let meta = CheckpointMeta::read(&dir.join("checkpoint.json"))?;
        let weights =
            crate::iql::load_actor_weights(dir, &meta).map_err(|e| CheckpointError::Invalid {
                path: dir.join("actor.bin"),
                message: e.to_string(),
            })?;
        Ok(Self::from_parts(&meta, weights))
    }

    /// From an actor held in memory (evaluation during training).
    pub fn from_parts(meta: &CheckpointMeta, weights: MlpWeights) -> Self {
        let mut policy = Self::from_weights(weights, meta.normalisation.clone());
        policy.name =
            format!("checkpoint ({:?}, step {})", meta.algorithm, meta.step).to_lowercase();
        policy
    }

    /// From plain weights and normalisation (benchmarks, tests).
    pub fn from_weights(weights: MlpWeights, normalisation: Normalisation) -> Self {
        let width = weights.widest();
        Self {
            name: "checkpoint".to_owned(),
            input_len: weights.layers.first().map_or(0, |l| l.inputs),
            output_len: weights.layers.last().map_or(0, |l| l.outputs),
            normalisation,
            input: vec![0.0; width],
            scratch: vec![0.0; width],
            weights,
        }
    }

    /// Loads `dir` and checks it against `config`: observation fields and sizes, action
    /// mode and size.
    pub fn load_for(dir: &Path, config: &RobotConfig) -> Result<Self, CheckpointError> {
        let meta = CheckpointMeta::read(&dir.join("checkpoint.json"))?;
        check_fits(dir, &meta, config)?;
        Self::load(dir)
    }
}

/// Checks that a checkpoint reads and writes what `config` describes.
pub fn check_fits(
    dir: &Path,
    meta: &CheckpointMeta,
    config: &RobotConfig,
) -> Result<(), CheckpointError> {
    let mismatch = |message: String| CheckpointError::Mismatch {
        checkpoint: dir.to_owned(),
        config: config.source.display().to_string(),
        message,
    };
    if meta.observation_len != config.observation.feature_len {
        return Err(mismatch(format!(
            "the actor reads {} observation values, observation.state gives {}",
            meta.observation_len, config.observation.feature_len
        )));
    }
    let fields = observation_fields(config);
    if meta.observation_fields != fields {
        return Err(mismatch(format!(
            "the actor was trained on observation.state = {:?}, the config has {:?}",
            meta.observation_fields, fields
        )));
    }
    if meta.action_len != config.action.len() {
        return Err(mismatch(format!(
            "the actor writes {} action values, the config's action has {}",
            meta.action_len,
            config.action.len()
        )));
    }
    let mode = action_mode_name(config);
    if meta.action_mode != mode {
        return Err(mismatch(format!(
            "the actor was trained with action.mode = {:?}, the config has {mode:?}",
            meta.action_mode
        )));
    }
    Ok(())
}

/// `observation.state` of a config, by name.
pub fn observation_fields(config: &RobotConfig) -> Vec<String> {
    use rlrt_runtime::config::FieldSource;
    config
        .observation
        .fields
        .iter()
        .map(|f| match &f.source {
            FieldSource::JointPositions => "joint_positions".to_owned(),
            FieldSource::JointVelocities => "joint_velocities".to_owned(),
            FieldSource::JointEfforts => "joint_efforts".to_owned(),
            FieldSource::Sensor(i) => config.observation.sensors[*i].name.clone(),
        })
        .collect()
}

/// `action.mode` of a config as written in TOML.
pub fn action_mode_name(config: &RobotConfig) -> String {
    use rlrt_runtime::config::ActionMode;
    match config.action.mode {
        ActionMode::JointPosition => "joint_position",
        ActionMode::JointVelocity => "joint_velocity",
        ActionMode::EeDelta => "ee_delta",
    }
    .to_owned()
}

impl Policy for CheckpointPolicy {
    fn name(&self) -> &str {
        &self.name
    }
    fn input_len(&self) -> usize {
        self.input_len
    }
    fn output_len(&self) -> usize {
        self.output_len
    }
    fn act(&mut self, observation: &[f64], action: &mut [f64]) -> Result<(), PolicyError> {
        self.normalisation
            .observation(observation, &mut self.input[..self.input_len]);
        let out = self.weights.forward(&mut self.input, &mut self.scratch);
        for (j, a) in action.iter_mut().enumerate() {
            let unit = out[j].tanh();
            if !unit.is_finite() {
                return Err(PolicyError::Numerical);
            }
            *a = self.normalisation.action_mid[j]
                + self.normalisation.action_half_range[j] * unit as f64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_one_forward_matches_a_direct_computation() {
        // 2 -> 3 -> 1 with hand-picked weights.
        let mut w = MlpWeights::default();
        w.push(
            2,
            3,
            vec![1.0, 2.0, -1.0, 0.5, 0.0, 1.0],
            vec![0.0, -10.0, 1.0],
        );
        w.push(3, 1, vec![1.0, 1.0, 2.0], vec![0.5]);
        let mut input = vec![0.0; w.widest()];
        let mut scratch = vec![0.0; w.widest()];
        input[..2].copy_from_slice(&[3.0, 4.0]);
        // Hidden: relu(3+8) = 11, relu(-3+2-10) = 0, relu(0+4+1) = 5; out = 11 + 0 + 10 + 0.5.
        assert_eq!(w.forward(&mut input, &mut scratch), &[21.5]);
    }

    #[test]
    fn dot_handles_remainders() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 + i as f32 * 0.5).collect();
        let expected: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - expected).abs() < 1e-3);
    }
}
