//! `rlrt run`: run a config's policy in the control loop against a robot.
//!
//! The robot is the in-process kinematic model of the configured arm, either on its own
//! thread at wall-clock rate (like hardware) or in lockstep; `run` over the zenoh link
//! (`crate::linked`) is the next step.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::Context;
use rlrt_runtime::telemetry::telemetry_channel;
use rlrt_runtime::{
    config, observation_mailbox, realtime, ControlLoop, ManualClock, RobotConfig, RunLimit,
    RunReport, WallClock,
};
use rlrt_sim::{LockstepPlant, ThreadedPlant};

#[derive(Clone, Debug)]
pub struct RunArgs {
    pub config: PathBuf,
    pub seconds: Option<f64>,
    pub ticks: Option<u64>,
    pub lockstep: bool,
    pub seed: u64,
    pub plant_rate_hz: Option<f64>,
}

/// The outcome of a run, for printing and for the exit code.
#[derive(Debug, serde::Serialize)]
pub struct RunOutcome {
    pub robot: String,
    pub report: RunReport,
    /// Commands the plant saw outside the joint limits (must be zero).
    pub out_of_limit_commands: u64,
    pub final_positions: Vec<f64>,
}

pub fn run(args: &RunArgs) -> anyhow::Result<RunOutcome> {
    let config = config::load(&args.config)?;
    warn_unrunnable(&config);
    let limit = RunLimit {
        max_ticks: args.ticks.or_else(|| {
            args.seconds
                .map(|s| (s * config.control_rate_hz).round() as u64)
        }),
    };
    if args.lockstep {
        run_lockstep(&config, args.seed, limit)
    } else {
        let plant_rate = args
            .plant_rate_hz
            .unwrap_or(config.control_rate_hz.max(1000.0));
        run_wall_clock(&config, args.seed, plant_rate, limit, None, None)
    }
}

pub(crate) fn warn_unrunnable(config: &RobotConfig) {
    tracing::info!(
        robot = config.name,
        "`run` drives the in-process kinematic model of the configured joints (not the zenoh link yet)"
    );
    for reward in &config.rewards {
        tracing::warn!(
            reward = reward.name,
            kind = ?reward.kind,
            "reward sources are validated but not evaluated by this build; ignored"
        );
    }
}

/// Runs with a plant thread at `plant_rate_hz`. `during` runs on the calling thread's
/// side while the loop ticks on its own thread (for fault injection in the demo).
pub(crate) fn run_wall_clock(
    config: &RobotConfig,
    seed: u64,
    plant_rate_hz: f64,
    limit: RunLimit,
    during: Option<&dyn Fn(&rlrt_sim::ThreadedPlantHandle)>,
    stats: Option<std::sync::Arc<rlrt_runtime::stats::LoopStats>>,
) -> anyhow::Result<RunOutcome> {
    let clock = WallClock::new();
    let (writer, reader) = observation_mailbox(config.dof(), config.observation.sensor_values);
    let (sink, plant) = ThreadedPlant::spawn(config, clock.clone(), writer, seed, plant_rate_hz)
        .context("starting the kinematic plant thread")?;
    let policy = rlrt_policies::build(config)?;
    let mut control = ControlLoop::new(config, clock, reader, policy, Box::new(sink))?;
    if let Some(stats) = stats {
        control = control.with_stats(stats);
    }
    let (telemetry, receiver) =
        telemetry_channel(config.scheduler.telemetry_queue_len, control.stats());
    control = control.with_telemetry(telemetry);
    let (log_thread, _) = crate::fault_log::spawn(receiver, config.period_ns())?;
    let scheduler = config.scheduler.clone();
    let stop = crate::signals::stop_flag();
    let report = std::thread::scope(|scope| -> anyhow::Result<RunReport> {
        let worker = std::thread::Builder::new()
            .name("rlrt-control".into())
            .spawn_scoped(scope, move || {
                for warning in realtime::apply_to_current_thread(&scheduler) {
                    tracing::warn!("{warning}");
                }
                let report = control.run(stop, limit);
                drop(control); // closes the telemetry channel
                report
            })?;
        if let Some(during) = during {
            during(&plant);
        }
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("the control thread panicked"))
    })?;
    let _ = log_thread.join();
    let shared = plant.shared();
    let _final_state = plant.stop();
    Ok(RunOutcome {
        robot: config.name.clone(),
        report,
        out_of_limit_commands: shared.out_of_limit_commands.load(Ordering::Relaxed),
        final_positions: shared.positions(),
    })
}

/// Runs in lockstep on simulation time: one plant step per command, as fast as possible.
pub(crate) fn run_lockstep(
    config: &RobotConfig,
    seed: u64,
    limit: RunLimit,
) -> anyhow::Result<RunOutcome> {
    let clock = ManualClock::new(0);
    let (writer, reader) = observation_mailbox(config.dof(), config.observation.sensor_values);
    let plant = LockstepPlant::new(config, clock.clone(), writer, seed);
    let shared = plant.shared();
    let policy = rlrt_policies::build(config)?;
    let mut control = ControlLoop::new(config, clock, reader, policy, Box::new(plant))?;
    let limit = RunLimit {
        max_ticks: limit.max_ticks.or(Some(10 * config.control_rate_hz as u64)),
    };
    let report = control.run(crate::signals::stop_flag(), limit);
    Ok(RunOutcome {
        robot: config.name.clone(),
        report,
        out_of_limit_commands: shared.out_of_limit_commands.load(Ordering::Relaxed),
        final_positions: shared.positions(),
    })
}
