//! The safety layer: the last word on every command.
//!
//! Whatever the policy, the reward code or the link does, what leaves the loop is finite,
//! inside the action bounds and joint limits, and changes by at most `max_delta_per_tick`
//! per tick. A fault (no or stale observation, bad values, a failed or late policy, the
//! e-stop) replaces the action with the configured fault action. Every intervention is
//! counted by cause; counters are atomics other threads can read while the loop runs.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use crate::config::{ActionMode, FaultAction, RobotConfig, MAX_ACTION};
use crate::messages::Observation;

/// Why the safety layer intervened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Cause {
    /// The e-stop is latched.
    EStop = 0,
    /// No observation has arrived yet.
    NoObservation,
    /// The newest observation is older than the stale-observation timeout.
    StaleObservation,
    /// The observation holds NaN or infinite values.
    BadObservation,
    /// The policy returned an error.
    PolicyError,
    /// The policy took longer than its time budget.
    PolicyOverrun,
    /// The policy's action held NaN or infinite values.
    NonFiniteAction,
    /// A value was clamped to the action bounds.
    ActionBound,
    /// A value changed by more than `max_delta_per_tick` and was limited.
    RateLimit,
    /// A command would have left a joint's position limits and was limited.
    JointPositionLimit,
    /// A fault occurred with no safe reference yet (no command sent and no valid
    /// observation): nothing was published.
    NoSafeReference,
}

impl Cause {
    pub const ALL: [Cause; 11] = [
        Cause::EStop,
        Cause::NoObservation,
        Cause::StaleObservation,
        Cause::BadObservation,
        Cause::PolicyError,
        Cause::PolicyOverrun,
        Cause::NonFiniteAction,
        Cause::ActionBound,
        Cause::RateLimit,
        Cause::JointPositionLimit,
        Cause::NoSafeReference,
    ];

    pub fn bit(self) -> u32 {
        1 << self as u8
    }

    pub fn name(self) -> &'static str {
        match self {
            Cause::EStop => "estop",
            Cause::NoObservation => "no_observation",
            Cause::StaleObservation => "stale_observation",
            Cause::BadObservation => "bad_observation",
            Cause::PolicyError => "policy_error",
            Cause::PolicyOverrun => "policy_overrun",
            Cause::NonFiniteAction => "non_finite_action",
            Cause::ActionBound => "action_bound",
            Cause::RateLimit => "rate_limit",
            Cause::JointPositionLimit => "joint_position_limit",
            Cause::NoSafeReference => "no_safe_reference",
        }
    }

    /// Faults replace the whole action; the other causes only limit it.
    pub fn is_fault(self) -> bool {
        !matches!(
            self,
            Cause::ActionBound | Cause::RateLimit | Cause::JointPositionLimit
        )
    }

    fn from_u8(value: u8) -> Option<Self> {
        Self::ALL.get(value as usize).copied()
    }

    /// The causes set in a bit mask.
    pub fn in_mask(mask: u32) -> impl Iterator<Item = Cause> {
        Self::ALL
            .into_iter()
            .filter(move |cause| mask & cause.bit() != 0)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Intervention counts by cause, readable from any thread.
#[derive(Default)]
pub struct InterventionCounters {
    counts: [AtomicU64; Cause::ALL.len()],
    /// Ticks on which the fault action was commanded (or nothing was published).
    fault_ticks: AtomicU64,
}

impl InterventionCounters {
    fn add(&self, cause: Cause) {
        self.counts[cause as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, cause: Cause) -> u64 {
        self.counts[cause as usize].load(Ordering::Relaxed)
    }

    pub fn fault_ticks(&self) -> u64 {
        self.fault_ticks.load(Ordering::Relaxed)
    }

    /// Non-zero counts, by cause.
    pub fn snapshot(&self) -> Vec<(Cause, u64)> {
        Cause::ALL
            .into_iter()
            .map(|cause| (cause, self.get(cause)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

const NO_CAUSE: u8 = u8::MAX;

/// A latched emergency stop, shared by whoever may trigger or clear it.
#[derive(Clone, Default)]
pub struct EStop {
    inner: Arc<EStopInner>,
}

#[derive(Default)]
struct EStopInner {
    engaged: AtomicBool,
    /// Which fault latched it, or `NO_CAUSE` when engaged by request.
    cause: AtomicU8,
}

impl EStop {
    /// Engages the e-stop. It stays engaged until [`EStop::reset`].
    pub fn engage(&self) {
        self.inner.cause.store(NO_CAUSE, Ordering::SeqCst);
        self.inner.engaged.store(true, Ordering::SeqCst);
    }

    fn engage_for(&self, cause: Cause) {
        self.inner.cause.store(cause as u8, Ordering::SeqCst);
        self.inner.engaged.store(true, Ordering::SeqCst);
    }

    /// The explicit reset: the only way to clear a latched e-stop.
    pub fn reset(&self) {
        self.inner.engaged.store(false, Ordering::SeqCst);
    }

    pub fn is_engaged(&self) -> bool {
        self.inner.engaged.load(Ordering::SeqCst)
    }

    /// The fault that latched the e-stop, if a fault did.
    pub fn latched_by(&self) -> Option<Cause> {
        Cause::from_u8(self.inner.cause.load(Ordering::SeqCst))
    }
}

/// What the safety layer did on one tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Bit mask of [`Cause`]s.
    pub interventions: u32,
    /// The fault that replaced the action, if any.
    pub fault: Option<Cause>,
    /// False when there was nothing safe to publish (see [`Cause::NoSafeReference`]).
    pub publish: bool,
}

/// The safety layer. Owned by the control loop; nothing here allocates after `new`.
pub struct SafetyLayer {
    mode: ActionMode,
    fault_action: FaultAction,
    len: usize,
    min: [f64; MAX_ACTION],
    max: [f64; MAX_ACTION],
    max_delta: [f64; MAX_ACTION],
    joint_min: [f64; MAX_ACTION],
    joint_max: [f64; MAX_ACTION],
    period_s: f64,
    stale_timeout_ns: u64,
    damp_factor: f64,
    estop_after: u32,
    consecutive_faults: u32,
    last_command: [f64; MAX_ACTION],
    has_last_command: bool,
    estop: EStop,
    counters: Arc<InterventionCounters>,
}

impl SafetyLayer {
    pub fn new(config: &RobotConfig) -> Self {
        let action = &config.action;
        let len = action.len();
        let mut layer = Self {
            mode: action.mode,
            fault_action: config.safety.fault_action,
            len,
            min: [0.0; MAX_ACTION],
            max: [0.0; MAX_ACTION],
            max_delta: [0.0; MAX_ACTION],
            joint_min: [f64::NEG_INFINITY; MAX_ACTION],
            joint_max: [f64::INFINITY; MAX_ACTION],
            period_s: config.period_s(),
            stale_timeout_ns: config.safety.stale_observation_timeout_ns,
            damp_factor: if config.safety.damp_time_constant_s > 0.0 {
                (-config.period_s() / config.safety.damp_time_constant_s).exp()
            } else {
                0.0
            },
            estop_after: config.safety.estop_after_consecutive_faults,
            consecutive_faults: 0,
            last_command: [0.0; MAX_ACTION],
            has_last_command: false,
            estop: EStop::default(),
            counters: Arc::default(),
        };
        layer.min[..len].copy_from_slice(&action.min);
        layer.max[..len].copy_from_slice(&action.max);
        layer.max_delta[..len].copy_from_slice(&action.max_delta_per_tick);
        if action.mode != ActionMode::EeDelta {
            for (i, joint) in config.joints.iter().enumerate() {
                layer.joint_min[i] = joint.position_min_rad;
                layer.joint_max[i] = joint.position_max_rad;
            }
        }
        layer
    }

    pub fn estop(&self) -> EStop {
        self.estop.clone()
    }

    /// Makes `estop` this layer's e-stop (such as one a link's e-stop topic engages).
    pub fn use_estop(&mut self, estop: EStop) {
        self.estop = estop;
    }

    pub fn counters(&self) -> Arc<InterventionCounters> {
        self.counters.clone()
    }

    /// Forgets the last command (at the start of an episode).
    pub fn reset_episode(&mut self) {
        self.has_last_command = false;
        self.consecutive_faults = 0;
    }

    /// Checks the observation before the policy runs. `Some(cause)` means the policy must
    /// not be asked and [`SafetyLayer::filter`] must be given that fault.
    pub fn check_observation(
        &self,
        now_ns: u64,
        observation: Option<&Observation>,
    ) -> Option<Cause> {
        if self.estop.is_engaged() {
            return Some(Cause::EStop);
        }
        let Some(obs) = observation else {
            return Some(Cause::NoObservation);
        };
        if now_ns.saturating_sub(obs.received_ns) > self.stale_timeout_ns {
            return Some(Cause::StaleObservation);
        }
        if !obs.is_finite() {
            return Some(Cause::BadObservation);
        }
        None
    }

    /// Produces the command in `out` from the policy's `proposed` action, or the fault action
    /// when `fault` is set. `observation` is the newest one, even if stale.
    pub fn filter(
        &mut self,
        observation: Option<&Observation>,
        fault: Option<Cause>,
        proposed: &[f64],
        out: &mut [f64],
    ) -> Verdict {
        let len = self.len;
        let out = &mut out[..len];
        // An e-stop engaged between the observation check and now still wins.
        let mut fault = if self.estop.is_engaged() {
            Some(Cause::EStop)
        } else {
            fault
        };
        if fault.is_none() && !proposed[..len].iter().all(|v| v.is_finite()) {
            fault = Some(Cause::NonFiniteAction);
        }
        let mut verdict = Verdict {
            interventions: 0,
            fault,
            publish: true,
        };

        if let Some(cause) = fault {
            self.counters.add(cause);
            self.counters.fault_ticks.fetch_add(1, Ordering::Relaxed);
            verdict.interventions |= cause.bit();
            self.consecutive_faults = self.consecutive_faults.saturating_add(1);
            if self.estop_after > 0
                && self.consecutive_faults >= self.estop_after
                && !self.estop.is_engaged()
            {
                self.estop.engage_for(cause);
            }
            if !self.fault_command(observation, out) {
                self.counters.add(Cause::NoSafeReference);
                verdict.interventions |= Cause::NoSafeReference.bit();
                verdict.publish = false;
                return verdict;
            }
        } else {
            self.consecutive_faults = 0;
            out.copy_from_slice(&proposed[..len]);
            verdict.interventions |= self.limit(observation, out);
            for cause in Cause::in_mask(verdict.interventions) {
                self.counters.add(cause);
            }
        }
        self.last_command[..len].copy_from_slice(out);
        self.has_last_command = true;
        verdict
    }

    /// Clamps a finite action into bounds, rate and joint limits. Returns the causes hit.
    fn limit(&self, observation: Option<&Observation>, out: &mut [f64]) -> u32 {
        let mut hit = 0;
        for (i, value) in out.iter_mut().enumerate() {
            let bounded = value.clamp(self.min[i], self.max[i]);
            if bounded != *value {
                hit |= Cause::ActionBound.bit();
                *value = bounded;
            }
        }
        // Rate limit against the last command; before the first command, against where
        // the robot is (position mode) or against rest (velocity and displacement modes).
        let measured = observation.map(|o| o.positions());
        for (i, value) in out.iter_mut().enumerate() {
            let reference = if self.has_last_command {
                self.last_command[i]
            } else {
                match (self.mode, measured) {
                    (ActionMode::JointPosition, Some(q)) if i < q.len() => q[i],
                    (ActionMode::JointPosition, _) => *value,
                    _ => 0.0,
                }
            };
            let step = self.max_delta[i];
            let limited = value.clamp(reference - step, reference + step);
            if limited != *value {
                hit |= Cause::RateLimit.bit();
                *value = limited;
            }
        }
        match self.mode {
            ActionMode::JointPosition => {
                for (i, value) in out.iter_mut().enumerate() {
                    let limited = value.clamp(self.joint_min[i], self.joint_max[i]);
                    if limited != *value {
                        hit |= Cause::JointPositionLimit.bit();
                        *value = limited;
                    }
                }
            }
            ActionMode::JointVelocity => {
                // Keep every joint able to stop before its position limits: the velocity
                // towards a limit at distance d is at most sqrt(2 a d), with a the
                // deceleration allowed by max_delta_per_tick, and at most d per tick. This
                // wins over the rate limit: position limits are hard.
                if let Some(q) = measured {
                    for (i, value) in out.iter_mut().enumerate() {
                        let Some(&position) = q.get(i) else { break };
                        let decel = self.max_delta[i] / self.period_s;
                        let room_up = (self.joint_max[i] - position).max(0.0);
                        let room_down = (position - self.joint_min[i]).max(0.0);
                        let hi = (room_up / self.period_s).min((2.0 * decel * room_up).sqrt());
                        let lo = -(room_down / self.period_s).min((2.0 * decel * room_down).sqrt());
                        let limited = value.clamp(lo, hi);
                        if limited != *value {
                            hit |= Cause::JointPositionLimit.bit();
                            *value = limited;
                        }
                    }
                }
            }
            // Efforts are bounded and rate limited above; no position model is assumed.
            ActionMode::EeDelta | ActionMode::JointEffort => {}
        }
        hit
    }

    /// Writes the fault action. False when there is no safe reference to hold.
    fn fault_command(&self, observation: Option<&Observation>, out: &mut [f64]) -> bool {
        match (self.mode, self.fault_action) {
            (ActionMode::JointPosition, _) => {
                if self.has_last_command {
                    // Holding the last command is within limits by construction and does
                    // not depend on a possibly stale or broken observation.
                    out.copy_from_slice(&self.last_command[..self.len]);
                } else {
                    match observation {
                        Some(obs) if obs.is_finite() && obs.positions().len() >= self.len => {
                            out.copy_from_slice(&obs.positions()[..self.len])
                        }
                        _ => return false,
                    }
                }
                for (i, value) in out.iter_mut().enumerate() {
                    *value = value.clamp(self.joint_min[i], self.joint_max[i]);
                }
            }
            (_, FaultAction::Damp) if self.has_last_command => {
                // Exponential decay, but never faster than the configured acceleration.
                for (i, value) in out.iter_mut().enumerate() {
                    let last = self.last_command[i];
                    *value = (last * self.damp_factor)
                        .clamp(last - self.max_delta[i], last + self.max_delta[i]);
                }
            }
            _ => out.fill(0.0),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use std::path::Path;

    fn config(mode: &str, fault: &str, extra_safety: &str) -> RobotConfig {
        let text = format!(
            r#"
schema_version = 1
[robot]
name = "t"
kind = "sim"
control_rate_hz = 100.0
[[joints]]
name = "a"
position_min_rad = -1.0
position_max_rad = 1.0
max_velocity_rad_s = 10.0
max_effort_nm = 1.0
[[joints]]
name = "b"
position_min_rad = -1.0
position_max_rad = 1.0
max_velocity_rad_s = 10.0
max_effort_nm = 1.0
[observation]
state = ["joint_positions"]
[action]
mode = "{mode}"
max_delta_per_tick = [0.05, 0.05]
[link]
mode = "peer"
key_prefix = "rlrt/t"
[safety]
stale_observation_timeout_ms = 30.0
fault_action = "{fault}"
{extra_safety}
[policy]
kind = "sine"
"#
        );
        config::parse(&text, Path::new("test.toml")).unwrap()
    }

    fn obs(received_ns: u64, q: [f64; 2]) -> Observation {
        let mut o = Observation::empty(2, 0);
        o.seq = 1;
        o.received_ns = received_ns;
        o.joint_positions[..2].copy_from_slice(&q);
        o
    }

    #[test]
    fn clamps_bounds_rate_and_counts_causes() {
        let mut s = SafetyLayer::new(&config("joint_position", "hold_position", ""));
        let o = obs(0, [0.0, 0.0]);
        let mut out = [0.0; 2];
        let v = s.filter(Some(&o), None, &[5.0, 0.01], &mut out);
        assert_eq!(out, [0.05, 0.01]);
        assert!(v.interventions & Cause::ActionBound.bit() != 0);
        assert!(v.interventions & Cause::RateLimit.bit() != 0);
        assert_eq!(s.counters().get(Cause::ActionBound), 1);
        let v = s.filter(Some(&o), None, &[0.07, 0.02], &mut out);
        assert_eq!(out, [0.07, 0.02]);
        assert_eq!(v.interventions, 0);
    }

    #[test]
    fn non_finite_action_holds_last_command() {
        let mut s = SafetyLayer::new(&config("joint_position", "hold_position", ""));
        let o = obs(0, [0.2, -0.2]);
        let mut out = [0.0; 2];
        s.filter(Some(&o), None, &[0.21, -0.21], &mut out);
        let v = s.filter(Some(&o), None, &[f64::NAN, 0.0], &mut out);
        assert_eq!(v.fault, Some(Cause::NonFiniteAction));
        assert_eq!(out, [0.21, -0.21]);
        let v = s.filter(Some(&o), None, &[f64::INFINITY, 0.0], &mut out);
        assert_eq!(v.fault, Some(Cause::NonFiniteAction));
        assert_eq!(s.counters().get(Cause::NonFiniteAction), 2);
    }

    #[test]
    fn watchdog_trips_after_timeout_not_before() {
        let s = SafetyLayer::new(&config("joint_position", "hold_position", ""));
        let o = obs(1_000_000, [0.0, 0.0]);
        assert_eq!(s.check_observation(31_000_000, Some(&o)), None);
        assert_eq!(
            s.check_observation(31_000_001, Some(&o)),
            Some(Cause::StaleObservation)
        );
        assert_eq!(s.check_observation(0, None), Some(Cause::NoObservation));
        let mut bad = o;
        bad.joint_positions[1] = f64::NAN;
        assert_eq!(
            s.check_observation(1_000_000, Some(&bad)),
            Some(Cause::BadObservation)
        );
    }

    #[test]
    fn fault_without_reference_publishes_nothing() {
        let mut s = SafetyLayer::new(&config("joint_position", "hold_position", ""));
        let mut out = [9.0; 2];
        let v = s.filter(None, Some(Cause::NoObservation), &[0.0, 0.0], &mut out);
        assert!(!v.publish);
        assert_eq!(s.counters().get(Cause::NoSafeReference), 1);
    }

    #[test]
    fn estop_latches_until_reset() {
        let mut s = SafetyLayer::new(&config(
            "joint_velocity",
            "zero_velocity",
            "estop_after_consecutive_faults = 3",
        ));
        let o = obs(0, [0.0, 0.0]);
        let mut out = [0.0; 2];
        for _ in 0..3 {
            s.filter(Some(&o), Some(Cause::StaleObservation), &[0.0; 2], &mut out);
        }
        let estop = s.estop();
        assert!(estop.is_engaged());
        assert_eq!(estop.latched_by(), Some(Cause::StaleObservation));
        // Good data does not clear it.
        assert_eq!(s.check_observation(0, Some(&o)), Some(Cause::EStop));
        let v = s.filter(Some(&o), None, &[0.01, 0.01], &mut out);
        assert_eq!(v.fault, Some(Cause::EStop));
        assert_eq!(out, [0.0, 0.0]);
        estop.reset();
        assert_eq!(s.check_observation(0, Some(&o)), None);
        let v = s.filter(Some(&o), None, &[0.01, 0.01], &mut out);
        assert_eq!(v.fault, None);
    }

    #[test]
    fn damp_decays_velocity_and_limits_stop_at_joint_limit() {
        let mut s = SafetyLayer::new(&config(
            "joint_velocity",
            "damp",
            "damp_time_constant_ms = 10.0",
        ));
        let o = obs(0, [0.0, 0.999]);
        let mut out = [0.0; 2];
        // Joint b is 0.001 rad from its limit. Deceleration allowed: 0.05 per 10 ms tick,
        // 5 rad/s^2, so it may approach at sqrt(2 * 5 * 0.001) = 0.1 rad/s.
        s.filter(Some(&o), None, &[0.05, 0.05], &mut out);
        assert!((out[1] - 0.05).abs() < 1e-9);
        // Now 0.0002 rad from the limit: braking allows sqrt(2 * 5 * 0.0002) = 0.045 rad/s,
        // reaching the limit within one tick allows 0.02 rad/s; 0.1 is asked.
        let closer = obs(0, [0.0, 0.9998]);
        let mut out2 = [0.0; 2];
        s.filter(Some(&closer), None, &[0.1, 0.1], &mut out2);
        assert!((out2[1] - 0.02).abs() < 1e-9, "{out2:?}");
        assert!((out2[0] - 0.1).abs() < 1e-9, "{out2:?}");
        assert_eq!(s.counters().get(Cause::JointPositionLimit), 1);
        // Damping: exponential decay (factor e^-1 per tick here), limited to 0.05 per tick.
        let before = out2;
        s.filter(Some(&o), Some(Cause::PolicyOverrun), &[0.0; 2], &mut out);
        let factor = (-1.0f64).exp();
        assert!((out[0] - (before[0] * factor).max(before[0] - 0.05)).abs() < 1e-12);
        assert!((out[1] - before[1] * factor).abs() < 1e-12);
    }
}
