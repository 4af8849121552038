//! The fixed-rate control loop.
//!
//! Each tick, at an absolute deadline: take the newest observation (lock-free), check it,
//! build the policy input, run the policy within its time budget, pass the action through
//! the safety layer, publish the command, record statistics, offer a telemetry record.
//! Nothing in a tick allocates, locks or logs; `tests/realtime_invariants.rs` proves the
//! allocation part with a counting allocator.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::alloc_count::TickScope;
use crate::clock::Clock;
use crate::config::{FieldSource, ObservationField, RobotConfig, MAX_ACTION, MAX_JOINTS};
use crate::messages::{Command, CommandSink, Observation, ObservationReader};
use crate::policy::{Policy, PolicyError};
use crate::safety::{Cause, EStop, InterventionCounters, SafetyLayer};
use crate::stats::{LoopStats, LoopSummary};
use crate::telemetry::{TelemetrySender, TickRecord};

/// Why a loop could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error(
        "policy {policy:?} reads {got} observation values but the config {config} describes {expected} (observation.state)"
    )]
    InputSize {
        policy: String,
        config: String,
        expected: usize,
        got: usize,
    },
    #[error(
        "policy {policy:?} writes {got} action values but the config {config} expects {expected} (action)"
    )]
    OutputSize {
        policy: String,
        config: String,
        expected: usize,
        got: usize,
    },
}

/// When `run` stops on its own.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunLimit {
    pub max_ticks: Option<u64>,
}

/// What a run did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunReport {
    pub loop_stats: LoopSummary,
    pub interventions: Vec<(Cause, u64)>,
    pub fault_ticks: u64,
    pub estop_engaged: bool,
}

impl RunReport {
    /// How often the safety layer intervened for `cause`.
    pub fn count(&self, cause: Cause) -> u64 {
        self.interventions
            .iter()
            .find(|(c, _)| *c == cause)
            .map_or(0, |(_, n)| *n)
    }
}

impl std::fmt::Display for RunReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.loop_stats)?;
        if self.interventions.is_empty() {
            writeln!(f, "safety interventions: none")?;
        } else {
            writeln!(
                f,
                "safety interventions ({} ticks on the fault action):",
                self.fault_ticks
            )?;
            for (cause, count) in &self.interventions {
                writeln!(f, "  {:<24} {count:>10}", cause.name())?;
            }
        }
        if self.estop_engaged {
            writeln!(f, "e-stop: ENGAGED (latched; needs an explicit reset)")?;
        }
        Ok(())
    }
}

/// Builds the flat feature vector a policy reads from an [`Observation`], in the order of
/// `observation.state`. The loop uses it on every tick; recorders and evaluators use it so
/// that a dataset holds exactly what a policy sees in the loop. Allocates nothing in
/// [`FeatureBuilder::write`].
#[derive(Clone, Debug)]
pub struct FeatureBuilder {
    layout: Vec<ObservationField>,
    sensor_offsets: Vec<usize>,
    len: usize,
}

impl FeatureBuilder {
    pub fn new(config: &RobotConfig) -> Self {
        Self {
            layout: config.observation.fields.clone(),
            sensor_offsets: config
                .observation
                .sensors
                .iter()
                .map(|s| s.offset)
                .collect(),
            len: config.observation.feature_len,
        }
    }

    /// Length of the feature vector (`observation.feature_len`).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes the features of `obs` into `out` (exactly [`FeatureBuilder::len`] values).
    pub fn write(&self, obs: &Observation, out: &mut [f64]) {
        for field in &self.layout {
            let dst = &mut out[field.offset..field.offset + field.len];
            match field.source {
                FieldSource::JointPositions => dst.copy_from_slice(obs.positions()),
                FieldSource::JointVelocities => dst.copy_from_slice(obs.velocities()),
                FieldSource::JointEfforts => dst.copy_from_slice(obs.efforts()),
                FieldSource::Sensor(index) => {
                    let from = self.sensor_offsets[index];
                    dst.copy_from_slice(&obs.sensors[from..from + field.len]);
                }
            }
        }
    }
}

impl FeatureBuilder {
    /// The inverse of [`FeatureBuilder::write`]: puts `features` back into the parts of
    /// `obs` they came from (for replaying recordings). Parts the features do not hold are
    /// left as they are.
    pub fn read(&self, features: &[f64], obs: &mut Observation) {
        for field in &self.layout {
            let src = &features[field.offset..field.offset + field.len];
            match field.source {
                FieldSource::JointPositions => {
                    obs.joint_positions[..field.len].copy_from_slice(src)
                }
                FieldSource::JointVelocities => {
                    obs.joint_velocities[..field.len].copy_from_slice(src)
                }
                FieldSource::JointEfforts => obs.joint_efforts[..field.len].copy_from_slice(src),
                FieldSource::Sensor(index) => {
                    let from = self.sensor_offsets[index];
                    obs.sensors[from..from + field.len].copy_from_slice(src);
                }
            }
        }
    }
}

/// The control loop for one robot.
pub struct ControlLoop<C: Clock> {
    clock: C,
    period_ns: u64,
    spin_ns: u64,
    policy_budget_ns: u64,
    action_len: usize,
    features_of: FeatureBuilder,
    observations: ObservationReader,
    policy: Box<dyn Policy>,
    sink: Box<dyn CommandSink>,
    safety: SafetyLayer,
    stats: Arc<LoopStats>,
    telemetry: Option<TelemetrySender>,
    features: Vec<f64>,
    proposed: [f64; MAX_ACTION],
    command: Command,
    record: TickRecord,
    tick: u64,
}

impl<C: Clock> ControlLoop<C> {
    /// Builds a loop. The policy's sizes are checked here, once.
    pub fn new(
        config: &RobotConfig,
        clock: C,
        observations: ObservationReader,
        policy: Box<dyn Policy>,
        sink: Box<dyn CommandSink>,
    ) -> Result<Self, LoopError> {
        let expected_in = config.observation.feature_len;
        let expected_out = config.action.len();
        if policy.input_len() != expected_in {
            return Err(LoopError::InputSize {
                policy: policy.name().to_owned(),
                config: config.source.display().to_string(),
                expected: expected_in,
                got: policy.input_len(),
            });
        }
        if policy.output_len() != expected_out {
            return Err(LoopError::OutputSize {
                policy: policy.name().to_owned(),
                config: config.source.display().to_string(),
                expected: expected_out,
                got: policy.output_len(),
            });
        }
        let mut record = TickRecord::empty();
        record.dof = config.dof().min(MAX_JOINTS) as u8;
        record.action_len = expected_out as u8;
        let mut control = Self {
            clock,
            period_ns: config.period_ns(),
            spin_ns: config.scheduler.spin_ns,
            policy_budget_ns: config.policy.time_budget_ns,
            action_len: expected_out,
            features_of: FeatureBuilder::new(config),
            observations,
            policy,
            sink,
            safety: SafetyLayer::new(config),
            stats: Arc::new(LoopStats::default()),
            telemetry: None,
            features: vec![0.0; expected_in],
            proposed: [0.0; MAX_ACTION],
            command: Command::new(config.action.mode, expected_out),
            record,
            tick: 0,
        };
        control.policy.reset();
        Ok(control)
    }

    /// Sends a record of every tick to `telemetry` (see [`crate::telemetry`]).
    pub fn with_telemetry(mut self, telemetry: TelemetrySender) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Makes `estop` the loop's e-stop: whoever holds it (a link's e-stop subscriber, an
    /// operator's button) stops the loop, and faults that latch it latch this one.
    pub fn with_estop(mut self, estop: EStop) -> Self {
        self.safety.use_estop(estop);
        self
    }

    /// Attaches a telemetry sender to a loop already built (same as
    /// [`ControlLoop::with_telemetry`]).
    pub fn set_telemetry(&mut self, telemetry: TelemetrySender) {
        self.telemetry = Some(telemetry);
    }

    /// Shares statistics with a telemetry channel made beforehand.
    pub fn with_stats(mut self, stats: Arc<LoopStats>) -> Self {
        self.stats = stats;
        self
    }

    pub fn stats(&self) -> Arc<LoopStats> {
        self.stats.clone()
    }

    pub fn estop(&self) -> EStop {
        self.safety.estop()
    }

    pub fn interventions(&self) -> Arc<InterventionCounters> {
        self.safety.counters()
    }

    pub fn clock(&self) -> &C {
        &self.clock
    }

    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// Starts a new episode: the policy is reset and the safety layer forgets its last
    /// command (the e-stop stays as it is).
    pub fn reset_episode(&mut self) {
        self.policy.reset();
        self.safety.reset_episode();
    }

    /// Ticks at the configured rate until `stop` is set or the limit is reached.
    ///
    /// Deadlines are absolute (start + k * period), so lateness does not accumulate. A tick
    /// that ends after the next deadline is an overrun; if the loop falls a whole period or
    /// more behind, the missed deadlines are skipped (counted) rather than run in a burst.
    pub fn run(&mut self, stop: &AtomicBool, limit: RunLimit) -> RunReport {
        let mut deadline = self.clock.now_ns() + self.period_ns;
        let mut ticks = 0u64;
        while !stop.load(Ordering::Relaxed) && limit.max_ticks.is_none_or(|max| ticks < max) {
            self.clock.sleep_until(deadline, self.spin_ns);
            self.tick(deadline);
            ticks += 1;
            let mut next = deadline + self.period_ns;
            let now = self.clock.now_ns();
            if now > next {
                self.stats.overruns.fetch_add(1, Ordering::Relaxed);
                if now >= next + self.period_ns {
                    let missed = (now - next) / self.period_ns;
                    next += missed * self.period_ns;
                    self.stats
                        .missed_deadlines
                        .fetch_add(missed, Ordering::Relaxed);
                }
            }
            deadline = next;
        }
        self.report()
    }

    /// A snapshot of statistics and interventions so far.
    pub fn report(&self) -> RunReport {
        let counters = self.safety.counters();
        RunReport {
            loop_stats: self.stats.summary(),
            interventions: counters.snapshot(),
            fault_ticks: counters.fault_ticks(),
            estop_engaged: self.safety.estop().is_engaged(),
        }
    }

    /// Runs one tick whose deadline was `deadline_ns`. Public so that lockstep drivers and
    /// tests can step the loop themselves.
    pub fn tick(&mut self, deadline_ns: u64) {
        let _scope = TickScope::enter();
        let start = self.clock.now_ns();
        let len = self.action_len;

        // Read: newest observation, checks, policy input.
        let observation = self.observations.latest();
        let mut fault = self.safety.check_observation(start, observation);
        if fault.is_none() {
            if let Some(obs) = observation {
                self.features_of.write(obs, &mut self.features);
            }
        }
        let after_read = self.clock.now_ns();

        // Policy, within its budget.
        let asked = fault.is_none();
        if asked {
            match self.policy.act(&self.features, &mut self.proposed[..len]) {
                Ok(()) => {}
                Err(PolicyError::NotReady | PolicyError::Numerical | PolicyError::Backend(_)) => {
                    fault = Some(Cause::PolicyError)
                }
            }
        }
        let after_policy = self.clock.now_ns();
        if asked && fault.is_none() && after_policy - after_read > self.policy_budget_ns {
            fault = Some(Cause::PolicyOverrun);
        }

        // Safety.
        let verdict = self.safety.filter(
            observation,
            fault,
            &self.proposed[..len],
            &mut self.command.values[..len],
        );
        let after_safety = self.clock.now_ns();

        // Publish.
        if verdict.publish {
            self.command.seq += 1;
            self.command.stamp_ns = after_safety;
            self.command.is_fault_action = verdict.fault.is_some();
            if self.sink.send(&self.command).is_err() {
                self.stats.publish_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        let end = self.clock.now_ns();

        // Statistics and telemetry.
        let stats = &self.stats;
        stats
            .start_lateness
            .record(start.saturating_sub(deadline_ns));
        stats.stage_read.record(after_read - start);
        stats.stage_policy.record(after_policy - after_read);
        stats.stage_safety.record(after_safety - after_policy);
        stats.stage_publish.record(end - after_safety);
        stats.tick_total.record(end - start);
        stats.ticks.fetch_add(1, Ordering::Relaxed);
        let record = &mut self.record;
        match observation {
            Some(obs) => {
                if verdict.publish && verdict.fault.is_none() {
                    stats
                        .observation_to_command
                        .record(end.saturating_sub(obs.received_ns));
                }
                record.observation_seq = obs.seq;
                record.observation_age_ns = start.saturating_sub(obs.received_ns);
                record.observation = *obs;
            }
            None => {
                record.observation_seq = 0;
                record.observation_age_ns = 0;
                record.observation.seq = 0;
            }
        }
        self.tick += 1;
        if let Some(telemetry) = &self.telemetry {
            record.tick = self.tick;
            record.deadline_ns = deadline_ns;
            record.start_ns = start;
            record.read_ns = after_read - start;
            record.policy_ns = after_policy - after_read;
            record.safety_ns = after_safety - after_policy;
            record.publish_ns = end - after_safety;
            record.interventions = verdict.interventions;
            record.fault = verdict.fault;
            record.published = verdict.publish;
            record.command_seq = self.command.seq;
            if asked {
                record.proposed[..len].copy_from_slice(&self.proposed[..len]);
            } else {
                record.proposed[..len].fill(0.0);
            }
            record.command[..len].copy_from_slice(&self.command.values[..len]);
            telemetry.offer(record);
        }
    }
}
