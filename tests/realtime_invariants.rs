//! Proves that ticks do not allocate, on the normal path and on every fault path, with a
//! counting global allocator.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};

use rlrt_runtime::alloc_count::{self, CountingAllocator, TickScope};
use rlrt_runtime::telemetry::telemetry_channel;
use rlrt_runtime::{observation_mailbox, ControlLoop, ManualClock, Policy, PolicyError, RunLimit};
use rlrt_sim::LockstepPlant;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn the_counter_sees_allocations_inside_ticks() {
    let before = alloc_count::this_thread_tick_allocations();
    {
        let _tick = TickScope::enter();
        let v: Vec<u64> = Vec::with_capacity(std::hint::black_box(64));
        std::hint::black_box(&v);
    }
    assert!(alloc_count::is_installed());
    assert_eq!(alloc_count::this_thread_tick_allocations() - before, 1);
    // Outside a tick nothing is counted.
    let v: Vec<u64> = Vec::with_capacity(std::hint::black_box(64));
    std::hint::black_box(&v);
    assert_eq!(alloc_count::this_thread_tick_allocations() - before, 1);
}

#[test]
fn normal_ticks_with_telemetry_do_not_allocate() {
    let config = common::shipped_config(
        "franka-panda.toml",
        &[("kind = \"hold\"", "kind = \"sine\"")],
    );
    let clock = ManualClock::new(0);
    let (writer, reader) = observation_mailbox(config.dof(), config.observation.sensor_values);
    let plant = LockstepPlant::new(&config, clock.clone(), writer, 3);
    let policy = rlrt_policies::build(&config).unwrap();
    let control = ControlLoop::new(&config, clock, reader, policy, Box::new(plant)).unwrap();
    let (tx, rx) = telemetry_channel(1024, control.stats());
    let mut control = control.with_telemetry(tx);
    let stop = AtomicBool::new(false);
    control.run(
        &stop,
        RunLimit {
            max_ticks: Some(100),
        },
    );
    let before = alloc_count::this_thread_tick_allocations();
    // Drain between batches so that the channel also sees the full/empty transitions.
    for _ in 0..20 {
        control.run(
            &stop,
            RunLimit {
                max_ticks: Some(500),
            },
        );
        rx.drain(|_| {});
    }
    let report = control.report();
    assert_eq!(alloc_count::this_thread_tick_allocations() - before, 0);
    assert!(
        report.interventions.is_empty(),
        "{:?}",
        report.interventions
    );
    assert_eq!(report.loop_stats.ticks, 10_100);
}

/// A policy that fails in every way it can, in turn.
struct Chaos {
    tick: u64,
    len: usize,
    input: usize,
}

impl Policy for Chaos {
    fn name(&self) -> &str {
        "chaos"
    }
    fn input_len(&self) -> usize {
        self.input
    }
    fn output_len(&self) -> usize {
        self.len
    }
    fn act(&mut self, _obs: &[f64], action: &mut [f64]) -> Result<(), PolicyError> {
        self.tick += 1;
        match self.tick % 5 {
            0 => action.fill(f64::NAN),
            1 => action.fill(1e300),
            2 => return Err(PolicyError::Numerical),
            3 => action.fill(f64::NEG_INFINITY),
            _ => action.fill(0.1),
        }
        Ok(())
    }
}

#[test]
fn fault_paths_do_not_allocate() {
    let config = common::shipped_config(
        "reach-arm-joint-space.toml",
        &[(
            "estop_after_consecutive_faults = 500",
            "estop_after_consecutive_faults = 20",
        )],
    );
    let clock = ManualClock::new(0);
    let (writer, reader) = observation_mailbox(config.dof(), config.observation.sensor_values);
    let plant = LockstepPlant::new(&config, clock.clone(), writer, 3);
    let silence = plant.silence();
    let policy = Box::new(Chaos {
        tick: 0,
        len: config.action.len(),
        input: config.observation.feature_len,
    });
    let control = ControlLoop::new(&config, clock, reader, policy, Box::new(plant)).unwrap();
    let (tx, rx) = telemetry_channel(64, control.stats());
    let mut control = control.with_telemetry(tx);
    let estop = control.estop();
    let stop = AtomicBool::new(false);
    control.run(
        &stop,
        RunLimit {
            max_ticks: Some(10),
        },
    );
    let before = alloc_count::this_thread_tick_allocations();
    control.run(
        &stop,
        RunLimit {
            max_ticks: Some(200),
        },
    ); // bad actions, telemetry overflow
    silence.store(true, Ordering::Relaxed);
    control.run(
        &stop,
        RunLimit {
            max_ticks: Some(100),
        },
    ); // stale observations, e-stop latches
    silence.store(false, Ordering::Relaxed);
    control.run(
        &stop,
        RunLimit {
            max_ticks: Some(50),
        },
    ); // e-stop holds
    estop.reset();
    control.run(
        &stop,
        RunLimit {
            max_ticks: Some(50),
        },
    );
    assert_eq!(alloc_count::this_thread_tick_allocations() - before, 0);
    let report = control.report();
    use rlrt_runtime::Cause;
    assert!(report.count(Cause::NonFiniteAction) > 0);
    assert!(report.count(Cause::PolicyError) > 0);
    assert!(report.count(Cause::StaleObservation) > 0);
    assert!(report.count(Cause::EStop) > 0);
    assert!(report.count(Cause::RateLimit) > 0 || report.count(Cause::ActionBound) > 0);
    assert!(
        report.loop_stats.telemetry_dropped > 0,
        "the small queue must have overflowed"
    );
    drop(rx);
}

#[test]
fn trained_actor_ticks_do_not_allocate() {
    use rlrt_policies::checkpoint::{CheckpointPolicy, Normalisation};
    let config = common::shipped_config("reach-arm-joint-space.toml", &[]);
    let (inputs, outputs) = (config.observation.feature_len, config.action.len());
    // A 2x256 actor with seeded weights, copied out of burn into the batch-1 path.
    let actor = rlrt_policies::iql::seeded_actor::<burn::backend::Flex>(
        inputs,
        outputs,
        &[256, 256],
        7,
        &rlrt_policies::iql::cpu(),
    );
    let normalisation = Normalisation {
        observation_mean: vec![0.0; inputs],
        observation_std: vec![1.0; inputs],
        action_mid: config
            .action
            .min
            .iter()
            .zip(&config.action.max)
            .map(|(lo, hi)| 0.5 * (lo + hi))
            .collect(),
        action_half_range: config
            .action
            .min
            .iter()
            .zip(&config.action.max)
            .map(|(lo, hi)| 0.5 * (hi - lo))
            .collect(),
    };
    let policy = Box::new(CheckpointPolicy::from_weights(
        actor.net.weights(),
        normalisation,
    ));
    let clock = ManualClock::new(0);
    let (writer, reader) = observation_mailbox(config.dof(), config.observation.sensor_values);
    let plant = LockstepPlant::new(&config, clock.clone(), writer, 3);
    let mut control = ControlLoop::new(&config, clock, reader, policy, Box::new(plant)).unwrap();
    let stop = AtomicBool::new(false);
    control.run(
        &stop,
        RunLimit {
            max_ticks: Some(10),
        },
    );
    let before = alloc_count::this_thread_tick_allocations();
    let report = control.run(
        &stop,
        RunLimit {
            max_ticks: Some(2000),
        },
    );
    assert_eq!(alloc_count::this_thread_tick_allocations() - before, 0);
    assert_eq!(report.fault_ticks, 0, "{:?}", report.interventions);
}
