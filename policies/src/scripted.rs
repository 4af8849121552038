//! Scripted joint-space controllers. They are deliberately simple and deliberately smooth:
//! in normal operation the safety layer should never have to step in, so any intervention a
//! run reports points at the robot, the link or the limits, not at the script.

use rlrt_runtime::config::{ActionMode, FieldSource, JointLimits, MAX_JOINTS};
use rlrt_runtime::{Policy, PolicyError, RobotConfig};

use crate::BuildError;

/// Smooth 0 -> 1 blend with zero slope at both ends (its peak slope is 1.5).
fn smoothstep(x: f64) -> f64 {
    let x = x.clamp(0.0, 1.0);
    x * x * (3.0 - 2.0 * x)
}

fn positions_offset(config: &RobotConfig) -> Result<usize, BuildError> {
    config
        .observation
        .offset_of(&FieldSource::JointPositions)
        .ok_or_else(|| BuildError::NeedsJointPositions {
            config: config.source.display().to_string(),
            kind: config.policy.kind,
        })
}

struct Common {
    input_len: usize,
    dof: usize,
    mode: ActionMode,
    period_s: f64,
    joints: [JointLimitsCopy; MAX_JOINTS],
}

#[derive(Clone, Copy, Default)]
struct JointLimitsCopy {
    min: f64,
    max: f64,
    max_velocity: f64,
}

impl Common {
    fn new(config: &RobotConfig) -> Self {
        let mut joints = [JointLimitsCopy::default(); MAX_JOINTS];
        for (slot, j) in joints.iter_mut().zip(&config.joints) {
            *slot = copy_limits(j);
        }
        Self {
            input_len: config.observation.feature_len,
            dof: config.dof(),
            mode: config.action.mode,
            period_s: config.period_s(),
            joints,
        }
    }
}

/// The `name`, `input_len` and `output_len` of a [`Policy`] impl of a joint-space script:
/// it reads the config's observation features and commands one value per joint.
macro_rules! joint_space_shape {
    ($name:literal) => {
        fn name(&self) -> &str {
            $name
        }
        fn input_len(&self) -> usize {
            self.common.input_len
        }
        fn output_len(&self) -> usize {
            self.common.dof
        }
    };
}

fn copy_limits(j: &JointLimits) -> JointLimitsCopy {
    JointLimitsCopy {
        min: j.position_min_rad,
        max: j.position_max_rad,
        max_velocity: j.max_velocity_rad_s,
    }
}

/// Holds the joint positions observed on the first tick (zero velocity in velocity mode,
/// zero effort in effort mode, zero displacement in end-effector mode).
pub struct Hold {
    common: Common,
    /// Where the joint positions are in the observation (position mode only).
    positions_at: Option<usize>,
    target: [f64; MAX_JOINTS],
    latched: bool,
}

impl Hold {
    pub fn new(config: &RobotConfig) -> Result<Self, BuildError> {
        Ok(Self {
            common: Common::new(config),
            positions_at: if config.action.mode == ActionMode::JointPosition {
                Some(positions_offset(config)?)
            } else {
                None
            },
            target: [0.0; MAX_JOINTS],
            latched: false,
        })
    }
}

impl Policy for Hold {
    joint_space_shape!("hold");
    fn reset(&mut self) {
        self.latched = false;
    }
    fn act(&mut self, observation: &[f64], action: &mut [f64]) -> Result<(), PolicyError> {
        let dof = self.common.dof;
        match (self.common.mode, self.positions_at) {
            (ActionMode::JointPosition, Some(at)) => {
                if !self.latched {
                    self.target[..dof].copy_from_slice(&observation[at..at + dof]);
                    self.latched = true;
                }
                action.copy_from_slice(&self.target[..dof]);
            }
            _ => action.fill(0.0),
        }
        Ok(())
    }
}

/// Sweeps each joint sinusoidally around the middle of its range (position mode) or with a
/// sinusoidal velocity (velocity mode). Joints are phase-shifted so they do not all move
/// together. In position mode the first two seconds blend from where the arm is.
pub struct Sine {
    common: Common,
    amplitude_fraction: f64,
    omega: f64,
    positions_at: Option<usize>,
    start: [f64; MAX_JOINTS],
    started: bool,
    tick: u64,
}

const SINE_BLEND_S: f64 = 2.0;

impl Sine {
    pub fn new(config: &RobotConfig) -> Self {
        Self {
            common: Common::new(config),
            amplitude_fraction: config.policy.amplitude_fraction,
            omega: 2.0 * std::f64::consts::PI * config.policy.frequency_hz,
            positions_at: config.observation.offset_of(&FieldSource::JointPositions),
            start: [0.0; MAX_JOINTS],
            started: false,
            tick: 0,
        }
    }

    fn phase(&self, joint: usize) -> f64 {
        std::f64::consts::PI * joint as f64 / self.common.dof.max(1) as f64
    }
}

impl Policy for Sine {
    joint_space_shape!("sine");
    fn reset(&mut self) {
        self.started = false;
        self.tick = 0;
    }
    fn act(&mut self, observation: &[f64], action: &mut [f64]) -> Result<(), PolicyError> {
        let c = &self.common;
        let t = self.tick as f64 * c.period_s;
        if !self.started {
            for i in 0..c.dof {
                let j = c.joints[i];
                self.start[i] = match self.positions_at {
                    Some(at) => observation[at + i],
                    None => 0.5 * (j.min + j.max),
                };
            }
            self.started = true;
        }
        for (i, out) in action.iter_mut().enumerate().take(c.dof) {
            let j = c.joints[i];
            let angle = self.omega * t + self.phase(i);
            match c.mode {
                ActionMode::JointPosition => {
                    let mid = 0.5 * (j.min + j.max);
                    let amplitude = self.amplitude_fraction * 0.5 * (j.max - j.min);
                    let sweep = mid + amplitude * angle.sin();
                    let blend = smoothstep(t / SINE_BLEND_S);
                    *out = self.start[i] + (sweep - self.start[i]) * blend;
                }
                _ => {
                    let amplitude = self.amplitude_fraction * j.max_velocity;
                    *out = amplitude * angle.sin();
                }
            }
        }
        self.tick += 1;
        Ok(())
    }
}

/// Moves to a fixed joint target on a smooth path whose peak joint speed is
/// `speed_fraction` of each joint's limit (position mode), or by a saturated proportional
/// law (velocity mode).
pub struct JointTarget {
    common: Common,
    positions_at: usize,
    target: [f64; MAX_JOINTS],
    start: [f64; MAX_JOINTS],
    speed_fraction: f64,
    duration_s: f64,
    started: bool,
    tick: u64,
}

/// Proportional gain of the velocity-mode law, 1/s.
const VELOCITY_GAIN: f64 = 5.0;

impl JointTarget {
    pub fn new(config: &RobotConfig) -> Result<Self, BuildError> {
        let mut target = [0.0; MAX_JOINTS];
        if let Some(t) = &config.policy.target_rad {
            target[..t.len()].copy_from_slice(t);
        }
        Ok(Self {
            common: Common::new(config),
            positions_at: positions_offset(config)?,
            target,
            start: [0.0; MAX_JOINTS],
            speed_fraction: config.policy.speed_fraction,
            duration_s: 0.0,
            started: false,
            tick: 0,
        })
    }

    /// Changes the target; the next tick plans a new path from the measured position.
    pub fn set_target(&mut self, target: &[f64]) {
        let n = target.len().min(self.common.dof);
        self.target[..n].copy_from_slice(&target[..n]);
        self.started = false;
        self.tick = 0;
    }
}

impl Policy for JointTarget {
    joint_space_shape!("joint_target");
    fn reset(&mut self) {
        self.started = false;
        self.tick = 0;
    }
    fn act(&mut self, observation: &[f64], action: &mut [f64]) -> Result<(), PolicyError> {
        let c = &self.common;
        let q = &observation[self.positions_at..self.positions_at + c.dof];
        match c.mode {
            ActionMode::JointPosition => {
                if !self.started {
                    self.start[..c.dof].copy_from_slice(q);
                    // Smoothstep peaks at 1.5 times the mean speed: size the duration so the
                    // slowest joint peaks at speed_fraction of its limit.
                    self.duration_s = (0..c.dof)
                        .map(|i| {
                            1.5 * (self.target[i] - self.start[i]).abs()
                                / (self.speed_fraction * c.joints[i].max_velocity)
                        })
                        .fold(0.0, f64::max);
                    self.started = true;
                    self.tick = 0;
                }
                let t = self.tick as f64 * c.period_s;
                let s = if self.duration_s > 0.0 {
                    smoothstep(t / self.duration_s)
                } else {
                    1.0
                };
                for (i, out) in action.iter_mut().enumerate().take(c.dof) {
                    *out = self.start[i] + (self.target[i] - self.start[i]) * s;
                }
            }
            _ => {
                for (i, out) in action.iter_mut().enumerate().take(c.dof) {
                    let limit = self.speed_fraction * c.joints[i].max_velocity;
                    *out = (VELOCITY_GAIN * (self.target[i] - q[i])).clamp(-limit, limit);
                }
            }
        }
        self.tick += 1;
        Ok(())
    }
}

/// Servos one observed point toward another with end-effector displacements: each tick it
/// commands `gain` times the remaining error, scaled down as a whole (so the direction is
/// kept) to fit the action bounds. With `from` the end effector and `to` a target, this is
/// the scripted reach controller of the demo and of data collection.
pub struct EeServo {
    input_len: usize,
    output_len: usize,
    from: usize,
    to: usize,
    gain: f64,
    min: [f64; 3],
    max: [f64; 3],
}

impl EeServo {
    pub fn new(config: &RobotConfig) -> Result<Self, BuildError> {
        let servo = config.policy.servo.ok_or_else(|| BuildError::NeedsServo {
            config: config.source.display().to_string(),
        })?;
        let mut min = [0.0; 3];
        let mut max = [0.0; 3];
        min.copy_from_slice(&config.action.min[..3]);
        max.copy_from_slice(&config.action.max[..3]);
        Ok(Self {
            input_len: config.observation.feature_len,
            output_len: config.action.len(),
            from: servo.from_offset,
            to: servo.to_offset,
            gain: servo.gain,
            min,
            max,
        })
    }
}

impl Policy for EeServo {
    fn name(&self) -> &str {
        "ee_servo"
    }
    fn input_len(&self) -> usize {
        self.input_len
    }
    fn output_len(&self) -> usize {
        self.output_len
    }
    fn act(&mut self, observation: &[f64], action: &mut [f64]) -> Result<(), PolicyError> {
        let mut step = [0.0; 3];
        let mut scale: f64 = 1.0;
        for (axis, s) in step.iter_mut().enumerate() {
            *s = self.gain * (observation[self.to + axis] - observation[self.from + axis]);
            let bound = if *s >= 0.0 {
                self.max[axis]
            } else {
                self.min[axis]
            };
            if s.abs() > bound.abs() {
                scale = scale.min(bound.abs() / s.abs());
            }
        }
        action.fill(0.0);
        for (out, s) in action.iter_mut().zip(step) {
            *out = s * scale;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlrt_runtime::config;
    use std::path::Path;

    fn reach(policy: &str) -> RobotConfig {
        let text = include_str!("../../hw-configs/reach-arm-joint-space.toml");
        let start = text.find("[policy]").unwrap();
        let text = format!("{}[policy]\n{policy}\n", &text[..start]);
        config::parse(&text, Path::new("reach-arm-joint-space.toml")).unwrap()
    }

    #[test]
    fn ee_servo_moves_toward_the_target_within_the_bounds() {
        let text = include_str!("../../hw-configs/reach-arm.toml");
        let config = config::parse(text, Path::new("reach-arm.toml")).unwrap();
        let mut p = EeServo::new(&config).unwrap();
        // Layout: 3 positions, 3 velocities, ee_position, target_position.
        let mut obs = vec![0.0; config.observation.feature_len];
        obs[6..9].copy_from_slice(&[0.1, 0.0, 0.3]);
        obs[9..12].copy_from_slice(&[0.1, 0.02, 0.3]);
        let mut action = vec![0.0; 3];
        p.act(&obs, &mut action).unwrap();
        assert!((action[1] - 0.002).abs() < 1e-12 && action[0] == 0.0 && action[2] == 0.0);
        // Far away: scaled as a whole to the 1 cm bound, direction kept.
        obs[9..12].copy_from_slice(&[0.5, -0.4, 0.3]);
        p.act(&obs, &mut action).unwrap();
        assert!((action[0] - 0.01).abs() < 1e-12, "{action:?}");
        assert!((action[1] + 0.01).abs() < 1e-12, "{action:?}");
        let far = [0.5 - 0.1, -0.4];
        assert!((action[0] / action[1] - far[0] / far[1]).abs() < 1e-12);
    }

    #[test]
    fn joint_target_arrives_smoothly_within_speed_limits() {
        let config =
            reach("kind = \"joint_target\"\ntarget_rad = [1.0, -0.5, 0.5]\nspeed_fraction = 0.5");
        let mut p = JointTarget::new(&config).unwrap();
        let mut obs = vec![0.0; config.observation.feature_len];
        let mut action = vec![0.0; 3];
        let mut previous = [0.0; 3];
        let dt = config.period_s();
        for tick in 0..1000 {
            p.act(&obs, &mut action).unwrap();
            for i in 0..3 {
                let speed = (action[i] - previous[i]).abs() / dt;
                let limit = 0.5 * config.joints[i].max_velocity_rad_s;
                assert!(
                    tick == 0 || speed <= limit * 1.0001,
                    "joint {i} at {speed} rad/s"
                );
            }
            previous.copy_from_slice(&action);
            obs[..3].copy_from_slice(&action); // a perfect servo
        }
        assert_eq!(action, vec![1.0, -0.5, 0.5]);
    }

    #[test]
    fn sine_stays_inside_the_joint_limits() {
        let config = reach("kind = \"sine\"\namplitude_fraction = 1.0\nfrequency_hz = 2.0");
        let mut p = Sine::new(&config);
        let obs = vec![0.0; config.observation.feature_len];
        let mut action = vec![0.0; 3];
        let mut moved = 0.0f64;
        for _ in 0..1000 {
            p.act(&obs, &mut action).unwrap();
            for (a, j) in action.iter().zip(&config.joints) {
                assert!(*a >= j.position_min_rad - 1e-12 && *a <= j.position_max_rad + 1e-12);
                moved = moved.max(a.abs());
            }
        }
        assert!(moved > 1.0, "the sweep must actually move");
    }

    #[test]
    fn hold_keeps_the_first_position() {
        let config = reach("kind = \"hold\"");
        let mut p = Hold::new(&config).unwrap();
        let mut obs = vec![0.3, -0.2, 0.1, 0.0, 0.0, 0.0];
        let mut action = vec![0.0; 3];
        p.act(&obs, &mut action).unwrap();
        obs[0] = 1.0;
        p.act(&obs, &mut action).unwrap();
        assert_eq!(action, vec![0.3, -0.2, 0.1]);
        p.reset();
        p.act(&obs, &mut action).unwrap();
        assert_eq!(action[0], 1.0);
    }
}
