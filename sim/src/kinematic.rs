//! A kinematic arm: each joint tracks its command like a stiff position servo (time
//! constant [`SERVO_TIME_CONSTANT_S`]) or integrates a velocity command, never faster than its
//! velocity limit and never past its position limits (hard stops). Efforts are those of
//! unit-inertia joints, clamped to the effort limits.
//!
//! Two ways to drive it: [`LockstepPlant`] steps once per command (deterministic, as fast
//! as the loop can go, for tests and training), [`ThreadedPlant`] runs on its own thread at
//! wall-clock rate like hardware behind a link.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use rlrt_runtime::config::{ActionMode, MAX_JOINTS};
use rlrt_runtime::{
    Clock, Command, CommandSink, Observation, ObservationWriter, RobotConfig, SinkError, WallClock,
};

/// Time constant of the position servo.
pub const SERVO_TIME_CONSTANT_S: f64 = 0.02;
/// Internal integration step.
const SUBSTEP_S: f64 = 0.001;

/// The joint-level model.
#[derive(Clone, Debug)]
pub struct KinematicArm {
    dof: usize,
    mode: ActionMode,
    min: [f64; MAX_JOINTS],
    max: [f64; MAX_JOINTS],
    max_velocity: [f64; MAX_JOINTS],
    max_effort: [f64; MAX_JOINTS],
    positions: [f64; MAX_JOINTS],
    velocities: [f64; MAX_JOINTS],
    efforts: [f64; MAX_JOINTS],
    command: [f64; MAX_JOINTS],
    has_command: bool,
    /// Commands that arrived with values outside the joint limits (the runtime's safety layer
    /// should make this impossible; tests read it).
    out_of_limit_commands: u64,
    steps: u64,
}

impl KinematicArm {
    pub fn new(config: &RobotConfig) -> Self {
        let mut arm = Self {
            dof: config.dof(),
            mode: config.action.mode,
            min: [0.0; MAX_JOINTS],
            max: [0.0; MAX_JOINTS],
            max_velocity: [0.0; MAX_JOINTS],
            max_effort: [0.0; MAX_JOINTS],
            positions: [0.0; MAX_JOINTS],
            velocities: [0.0; MAX_JOINTS],
            efforts: [0.0; MAX_JOINTS],
            command: [0.0; MAX_JOINTS],
            has_command: false,
            out_of_limit_commands: 0,
            steps: 0,
        };
        for (i, j) in config.joints.iter().enumerate() {
            arm.min[i] = j.position_min_rad;
            arm.max[i] = j.position_max_rad;
            arm.max_velocity[i] = j.max_velocity_rad_s;
            arm.max_effort[i] = j.max_effort_nm;
        }
        arm.reset(0);
        arm
    }

    /// Puts the arm at rest at a seeded position in the middle half of each joint's range.
    pub fn reset(&mut self, seed: u64) {
        let mut state = seed;
        for i in 0..self.dof {
            let u = rlrt_runtime::rng::uniform01(&mut state);
            let mid = 0.5 * (self.min[i] + self.max[i]);
            let half = 0.5 * (self.max[i] - self.min[i]);
            self.positions[i] = mid + half * 0.5 * (2.0 * u - 1.0);
            self.velocities[i] = 0.0;
            self.efforts[i] = 0.0;
        }
        self.has_command = false;
        self.steps = 0;
    }

    pub fn positions(&self) -> &[f64] {
        &self.positions[..self.dof]
    }

    pub fn velocities(&self) -> &[f64] {
        &self.velocities[..self.dof]
    }

    pub fn out_of_limit_commands(&self) -> u64 {
        self.out_of_limit_commands
    }

    /// Accepts a command. Values that are not finite or outside the joint's limits are
    /// counted; the servo itself still never leaves the limits.
    pub fn apply(&mut self, command: &Command) {
        let values = command.values();
        let mut bad = false;
        for (i, &v) in values.iter().enumerate().take(self.dof) {
            bad |= !v.is_finite()
                || match self.mode {
                    ActionMode::JointPosition => v < self.min[i] || v > self.max[i],
                    _ => v.abs() > self.max_velocity[i],
                };
            self.command[i] = if v.is_finite() { v } else { self.positions[i] };
        }
        if bad {
            self.out_of_limit_commands += 1;
        }
        self.has_command = true;
    }

    /// Advances the model by `dt_s`.
    pub fn step(&mut self, dt_s: f64) {
        let substeps = (dt_s / SUBSTEP_S).ceil().max(1.0) as usize;
        let h = dt_s / substeps as f64;
        for _ in 0..substeps {
            for i in 0..self.dof {
                let wanted = if !self.has_command {
                    0.0
                } else {
                    match self.mode {
                        ActionMode::JointPosition => {
                            (self.command[i] - self.positions[i]) / SERVO_TIME_CONSTANT_S
                        }
                        _ => self.command[i],
                    }
                };
                let v = wanted.clamp(-self.max_velocity[i], self.max_velocity[i]);
                let mut q = self.positions[i] + v * h;
                let mut v_actual = v;
                if q < self.min[i] || q > self.max[i] {
                    q = q.clamp(self.min[i], self.max[i]);
                    v_actual = 0.0;
                }
                let effort = (v_actual - self.velocities[i]) / h;
                self.efforts[i] = effort.clamp(-self.max_effort[i], self.max_effort[i]);
                self.velocities[i] = v_actual;
                self.positions[i] = q;
            }
        }
        self.steps += 1;
    }

    /// Writes the current state into an observation.
    pub fn observe(&self, observation: &mut Observation) {
        let n = self.dof;
        observation.dof = n as u32;
        observation.joint_positions[..n].copy_from_slice(&self.positions[..n]);
        observation.joint_velocities[..n].copy_from_slice(&self.velocities[..n]);
        observation.joint_efforts[..n].copy_from_slice(&self.efforts[..n]);
    }
}

/// Steps the arm once per command, in the caller's thread: deterministic, for tests,
/// lockstep evaluation and data collection. Implements the loop's [`CommandSink`].
pub struct LockstepPlant<C: Clock> {
    arm: KinematicArm,
    writer: ObservationWriter,
    clock: C,
    observation: Observation,
    period_s: f64,
    silent: Arc<AtomicBool>,
    shared: Arc<PlantShared>,
}

/// What a plant shares with observers on other threads (atomics only).
#[derive(Default)]
pub struct PlantShared {
    pub commands: AtomicU64,
    pub out_of_limit_commands: AtomicU64,
    dof: AtomicU64,
    positions_bits: [AtomicU64; MAX_JOINTS],
}

impl PlantShared {
    fn update(&self, arm: &KinematicArm) {
        self.out_of_limit_commands
            .store(arm.out_of_limit_commands(), Ordering::Relaxed);
        self.dof.store(arm.dof as u64, Ordering::Relaxed);
        for (slot, q) in self.positions_bits.iter().zip(arm.positions()) {
            slot.store(q.to_bits(), Ordering::Relaxed);
        }
    }

    /// The arm's joint positions after its latest step.
    pub fn positions(&self) -> Vec<f64> {
        let dof = self.dof.load(Ordering::Relaxed) as usize;
        self.positions_bits[..dof]
            .iter()
            .map(|b| f64::from_bits(b.load(Ordering::Relaxed)))
            .collect()
    }
}

impl<C: Clock> LockstepPlant<C> {
    /// Builds the plant and publishes its first observation.
    pub fn new(config: &RobotConfig, clock: C, writer: ObservationWriter, seed: u64) -> Self {
        let mut arm = KinematicArm::new(config);
        arm.reset(seed);
        let mut plant = Self {
            arm,
            writer,
            clock,
            observation: Observation::empty(config.dof(), config.observation.sensor_values),
            period_s: config.period_s(),
            silent: Arc::default(),
            shared: Arc::default(),
        };
        plant.shared.update(&plant.arm);
        plant.publish();
        plant
    }

    fn publish(&mut self) {
        if self.silent.load(Ordering::Relaxed) {
            return;
        }
        self.arm.observe(&mut self.observation);
        self.observation.seq += 1;
        let now = self.clock.now_ns();
        self.observation.stamp_ns = now;
        self.observation.received_ns = now;
        self.writer.publish(&self.observation);
    }

    /// While set, the plant keeps stepping but publishes nothing (a dead link).
    pub fn silence(&self) -> Arc<AtomicBool> {
        self.silent.clone()
    }

    pub fn shared(&self) -> Arc<PlantShared> {
        self.shared.clone()
    }

    pub fn arm(&self) -> &KinematicArm {
        &self.arm
    }
}

impl<C: Clock> CommandSink for LockstepPlant<C> {
    fn send(&mut self, command: &Command) -> Result<(), SinkError> {
        self.arm.apply(command);
        self.arm.step(self.period_s);
        self.shared.commands.fetch_add(1, Ordering::Relaxed);
        self.shared.update(&self.arm);
        self.publish();
        Ok(())
    }
}

/// Runs the arm on its own thread at wall-clock rate, like a robot behind a link.
pub struct ThreadedPlant;

/// Controls a running [`ThreadedPlant`]; stops and joins it when dropped.
pub struct ThreadedPlantHandle {
    stop: Arc<AtomicBool>,
    silent: Arc<AtomicBool>,
    shared: Arc<PlantShared>,
    thread: Option<JoinHandle<KinematicArm>>,
}

/// The loop's side: hands the newest command to the plant thread without waiting.
pub struct ThreadedPlantSink {
    input: triple_buffer::Input<Command>,
}

impl CommandSink for ThreadedPlantSink {
    fn send(&mut self, command: &Command) -> Result<(), SinkError> {
        self.input.write(*command);
        Ok(())
    }
}

impl ThreadedPlant {
    /// Starts the plant thread, stepping at `rate_hz` on `clock` (share the loop's epoch so
    /// stamps compare). Returns the sink for the loop and a handle.
    pub fn spawn(
        config: &RobotConfig,
        clock: WallClock,
        mut writer: ObservationWriter,
        seed: u64,
        rate_hz: f64,
    ) -> std::io::Result<(ThreadedPlantSink, ThreadedPlantHandle)> {
        let mut arm = KinematicArm::new(config);
        arm.reset(seed);
        let (input, mut output) =
            triple_buffer::triple_buffer(&Command::new(config.action.mode, config.action.len()));
        let stop = Arc::new(AtomicBool::new(false));
        let silent = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(PlantShared::default());
        let mut observation = Observation::empty(config.dof(), config.observation.sensor_values);
        let period_ns = (1e9 / rate_hz) as u64;
        let thread = {
            let (stop, silent, shared) = (stop.clone(), silent.clone(), shared.clone());
            std::thread::Builder::new()
                .name("rlrt-kinematic-plant".into())
                .spawn(move || {
                    let mut last_seq = 0;
                    let mut deadline = clock.now_ns();
                    while !stop.load(Ordering::Relaxed) {
                        let command = *output.read();
                        if command.seq != last_seq {
                            last_seq = command.seq;
                            arm.apply(&command);
                            shared.commands.fetch_add(1, Ordering::Relaxed);
                        }
                        arm.step(period_ns as f64 * 1e-9);
                        shared.update(&arm);
                        if !silent.load(Ordering::Relaxed) {
                            arm.observe(&mut observation);
                            observation.seq += 1;
                            let now = clock.now_ns();
                            observation.stamp_ns = now;
                            observation.received_ns = now;
                            writer.publish(&observation);
                        }
                        deadline += period_ns;
                        // Plain sleep: the plant stands in for a robot, its own jitter is
                        // part of what the runtime must tolerate.
                        clock.sleep_until(deadline, 0);
                    }
                    arm
                })?
        };
        Ok((
            ThreadedPlantSink { input },
            ThreadedPlantHandle {
                stop,
                silent,
                shared,
                thread: Some(thread),
            },
        ))
    }
}

impl ThreadedPlantHandle {
    /// While set, the plant publishes nothing (a dead link or a crashed driver).
    pub fn silence(&self) -> Arc<AtomicBool> {
        self.silent.clone()
    }

    pub fn shared(&self) -> Arc<PlantShared> {
        self.shared.clone()
    }

    /// Stops the thread and returns the final arm state.
    pub fn stop(mut self) -> Option<KinematicArm> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for ThreadedPlantHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlrt_runtime::config;
    use std::path::Path;

    fn reach() -> RobotConfig {
        config::parse(
            include_str!("../../hw-configs/reach-arm-joint-space.toml"),
            Path::new("reach-arm-joint-space.toml"),
        )
        .unwrap()
    }

    fn command(values: &[f64]) -> Command {
        let mut c = Command::new(ActionMode::JointPosition, values.len());
        c.values[..values.len()].copy_from_slice(values);
        c.seq = 1;
        c
    }

    #[test]
    fn servo_converges_without_exceeding_velocity_limits() {
        let config = reach();
        let mut arm = KinematicArm::new(&config);
        arm.apply(&command(&[1.0, -0.5, 0.5]));
        for _ in 0..300 {
            let before = arm.positions().to_vec();
            arm.step(0.01);
            for (i, (a, b)) in arm.positions().iter().zip(&before).enumerate() {
                assert!((a - b).abs() / 0.01 <= config.joints[i].max_velocity_rad_s + 1e-9);
            }
        }
        for (q, t) in arm.positions().iter().zip([1.0, -0.5, 0.5]) {
            assert!((q - t).abs() < 1e-6);
        }
        assert_eq!(arm.out_of_limit_commands(), 0);
    }

    #[test]
    fn hard_stops_hold_and_bad_commands_are_counted() {
        let config = reach();
        let mut arm = KinematicArm::new(&config);
        arm.apply(&command(&[10.0, f64::NAN, 0.0]));
        assert_eq!(arm.out_of_limit_commands(), 1);
        for _ in 0..1000 {
            arm.step(0.01);
        }
        assert_eq!(arm.positions()[0], config.joints[0].position_max_rad);
        assert!(arm.positions()[1].is_finite());
    }

    #[test]
    fn resets_are_seeded() {
        let config = reach();
        let mut a = KinematicArm::new(&config);
        let mut b = KinematicArm::new(&config);
        a.reset(9);
        b.reset(9);
        assert_eq!(a.positions(), b.positions());
        b.reset(10);
        assert_ne!(a.positions(), b.positions());
    }
}
