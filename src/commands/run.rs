//! `rlrt run`: run a config's policy in the control loop against a robot.
//!
//! The robot is, by default, whatever answers on the zenoh link the config describes:
//! hardware behind its driver, or `rlrt sim` in another process or on another host.
//! `--sim` serves the config's MuJoCo task in this process over a loopback link instead,
//! and `--kinematic` uses the in-process kinematic model without any link. `--lockstep`
//! (with `--sim` or `--kinematic`) steps the simulation once per command, as fast as the
//! loop goes.

use std::path::PathBuf;
#[cfg(feature = "sim")]
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
#[cfg(feature = "sim")]
use rlrt_runtime::link::open_session;
use rlrt_runtime::link::{CameraCounts, LinkCounters};
#[cfg(feature = "sim")]
use rlrt_runtime::protocol::FLAG_LOCKSTEP_STEP;
use rlrt_runtime::telemetry::telemetry_channel;
use rlrt_runtime::Clock;
use rlrt_runtime::{
    config, observation_mailbox, realtime, ControlLoop, ManualClock, RobotConfig, RunLimit,
    RunReport, WallClock,
};
#[cfg(feature = "sim")]
use rlrt_sim::ServeMode;
use rlrt_sim::{LockstepPlant, ThreadedPlant};

use crate::linked::LinkedRuntime;
#[cfg(feature = "sim")]
use crate::loopback::{free_port, loopback_configs, serve_mujoco};
use crate::telemetry::{RunTelemetry, TelemetryOutcome, TelemetrySetup};
use crate::timeline::{Destination, RerunSummary, WallTime};
use rlrt_rewards::live::frames::{FrameRewardSummary, FrameRewards};
use rlrt_rewards::live::programs::{ProgramRewards, ProgramSummary};

/// Which robot `run` drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Robot {
    /// Whatever answers on the config's link.
    Link,
    /// The config's MuJoCo task, served in this process over a loopback link.
    Sim,
    /// The in-process kinematic model, no link.
    Kinematic,
}

/// `rlrt run`: a robot config's policy in the control loop.
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// The hw-config file.
    pub config: PathBuf,
    /// Stop after this many seconds (of loop time).
    #[arg(long, conflicts_with = "ticks")]
    pub seconds: Option<f64>,
    /// Stop after this many ticks.
    #[arg(long)]
    pub ticks: Option<u64>,
    /// Serve the config's [sim] task in MuJoCo in this process, over a loopback link.
    #[arg(long, conflicts_with = "kinematic")]
    pub sim: bool,
    /// Use the in-process kinematic model of the configured joints (no link).
    #[arg(long)]
    pub kinematic: bool,
    /// With --sim or --kinematic: step once per command, as fast as possible
    /// (deterministic); without it the simulation runs in real time.
    #[arg(long)]
    pub lockstep: bool,
    /// Seed of the simulated robot's start state.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Rate of the kinematic model's thread in real time (default: max(1000, control rate)).
    #[arg(long)]
    pub plant_rate_hz: Option<f64>,
    /// How long to wait for the robot's first state over the link.
    #[arg(long, default_value_t = 10.0)]
    pub wait_seconds: f64,
    /// Log frames, joints, actions, every reward term, safety events and timing to rerun:
    /// save=<file.rrd>, spawn (start a viewer) or connect[=<host:port>].
    #[arg(long, value_name = "DESTINATION")]
    pub rerun: Option<Destination>,
    /// Record the run as an rlrt dataset in this folder (continued if it holds one of the
    /// same config): every tick's observation and command, and the camera frames, in
    /// episodes cut at faults and every --episode-seconds; rewards are left for `rlrt
    /// relabel`.
    #[arg(long, value_name = "FOLDER")]
    pub record: Option<PathBuf>,
    /// With --record: the longest episode, seconds (each is written when it ends, so a
    /// crash loses at most this much).
    #[arg(long, default_value_t = 30.0, requires = "record")]
    pub episode_seconds: f64,
}

impl RunArgs {
    /// The robot the flags choose.
    pub fn robot(&self) -> Robot {
        match (self.sim, self.kinematic) {
            (true, _) => Robot::Sim,
            (_, true) => Robot::Kinematic,
            _ => Robot::Link,
        }
    }

    /// What `--record` asks for, with the config file's text to save beside the dataset.
    fn recording(&self) -> anyhow::Result<Option<rlrt_runtime::hub::recorder::Recording>> {
        let Some(dir) = &self.record else {
            return Ok(None);
        };
        anyhow::ensure!(
            self.episode_seconds.is_finite() && self.episode_seconds > 0.0,
            "--episode-seconds {}: expected a positive number",
            self.episode_seconds
        );
        let (_, config_text) = super::load_config(&self.config)?;
        Ok(Some(rlrt_runtime::hub::recorder::Recording {
            dir: dir.clone(),
            config_path: self.config.clone(),
            config_text,
            episode_seconds: self.episode_seconds,
        }))
    }
}

/// The outcome of a run, for printing and for the exit code.
#[derive(Debug, serde::Serialize)]
pub struct RunOutcome {
    pub robot: String,
    pub report: RunReport,
    /// Commands the robot saw outside the joint limits (must be zero); known when the
    /// robot is simulated in this process.
    pub out_of_limit_commands: Option<u64>,
    /// Final joint positions (kinematic model only).
    pub final_positions: Vec<f64>,
    /// Every link counter by name, zeros included, with the totals over the cameras
    /// (`camera_frames_received`, `camera_frames_rejected`); empty without a link.
    pub link: Vec<(&'static str, u64)>,
    /// What each camera of the link received and rejected (runs over the link).
    pub cameras: Vec<CameraCounts>,
    /// The config's reward programs, evaluated on every tick with an observation (runs
    /// over the link).
    pub rewards: Vec<ProgramSummary>,
    /// The config's clip and classifier rewards, scored on the link's camera frames.
    pub frame_rewards: Vec<FrameRewardSummary>,
    /// What went to rerun, when asked.
    pub rerun: Option<RerunSummary>,
    /// What `--record` wrote.
    pub recording: Option<rlrt_runtime::hub::recorder::RecordingSummary>,
}

pub fn run(args: &RunArgs) -> anyhow::Result<RunOutcome> {
    let config = config::load(&args.config)?;
    run_config(&config, args)
}

/// [`run`] with a config already loaded (`args.config` is not read).
pub fn run_config(config: &RobotConfig, args: &RunArgs) -> anyhow::Result<RunOutcome> {
    let config = config.clone();
    let robot = args.robot();
    warn_unrunnable(&config, robot);
    let limit = RunLimit {
        max_ticks: args.ticks.or_else(|| {
            args.seconds
                .map(|s| (s * config.control_rate_hz).round() as u64)
        }),
    };
    let rerun = args.rerun.as_ref();
    let record = args.recording()?;
    let record = record.as_ref();
    if robot == Robot::Kinematic
        && config.action.mode == rlrt_runtime::config::ActionMode::JointEffort
    {
        anyhow::bail!(
            "{}: the kinematic model takes joint positions or velocities, not action.mode = \
             \"joint_effort\"; use --sim (MuJoCo) or a robot on the link",
            config.source.display()
        );
    }
    match (robot, args.lockstep) {
        (Robot::Kinematic, true) => run_lockstep(&config, args.seed, limit, rerun, record),
        (Robot::Kinematic, false) => {
            let plant_rate = args
                .plant_rate_hz
                .unwrap_or(config.control_rate_hz.max(1000.0));
            run_wall_clock(&config, args.seed, plant_rate, limit, rerun, record)
        }
        (Robot::Link, true) => anyhow::bail!(
            "--lockstep needs --sim or --kinematic (a robot on the link sets its own pace; \
             `rlrt sim --lockstep` serves a lockstep simulator)"
        ),
        (Robot::Link, false) => run_link(&config, limit, args.wait_seconds, rerun, record),
        #[cfg(not(feature = "sim"))]
        (Robot::Sim, _) => anyhow::bail!(
            "--sim: this rlrt was built without MuJoCo (the robot build); run against a robot \
             on the link, use --kinematic, or rebuild with the default features"
        ),
        #[cfg(feature = "sim")]
        (Robot::Sim, lockstep) => {
            crate::loopback::sim_task(&config)?;
            let (runtime_config, robot_config) = loopback_configs(&config, free_port()?);
            let session = open_session(&robot_config.link)?;
            let mode = if lockstep {
                ServeMode::Lockstep
            } else {
                ServeMode::FreeRun {
                    rate_hz: config.control_rate_hz,
                }
            };
            let sim = serve_mujoco(&session, &robot_config, args.seed, mode, true)?;
            let mut outcome = if lockstep {
                run_link_lockstep(
                    &runtime_config,
                    args.seed,
                    limit,
                    args.wait_seconds,
                    rerun,
                    record,
                )?
            } else {
                run_link(&runtime_config, limit, args.wait_seconds, rerun, record)?
            };
            outcome.out_of_limit_commands =
                Some(sim.stats().out_of_limit_commands.load(Ordering::Relaxed));
            Ok(outcome)
        }
    }
}

fn wait_for_robot(rt: &LinkedRuntime, config: &RobotConfig, wait_s: f64) -> anyhow::Result<()> {
    let stats = rt.link.stats();
    let start = Instant::now();
    while stats.states_accepted.load(Ordering::Relaxed) == 0 {
        if start.elapsed().as_secs_f64() > wait_s {
            let l = &config.link;
            if let Some(ros) = &l.ros2 {
                // Say what was seen: nothing at all, or samples that were all refused.
                let refused: Vec<String> = stats
                    .snapshot()
                    .into_iter()
                    .filter(|(name, n)| *n > 0 && *name != "states_received")
                    .map(|(name, n)| format!("{name} {n}"))
                    .collect();
                anyhow::bail!(
                    "no sensor_msgs/msg/JointState accepted on {} (ROS domain {}) within {wait_s} s \
                     (link mode {:?}, connect {:?}, listen {:?}; received {}, {}); is the robot's \
                     rmw_zenohd router reachable, does joint_state_broadcaster publish there, and \
                     do its joint names include every [[joints]] name of {}?",
                    ros.state_topic,
                    ros.domain_id,
                    l.mode,
                    l.connect,
                    l.listen,
                    stats.states_received.load(Ordering::Relaxed),
                    if refused.is_empty() {
                        "none refused".to_owned()
                    } else {
                        refused.join(", ")
                    },
                    config.source.display()
                );
            }
            anyhow::bail!(
                "no robot state arrived on {} within {wait_s} s (link mode {:?}, listen {:?}, connect {:?}); \
                 is the robot's driver or `rlrt sim {}` running?",
                rt.link.keys().state,
                l.mode,
                l.listen,
                l.connect,
                config.source.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Connects the loop to the robot on the config's link (`command_flags` on every command)
/// with its telemetry channel open and the run's consumers started, once the robot's state
/// arrives; `before_wait` runs first.
fn connect_with_telemetry(
    config: &RobotConfig,
    command_flags: u8,
    wait_s: f64,
    rerun: Option<&Destination>,
    record: Option<&rlrt_runtime::hub::recorder::Recording>,
    before_wait: impl FnOnce(&LinkedRuntime) -> anyhow::Result<()>,
) -> anyhow::Result<(LinkedRuntime, RunTelemetry)> {
    let rewards = ProgramRewards::load(config)?;
    let frame_rewards = FrameRewards::load(config)?;
    let mut rt = LinkedRuntime::connect(config, command_flags)?;
    let (sender, receiver) =
        telemetry_channel(config.scheduler.telemetry_queue_len, rt.control.stats());
    rt.control.set_telemetry(sender);
    before_wait(&rt)?;
    wait_for_robot(&rt, config, wait_s)?;
    let telemetry = RunTelemetry::start(
        config,
        receiver,
        TelemetrySetup::on_link(
            &rt,
            format!("rlrt run {}", config.name),
            rewards,
            frame_rewards,
            rerun,
        )
        .with_recording(record.cloned()),
    )?;
    Ok((rt, telemetry))
}

/// Runs the loop on wall-clock time against the robot on the config's link.
fn run_link(
    config: &RobotConfig,
    limit: RunLimit,
    wait_s: f64,
    rerun: Option<&Destination>,
    record: Option<&rlrt_runtime::hub::recorder::Recording>,
) -> anyhow::Result<RunOutcome> {
    let (mut rt, telemetry) = connect_with_telemetry(config, 0, wait_s, rerun, record, |_| Ok(()))?;
    let report = on_control_thread(&mut rt.control, config, limit)?;
    let link = rt.link.counters();
    drop(rt); // closes the telemetry channel
    Ok(outcome(config, report, telemetry, Some(link), None))
}

/// Runs against a lockstep simulator on the link: one tick per state, as fast as it goes.
#[cfg(feature = "sim")]
fn run_link_lockstep(
    config: &RobotConfig,
    seed: u64,
    limit: RunLimit,
    wait_s: f64,
    rerun: Option<&Destination>,
    record: Option<&rlrt_runtime::hub::recorder::Recording>,
) -> anyhow::Result<RunOutcome> {
    // A lockstep simulator publishes its start state once, possibly before this session
    // has met it: ask for the seeded reset until a state arrives.
    let ask_for_reset = |rt: &LinkedRuntime| -> anyhow::Result<()> {
        let stats = rt.link.stats();
        let start = Instant::now();
        while stats.states_accepted.load(Ordering::Relaxed) == 0
            && start.elapsed().as_secs_f64() < wait_s
        {
            rt.link
                .send_episode(rlrt_runtime::protocol::EpisodeOp::Reset { seed })?;
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    };
    let (mut rt, telemetry) = connect_with_telemetry(
        config,
        FLAG_LOCKSTEP_STEP,
        wait_s,
        rerun,
        record,
        ask_for_reset,
    )?;
    let max_ticks = limit
        .max_ticks
        .unwrap_or(10 * config.control_rate_hz as u64);
    let stop = AtomicBool::new(false);
    let user_stop = crate::signals::stop_flag();
    let ticks = rt.control.stats();
    std::thread::scope(|scope| {
        let (rt, stop_ref) = (&mut rt, &stop);
        let worker = scope.spawn(move || rt.lockstep_from_reset(stop_ref, seed, max_ticks));
        while ticks.ticks.load(Ordering::Relaxed) < max_ticks
            && !user_stop.load(Ordering::Relaxed)
            && !worker.is_finished()
        {
            std::thread::sleep(Duration::from_micros(500));
        }
        stop.store(true, Ordering::Relaxed);
        worker.join().expect("the lockstep worker panicked")
    })?;
    let report = rt.control.report();
    let link = rt.link.counters();
    drop(rt); // closes the telemetry channel
    Ok(outcome(config, report, telemetry, Some(link), None))
}

pub(crate) fn warn_unrunnable(config: &RobotConfig, robot: Robot) {
    use rlrt_runtime::config::RewardKind;
    for reward in &config.rewards {
        match reward.kind {
            RewardKind::Program => {}
            _ if robot != Robot::Kinematic => {}
            _ => tracing::warn!(
                reward = reward.name,
                kind = ?reward.kind,
                "the kinematic model has no cameras: this frame-scored reward is ignored"
            ),
        }
    }
}

/// Runs with the kinematic model on its own thread at `plant_rate_hz`.
pub(crate) fn run_wall_clock(
    config: &RobotConfig,
    seed: u64,
    plant_rate_hz: f64,
    limit: RunLimit,
    rerun: Option<&Destination>,
    record: Option<&rlrt_runtime::hub::recorder::Recording>,
) -> anyhow::Result<RunOutcome> {
    let rewards = ProgramRewards::load(config)?;
    let clock = WallClock::new();
    let wall = WallTime::from_clock_now(clock.now_ns());
    let (writer, reader) = observation_mailbox(config.dof(), config.observation.sensor_values);
    let (sink, plant) = ThreadedPlant::spawn(config, clock.clone(), writer, seed, plant_rate_hz)
        .context("starting the kinematic plant thread")?;
    let policy = rlrt_policies::build(config)?;
    let mut control = ControlLoop::new(config, clock, reader, policy, Box::new(sink))?;
    let (telemetry, receiver) =
        telemetry_channel(config.scheduler.telemetry_queue_len, control.stats());
    control = control.with_telemetry(telemetry);
    let telemetry = RunTelemetry::start(
        config,
        receiver,
        TelemetrySetup::without_link(format!("rlrt run {}", config.name), rewards, rerun, wall)
            .with_recording(record.cloned()),
    )?;
    let report = on_control_thread(&mut control, config, limit)?;
    drop(control); // closes the telemetry channel
    let shared = plant.shared();
    let _final_state = plant.stop();
    let seen = PlantSeen {
        out_of_limit_commands: shared.out_of_limit_commands.load(Ordering::Relaxed),
        final_positions: shared.positions(),
    };
    Ok(outcome(config, report, telemetry, None, Some(seen)))
}

/// Runs in lockstep on simulation time: one plant step per command, as fast as possible.
pub(crate) fn run_lockstep(
    config: &RobotConfig,
    seed: u64,
    limit: RunLimit,
    rerun: Option<&Destination>,
    record: Option<&rlrt_runtime::hub::recorder::Recording>,
) -> anyhow::Result<RunOutcome> {
    let rewards = ProgramRewards::load(config)?;
    let clock = ManualClock::new(0);
    let (writer, reader) = observation_mailbox(config.dof(), config.observation.sensor_values);
    let plant = LockstepPlant::new(config, clock.clone(), writer, seed);
    let shared = plant.shared();
    let policy = rlrt_policies::build(config)?;
    let mut control = ControlLoop::new(config, clock, reader, policy, Box::new(plant))?;
    let (sender, receiver) =
        telemetry_channel(config.scheduler.telemetry_queue_len, control.stats());
    control = control.with_telemetry(sender);
    let telemetry = RunTelemetry::start(
        config,
        receiver,
        TelemetrySetup::without_link(
            format!("rlrt run {}", config.name),
            rewards,
            rerun,
            WallTime::OnArrival,
        )
        .with_recording(record.cloned()),
    )?;
    let limit = RunLimit {
        max_ticks: limit.max_ticks.or(Some(10 * config.control_rate_hz as u64)),
    };
    let report = control.run(crate::signals::stop_flag(), limit);
    drop(control); // closes the telemetry channel
    let seen = PlantSeen {
        out_of_limit_commands: shared.out_of_limit_commands.load(Ordering::Relaxed),
        final_positions: shared.positions(),
    };
    Ok(outcome(config, report, telemetry, None, Some(seen)))
}

/// Runs the loop on a thread of its own, with the config's scheduling (priority, CPU).
fn on_control_thread<C: Clock + Send>(
    control: &mut ControlLoop<C>,
    config: &RobotConfig,
    limit: RunLimit,
) -> anyhow::Result<RunReport> {
    let scheduler = config.scheduler.clone();
    let stop = crate::signals::stop_flag();
    std::thread::scope(|scope| -> anyhow::Result<RunReport> {
        let worker = std::thread::Builder::new()
            .name("rlrt-control".into())
            .spawn_scoped(scope, move || {
                for warning in realtime::apply_to_current_thread(&scheduler) {
                    tracing::warn!("{warning}");
                }
                control.run(stop, limit)
            })?;
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("the control thread panicked"))
    })
}

/// What the robot itself saw, where rlrt runs it in process (the kinematic model).
struct PlantSeen {
    out_of_limit_commands: u64,
    final_positions: Vec<f64>,
}

/// The outcome of a run whose loop has ended and whose telemetry channel is closed: waits
/// for the consumers to drain and collects their summaries.
fn outcome(
    config: &RobotConfig,
    report: RunReport,
    telemetry: RunTelemetry,
    link: Option<LinkCounters>,
    plant: Option<PlantSeen>,
) -> RunOutcome {
    let LinkCounters { counters, cameras } = link.unwrap_or(LinkCounters {
        counters: Vec::new(),
        cameras: Vec::new(),
    });
    let TelemetryOutcome {
        programs: rewards,
        frame_rewards,
        recording,
        rerun,
    } = telemetry.finish();
    RunOutcome {
        robot: config.name.clone(),
        report,
        out_of_limit_commands: plant.as_ref().map(|p| p.out_of_limit_commands),
        final_positions: plant.map(|p| p.final_positions).unwrap_or_default(),
        link: counters,
        cameras,
        rewards,
        frame_rewards,
        rerun,
        recording,
    }
}

impl RunOutcome {
    /// A run passes when the robot saw no command outside the joint limits and a recording
    /// asked for was written (a recording not written is a failed run, whatever the robot did).
    pub fn passed(&self) -> bool {
        let recording_failed = self.recording.as_ref().is_some_and(|r| r.error.is_some());
        self.out_of_limit_commands.unwrap_or(0) == 0 && !recording_failed
    }
}

impl std::fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "robot {}", self.robot)?;
        write!(f, "{}", self.report)?;
        if let Some(n) = self.out_of_limit_commands {
            writeln!(f, "commands outside joint limits seen by the robot: {n}")?;
        }
        rlrt_rewards::live::programs::write_summaries(f, &self.rewards)?;
        rlrt_rewards::live::frames::write_summaries(f, &self.frame_rewards)?;
        for c in &self.cameras {
            writeln!(f, "{c}")?;
        }
        super::write_link_counters(f, &self.link)?;
        if let Some(rerun) = &self.rerun {
            write!(f, "{rerun}")?;
        }
        if let Some(recording) = &self.recording {
            write!(f, "{recording}")?;
        }
        Ok(())
    }
}

/// `rlrt run`: runs, prints the report, and fails (exit code 3) when [`RunOutcome::passed`]
/// is false.
pub fn execute(args: RunArgs, output: super::Output) -> anyhow::Result<super::Exit> {
    // Ctrl-C stops the loop at the end of a tick; taken before the set-up so that a signal
    // that arrives while the run starts is not lost.
    crate::signals::stop_flag();
    let outcome = run(&args)?;
    output.print(&outcome)?;
    Ok(super::Exit::run_failed_unless(outcome.passed()))
}
