//! Gymnasium's MuJoCo locomotion tasks (Hopper-v5, Walker2d-v5, HalfCheetah-v5), with the
//! same observations, rewards, terminations and reset distributions as Gymnasium 1.x, so
//! that policies trained on Minari datasets can be evaluated in rlrt and rlrt's recordings
//! look like theirs.
//!
//! The MJCF files are Gymnasium's own, read from the installed `gymnasium` package (never
//! copied into this repository): `RLRT_GYMNASIUM_ASSETS` if set, else
//! `.deps/python/gymnasium/envs/mujoco/assets` (what `cargo xtask setup` installs) searched
//! from the working directory and the executable's folder upwards, else wherever `python3`
//! imports gymnasium from.
//!
//! What each environment computes, per control step of `frame_skip` physics steps:
//! - observation: `qpos[1:]` (everything but the x position) then `qvel`, the velocities
//!   clipped to +/-10 for Hopper and Walker2d;
//! - reward: `forward_reward_weight * (x_after - x_before) / dt`, plus `healthy_reward` while
//!   healthy (Hopper, Walker2d), minus `ctrl_cost_weight * sum(action^2)`;
//! - termination (Hopper, Walker2d): the state leaves the healthy ranges;
//! - reset: `qpos0` and zero velocity plus uniform noise of `reset_noise_scale` (HalfCheetah:
//!   Gaussian velocity noise), drawn from rlrt's seeded generator: the distribution is
//!   Gymnasium's, the draws are not numpy's.

use std::path::PathBuf;

use rlrt_runtime::rng::{gaussian, uniform};

/// One of the supported Gymnasium environments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub enum GymEnv {
    #[serde(rename = "Hopper-v5")]
    Hopper,
    #[serde(rename = "Walker2d-v5")]
    Walker2d,
    #[serde(rename = "HalfCheetah-v5")]
    HalfCheetah,
}

/// Gymnasium's healthy ranges (all bounds exclusive, as Gymnasium compares).
#[derive(Clone, Copy, Debug)]
struct Health {
    z: (f64, f64),
    angle: (f64, f64),
    /// Bounds on `state_vector()[2:]` (Hopper only).
    state: Option<(f64, f64)>,
}

/// The name of the sensor that carries Gymnasium's observation vector.
pub const OBSERVATION_SENSOR: &str = "gym_observation";

impl GymEnv {
    pub fn id(self) -> &'static str {
        match self {
            GymEnv::Hopper => "Hopper-v5",
            GymEnv::Walker2d => "Walker2d-v5",
            GymEnv::HalfCheetah => "HalfCheetah-v5",
        }
    }

    /// The model file in Gymnasium's assets folder.
    pub fn xml(self) -> &'static str {
        match self {
            GymEnv::Hopper => "hopper.xml",
            GymEnv::Walker2d => "walker2d_v5.xml",
            GymEnv::HalfCheetah => "half_cheetah.xml",
        }
    }

    /// Physics steps per control step.
    pub fn frame_skip(self) -> usize {
        match self {
            GymEnv::Hopper | GymEnv::Walker2d => 4,
            GymEnv::HalfCheetah => 5,
        }
    }

    /// Gymnasium's `max_episode_steps`.
    pub fn episode_steps(self) -> usize {
        1000
    }

    fn ctrl_cost_weight(self) -> f64 {
        match self {
            GymEnv::Hopper | GymEnv::Walker2d => 1e-3,
            GymEnv::HalfCheetah => 0.1,
        }
    }

    fn health(self) -> Option<Health> {
        match self {
            GymEnv::Hopper => Some(Health {
                z: (0.7, f64::INFINITY),
                angle: (-0.2, 0.2),
                state: Some((-100.0, 100.0)),
            }),
            GymEnv::Walker2d => Some(Health {
                z: (0.8, 2.0),
                angle: (-1.0, 1.0),
                state: None,
            }),
            GymEnv::HalfCheetah => None,
        }
    }

    fn reset_noise_scale(self) -> f64 {
        match self {
            GymEnv::Hopper | GymEnv::Walker2d => 5e-3,
            GymEnv::HalfCheetah => 0.1,
        }
    }

    fn velocity_clip(self) -> Option<f64> {
        match self {
            GymEnv::Hopper | GymEnv::Walker2d => Some(10.0),
            GymEnv::HalfCheetah => None,
        }
    }

    /// Length of the observation for a model with `nq` positions and `nv` velocities.
    pub fn observation_len(nq: usize, nv: usize) -> usize {
        nq - 1 + nv
    }

    /// Writes the observation: `qpos[1:]`, then `qvel` (clipped where Gymnasium clips).
    pub fn observe(self, qpos: &[f64], qvel: &[f64], out: &mut [f64]) {
        let n = qpos.len() - 1;
        out[..n].copy_from_slice(&qpos[1..]);
        for (o, &v) in out[n..n + qvel.len()].iter_mut().zip(qvel) {
            *o = match self.velocity_clip() {
                Some(c) => v.clamp(-c, c),
                None => v,
            };
        }
    }

    /// Gymnasium's `is_healthy` (always true for HalfCheetah).
    pub fn is_healthy(self, qpos: &[f64], qvel: &[f64]) -> bool {
        let Some(h) = self.health() else {
            return true;
        };
        let inside = |v: f64, (lo, hi): (f64, f64)| lo < v && v < hi;
        let state_ok = match h.state {
            Some(range) => qpos[2..].iter().chain(qvel).all(|&v| inside(v, range)),
            None => true,
        };
        state_ok && inside(qpos[1], h.z) && inside(qpos[2], h.angle)
    }

    /// The reward of one control step of length `dt_s` that moved the root from `x_before`
    /// to `x_after` under `action`, ending in a state that is `healthy` or not.
    pub fn reward(
        self,
        x_before: f64,
        x_after: f64,
        dt_s: f64,
        action: &[f64],
        healthy: bool,
    ) -> f64 {
        let forward = (x_after - x_before) / dt_s;
        let survive = match self.health() {
            Some(_) if healthy => 1.0,
            _ => 0.0,
        };
        let ctrl = self.ctrl_cost_weight() * action.iter().map(|a| a * a).sum::<f64>();
        forward + survive - ctrl
    }

    /// Whether the episode ends in this state (Gymnasium's `terminated`).
    pub fn terminated(self, healthy: bool) -> bool {
        self.health().is_some() && !healthy
    }

    /// Adds the reset noise to `qpos0` (in `qpos`) and zero velocities (in `qvel`).
    pub fn reset_noise(self, rng: &mut u64, qpos: &mut [f64], qvel: &mut [f64]) {
        let s = self.reset_noise_scale();
        for q in qpos.iter_mut() {
            *q += uniform(rng, -s, s);
        }
        for v in qvel.iter_mut() {
            *v += match self {
                GymEnv::HalfCheetah => s * gaussian(rng),
                _ => uniform(rng, -s, s),
            };
        }
    }
}

/// The folder of Gymnasium's MuJoCo models (see the module docs for the search order).
/// Gymnasium's models could not be found (what was tried, and how to fix it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoAssets(pub String);

pub fn assets_dir() -> Result<PathBuf, NoAssets> {
    if let Some(dir) = std::env::var_os("RLRT_GYMNASIUM_ASSETS") {
        let dir = PathBuf::from(dir);
        return if dir.is_dir() {
            Ok(dir)
        } else {
            Err(NoAssets(format!(
                "RLRT_GYMNASIUM_ASSETS is {}, which is not a folder",
                dir.display()
            )))
        };
    }
    const LOCAL: &str = ".deps/python/gymnasium/envs/mujoco/assets";
    if let Some(dir) = rlrt_runtime::deps::search_roots()
        .into_iter()
        .map(|r| r.join(LOCAL))
        .find(|d| d.is_dir())
    {
        return Ok(dir);
    }
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, gymnasium; print(os.path.join(os.path.dirname(gymnasium.__file__), 'envs', 'mujoco', 'assets'))",
        ])
        .output();
    if let Ok(output) = output {
        if output.status.success() {
            let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
            if dir.is_dir() {
                return Ok(dir);
            }
        }
    }
    Err(NoAssets(format!(
        "Gymnasium's MuJoCo models were not found: run `cargo xtask setup` (it installs the \
         gymnasium wheel into {LOCAL}), `pip install gymnasium`, or set RLRT_GYMNASIUM_ASSETS \
         to the folder that holds hopper.xml"
    )))
}
