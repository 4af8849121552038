//! Episodes in process, for recording datasets and evaluating policies: a policy drives a
//! config's MuJoCo task directly through the [`Plant`] trait (no link), in simulated time,
//! one control period per step.
//!
//! Each step is what a control-loop tick does, with the same parts: the observation is
//! checked by the real [`SafetyLayer`], turned into features by the loop's own
//! [`FeatureBuilder`], the policy (plus optional exploration noise) proposes an action and
//! the safety layer's command is what the simulator gets and what a recording stores.
//! The reward is the task's own (Gymnasium's tasks) or else its negative distance
//! (`-verdict().score`) after the step; success is the task's verdict at the end of the
//! episode. An episode ends at the task's time limit, or earlier when the task says it has
//! terminated (Gymnasium's Hopper and Walker2d falling over). With frames on
//! ([`EpisodeRunner::with_frames`]), every camera of the config is rendered at its rate in
//! simulated time, each frame with the observation row it shows and the task's ground-truth
//! success at that state.

use crate::mujoco::task::{TaskError, TaskSource};
use crate::mujoco::MujocoSim;
use crate::plant::RenderError;
use crate::Plant;
use rlrt_runtime::evaluation::Evaluation;
use rlrt_runtime::recording::{Episode, FrameTrack};
use rlrt_runtime::rng::{gaussian, uniform01};
use rlrt_runtime::{Command, FeatureBuilder, Observation, Policy, RobotConfig, SafetyLayer};

/// Why episodes cannot run.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("{}: no [sim] table: episodes run in the config's simulation task", .0.display())]
    NoSim(std::path::PathBuf),
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error("rendering camera frames")]
    Render(#[source] RenderError),
}

/// How actions are perturbed while recording.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Exploration {
    /// The policy's action as it is.
    None,
    /// Gaussian noise of this standard deviation (action units, such as m) on every value.
    Gaussian { std: f64 },
    /// Uniformly random actions within the action bounds (the policy is not asked).
    Uniform,
}

/// Runs seeded episodes of a config's task.
pub struct EpisodeRunner {
    sim: MujocoSim,
    safety: SafetyLayer,
    features: FeatureBuilder,
    period_s: f64,
    period_ns: u64,
    /// Steps per episode: the task's episode length at the control rate.
    pub steps: usize,
    action_min: Vec<f64>,
    action_max: Vec<f64>,
    observation: Observation,
    current: Vec<f64>,
    proposed: Vec<f64>,
    command: Command,
    /// Per camera: its period in s and when its next frame is due; empty without frames.
    cameras: Vec<(f64, f64)>,
}

impl EpisodeRunner {
    /// Whether the task has a ground-truth success test.
    pub fn has_success_test(&self) -> bool {
        self.sim.has_success_test()
    }

    /// The task's name (such as `reach` or `hopper`).
    pub fn task_name(&self) -> &str {
        self.sim.task_name()
    }

    pub fn new(config: &RobotConfig) -> Result<Self, RolloutError> {
        Self::build(config, false)
    }

    /// Also renders every camera of the config into each episode's frames (offscreen,
    /// through EGL; this thread must be the one that runs the episodes).
    pub fn with_frames(config: &RobotConfig) -> Result<Self, RolloutError> {
        Self::build(config, true)
    }

    fn build(config: &RobotConfig, frames: bool) -> Result<Self, RolloutError> {
        let sim_config = config
            .sim
            .as_ref()
            .ok_or_else(|| RolloutError::NoSim(config.source.clone()))?;
        let task = TaskSource::resolve(&sim_config.task, sim_config.task_path.as_deref())?;
        let sim = MujocoSim::new(config, &task, frames)?;
        let steps = (sim.episode_seconds() * config.control_rate_hz).round() as usize;
        let cameras = if frames {
            config
                .observation
                .cameras
                .iter()
                .map(|c| (1.0 / c.rate_hz, 0.0))
                .collect()
        } else {
            Vec::new()
        };
        let len = config.action.len();
        Ok(Self {
            sim,
            safety: SafetyLayer::new(config),
            features: FeatureBuilder::new(config),
            period_s: config.period_s(),
            period_ns: config.period_ns(),
            steps,
            action_min: config.action.min.clone(),
            action_max: config.action.max.clone(),
            observation: Observation::empty(config.dof(), config.observation.sensor_values),
            current: vec![0.0; config.observation.feature_len],
            proposed: vec![0.0; len],
            command: Command::new(config.action.mode, len),
            cameras,
        })
    }

    /// Renders the cameras whose frame is due at `time_s` into `episode` as row `row`.
    fn render_due(
        &mut self,
        time_s: f64,
        row: usize,
        episode: &mut Episode,
    ) -> Result<(), RolloutError> {
        for (c, (period, next)) in self.cameras.iter_mut().enumerate() {
            if time_s + 1e-9 < *next {
                continue;
            }
            *next += *period;
            if *next <= time_s {
                *next = time_s + *period;
            }
            let verdict = self.sim.verdict().unwrap_or_default();
            let pixels = self.sim.render(c).map_err(RolloutError::Render)?;
            episode.frames[c].push(row as u32, verdict.success, verdict.score, pixels);
        }
        Ok(())
    }

    fn observe(&mut self, now_ns: u64, seq: u64) {
        self.sim.observe(&mut self.observation);
        self.observation.seq = seq;
        self.observation.stamp_ns = now_ns;
        self.observation.received_ns = now_ns;
        self.features.write(&self.observation, &mut self.current);
    }

    /// Runs one episode from `seed`. `noise_seed` seeds the exploration noise.
    pub fn run(
        &mut self,
        policy: &mut dyn Policy,
        exploration: Exploration,
        seed: u64,
        noise_seed: u64,
    ) -> Result<Episode, RolloutError> {
        self.sim.reset(seed);
        self.safety.reset_episode();
        policy.reset();
        let mut rng = noise_seed ^ 0x5EED_0FA5;
        let mut now_ns = 0u64;
        self.observe(now_ns, 1);
        let mut episode = Episode::start(seed, &self.current);
        episode.frames = vec![FrameTrack::default(); self.cameras.len()];
        for camera in &mut self.cameras {
            camera.1 = 0.0;
        }
        self.render_due(0.0, 0, &mut episode)?;
        let len = self.proposed.len();
        for t in 0..self.steps {
            let mut fault = self
                .safety
                .check_observation(now_ns, Some(&self.observation));
            if fault.is_none() {
                match exploration {
                    Exploration::Uniform => {
                        for j in 0..len {
                            self.proposed[j] = self.action_min[j]
                                + (self.action_max[j] - self.action_min[j]) * uniform01(&mut rng);
                        }
                    }
                    Exploration::None | Exploration::Gaussian { .. } => {
                        if policy.act(&self.current, &mut self.proposed).is_err() {
                            fault = Some(rlrt_runtime::Cause::PolicyError);
                        }
                        if let Exploration::Gaussian { std } = exploration {
                            for p in &mut self.proposed {
                                *p += std * gaussian(&mut rng);
                            }
                        }
                    }
                }
            }
            let verdict = self.safety.filter(
                Some(&self.observation),
                fault,
                &self.proposed,
                &mut self.command.values[..len],
            );
            if verdict.publish {
                self.command.seq += 1;
                self.command.stamp_ns = now_ns;
                self.command.is_fault_action = verdict.fault.is_some();
                self.sim.apply(&self.command);
            }
            self.sim.step(self.period_s);
            now_ns += self.period_ns;
            let outcome = self.sim.verdict().unwrap_or_default();
            let reward = outcome.reward.unwrap_or(-outcome.score);
            self.observe(now_ns, t as u64 + 2);
            self.render_due((t + 1) as f64 * self.period_s, t + 1, &mut episode)?;
            let action = if verdict.publish {
                self.command.values[..len].to_vec()
            } else {
                vec![0.0; len]
            };
            let terminal = outcome.terminated;
            let timeout = !terminal && t + 1 == self.steps;
            episode.push(&action, reward, terminal, timeout, &self.current);
            if terminal {
                break;
            }
        }
        episode.success = self.sim.verdict().is_some_and(|v| v.success);
        Ok(episode)
    }
}

/// Seeds of evaluation episodes: far from the recording seeds a user would pick (0, 1, ..)
/// so a policy is not evaluated on the starts it was trained on.
pub fn eval_seed(base: u64, episode: usize) -> u64 {
    base.wrapping_mul(0x9E37_79B9)
        .wrapping_add(1_000_000 + episode as u64)
}

/// Runs `episodes` seeded evaluation episodes of a policy (no exploration noise).
pub fn evaluate(
    runner: &mut EpisodeRunner,
    policy: &mut dyn Policy,
    episodes: usize,
    seed: u64,
) -> Result<Evaluation, RolloutError> {
    let done: Vec<Episode> = (0..episodes)
        .map(|i| runner.run(policy, Exploration::None, eval_seed(seed, i), 0))
        .collect::<Result<_, _>>()?;
    Ok(Evaluation::of(&done, runner.has_success_test()))
}
