//! The safety layer against adversarial policies and a failing robot link, on the real loop
//! with the kinematic plant. Whatever the policy does, every published command must be
//! finite, inside bounds and joint limits, and within the per-tick change limit.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rlrt_runtime::telemetry::{telemetry_channel, TickRecord};
use rlrt_runtime::{
    observation_mailbox, Cause, Clock, ControlLoop, ManualClock, Policy, PolicyError, RobotConfig,
    RunLimit, RunReport, WallClock,
};
use rlrt_sim::LockstepPlant;

/// Adversarial behaviours.
#[derive(Clone, Copy, Debug)]
enum Evil {
    Nan,
    Huge,
    /// Random bit patterns: NaN, infinities, subnormals, huge and tiny values.
    Garbage,
    Errors,
    /// Sleeps past the tick every few ticks.
    Stall,
}

struct EvilPolicy {
    evil: Evil,
    input: usize,
    output: usize,
    tick: u64,
    rng: u64,
}

impl Policy for EvilPolicy {
    fn name(&self) -> &str {
        "evil"
    }
    fn input_len(&self) -> usize {
        self.input
    }
    fn output_len(&self) -> usize {
        self.output
    }
    fn act(&mut self, obs: &[f64], action: &mut [f64]) -> Result<(), PolicyError> {
        self.tick += 1;
        // Sane behaviour in between, so that the transitions are exercised too.
        for (i, a) in action.iter_mut().enumerate() {
            *a = obs[i] + 0.3 * ((self.tick as f64) * 0.05).sin();
        }
        match self.evil {
            Evil::Nan if self.tick % 3 == 0 => action[self.tick as usize % self.output] = f64::NAN,
            Evil::Huge if self.tick % 2 == 0 => {
                for (i, a) in action.iter_mut().enumerate() {
                    *a = if (i + self.tick as usize) % 2 == 0 {
                        1e300
                    } else {
                        -1e300
                    };
                }
            }
            Evil::Garbage if self.tick % 2 == 0 => {
                for a in action.iter_mut() {
                    self.rng = self
                        .rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    *a = f64::from_bits(self.rng);
                }
            }
            Evil::Errors if self.tick % 4 == 0 => return Err(PolicyError::Backend(-7)),
            Evil::Stall if self.tick % 7 == 0 => std::thread::sleep(Duration::from_millis(25)),
            _ => {}
        }
        Ok(())
    }
}

struct Outcome {
    records: Vec<TickRecord>,
    report: RunReport,
    out_of_limit_at_robot: u64,
}

fn run_evil<C: Clock + Clone + 'static>(
    config: &RobotConfig,
    evil: Evil,
    clock: C,
    ticks: u64,
) -> Outcome {
    let (writer, reader) = observation_mailbox(config.dof(), config.observation.sensor_values);
    let plant = LockstepPlant::new(config, clock.clone(), writer, 11);
    let shared = plant.shared();
    let policy = Box::new(EvilPolicy {
        evil,
        input: config.observation.feature_len,
        output: config.action.len(),
        tick: 0,
        rng: 42,
    });
    let control = ControlLoop::new(config, clock, reader, policy, Box::new(plant)).unwrap();
    let (tx, rx) = telemetry_channel(ticks as usize + 16, control.stats());
    let mut control = control.with_telemetry(tx);
    let report = control.run(
        &AtomicBool::new(false),
        RunLimit {
            max_ticks: Some(ticks),
        },
    );
    let mut records = Vec::new();
    rx.drain(|r| records.push(*r));
    assert_eq!(records.len() as u64, ticks);
    Outcome {
        records,
        report,
        out_of_limit_at_robot: shared.out_of_limit_commands.load(Ordering::Relaxed),
    }
}

fn configs() -> Vec<RobotConfig> {
    vec![
        common::shipped_config("reach-arm-joint-space.toml", &[]),
        // Velocity mode, with the UR5e's limits and its damping fault action.
        common::shipped_config("ur5e.toml", &[]),
    ]
}

#[test]
fn nan_huge_garbage_and_errors_never_reach_the_robot() {
    for config in configs() {
        for evil in [Evil::Nan, Evil::Huge, Evil::Garbage, Evil::Errors] {
            let out = run_evil(&config, evil, ManualClock::new(0), 2_000);
            let checked = common::assert_commands_safe(&config, &out.records);
            assert_eq!(
                checked, 2_000,
                "{evil:?} on {}: every tick publishes",
                config.name
            );
            assert_eq!(out.out_of_limit_at_robot, 0, "{evil:?} on {}", config.name);
            let r = &out.report;
            match evil {
                Evil::Nan => assert!(r.count(Cause::NonFiniteAction) >= 600),
                Evil::Huge => assert!(r.count(Cause::ActionBound) >= 900),
                // Half of all bit patterns are finite with magnitude above one.
                Evil::Garbage => assert!(r.count(Cause::ActionBound) >= 700),
                Evil::Errors => assert_eq!(r.count(Cause::PolicyError), 500),
                Evil::Stall => unreachable!(),
            }
            // Every fault tick carries its cause in the telemetry record too.
            let faulted = out.records.iter().filter(|r| r.fault.is_some()).count() as u64;
            assert_eq!(faulted, r.fault_ticks, "{evil:?}");
        }
    }
}

#[test]
fn a_stalling_policy_is_replaced_by_the_fault_action() {
    let config = common::shipped_config("reach-arm-joint-space.toml", &[]);
    let out = run_evil(&config, Evil::Stall, WallClock::new(), 60);
    common::assert_commands_safe(&config, &out.records);
    assert_eq!(out.out_of_limit_at_robot, 0);
    // 60 ticks, a 25 ms stall every 7th: 8 stalls, each past the 5 ms budget.
    // (At least: under heavy load a normal tick may also be preempted past its budget.)
    assert!(out.report.count(Cause::PolicyOverrun) >= 8);
    for r in out.records.iter().filter(|r| r.policy_ns > 20_000_000) {
        assert_eq!(r.fault, Some(Cause::PolicyOverrun));
    }
    assert!(out.report.loop_stats.overruns >= 8);
}

/// Lockstep loop whose ticks the test drives one by one.
struct Stepper {
    control: ControlLoop<ManualClock>,
    clock: ManualClock,
    silence: std::sync::Arc<AtomicBool>,
    rx: rlrt_runtime::telemetry::TelemetryReceiver,
    deadline: u64,
}

impl Stepper {
    fn new(config: &RobotConfig, seed: u64) -> Self {
        let clock = ManualClock::new(0);
        let (writer, reader) = observation_mailbox(config.dof(), config.observation.sensor_values);
        let plant = LockstepPlant::new(config, clock.clone(), writer, seed);
        let silence = plant.silence();
        let policy = rlrt_policies::build(config).unwrap();
        let control =
            ControlLoop::new(config, clock.clone(), reader, policy, Box::new(plant)).unwrap();
        let (tx, rx) = telemetry_channel(100_000, control.stats());
        Self {
            control: control.with_telemetry(tx),
            clock,
            silence,
            rx,
            deadline: 0,
        }
    }

    fn step(&mut self) -> TickRecord {
        self.deadline += self.control.period_ns();
        self.clock.sleep_until(self.deadline, 0);
        self.control.tick(self.deadline);
        let mut last = None;
        self.rx.drain(|r| last = Some(*r));
        last.expect("one record per tick")
    }
}

#[test]
fn watchdog_switches_within_one_tick_of_the_timeout_and_recovers() {
    let config = common::shipped_config("reach-arm-joint-space.toml", &[]);
    let period = config.period_ns();
    let timeout = config.safety.stale_observation_timeout_ns;
    let mut s = Stepper::new(&config, 5);
    let mut last_good = s.step();
    for _ in 0..99 {
        last_good = s.step();
        assert_eq!(last_good.fault, None);
    }
    // The robot goes silent: its last observation is the one received at this tick.
    s.silence.store(true, Ordering::Relaxed);
    let last_received = s.clock.now_ns();
    let first_fault = loop {
        let r = s.step();
        if r.fault.is_some() {
            break r;
        }
        assert!(r.start_ns - last_received <= timeout, "faulted late");
        last_good = r;
    };
    assert_eq!(first_fault.fault, Some(Cause::StaleObservation));
    let overdue = first_fault.start_ns - (last_received + timeout);
    assert!(
        overdue > 0 && overdue <= period,
        "switched {overdue} ns after the timeout"
    );
    // Hold position: the command repeats the last one the policy produced.
    assert_eq!(first_fault.command(), last_good.command());
    for _ in 0..20 {
        let r = s.step();
        assert_eq!(r.fault, Some(Cause::StaleObservation));
        assert_eq!(r.command(), last_good.command());
    }
    // The robot comes back: the tick after the next observation is the policy's again.
    s.silence.store(false, Ordering::Relaxed);
    let r = s.step();
    assert_eq!(r.fault, Some(Cause::StaleObservation)); // this tick's command wakes the plant
    let r = s.step();
    assert_eq!(r.fault, None);
}

#[test]
fn estop_latches_and_only_an_explicit_reset_clears_it() {
    let config = common::shipped_config("reach-arm-joint-space.toml", &[]);
    let mut s = Stepper::new(&config, 6);
    let mut before = s.step();
    for _ in 0..30 {
        before = s.step();
    }
    let estop = s.control.estop();
    estop.engage();
    for _ in 0..50 {
        let r = s.step();
        assert_eq!(r.fault, Some(Cause::EStop));
        assert_eq!(r.command(), before.command());
    }
    assert!(s.control.report().estop_engaged);
    estop.reset();
    let r = s.step();
    assert_eq!(r.fault, None);
    assert_eq!(s.control.interventions().get(Cause::EStop), 50);
}

#[test]
fn a_long_outage_latches_the_estop() {
    let config = common::shipped_config(
        "reach-arm-joint-space.toml",
        &[(
            "estop_after_consecutive_faults = 500",
            "estop_after_consecutive_faults = 30",
        )],
    );
    let mut s = Stepper::new(&config, 7);
    for _ in 0..10 {
        s.step();
    }
    s.silence.store(true, Ordering::Relaxed);
    for _ in 0..40 {
        s.step();
    }
    assert!(s.control.estop().is_engaged());
    assert_eq!(
        s.control.estop().latched_by(),
        Some(Cause::StaleObservation)
    );
    s.silence.store(false, Ordering::Relaxed);
    for _ in 0..10 {
        assert_eq!(
            s.step().fault,
            Some(Cause::EStop),
            "good data must not clear a latched e-stop"
        );
    }
    s.control.estop().reset();
    s.step();
    assert_eq!(s.step().fault, None);
}

#[test]
fn lockstep_runs_with_the_same_seed_are_bit_identical() {
    let config = common::shipped_config(
        "reach-arm-joint-space.toml",
        &[(
            "kind = \"joint_target\"\ntarget_rad = [0.8, 0.4, -0.9]\nspeed_fraction = 0.8",
            "kind = \"sine\"",
        )],
    );
    let run = |seed| {
        let mut s = Stepper::new(&config, seed);
        (0..500)
            .map(|_| {
                let r = s.step();
                (
                    r.command().iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    r.positions()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>()
    };
    let a = run(21);
    let b = run(21);
    let c = run(22);
    assert_eq!(a, b);
    assert_ne!(a, c);
}
