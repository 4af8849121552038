//! Trained actors in the loop: a checkpoint written by `rlrt train` (see `crate::iql`)
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

pub use crate::iql_config::Algorithm;
use crate::iql_config::IqlConfig;

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
    /// `weight` transposed, `[in][out]`: wide layers run as sums of scaled columns, which
    /// vectorise over outputs with no horizontal sums.
    weight_t: Vec<f32>,
}

/// An MLP (ReLU between layers, linear output) as plain arrays.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MlpWeights {
    pub layers: Vec<Layer>,
}

impl MlpWeights {
    pub fn push(&mut self, inputs: usize, outputs: usize, weight: Vec<f32>, bias: Vec<f32>) {
        let mut weight_t = vec![0.0f32; weight.len()];
        for j in 0..outputs {
            for i in 0..inputs {
                weight_t[i * outputs + j] = weight[j * inputs + i];
            }
        }
        self.layers.push(Layer {
            inputs,
            outputs,
            weight,
            bias,
            weight_t,
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
    ///
    /// On x86-64 with AVX2 and FMA (checked once per process at run time) the same code is
    /// compiled for those instructions and uses fused multiply-adds; elsewhere it is the
    /// portable version (on aarch64 NEON is the baseline, and fused multiply-add with it).
    pub fn forward<'a>(&self, input: &'a mut [f32], scratch: &'a mut [f32]) -> &'a [f32] {
        #[cfg(target_arch = "x86_64")]
        if simd::has_avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return unsafe { simd::forward_avx2_fma(self, input, scratch) };
        }
        forward_with::<{ cfg!(target_arch = "aarch64") }>(self, input, scratch)
    }
}

/// The forward pass, with `FMA` choosing fused multiply-adds (only where the target has
/// them in hardware: `mul_add` is a slow library call otherwise).
#[inline(always)]
fn forward_with<'a, const FMA: bool>(
    weights: &MlpWeights,
    input: &'a mut [f32],
    scratch: &'a mut [f32],
) -> &'a [f32] {
    let (mut x, mut y) = (input, scratch);
    let last = weights.layers.len() - 1;
    for (k, layer) in weights.layers.iter().enumerate() {
        let relu = k < last;
        let xin = &x[..layer.inputs];
        // Wide layers: tiles of outputs, each a sum over inputs of a scaled column slice.
        let mut done = 0;
        while done + 64 <= layer.outputs {
            tile::<FMA, 64>(layer, xin, done, &mut y[done..done + 64], relu);
            done += 64;
        }
        while done + 8 <= layer.outputs {
            tile::<FMA, 8>(layer, xin, done, &mut y[done..done + 8], relu);
            done += 8;
        }
        // Narrow remainders (such as a 6-value action): one dot product per output.
        for (j, out) in y[done..layer.outputs].iter_mut().enumerate() {
            let j = done + j;
            let row = &layer.weight[j * layer.inputs..(j + 1) * layer.inputs];
            let v = layer.bias[j] + dot::<FMA>(row, xin);
            *out = if relu { v.max(0.0) } else { v };
        }
        std::mem::swap(&mut x, &mut y);
    }
    &x[..weights.layers[last].outputs]
}

/// Outputs `first .. first + T` of `layer`: bias plus the sum over inputs `i` of
/// `x[i] * weight_t[i][first .. first + T]`, kept in `T` accumulators.
#[inline(always)]
fn tile<const FMA: bool, const T: usize>(
    layer: &Layer,
    x: &[f32],
    first: usize,
    out: &mut [f32],
    relu: bool,
) {
    let mut acc = [0.0f32; T];
    acc.copy_from_slice(&layer.bias[first..first + T]);
    for (i, &xi) in x.iter().enumerate() {
        let start = i * layer.outputs + first;
        let Ok(w) = <&[f32; T]>::try_from(&layer.weight_t[start..start + T]) else {
            return;
        };
        for l in 0..T {
            acc[l] = if FMA {
                w[l].mul_add(xi, acc[l])
            } else {
                acc[l] + w[l] * xi
            };
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o = if relu { a.max(0.0) } else { a };
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::sync::OnceLock;

    pub fn has_avx2_fma() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn forward_avx2_fma<'a>(
        weights: &super::MlpWeights,
        input: &'a mut [f32],
        scratch: &'a mut [f32],
    ) -> &'a [f32] {
        super::forward_with::<true>(weights, input, scratch)
    }
}

/// Lanes of the dot product: four 8-wide vectors in flight, enough independent sums to
/// hide the latency of each multiply-add.
const LANES: usize = 32;

/// A dot product in [`LANES`] independent lanes, so the compiler can vectorise it without
/// reassociating a single sum.
#[inline(always)]
fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            lanes[l] = if FMA {
                x[l].mul_add(y[l], lanes[l])
            } else {
                lanes[l] + x[l] * y[l]
            };
        }
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            lanes[l] += lanes[l + width];
        }
    }
    let mut sum = lanes[0];
    for (x, y) in ra.iter().zip(rb) {
        sum = if FMA { x.mul_add(*y, sum) } else { sum + x * y };
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
    #[error("{}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{}: not a checkpoint.json", .path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// burn could not read the actor's weights.
    #[error("{}: cannot read the actor", path.display())]
    Actor {
        path: PathBuf,
        #[source]
        source: burn::record::RecorderError,
    },
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
        let text =
            std::fs::read_to_string(path).map_err(|e| CheckpointError::Read(path.to_owned(), e))?;
        let meta: Self = serde_json::from_str(&text).map_err(|source| CheckpointError::Json {
            path: path.to_owned(),
            source,
        })?;
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
    let fields = config.observation_field_names();
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
    let mode = config.action.mode.as_str().to_owned();
    if meta.action_mode != mode {
        return Err(mismatch(format!(
            "the actor was trained with action.mode = {:?}, the config has {mode:?}",
            meta.action_mode
        )));
    }
    Ok(())
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
        for n in [0, 1, 19, 32, 70] {
            let a: Vec<f32> = (0..n).map(|i| i as f32).collect();
            let b: Vec<f32> = (0..n).map(|i| 1.0 + i as f32 * 0.5).collect();
            let expected: f64 = a.iter().zip(&b).map(|(x, y)| (x * y) as f64).sum();
            for got in [dot::<false>(&a, &b), dot::<true>(&a, &b)] {
                assert!(
                    (got as f64 - expected).abs() <= 1e-6 * expected.max(1.0),
                    "{n}"
                );
            }
        }
    }

    /// Every layer width path (64-wide tiles, 8-wide tiles, single outputs) against a plain
    /// f64 computation, for the portable and the dispatched (SIMD where available) forward.
    #[test]
    fn tiled_forward_matches_a_plain_computation() {
        let (n_in, hidden, n_out) = (13, 77, 5);
        let mut state = 5u64;
        let mut draw = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| rlrt_runtime::rng::uniform(&mut state, -1.0, 1.0) as f32)
                .collect()
        };
        let mut w = MlpWeights::default();
        w.push(n_in, hidden, draw(n_in * hidden), draw(hidden));
        w.push(hidden, n_out, draw(hidden * n_out), draw(n_out));
        let x = draw(n_in);
        let layer = |l: &Layer, x: &[f64], relu: bool| -> Vec<f64> {
            (0..l.outputs)
                .map(|j| {
                    let v = l.bias[j] as f64
                        + (0..l.inputs)
                            .map(|i| l.weight[j * l.inputs + i] as f64 * x[i])
                            .sum::<f64>();
                    if relu {
                        v.max(0.0)
                    } else {
                        v
                    }
                })
                .collect()
        };
        let x64: Vec<f64> = x.iter().map(|v| *v as f64).collect();
        let expected = layer(&w.layers[1], &layer(&w.layers[0], &x64, true), false);
        for simd in [false, true] {
            let mut input = vec![0.0; w.widest()];
            let mut scratch = vec![0.0; w.widest()];
            input[..n_in].copy_from_slice(&x);
            let got = if simd {
                w.forward(&mut input, &mut scratch).to_vec()
            } else {
                forward_with::<false>(&w, &mut input, &mut scratch).to_vec()
            };
            for (g, e) in got.iter().zip(&expected) {
                assert!((*g as f64 - e).abs() < 1e-5, "{got:?} vs {expected:?}");
            }
        }
    }
}
