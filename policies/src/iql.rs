//! Implicit Q-Learning and behaviour cloning in burn, top to bottom in one file.
//!
//! IQL: Kostrikov, Nair and Levine, "Offline Reinforcement Learning with Implicit
//! Q-Learning", ICLR 2022 (arXiv:2110.06169). It never evaluates Q on actions outside the
//! dataset: a state value V is fitted by expectile regression to the Q-values of dataset
//! actions (eq. 5), the Q-functions are fitted to r + gamma V(s') (eq. 6), and the policy is
//! extracted by advantage-weighted regression (eq. 7). Behaviour cloning (the baseline) is
//! the same actor trained with unit weights.
//!
//! Layout of this file (the hyperparameters and presets are in `iql_config`): the replay buffer with observation
//! normalisation and reward scaling; the networks (MLP, twin Q, V, actor); the learner with
//! its update step; saving and resuming. Everything runs on any burn autodiff backend;
//! [`CpuBackend`] (Flex, on the CPU pool) is the default and is deterministic for a seed, at
//! any thread count.
//! Parameters are initialised from our own seeded generator, not the backend's, so two runs
//! with one seed start from the same weights on every backend.

use std::path::{Path, PathBuf};

use burn::backend::flex::FlexDevice;
use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::{Linear, LinearConfig};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{activation::relu, Tensor, TensorData};
use rlrt_runtime::recording::Dataset;
use rlrt_runtime::rng::{splitmix64, uniform01};

use crate::checkpoint::{
    Algorithm, CheckpointError, CheckpointMeta, CheckpointPolicy, MlpWeights, Normalisation,
};
pub use crate::iql_config::{ActorKind, IqlConfig, Preset};

/// The CPU training backend: burn's Flex (matrix products through the `gemm` crate, AVX-512,
/// AVX2 or NEON picked at run time; large products split over the rayon pool by output
/// blocks, so any thread count gives the same numbers) with reverse-mode autodiff, which the
/// optimizers' modules need (the update's gradients are written out by hand, below).
/// `rlrt bench iql` times it against PyTorch and JAX.
pub type CpuBackend = Autodiff<Flex>;

/// The default device of [`CpuBackend`].
pub fn cpu() -> FlexDevice {
    FlexDevice
}

/// The CUDA training backend (feature `cuda`): burn's CUDA backend in f32 with operation
/// fusion and kernel autotuning, with reverse-mode autodiff. Not bit-deterministic (the
/// kernels' reduction order depends on autotuning), so a seed fixes the data order and the
/// initial weights, not every rounding.
#[cfg(feature = "cuda")]
pub type CudaBackend = Autodiff<burn::backend::Cuda>;

/// [`CudaBackend`] without burn's fusion layer: every operation is its own kernel, launched
/// as it is called (`rlrt bench iql --no-fusion` compares the two).
#[cfg(feature = "cuda")]
pub type CudaUnfusedBackend =
    Autodiff<burn_cubecl::CubeBackend<cubecl::cuda::CudaRuntime, f32, i32, u8>>;

// ---------------------------------------------------------------------------------------
// Hyperparameters
// ---------------------------------------------------------------------------------------

/// Why training could not start or continue.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("dataset {dir}: {message}")]
    Dataset { dir: PathBuf, message: String },
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("checkpoint {}", .0.display())]
    Io(PathBuf, #[source] std::io::Error),
    #[error("checkpoint {}: {doing} {what}", path.display())]
    Record {
        path: PathBuf,
        doing: &'static str,
        what: String,
        #[source]
        source: burn::record::RecorderError,
    },
    #[error(transparent)]
    Meta(#[from] crate::checkpoint::CheckpointError),
    #[error("{0}")]
    Config(String),
}

// ---------------------------------------------------------------------------------------
// Replay buffer: transitions, observation normalisation, reward scaling
// ---------------------------------------------------------------------------------------

/// All transitions of a dataset as flat f32 arrays, observations normalised and actions
/// mapped to [-1, 1] by the action bounds.
pub struct Replay {
    pub observation_len: usize,
    pub action_len: usize,
    observations: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    next_observations: Vec<f32>,
    /// 1 - terminal: timeouts still bootstrap from V(s').
    not_done: Vec<f32>,
    pub normalisation: Normalisation,
    pub reward_scale: f64,
    /// `observation.state` and `action.mode` of the dataset (kept in checkpoints).
    pub observation_fields: Vec<String>,
    pub action_mode: String,
}

impl Replay {
    /// Builds the buffer from every episode. `action_min`/`action_max` are the config's
    /// action bounds.
    pub fn from_dataset(
        dataset: &Dataset,
        action_min: &[f64],
        action_max: &[f64],
        config: &IqlConfig,
    ) -> Result<Self, TrainError> {
        let all: Vec<usize> = (0..dataset.episodes.len()).collect();
        Self::from_episodes(dataset, &all, action_min, action_max, config, None)
    }

    /// A training buffer from every episode but `held_out`, and a buffer of the held-out
    /// episodes normalised and scaled as the training one is (the statistics come from the
    /// training episodes alone, so nothing of the held-out data leaks into training).
    pub fn split(
        dataset: &Dataset,
        held_out: &[usize],
        action_min: &[f64],
        action_max: &[f64],
        config: &IqlConfig,
    ) -> Result<(Self, Self), TrainError> {
        let train: Vec<usize> = (0..dataset.episodes.len())
            .filter(|i| !held_out.contains(i))
            .collect();
        let replay = Self::from_episodes(dataset, &train, action_min, action_max, config, None)?;
        let held = Self::from_episodes(
            dataset,
            held_out,
            action_min,
            action_max,
            config,
            Some((&replay.normalisation, replay.reward_scale)),
        )?;
        Ok((replay, held))
    }

    /// The episodes of `dataset` to hold out for a share `fraction` of them: at least one
    /// when the share is above zero, never all, only episodes with a step (a recording cut
    /// at a fault can leave an empty one), spread evenly over the dataset (datasets are often
    /// ordered by when or by how well they were collected, so the last few would not be
    /// representative). Deterministic.
    pub fn held_out_episodes(dataset: &Dataset, fraction: f64) -> Vec<usize> {
        let usable: Vec<usize> = (0..dataset.episodes.len())
            .filter(|&i| dataset.episodes[i].steps() > 0)
            .collect();
        let n = usable.len();
        if fraction <= 0.0 || n < 2 {
            return Vec::new();
        }
        let count = ((fraction * n as f64).round() as usize).clamp(1, n - 1);
        (0..count)
            .map(|i| usable[((2 * i + 1) * n) / (2 * count)])
            .collect()
    }

    /// Builds a buffer from the listed episodes, with observation statistics and reward scale
    /// from them, or from `fitted` (normalisation and reward scale of another buffer).
    fn from_episodes(
        dataset: &Dataset,
        episodes: &[usize],
        action_min: &[f64],
        action_max: &[f64],
        config: &IqlConfig,
        fitted: Option<(&Normalisation, f64)>,
    ) -> Result<Self, TrainError> {
        let (o, a) = (dataset.info.observation_len, dataset.info.action_len);
        let fail = |message: String| TrainError::Dataset {
            dir: dataset.dir.clone(),
            message,
        };
        if action_min.len() != a || action_max.len() != a {
            return Err(fail(format!(
                "{a} action values, the config's action bounds have {}",
                action_min.len()
            )));
        }
        let chosen = || episodes.iter().map(|&i| &dataset.episodes[i]);
        let n: usize = chosen().map(|e| e.steps()).sum();
        if n == 0 {
            return Err(fail(if fitted.is_some() {
                "the held-out episodes have no transitions".into()
            } else {
                "no transitions".into()
            }));
        }
        let (normalisation, reward_scale) = match fitted {
            Some((normalisation, scale)) => (normalisation.clone(), scale),
            None => fit(chosen(), n, o, a, action_min, action_max, config),
        };

        let mut replay = Self {
            observation_len: o,
            action_len: a,
            observations: Vec::with_capacity(n * o),
            actions: Vec::with_capacity(n * a),
            rewards: Vec::with_capacity(n),
            next_observations: Vec::with_capacity(n * o),
            not_done: Vec::with_capacity(n),
            normalisation,
            reward_scale,
            observation_fields: dataset.info.observation_fields.clone(),
            action_mode: dataset.info.action_mode.clone(),
        };
        let norm = &replay.normalisation;
        let mut obs_row = vec![0.0f32; o];
        let mut act_row = vec![0.0f32; a];
        for e in chosen() {
            for t in 0..e.steps() {
                norm.observation(&e.observations[t * o..(t + 1) * o], &mut obs_row);
                replay.observations.extend_from_slice(&obs_row);
                norm.observation(&e.observations[(t + 1) * o..(t + 2) * o], &mut obs_row);
                replay.next_observations.extend_from_slice(&obs_row);
                norm.action_to_unit(&e.actions[t * a..(t + 1) * a], &mut act_row);
                replay.actions.extend_from_slice(&act_row);
                replay
                    .rewards
                    .push((e.rewards[t] * reward_scale + config.reward_shift) as f32);
                replay.not_done.push(if e.terminals[t] { 0.0 } else { 1.0 });
            }
        }
        Ok(replay)
    }

    /// `transitions` random transitions (observations and rewards standard-normal-ish,
    /// actions in [-1, 1], one in fifty terminal) with identity normalisation: data for
    /// timing updates (`rlrt bench iql`), where the values do not matter but the shapes do.
    pub fn random(
        observation_len: usize,
        action_len: usize,
        transitions: usize,
        seed: u64,
    ) -> Self {
        let mut rng = seed;
        let mut draw = |n: usize, scale: f64| -> Vec<f32> {
            (0..n)
                .map(|_| ((2.0 * uniform01(&mut rng) - 1.0) * scale) as f32)
                .collect()
        };
        let observations = draw(transitions * observation_len, 2.0);
        let next_observations = draw(transitions * observation_len, 2.0);
        let actions = draw(transitions * action_len, 1.0);
        let rewards = draw(transitions, 1.0);
        let not_done = (0..transitions)
            .map(|i| if i % 50 == 49 { 0.0 } else { 1.0 })
            .collect();
        Self {
            observation_len,
            action_len,
            observations,
            actions,
            rewards,
            next_observations,
            not_done,
            normalisation: Normalisation {
                observation_mean: vec![0.0; observation_len],
                observation_std: vec![1.0; observation_len],
                action_mid: vec![0.0; action_len],
                action_half_range: vec![1.0; action_len],
            },
            reward_scale: 1.0,
            observation_fields: Vec::new(),
            action_mode: "joint_position".into(),
        }
    }

    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }
}

/// Observation mean and std over every observation the policy acted on, the action bounds
/// as midpoints and half ranges, and the reward scale (`config.reward_scale`, or the paper's
/// 1000 / (max return - min return) over the episodes).
fn fit<'a>(
    episodes: impl Iterator<Item = &'a rlrt_runtime::recording::Episode> + Clone,
    n: usize,
    o: usize,
    a: usize,
    action_min: &[f64],
    action_max: &[f64],
    config: &IqlConfig,
) -> (Normalisation, f64) {
    let mut mean = vec![0.0f64; o];
    let mut sq = vec![0.0f64; o];
    for e in episodes.clone() {
        for row in e.observations.chunks(o).take(e.steps()) {
            for i in 0..o {
                mean[i] += row[i];
                sq[i] += row[i] * row[i];
            }
        }
    }
    let std: Vec<f64> = (0..o)
        .map(|i| {
            mean[i] /= n as f64;
            // A constant feature (a fixed target) gets std 1: it stays constant, and
            // dividing by ~0 would blow up any other value the robot sends later.
            let var = (sq[i] / n as f64 - mean[i] * mean[i]).max(0.0);
            if var.sqrt() < 1e-6 {
                1.0
            } else {
                var.sqrt()
            }
        })
        .collect();
    let normalisation = Normalisation {
        observation_mean: mean,
        observation_std: std,
        action_mid: (0..a)
            .map(|j| 0.5 * (action_max[j] + action_min[j]))
            .collect(),
        action_half_range: (0..a)
            .map(|j| 0.5 * (action_max[j] - action_min[j]))
            .collect(),
    };
    // Paper, Appendix B: rewards / (max return - min return) * 1000 for locomotion.
    let reward_scale = match config.reward_scale {
        Some(s) => s,
        None => {
            let (lo, hi) = episodes
                .map(|e| e.total_reward())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
                    (lo.min(r), hi.max(r))
                });
            if hi - lo > 1e-9 {
                1000.0 / (hi - lo)
            } else {
                1.0
            }
        }
    };
    (normalisation, reward_scale)
}

/// A minibatch on a device.
struct Batch<B: Backend> {
    size: usize,
    observations: Tensor<B, 2>,
    /// Observations and actions side by side: the critics' input, with no copy.
    observations_actions: Tensor<B, 2>,
    actions: Tensor<B, 2>,
    rewards: Tensor<B, 2>,
    next_observations: Tensor<B, 2>,
    not_done: Tensor<B, 2>,
}

impl Replay {
    /// Samples `size` transitions uniformly with replacement. The rows go to the device as
    /// one packed [size, 2o + a + 2] upload (observation, action, reward, next observation,
    /// not-done), split there by views: one host-to-device copy per step instead of five.
    fn sample<B: Backend>(&self, size: usize, rng: &mut u64, device: &B::Device) -> Batch<B> {
        let len = self.len() as u64;
        self.gather((0..size).map(|_| (splitmix64(rng) % len) as usize), device)
    }

    /// Up to `limit` transitions spread evenly over the buffer (all of them when it holds
    /// fewer): what the offline diagnostics measure.
    fn spread<B: Backend>(&self, limit: usize, device: &B::Device) -> Batch<B> {
        let (n, m) = (self.len(), self.len().min(limit.max(1)));
        self.gather((0..m).map(|k| k * n / m), device)
    }

    /// The listed transitions as one packed upload, split on the device by views.
    fn gather<B: Backend>(
        &self,
        indices: impl ExactSizeIterator<Item = usize>,
        device: &B::Device,
    ) -> Batch<B> {
        let (o, a) = (self.observation_len, self.action_len);
        let width = 2 * o + a + 2;
        let size = indices.len();
        let mut rows = Vec::with_capacity(size * width);
        for i in indices {
            rows.extend_from_slice(&self.observations[i * o..(i + 1) * o]);
            rows.extend_from_slice(&self.actions[i * a..(i + 1) * a]);
            rows.push(self.rewards[i]);
            rows.extend_from_slice(&self.next_observations[i * o..(i + 1) * o]);
            rows.push(self.not_done[i]);
        }
        let packed = Tensor::<B, 2>::from_data(TensorData::new(rows, [size, width]), device);
        let columns = |from: usize, len: usize| packed.clone().slice([0..size, from..from + len]);
        Batch {
            size,
            observations: columns(0, o),
            observations_actions: columns(0, o + a),
            actions: columns(o, a),
            rewards: columns(o + a, 1),
            next_observations: columns(o + a + 1, o),
            not_done: columns(2 * o + a + 1, 1),
        }
    }

    /// The whole buffer's observations and actions (for measuring the actor's error).
    fn all<B: Backend>(&self, limit: usize, device: &B::Device) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let n = self.len().min(limit);
        let (o, a) = (self.observation_len, self.action_len);
        (
            Tensor::from_data(
                TensorData::new(self.observations[..n * o].to_vec(), [n, o]),
                device,
            ),
            Tensor::from_data(
                TensorData::new(self.actions[..n * a].to_vec(), [n, a]),
                device,
            ),
        )
    }
}

// ---------------------------------------------------------------------------------------
// Networks
// ---------------------------------------------------------------------------------------

/// An MLP with ReLU between layers and a linear output.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub layers: Vec<Linear<B>>,
}

impl<B: Backend> Mlp<B> {
    /// Initialised like PyTorch's `nn.Linear` (weights and biases uniform in
    /// +-1/sqrt(fan_in)), from our seeded generator. `last_scale` shrinks the output layer.
    fn new(sizes: &[usize], last_scale: f64, rng: &mut u64, device: &B::Device) -> Self {
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(k, w)| {
                let (fan_in, fan_out) = (w[0], w[1]);
                let mut bound = 1.0 / (fan_in as f64).sqrt();
                if k + 2 == sizes.len() {
                    bound *= last_scale;
                }
                let mut draw = |n: usize| -> Vec<f32> {
                    (0..n)
                        .map(|_| ((2.0 * uniform01(rng) - 1.0) * bound) as f32)
                        .collect()
                };
                let weight = draw(fan_in * fan_out);
                let bias = draw(fan_out);
                // burn's Linear (row layout) stores weights as [in, out]: y = x W + b.
                let mut linear = LinearConfig::new(fan_in, fan_out).init::<B>(device);
                linear.weight = Param::from_tensor(Tensor::from_data(
                    TensorData::new(weight, [fan_in, fan_out]),
                    device,
                ));
                linear.bias = Some(Param::from_tensor(Tensor::from_data(
                    TensorData::new(bias, [fan_out]),
                    device,
                )));
                linear
            })
            .collect();
        Self { layers }
    }

    pub fn forward(&self, mut x: Tensor<B, 2>) -> Tensor<B, 2> {
        let last = self.layers.len() - 1;
        for (k, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if k < last {
                x = relu(x);
            }
        }
        x
    }

    /// The weights as plain arrays (for the batch-1 inference path).
    pub fn weights(&self) -> MlpWeights {
        let mut out = MlpWeights::default();
        for layer in &self.layers {
            let [fan_in, fan_out] = layer.weight.val().dims();
            let w: Vec<f32> = layer
                .weight
                .val()
                .into_data()
                .convert::<f32>()
                .to_vec()
                .expect("f32 weights");
            let b: Vec<f32> = match &layer.bias {
                Some(b) => b
                    .val()
                    .into_data()
                    .convert::<f32>()
                    .to_vec()
                    .expect("f32 bias"),
                None => vec![0.0; fan_out],
            };
            // Transposed to [out][in]: each output is one contiguous dot product.
            let mut weight = vec![0.0f32; fan_in * fan_out];
            for i in 0..fan_in {
                for j in 0..fan_out {
                    weight[j * fan_in + i] = w[i * fan_out + j];
                }
            }
            out.push(fan_in, fan_out, weight, b);
        }
        out
    }
}

/// Twin Q networks Q1, Q2 of (normalised observation, action in [-1, 1]).
#[derive(Module, Debug)]
pub struct Critic<B: Backend> {
    pub q1: Mlp<B>,
    pub q2: Mlp<B>,
}

impl<B: Backend> Critic<B> {
    fn forward(
        &self,
        observations: Tensor<B, 2>,
        actions: Tensor<B, 2>,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        self.forward_joined(Tensor::cat(vec![observations, actions], 1))
    }

    /// Q1, Q2 of observations and actions already side by side ([batch, o + a]).
    fn forward_joined(&self, x: Tensor<B, 2>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        (self.q1.forward(x.clone()), self.q2.forward(x))
    }

    /// min(Q1, Q2) of observations and actions side by side.
    fn min_q_joined(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let (q1, q2) = self.forward_joined(x);
        q1.min_pair(q2)
    }

    /// min(Q1, Q2): the clipped double-Q estimate the paper uses for V's target and the
    /// advantage.
    fn min_q(&self, observations: Tensor<B, 2>, actions: Tensor<B, 2>) -> Tensor<B, 2> {
        let (q1, q2) = self.forward(observations, actions);
        q1.min_pair(q2)
    }
}

/// The actor: mean tanh(f(s)) in [-1, 1] and a state-independent log-std.
#[derive(Module, Debug)]
pub struct Actor<B: Backend> {
    pub net: Mlp<B>,
    pub log_std: Param<Tensor<B, 1>>,
}

/// Bounds of the learned log-std (as in most IQL implementations: keeps the likelihood
/// from collapsing onto single actions).
const LOG_STD_MIN: f64 = -5.0;
const LOG_STD_MAX: f64 = 2.0;

impl<B: Backend> Actor<B> {
    pub fn mean(&self, observations: Tensor<B, 2>) -> Tensor<B, 2> {
        self.net.forward(observations).tanh()
    }

    /// log pi(a|s) of a diagonal Gaussian, summed over action dimensions: [batch, 1].
    fn log_prob(&self, observations: Tensor<B, 2>, actions: Tensor<B, 2>) -> Tensor<B, 2> {
        let mean = self.mean(observations);
        let log_std = self
            .log_std
            .val()
            .clamp(LOG_STD_MIN, LOG_STD_MAX)
            .unsqueeze::<2>();
        let z = (actions - mean) / log_std.clone().exp();
        let per_dim =
            z.square().mul_scalar(-0.5) - log_std - 0.5 * (2.0 * std::f64::consts::PI).ln();
        per_dim.sum_dim(1)
    }
}

// ---------------------------------------------------------------------------------------
// Polyak averaging of the target Q networks
// ---------------------------------------------------------------------------------------

/// Collects every float parameter, flattened, in visiting order.
struct Collect<B: Backend>(Vec<Tensor<B, 1>>);

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push(param.val().flatten(0, D - 1));
    }
}

/// target <- (1 - rate) target + rate online, parameter by parameter in visiting order.
struct Polyak<B: Backend> {
    online: std::vec::IntoIter<Tensor<B, 1>>,
    rate: f64,
}

impl<B: Backend> ModuleMapper<B> for Polyak<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, target, mapper) = param.consume();
        let online = self
            .online
            .next()
            .expect("online and target critics have the same parameters");
        let shape = target.shape();
        let mixed =
            target.mul_scalar(1.0 - self.rate) + online.reshape(shape).mul_scalar(self.rate);
        Param::from_mapped_value(id, mixed, mapper)
    }
}

// ---------------------------------------------------------------------------------------
// The learner
// ---------------------------------------------------------------------------------------

/// Losses and statistics of one update step (on its training minibatch).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Losses {
    pub value: f32,
    pub q: f32,
    pub actor: f32,
    /// Mean advantage Q - V of the batch (IQL).
    pub advantage: f32,
    /// Mean exp(beta A) weight after clipping (IQL).
    pub weight: f32,
    /// Share of the batch whose exp(beta A) reached `advantage_clip` (IQL).
    pub clipped: f32,
}

/// What the networks say about transitions they were not trained on (or, without held-out
/// data, about the training data): the offline diagnostics `rlrt train` shows in place of
/// rollouts when there is no simulator, and `rlrt eval` reports for such a checkpoint.
/// Rewards and values are in the scaled units the critic is trained on.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Diagnostics {
    /// Transitions measured.
    pub transitions: usize,
    /// Mean squared error of the actor's mean to the dataset's actions, in [-1, 1] units.
    pub action_mse: f32,
    /// Mean absolute error of the actor's mean to the dataset's actions, in the dataset's
    /// own action units.
    pub action_mae: f32,
    /// Mean log pi(a|s) of the dataset's actions under the Gaussian actor (nats, summed over
    /// action dimensions); `None` for a deterministic actor.
    pub log_likelihood: Option<f32>,
    /// The critic's part (IQL; `None` for behaviour cloning).
    pub critic: Option<CriticDiagnostics>,
}

/// The value side of [`Diagnostics`].
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CriticDiagnostics {
    /// Root mean square of r + gamma (1 - done) V(s') - Q_i(s, a) over both Q networks.
    pub td_error_rms: f32,
    pub v_mean: f32,
    pub v_std: f32,
    /// min(Q1, Q2) of the dataset's actions.
    pub q_mean: f32,
    pub q_std: f32,
    /// The expectile loss of V against the target critic (eq. 5).
    pub expectile_loss: f32,
    /// Mean advantage min Q_target - V.
    pub advantage_mean: f32,
    /// Mean advantage weight exp(beta A) after clipping.
    pub weight_mean: f32,
    /// Share of transitions whose weight reached the clip: a large share means beta is
    /// too high for these advantages (the actor then clones a few transitions).
    pub clipped_share: f32,
}

type Adaptor<M, B> = OptimizerAdaptor<Adam, M, B>;

/// IQL (or behaviour cloning) on one dataset.
pub struct Learner<B: AutodiffBackend> {
    pub config: IqlConfig,
    pub replay: Replay,
    device: B::Device,
    actor: Actor<B>,
    critic: Critic<B>,
    target_critic: Critic<B::InnerBackend>,
    value: Mlp<B>,
    actor_optim: Adaptor<Actor<B>, B>,
    critic_optim: Adaptor<Critic<B>, B>,
    value_optim: Adaptor<Mlp<B>, B>,
    rng: u64,
    step: usize,
    /// The last update's losses, still on the device: [value, actor, q, weight, advantage,
    /// clipped]. Read back only when asked ([`Learner::losses`]), so a GPU never waits for
    /// the host between updates.
    last: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> Learner<B> {
    pub fn new(config: IqlConfig, replay: Replay, device: B::Device) -> Self {
        let (o, a) = (replay.observation_len, replay.action_len);
        let mut rng = config.seed ^ 0x1A1_5EED;
        let sizes = |first: usize, last: usize| {
            let mut s = vec![first];
            s.extend_from_slice(&config.hidden);
            s.push(last);
            s
        };
        let actor = Actor {
            net: Mlp::new(&sizes(o, a), 0.01, &mut rng, &device),
            log_std: Param::from_tensor(Tensor::zeros([a], &device)),
        };
        let critic = Critic {
            q1: Mlp::new(&sizes(o + a, 1), 1.0, &mut rng, &device),
            q2: Mlp::new(&sizes(o + a, 1), 1.0, &mut rng, &device),
        };
        let value = Mlp::new(&sizes(o, 1), 1.0, &mut rng, &device);
        let target_critic = critic.valid();
        let adam = AdamConfig::new().with_epsilon(config.adam_epsilon as f32);
        Self {
            actor_optim: adam.init(),
            critic_optim: adam.init(),
            value_optim: adam.init(),
            config,
            replay,
            device,
            actor,
            critic,
            target_critic,
            value,
            rng,
            step: 0,
            last: None,
        }
    }

    /// Gradient steps taken so far.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The actor's learning rate at the current step: cosine decay from `learning_rate`
    /// to zero over `steps` (the paper's schedule for the policy).
    fn actor_lr(&self) -> f64 {
        let lr = self.config.learning_rate;
        if !self.config.cosine_actor_lr {
            return lr;
        }
        let progress = (self.step as f64 / self.config.steps.max(1) as f64).min(1.0);
        0.5 * lr * (1.0 + (std::f64::consts::PI * progress).cos())
    }

    /// One update, then its losses read back (a host-device synchronisation on a GPU).
    pub fn update(&mut self) -> Losses {
        self.advance();
        self.losses()
    }

    /// The losses of the last update (all zero before the first).
    pub fn losses(&self) -> Losses {
        let Some(last) = &self.last else {
            return Losses::default();
        };
        let v: Vec<f32> = last
            .to_data()
            .convert::<f32>()
            .to_vec()
            .expect("f32 after convert");
        Losses {
            value: v[0],
            actor: v[1],
            q: v[2],
            weight: v[3],
            advantage: v[4],
            clipped: v[5],
        }
    }

    /// One update without reading anything back.
    ///
    /// The three IQL updates (V, the actor, twin Q) each read the other networks as they were
    /// at the start of the step: V's target is the target critic, the actor's advantage uses
    /// V before its update, and Q's target r + gamma V(s') uses V before its update too (as
    /// CORL's IQL does; the authors' JAX code reads the updated V for the last two, a
    /// difference of one step of V). Being independent, they run side by side on the
    /// current rayon pool (`rlrt train --threads`): one thread takes the target critic's
    /// min Q, V's forward pass and then V's step and the actor's step (themselves a fork a
    /// third thread can take), another V(s') and the twin Q networks with their Polyak
    /// targets. A pool of one thread runs them one after the other, with the same numbers.
    pub fn advance(&mut self) {
        let batch = self.replay.sample::<B::InnerBackend>(
            self.config.batch_size,
            &mut self.rng,
            &self.device,
        );
        let actor_lr = self.actor_lr();
        let iql = self.config.algorithm == Algorithm::Iql;
        // V as it is now, for Q's target while V itself is being updated.
        let value_before = iql.then(|| self.value.valid());
        let Self {
            config,
            actor,
            critic,
            target_critic,
            value,
            actor_optim,
            critic_optim,
            value_optim,
            device,
            ..
        } = self;
        let (config, batch, target_critic) = (&*config, &batch, &*target_critic);
        let ((value_out, actor_out), q_loss) = rayon::join(
            || {
                if !iql {
                    // Behaviour cloning: every dataset action weighs 1.
                    return (
                        None,
                        update_actor(actor, actor_optim, config, actor_lr, batch, None),
                    );
                }
                // --- V by expectile regression, eq. (5):
                //     L_V = E[ L2^tau( min_i Q_target_i(s, a) - V(s) ) ]
                let q_target = target_critic.min_q_joined(batch.observations_actions.clone());
                let inner = value_before.as_ref().expect("IQL has a V snapshot");
                let trace = mlp_trace(inner, batch.observations.clone());
                // --- The actor's advantage A = min Q_target - V(s), V before its step.
                let advantage =
                    q_target.clone() - trace.last().expect("a trace ends with the output").clone();
                let (value_loss, actor_out) = rayon::join(
                    || {
                        let (loss, grads) = value_grads(config, inner, &trace, q_target);
                        *value = value_optim.step(config.learning_rate, value.clone(), grads);
                        loss
                    },
                    || {
                        update_actor(
                            actor,
                            actor_optim,
                            config,
                            actor_lr,
                            batch,
                            Some(advantage.clone()),
                        )
                    },
                );
                (Some((value_loss, advantage.mean())), actor_out)
            },
            || {
                value_before.as_ref().map(|value_before| {
                    let next_v = value_before.forward(batch.next_observations.clone());
                    update_critic(critic, critic_optim, config, batch, next_v)
                })
            },
        );
        // --- Polyak averaging of the target Q networks.
        if iql {
            let mut online = Collect(Vec::new());
            self.critic.valid().visit(&mut online);
            let target = std::mem::replace(&mut self.target_critic, self.critic.valid());
            self.target_critic = target.map(&mut Polyak {
                online: online.0.into_iter(),
                rate: self.config.target_update_rate,
            });
        }
        let zero = || Tensor::<B::InnerBackend, 1>::zeros([1], &*device);
        let (value_loss, advantage_mean) = value_out.unzip();
        self.step += 1;
        self.last = Some(Tensor::cat(
            vec![
                value_loss.unwrap_or_else(zero),
                actor_out.loss,
                q_loss.unwrap_or_else(zero),
                actor_out.weight_mean,
                advantage_mean.unwrap_or_else(zero),
                actor_out.clipped_share,
            ],
            0,
        ));
    }

    /// The offline diagnostics of the current networks on up to `limit` transitions of
    /// `data` spread over it (its normalisation and reward scale must be this learner's:
    /// [`Replay::split`]).
    pub fn diagnose(&self, data: &Replay, limit: usize) -> Diagnostics {
        let batch = data.spread::<B::InnerBackend>(limit, &self.device);
        let config = &self.config;
        let actor = self.actor.valid();
        let to_vec = |t: Tensor<B::InnerBackend, 2>| -> Vec<f32> {
            t.into_data().convert::<f32>().to_vec().expect("f32")
        };
        let scalar = |t: Tensor<B::InnerBackend, 1>| -> f32 {
            t.into_data().convert::<f32>().to_vec::<f32>().expect("f32")[0]
        };
        let mean = to_vec(actor.mean(batch.observations.clone()));
        let actions = to_vec(batch.actions.clone());
        let a = data.action_len;
        let half = &self.replay.normalisation.action_half_range;
        let (mut sq, mut abs) = (0.0f64, 0.0f64);
        for (k, (m, x)) in mean.iter().zip(&actions).enumerate() {
            let d = (m - x) as f64;
            sq += d * d;
            abs += d.abs() * half[k % a];
        }
        let cells = (batch.size * a).max(1) as f64;
        let log_likelihood = (config.actor == ActorKind::Gaussian).then(|| {
            scalar(
                actor
                    .log_prob(batch.observations.clone(), batch.actions.clone())
                    .mean(),
            )
        });
        let critic = (config.algorithm == Algorithm::Iql).then(|| {
            let stats = |t: Tensor<B::InnerBackend, 2>| -> (f32, f32) {
                let v = to_vec(t);
                let n = v.len().max(1) as f64;
                let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
                let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
                (mean as f32, var.sqrt() as f32)
            };
            let value = self.value.valid();
            let v = value.forward(batch.observations.clone());
            let next_v = value.forward(batch.next_observations.clone());
            let (q1, q2) = self
                .critic
                .valid()
                .forward(batch.observations.clone(), batch.actions.clone());
            let y =
                batch.rewards.clone() + batch.not_done.clone() * next_v.mul_scalar(config.discount);
            let td = ((q1.clone() - y.clone()).square().mean() + (q2.clone() - y).square().mean())
                .div_scalar(2.0)
                .sqrt();
            let q_target = self
                .target_critic
                .min_q(batch.observations.clone(), batch.actions.clone());
            let u = q_target - v.clone();
            let (weights, clipped) = advantage_weights(u.clone(), config);
            let (v_mean, v_std) = stats(v);
            let (q_mean, q_std) = stats(q1.min_pair(q2));
            CriticDiagnostics {
                td_error_rms: scalar(td),
                v_mean,
                v_std,
                q_mean,
                q_std,
                expectile_loss: scalar(expectile_loss(u.clone(), config.expectile)),
                advantage_mean: scalar(u.mean()),
                weight_mean: scalar(weights.mean()),
                clipped_share: scalar(clipped),
            }
        });
        Diagnostics {
            transitions: batch.size,
            action_mse: (sq / cells) as f32,
            action_mae: (abs / cells) as f32,
            log_likelihood,
            critic,
        }
    }

    /// Mean squared error between the actor's mean and the dataset's actions (in [-1, 1]
    /// units) over up to `limit` transitions.
    pub fn actor_mse(&self, limit: usize) -> f32 {
        let actor = self.actor.valid();
        let (obs, act) = self.replay.all::<B::InnerBackend>(limit, &self.device);
        let err = (actor.mean(obs) - act).square().mean();
        err.into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32")[0]
    }

    /// min(Q1, Q2) of the online critic on the first `limit` transitions (for tests).
    pub fn q_values(&self, limit: usize) -> Vec<f32> {
        let (obs, act) = self.replay.all::<B::InnerBackend>(limit, &self.device);
        let q = self.critic.valid().min_q(obs, act);
        q.into_data().convert::<f32>().to_vec().expect("f32")
    }

    /// The actor's mean network as plain arrays.
    pub fn actor_weights(&self) -> MlpWeights {
        self.actor.valid().net.weights()
    }

    /// The metadata of a checkpoint of the current state.
    pub fn meta(&self) -> CheckpointMeta {
        CheckpointMeta {
            algorithm: self.config.algorithm,
            step: self.step,
            observation_len: self.replay.observation_len,
            action_len: self.replay.action_len,
            observation_fields: self.replay.observation_fields.clone(),
            action_mode: self.replay.action_mode.clone(),
            hidden: self.config.hidden.clone(),
            normalisation: self.replay.normalisation.clone(),
            reward_scale: self.replay.reward_scale,
            config: self.config.clone(),
            rng_state: self.rng,
        }
    }

    // ---------------------------------------------------------------------------------
    // Saving and resuming
    // ---------------------------------------------------------------------------------

    /// Writes every network and optimizer state (burn records) and `checkpoint.json` into
    /// `dir`. The weights of the actor alone (`actor.bin`) are what a policy loads.
    pub fn save(&self, dir: &Path) -> Result<(), TrainError> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::Io(dir.to_owned(), e))?;
        let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
        let rec = |what: &str, r: Result<(), burn::record::RecorderError>| {
            r.map_err(|source| TrainError::Record {
                path: dir.to_owned(),
                doing: "writing",
                what: what.to_owned(),
                source,
            })
        };
        rec(
            "actor",
            self.actor.valid().save_file(dir.join("actor"), &recorder),
        )?;
        rec(
            "critic",
            self.critic.valid().save_file(dir.join("critic"), &recorder),
        )?;
        rec(
            "target_critic",
            self.target_critic
                .clone()
                .save_file(dir.join("target_critic"), &recorder),
        )?;
        rec(
            "value",
            self.value.valid().save_file(dir.join("value"), &recorder),
        )?;
        rec(
            "actor_optim",
            Recorder::<B>::record(
                &recorder,
                self.actor_optim.to_record(),
                dir.join("actor_optim"),
            ),
        )?;
        rec(
            "critic_optim",
            Recorder::<B>::record(
                &recorder,
                self.critic_optim.to_record(),
                dir.join("critic_optim"),
            ),
        )?;
        rec(
            "value_optim",
            Recorder::<B>::record(
                &recorder,
                self.value_optim.to_record(),
                dir.join("value_optim"),
            ),
        )?;
        let meta = dir.join("checkpoint.json");
        self.meta()
            .write(&meta)
            .map_err(|e| TrainError::Io(meta.clone(), e))
    }

    /// Continues from a checkpoint written by [`Learner::save`]: weights, optimizer moments,
    /// step and sampler state, so a resumed run matches an uninterrupted one.
    pub fn resume(mut self, dir: &Path) -> Result<Self, TrainError> {
        let fail = |message: String| TrainError::Checkpoint {
            path: dir.to_owned(),
            message,
        };
        let meta = CheckpointMeta::read(&dir.join("checkpoint.json"))?;
        if meta.observation_len != self.replay.observation_len
            || meta.action_len != self.replay.action_len
            || meta.hidden != self.config.hidden
            || meta.algorithm != self.config.algorithm
        {
            return Err(fail(format!(
                "was trained with {:?}, {} observations, {} actions, hidden {:?}; this run has {:?}, {}, {}, {:?}",
                meta.algorithm,
                meta.observation_len,
                meta.action_len,
                meta.hidden,
                self.config.algorithm,
                self.replay.observation_len,
                self.replay.action_len,
                self.config.hidden
            )));
        }
        let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
        let device = self.device.clone();
        let load = |what: &str| dir.join(what);
        let err = |what: &'static str| {
            move |source: burn::record::RecorderError| TrainError::Record {
                path: dir.to_owned(),
                doing: "reading",
                what: what.to_owned(),
                source,
            }
        };
        self.actor = self
            .actor
            .load_file(load("actor"), &recorder, &device)
            .map_err(err("actor"))?;
        self.critic = self
            .critic
            .load_file(load("critic"), &recorder, &device)
            .map_err(err("critic"))?;
        self.target_critic = self
            .target_critic
            .load_file(load("target_critic"), &recorder, &device)
            .map_err(err("target_critic"))?;
        self.value = self
            .value
            .load_file(load("value"), &recorder, &device)
            .map_err(err("value"))?;
        let actor_optim = Recorder::<B>::load(&recorder, load("actor_optim"), &device)
            .map_err(err("actor_optim"))?;
        self.actor_optim = self.actor_optim.load_record(actor_optim);
        let critic_optim = Recorder::<B>::load(&recorder, load("critic_optim"), &device)
            .map_err(err("critic_optim"))?;
        self.critic_optim = self.critic_optim.load_record(critic_optim);
        let value_optim = Recorder::<B>::load(&recorder, load("value_optim"), &device)
            .map_err(err("value_optim"))?;
        self.value_optim = self.value_optim.load_record(value_optim);
        self.step = meta.step;
        self.rng = meta.rng_state;
        Ok(self)
    }
}

/// The expectile loss of eq. (5): E[ |tau - 1(u < 0)| u^2 ].
fn expectile_loss<B: Backend>(u: Tensor<B, 2>, tau: f64) -> Tensor<B, 1> {
    (expectile_weight(&u, tau) * u.square()).mean()
}

/// |tau - 1(u < 0)| of the expectile loss, per element.
fn expectile_weight<B: Backend>(u: &Tensor<B, 2>, tau: f64) -> Tensor<B, 2> {
    u.ones_like()
        .mul_scalar(tau)
        .mask_fill(u.clone().lower_elem(0.0), 1.0 - tau)
}

/// Advantage weights of eq. (7), exp(beta A) clipped at `advantage_clip`, and the share of
/// them the clip cut.
fn advantage_weights<B: Backend>(
    advantage: Tensor<B, 2>,
    config: &IqlConfig,
) -> (Tensor<B, 2>, Tensor<B, 1>) {
    let raw = advantage.mul_scalar(config.temperature).exp();
    let clipped = raw
        .clone()
        .greater_equal_elem(config.advantage_clip)
        .float()
        .mean();
    (raw.clamp_max(config.advantage_clip), clipped)
}

// ---------------------------------------------------------------------------------------
// Gradients by hand
// ---------------------------------------------------------------------------------------
//
// The three losses are simple functions of MLP outputs, so their gradients are written out
// here instead of taken from burn's autodiff: the forward pass keeps each layer's input, the
// backward pass is two matrix products per layer (dW = x^T dy, dx = dy W^T) and a ReLU mask.
// It computes the same numbers as autodiff (`manual_gradients_match_autodiff` checks each
// parameter), skips the bookkeeping of a tape, and, above all, keeps the three updates
// independent when they run side by side: burn's autodiff serialises concurrent backward
// passes on a process-wide graph registry. The optimizers are still burn's Adam, fed the
// gradients through `GradientsParams`.

/// An MLP's forward pass on the inner backend that keeps every layer's input (the last entry
/// is the output).
fn mlp_trace<B: Backend>(mlp: &Mlp<B>, x: Tensor<B, 2>) -> Vec<Tensor<B, 2>> {
    let last = mlp.layers.len() - 1;
    let mut trace = Vec::with_capacity(mlp.layers.len() + 1);
    trace.push(x);
    for (k, layer) in mlp.layers.iter().enumerate() {
        let y = layer.forward(trace[k].clone());
        trace.push(if k < last { relu(y) } else { y });
    }
    trace
}

/// Gradients of every weight and bias of `mlp` for `dy`, the loss's gradient with respect to
/// its output, given its forward trace; registered under the parameters' ids.
fn mlp_backward<B: Backend>(
    mlp: &Mlp<B>,
    trace: &[Tensor<B, 2>],
    mut dy: Tensor<B, 2>,
    grads: &mut GradientsParams,
) {
    let last = mlp.layers.len() - 1;
    for (k, layer) in mlp.layers.iter().enumerate().rev() {
        if k < last {
            // Through the ReLU: no gradient where it output zero.
            dy = dy.mask_fill(trace[k + 1].clone().lower_equal_elem(0.0), 0.0);
        }
        let x = &trace[k];
        grads.register(layer.weight.id, x.clone().transpose().matmul(dy.clone()));
        if let Some(bias) = &layer.bias {
            grads.register(bias.id, dy.clone().sum_dim(0).squeeze_dim::<1>(0));
        }
        if k > 0 {
            dy = dy.matmul(layer.weight.val().transpose());
        }
    }
}

/// V's loss of eq. (5), L_V = E[ |tau - 1(u < 0)| u^2 ], u = min Q_target(s, a) - V(s), and
/// its gradients, from V's forward trace (on the inner backend).
fn value_grads<B: Backend>(
    config: &IqlConfig,
    inner: &Mlp<B>,
    trace: &[Tensor<B, 2>],
    q_target: Tensor<B, 2>,
) -> (Tensor<B, 1>, GradientsParams) {
    let v = trace.last().expect("a trace ends with the output").clone();
    let n = v.dims()[0] as f64;
    let u = q_target - v;
    let weight = expectile_weight(&u, config.expectile);
    let loss = (weight.clone() * u.clone().square()).mean();
    // dL/dV = -2 w u / n
    let dv = (weight * u).mul_scalar(-2.0 / n);
    let mut grads = GradientsParams::new();
    mlp_backward(inner, trace, dv, &mut grads);
    (loss, grads)
}

/// What the actor's update reports, still on the device.
struct ActorOut<B: Backend> {
    loss: Tensor<B, 1>,
    weight_mean: Tensor<B, 1>,
    clipped_share: Tensor<B, 1>,
}

/// The actor, eq. (7): L_pi = -E[ exp(beta A) log pi(a|s) ] (Gaussian), or the weighted
/// squared error of the mean (deterministic). Without an advantage (behaviour cloning) every
/// dataset action weighs 1.
fn update_actor<B: AutodiffBackend>(
    actor: &mut Actor<B>,
    optim: &mut Adaptor<Actor<B>, B>,
    config: &IqlConfig,
    lr: f64,
    batch: &Batch<B::InnerBackend>,
    advantage: Option<Tensor<B::InnerBackend, 2>>,
) -> ActorOut<B::InnerBackend> {
    let (out, grads) = actor_grads(config, &actor.valid(), batch, advantage);
    *actor = optim.step(lr, actor.clone(), grads);
    out
}

/// The actor's loss and its gradients (see [`update_actor`]).
fn actor_grads<B: Backend>(
    config: &IqlConfig,
    inner: &Actor<B>,
    batch: &Batch<B>,
    advantage: Option<Tensor<B, 2>>,
) -> (ActorOut<B>, GradientsParams) {
    let (weights, clipped_share) = match advantage {
        Some(advantage) => advantage_weights(advantage, config),
        None => (
            batch.rewards.ones_like(),
            Tensor::zeros([1], &batch.rewards.device()),
        ),
    };
    let trace = mlp_trace(&inner.net, batch.observations.clone());
    let mean = trace
        .last()
        .expect("a trace ends with the output")
        .clone()
        .tanh();
    let actions = batch.actions.clone();
    let n = batch.size as f64;
    let mut grads = GradientsParams::new();
    // (loss, dL/d mean)
    let (loss, d_mean) = match config.actor {
        ActorKind::Gaussian => {
            // -log pi = sum_j 0.5 z_j^2 + log_std_j + 0.5 ln(2 pi), z = (a - mean) / std.
            let raw_log_std = inner.log_std.val();
            let log_std = raw_log_std.clone().clamp(LOG_STD_MIN, LOG_STD_MAX);
            let inv_std = log_std.clone().neg().exp().unsqueeze::<2>();
            let z = (actions - mean.clone()) * inv_std.clone();
            let per_sample = (z.clone().square().mul_scalar(0.5)
                + log_std.clone().unsqueeze::<2>()
                + 0.5 * (2.0 * std::f64::consts::PI).ln())
            .sum_dim(1);
            let loss = (weights.clone() * per_sample).mean();
            let w = weights.clone().div_scalar(n);
            // d(-log pi)/d mean_j = -z_j / std_j; d/d log_std_j = 1 - z_j^2 (zero where
            // the clamp holds log_std at a bound).
            let d_mean = (z.clone() * inv_std).neg() * w.clone();
            let d_log_std = (z.square().neg().add_scalar(1.0) * w)
                .sum_dim(0)
                .squeeze_dim::<1>(0);
            let outside = raw_log_std
                .clone()
                .lower_elem(LOG_STD_MIN)
                .bool_or(raw_log_std.greater_elem(LOG_STD_MAX));
            grads.register(inner.log_std.id, d_log_std.mask_fill(outside, 0.0));
            (loss, d_mean)
        }
        ActorKind::Deterministic => {
            let error = mean.clone() - actions;
            let loss = (weights.clone() * error.clone().square().sum_dim(1)).mean();
            let d_mean = error * weights.clone().mul_scalar(2.0 / n);
            // The log-std is not used: its gradient is zero.
            grads.register(inner.log_std.id, inner.log_std.val().zeros_like());
            (loss, d_mean)
        }
    };
    // Through the tanh: d tanh(f) / df = 1 - tanh(f)^2.
    let d_out = d_mean * mean.square().neg().add_scalar(1.0);
    mlp_backward(&inner.net, &trace, d_out, &mut grads);
    let out = ActorOut {
        loss,
        weight_mean: weights.mean(),
        clipped_share,
    };
    (out, grads)
}

/// Twin Q regression, eq. (6): L_Q = E[ (r + gamma (1 - done) V(s') - Q_i(s, a))^2 ], no
/// gradient through the target. Returns the loss.
fn update_critic<B: AutodiffBackend>(
    critic: &mut Critic<B>,
    optim: &mut Adaptor<Critic<B>, B>,
    config: &IqlConfig,
    batch: &Batch<B::InnerBackend>,
    next_v: Tensor<B::InnerBackend, 2>,
) -> Tensor<B::InnerBackend, 1> {
    let (loss, grads) = critic_grads(config, &critic.valid(), batch, next_v);
    *critic = optim.step(config.learning_rate, critic.clone(), grads);
    loss
}

/// The twin Q loss and its gradients (see [`update_critic`]).
fn critic_grads<B: Backend>(
    config: &IqlConfig,
    inner: &Critic<B>,
    batch: &Batch<B>,
    next_v: Tensor<B, 2>,
) -> (Tensor<B, 1>, GradientsParams) {
    let y = batch.rewards.clone() + batch.not_done.clone() * next_v.mul_scalar(config.discount);
    let n = batch.size as f64;
    let mut grads = GradientsParams::new();
    let mut loss = None;
    for net in [&inner.q1, &inner.q2] {
        let trace = mlp_trace(net, batch.observations_actions.clone());
        let error = trace.last().expect("a trace ends with the output").clone() - y.clone();
        let part = error.clone().square().mean();
        loss = Some(match loss {
            None => part,
            Some(l) => l + part,
        });
        mlp_backward(net, &trace, error.mul_scalar(2.0 / n), &mut grads);
    }
    (loss.expect("two Q networks"), grads)
}

/// An actor with seeded random weights (benchmarks, tests, and the skeleton a record is
/// loaded into).
pub fn seeded_actor<B: Backend>(
    observation_len: usize,
    action_len: usize,
    hidden: &[usize],
    seed: u64,
    device: &B::Device,
) -> Actor<B> {
    let mut rng = seed;
    let mut sizes = vec![observation_len];
    sizes.extend_from_slice(hidden);
    sizes.push(action_len);
    Actor {
        net: Mlp::new(&sizes, 1.0, &mut rng, device),
        log_std: Param::from_tensor(Tensor::zeros([action_len], device)),
    }
}

impl CheckpointPolicy {
    /// Loads `checkpoint.json` and `actor.bin` from `dir` (here rather than beside the
    /// policy: reading `actor.bin` takes burn's record format and the actor's module).
    pub fn load(dir: &Path) -> Result<Self, CheckpointError> {
        let meta = CheckpointMeta::read(&dir.join("checkpoint.json"))?;
        let weights = load_actor_weights(dir, &meta)?;
        Ok(Self::from_parts(&meta, weights))
    }
}

/// Reads the actor's mean network from a checkpoint folder (`actor.bin`), on the CPU, as
/// plain arrays, and checks its shapes against the checkpoint's metadata.
pub fn load_actor_weights(
    dir: &Path,
    meta: &CheckpointMeta,
) -> Result<MlpWeights, CheckpointError> {
    let path = dir.join("actor.bin");
    let device = cpu();
    let mut sizes = vec![meta.observation_len];
    sizes.extend_from_slice(&meta.hidden);
    sizes.push(meta.action_len);
    let skeleton: Actor<Flex> = seeded_actor(
        meta.observation_len,
        meta.action_len,
        &meta.hidden,
        0,
        &device,
    );
    let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
    let actor = skeleton
        .load_file(dir.join("actor"), &recorder, &device)
        .map_err(|source| CheckpointError::Actor {
            path: path.clone(),
            source,
        })?;
    let weights = actor.net.weights();
    let shapes = weights.shapes();
    let expected: Vec<(usize, usize)> = sizes.windows(2).map(|w| (w[0], w[1])).collect();
    if shapes != expected {
        return Err(CheckpointError::Invalid {
            path,
            message: format!(
                "layer shapes (in, out) {shapes:?}, checkpoint.json describes {expected:?}"
            ),
        });
    }
    Ok(weights)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlrt_runtime::recording::{DatasetInfo, Episode, FORMAT};

    /// A 1-D task: the state x drifts by the action; reward -|x|. The behaviour acts with
    /// a = -x + noise, so good actions push x toward 0.
    fn toy_dataset(episodes: usize) -> Dataset {
        let mut rng = 7u64;
        let mut eps = Vec::new();
        for e in 0..episodes {
            let mut x = 2.0 * uniform01(&mut rng) - 1.0;
            let mut ep = Episode::start(e as u64, &[x, 1.0]);
            for t in 0..50 {
                let a = (-x + 0.3 * (2.0 * uniform01(&mut rng) - 1.0)).clamp(-1.0, 1.0);
                x = (x + 0.05 * a).clamp(-2.0, 2.0);
                ep.push(&[a], -x.abs(), false, t == 49, &[x, 1.0]);
            }
            ep.success = x.abs() < 0.1;
            eps.push(ep);
        }
        Dataset {
            files: Vec::new(),
            dir: PathBuf::from("toy"),
            info: DatasetInfo {
                format: FORMAT.into(),
                version: 1,
                observation_len: 2,
                action_len: 1,
                action_mode: "joint_velocity".into(),
                control_rate_hz: 10.0,
                observation_fields: vec!["x".into(), "one".into()],
                reward: "-|x|".into(),
                controller: "test".into(),
                config_source: "toy.toml".into(),
                cameras: Vec::new(),
            },
            config_text: String::new(),
            episodes: eps,
        }
    }

    fn small(algorithm: Algorithm) -> IqlConfig {
        IqlConfig {
            algorithm,
            hidden: vec![32, 32],
            batch_size: 64,
            steps: 300,
            learning_rate: 1e-3,
            seed: 3,
            ..IqlConfig::default()
        }
    }

    fn learner(config: IqlConfig) -> Learner<CpuBackend> {
        let data = toy_dataset(20);
        let replay = Replay::from_dataset(&data, &[-1.0], &[1.0], &config).unwrap();
        Learner::new(config, replay, cpu())
    }

    #[test]
    fn normalisation_and_reward_scaling_follow_the_dataset() {
        let data = toy_dataset(20);
        let replay = Replay::from_dataset(&data, &[-1.0], &[1.0], &IqlConfig::default()).unwrap();
        let n = &replay.normalisation;
        // The constant feature keeps std 1; the moving one is centred and scaled.
        assert_eq!(n.observation_std[1], 1.0);
        let xs: Vec<f32> = replay.observations.chunks(2).map(|r| r[0]).collect();
        let mean = xs.iter().sum::<f32>() / xs.len() as f32;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / xs.len() as f32;
        assert!(
            mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3,
            "{mean} {var}"
        );
        let returns: Vec<f64> = data.episodes.iter().map(|e| e.total_reward()).collect();
        let range = returns.iter().cloned().fold(f64::MIN, f64::max)
            - returns.iter().cloned().fold(f64::MAX, f64::min);
        assert!((replay.reward_scale - 1000.0 / range).abs() < 1e-9);
    }

    #[test]
    fn iql_learns_on_a_toy_task_deterministically() {
        let mut a = learner(small(Algorithm::Iql));
        let mse_before = a.actor_mse(10_000);
        // (Q and V losses need not fall here: their targets grow as values bootstrap.)
        let losses: Vec<Losses> = (0..340).map(|_| a.update()).collect();
        assert!(losses
            .iter()
            .all(|l| l.q.is_finite() && l.value.is_finite() && l.actor.is_finite()));
        let mse_after = a.actor_mse(10_000);
        assert!(
            mse_after < 0.5 * mse_before,
            "actor did not move toward the data: {mse_before} -> {mse_after}"
        );
        // Q learned that being far from 0 is bad: it correlates with -|x| (x is normalised).
        let q = a.q_values(1000);
        let neg_abs: Vec<f32> = a
            .replay
            .observations
            .chunks(2)
            .take(1000)
            .map(|r| -r[0].abs())
            .collect();
        assert!(
            correlation(&q, &neg_abs) > 0.5,
            "{}",
            correlation(&q, &neg_abs)
        );

        // Same seed, same numbers.
        let mut b = learner(small(Algorithm::Iql));
        for _ in 0..340 {
            b.update();
        }
        assert_eq!(a.actor_weights(), b.actor_weights());
    }

    #[test]
    fn behaviour_cloning_fits_the_dataset_actions() {
        let mut bc = learner(IqlConfig {
            actor: ActorKind::Deterministic,
            ..small(Algorithm::Bc)
        });
        let before = bc.actor_mse(10_000);
        for _ in 0..300 {
            bc.update();
        }
        // The noise (uniform +-0.3 of 1, variance 0.03 in [-1, 1] units) is what no policy
        // can fit.
        let after = bc.actor_mse(10_000);
        assert!(after < 0.5 * before && after < 0.1, "{before} -> {after}");
    }

    #[test]
    fn resume_continues_exactly() {
        let dir = std::env::temp_dir().join(format!("rlrt-iql-resume-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = IqlConfig {
            steps: 40,
            ..small(Algorithm::Iql)
        };
        let mut straight = learner(config.clone());
        for _ in 0..40 {
            straight.update();
        }
        let mut first = learner(config.clone());
        for _ in 0..20 {
            first.update();
        }
        first.save(&dir).unwrap();
        drop(first);
        let mut resumed = learner(config).resume(&dir).unwrap();
        assert_eq!(resumed.step(), 20);
        for _ in 0..20 {
            resumed.update();
        }
        assert_eq!(straight.actor_weights(), resumed.actor_weights());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The updates give the same numbers on one thread and on several: the three parts
    /// of a step are independent, and the pool's large products split over output blocks,
    /// never over a sum.
    #[test]
    fn one_thread_and_three_compute_the_same_update() {
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    // Wide enough that Flex splits its products over the pool too.
                    let mut l = learner(IqlConfig {
                        hidden: vec![256, 256],
                        batch_size: 256,
                        ..small(Algorithm::Iql)
                    });
                    for _ in 0..20 {
                        l.advance();
                    }
                    (l.actor_weights(), l.q_values(200), l.losses().q)
                })
        };
        assert_eq!(run(1), run(3));
    }

    /// The largest difference between two sets of gradients over a module's parameters.
    struct CompareGrads<'a> {
        manual: &'a GradientsParams,
        autodiff: &'a GradientsParams,
        worst: f32,
        params: usize,
    }

    impl ModuleVisitor<CpuBackend> for CompareGrads<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<CpuBackend, D>>) {
            let get = |g: &GradientsParams| -> Vec<f32> {
                g.get::<Flex, D>(param.id)
                    .unwrap_or_else(|| panic!("no gradient for {}", param.id))
                    .into_data()
                    .to_vec()
                    .unwrap()
            };
            let (m, a) = (get(self.manual), get(self.autodiff));
            assert_eq!(m.len(), a.len());
            for (x, y) in m.iter().zip(&a) {
                let d = (x - y).abs() / (1.0 + y.abs());
                self.worst = if d.is_nan() {
                    f32::INFINITY
                } else {
                    self.worst.max(d)
                };
            }
            self.params += 1;
        }
    }

    fn worst_difference<M: Module<CpuBackend>>(
        module: &M,
        manual: &GradientsParams,
        autodiff: &GradientsParams,
    ) -> (f32, usize) {
        let mut c = CompareGrads {
            manual,
            autodiff,
            worst: 0.0,
            params: 0,
        };
        module.visit(&mut c);
        (c.worst, c.params)
    }

    /// The hand-written gradients of the three losses against burn's autodiff of the same
    /// losses, parameter by parameter, for both kinds of actor.
    #[test]
    fn manual_gradients_match_autodiff() {
        for kind in [ActorKind::Gaussian, ActorKind::Deterministic] {
            let config = IqlConfig {
                actor: kind,
                ..small(Algorithm::Iql)
            };
            let mut l = learner(config.clone());
            // Trained a little first, so no network sits at its initial symmetric point.
            for _ in 0..20 {
                l.advance();
            }
            let mut rng = 11u64;
            let batch = l.replay.sample::<Flex>(64, &mut rng, &cpu());
            let q_target = l
                .target_critic
                .min_q_joined(batch.observations_actions.clone());

            // V
            let inner = l.value.valid();
            let trace = mlp_trace(&inner, batch.observations.clone());
            let (_, manual) = value_grads(&config, &inner, &trace, q_target.clone());
            let v = l
                .value
                .forward(Tensor::from_inner(batch.observations.clone()));
            let loss = expectile_loss(
                Tensor::<CpuBackend, 2>::from_inner(q_target.clone()) - v,
                config.expectile,
            );
            let autodiff = GradientsParams::from_grads(loss.backward(), &l.value);
            let (worst, params) = worst_difference(&l.value, &manual, &autodiff);
            assert!(worst < 1e-5 && params == 6, "V: {worst} over {params}");

            // Actor, with the advantage of the batch.
            let advantage = q_target.clone() - trace.last().unwrap().clone();
            let (_, manual) =
                actor_grads(&config, &l.actor.valid(), &batch, Some(advantage.clone()));
            let (weights, _) = advantage_weights(advantage, &config);
            let observations = Tensor::<CpuBackend, 2>::from_inner(batch.observations.clone());
            let actions = Tensor::<CpuBackend, 2>::from_inner(batch.actions.clone());
            let per_sample = match kind {
                ActorKind::Gaussian => l.actor.log_prob(observations, actions).neg(),
                ActorKind::Deterministic => {
                    (l.actor.mean(observations) - actions).square().sum_dim(1)
                }
            };
            let loss = (Tensor::<CpuBackend, 2>::from_inner(weights) * per_sample).mean();
            let mut autodiff = GradientsParams::from_grads(loss.backward(), &l.actor);
            if kind == ActorKind::Deterministic {
                // Autodiff has no gradient for a parameter the loss does not use.
                autodiff.register(l.actor.log_std.id, Tensor::<Flex, 1>::zeros([1], &cpu()));
            }
            let (worst, params) = worst_difference(&l.actor, &manual, &autodiff);
            assert!(
                worst < 1e-5 && params == 7,
                "{kind:?} actor: {worst} over {params}"
            );

            // Twin Q.
            let next_v = l.value.valid().forward(batch.next_observations.clone());
            let (_, manual) = critic_grads(&config, &l.critic.valid(), &batch, next_v.clone());
            let y = Tensor::<CpuBackend, 2>::from_inner(
                batch.rewards.clone() + batch.not_done.clone() * next_v.mul_scalar(config.discount),
            );
            let (q1, q2) = l
                .critic
                .forward_joined(Tensor::from_inner(batch.observations_actions.clone()));
            let loss = (q1 - y.clone()).square().mean() + (q2 - y).square().mean();
            let autodiff = GradientsParams::from_grads(loss.backward(), &l.critic);
            let (worst, params) = worst_difference(&l.critic, &manual, &autodiff);
            assert!(worst < 1e-5 && params == 12, "Q: {worst} over {params}");
        }
    }

    fn correlation(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len() as f32;
        let (ma, mb) = (a.iter().sum::<f32>() / n, b.iter().sum::<f32>() / n);
        let cov: f32 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f32 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f32 = b.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    }
}
