//! `rlrt demo`: the built-in demonstration. The MuJoCo reach task serves the reach arm over
//! a real zenoh link on 127.0.0.1, with its camera rendering offscreen; the runtime drives
//! it at 100 Hz on wall-clock time with the scripted end-effector controller, through the
//! safety layer, for a set of seeded episodes. In the middle episode the simulator is
//! killed and restarted (a robot dropping off the network): the runtime notices through
//! liveliness and the watchdog, commands its fault action, and carries on when the robot
//! is back. Success is the task's ground truth, asked of the simulator after each episode.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rlrt_runtime::link::{open_session, CameraCounts, LinkCounters};
use rlrt_runtime::protocol::EpisodeOp;
use rlrt_runtime::stats::LoopStats;
use rlrt_runtime::telemetry::telemetry_channel;
use rlrt_runtime::Clock;
use rlrt_runtime::{realtime, Cause, RunLimit};
use rlrt_sim::ServeMode;

use crate::linked::LinkedRuntime;
use crate::loopback::{free_port, loopback_configs, serve_mujoco};
use crate::telemetry::{RunTelemetry, TelemetryOutcome, TelemetrySetup};
use crate::timeline::{Destination, RerunSummary};
use rlrt_rewards::live::frames::{FrameRewardSummary, FrameRewards};
use rlrt_rewards::live::programs::{write_summaries, ProgramRewards, ProgramSummary};
use rlrt_runtime::hub::Event;

/// The demo's robot when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "hw-configs/reach-arm.toml";
const DEFAULT_CONFIG_TEXT: &str = include_str!("../../hw-configs/reach-arm.toml");

/// `rlrt demo`: the MuJoCo reach task over loopback zenoh, driven by the scripted controller.
#[derive(clap::Args, Clone, Debug)]
pub struct DemoArgs {
    /// Another hw-config (with a [sim] table) instead of the built-in reach arm.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, default_value_t = 5)]
    pub episodes: u32,
    /// Episode length (default: the task's episode_seconds).
    #[arg(long)]
    pub episode_seconds: Option<f64>,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// How long the simulator stays killed in the middle episode (0: never killed).
    #[arg(long, default_value_t = 300.0)]
    pub dropout_ms: f64,
    /// Do not render the cameras (no EGL needed).
    #[arg(long)]
    pub no_cameras: bool,
    /// Log frames, joints, actions, every reward term, safety events and timing to rerun:
    /// save=<file.rrd>, spawn (start a viewer) or connect[=<host:port>].
    #[arg(long, value_name = "DESTINATION")]
    pub rerun: Option<Destination>,
}

#[derive(Debug, serde::Serialize)]
pub struct EpisodeResult {
    pub seed: u64,
    pub success: bool,
    /// The task's success measure at the end (such as the distance to the target, m).
    pub score: f64,
    pub steps: u64,
    /// Ticks on which the fault action was commanded.
    pub fault_ticks: u64,
    /// How long the simulator was away during this episode (0: it was not).
    pub outage_ms: f64,
}

#[derive(Debug, serde::Serialize)]
pub struct DemoOutcome {
    pub robot: String,
    pub task: String,
    /// The policy that drove the robot (`policy.kind` of the config).
    pub policy: String,
    pub episodes: Vec<EpisodeResult>,
    pub success_rate: f64,
    pub out_of_limit_commands: u64,
    pub loop_stats: rlrt_runtime::stats::LoopSummary,
    pub interventions: Vec<(Cause, u64)>,
    /// Every link counter by name, zeros included (see [`LinkCounters`]).
    pub link: Vec<(&'static str, u64)>,
    pub cameras: Vec<CameraCounts>,
    /// The config's reward programs over the whole demo.
    pub rewards: Vec<ProgramSummary>,
    /// The config's clip and classifier rewards over the whole demo.
    pub frame_rewards: Vec<FrameRewardSummary>,
    /// What went to rerun, when asked.
    pub rerun: Option<RerunSummary>,
}

impl DemoOutcome {
    /// The demo passes when every command stayed in limits and every episode succeeded.
    pub fn passed(&self) -> bool {
        self.out_of_limit_commands == 0 && self.success_rate == 1.0
    }
}

pub fn run(args: &DemoArgs) -> anyhow::Result<DemoOutcome> {
    let (text, path) = match &args.config {
        Some(p) => (
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            p.clone(),
        ),
        None => (
            DEFAULT_CONFIG_TEXT.to_owned(),
            PathBuf::from(DEFAULT_CONFIG_PATH),
        ),
    };
    let config = super::parse_with_overrides(&text, &path, &[])?;
    let task = config
        .sim
        .as_ref()
        .map(|s| s.task.clone())
        .with_context(|| format!("{}: the demo needs a [sim] table", path.display()))?;
    let (runtime_config, robot_config) = loopback_configs(&config, free_port()?);
    let rewards = ProgramRewards::load(&config)?;
    let frame_rewards = FrameRewards::load(&config)?;

    // The runtime's side, with loop statistics and the fault log.
    let LinkedRuntime {
        control,
        link,
        waker,
    } = LinkedRuntime::connect(&runtime_config, 0)?;
    let stats = Arc::new(LoopStats::default());
    let (telemetry, receiver) =
        telemetry_channel(config.scheduler.telemetry_queue_len, stats.clone());
    let mut rt = LinkedRuntime {
        control: control.with_stats(stats.clone()).with_telemetry(telemetry),
        link,
        waker,
    };
    let telemetry = RunTelemetry::start(
        &config,
        receiver,
        TelemetrySetup::on_link(
            &rt,
            format!("rlrt demo {}", config.name),
            rewards,
            frame_rewards,
            args.rerun.as_ref(),
        ),
    )?;
    let rerun_handle = telemetry.rerun_handle();

    // The robot's side: MuJoCo in free-run at the control rate, like hardware.
    let sim_session = open_session(&robot_config.link)?;
    let mode = ServeMode::FreeRun {
        rate_hz: config.control_rate_hz,
    };
    let start_sim =
        |seed: u64| serve_mujoco(&sim_session, &robot_config, seed, mode, !args.no_cameras);
    let mut sim = Some(start_sim(args.seed)?);
    let episode_seconds = match args.episode_seconds {
        Some(s) => s,
        None => task_episode_seconds(&robot_config)?,
    };
    let link_stats = rt.link.stats();
    wait_for(Duration::from_secs(10), || {
        link_stats.states_accepted.load(Ordering::Relaxed) > 0
    })
    .context("the simulator never sent a state over the link")?;

    let mut episodes = Vec::new();
    let mut out_of_limit = 0;
    let stop = crate::signals::stop_flag();
    let scheduler = config.scheduler.clone();
    let ticks_per_episode = (episode_seconds * config.control_rate_hz).round() as u64;
    for index in 0..args.episodes {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let seed = args.seed.wrapping_add(index as u64);
        rt.link.send_episode(EpisodeOp::Reset { seed })?;
        wait_for(Duration::from_secs(5), || {
            rt.link
                .query_evaluation(Duration::from_millis(500))
                .is_ok_and(|e| e.seed == seed)
        })
        .with_context(|| format!("the simulator did not reset to seed {seed}"))?;
        rt.control.reset_episode();
        let outage = index == args.episodes / 2 && args.dropout_ms > 0.0;
        let outage_ticks = if outage {
            ((1.0 + args.dropout_ms / 1e3) * config.control_rate_hz).round() as u64
        } else {
            0
        };
        let faults_before = rt.control.report().fault_ticks;
        let limit = RunLimit {
            max_ticks: Some(ticks_per_episode + outage_ticks),
        };
        let control = &mut rt.control;
        let scheduler = &scheduler;
        std::thread::scope(|scope| -> anyhow::Result<()> {
            let worker = std::thread::Builder::new()
                .name("rlrt-control".into())
                .spawn_scoped(scope, move || {
                    for warning in realtime::apply_to_current_thread(scheduler) {
                        tracing::warn!("{warning}");
                    }
                    control.run(stop, limit)
                })?;
            if outage {
                std::thread::sleep(Duration::from_secs(1));
                if let Some(server) = sim.take() {
                    out_of_limit += server.stats().out_of_limit_commands.load(Ordering::Relaxed);
                }
                tracing::warn!(
                    dropout_ms = args.dropout_ms,
                    "demo: killing the simulator (the robot drops off the network)"
                );
                std::thread::sleep(Duration::from_secs_f64(args.dropout_ms / 1e3));
                sim = Some(start_sim(seed)?);
                tracing::info!("demo: the simulator is back, starting the episode over");
            }
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("the control thread panicked"))?;
            Ok(())
        })?;
        let e = rt
            .link
            .query_evaluation(Duration::from_secs(2))
            .context("asking the simulator for the episode's verdict")?;
        let result = EpisodeResult {
            seed,
            success: e.success,
            score: e.score,
            steps: e.steps,
            fault_ticks: rt.control.report().fault_ticks - faults_before,
            outage_ms: if outage { args.dropout_ms } else { 0.0 },
        };
        tracing::info!(
            episode = index,
            seed,
            success = result.success,
            score = format!("{:.4}", result.score),
            "episode done"
        );
        if let Some(rerun) = &rerun_handle {
            rerun.offer(Event::Text {
                tick: stats.ticks.load(Ordering::Relaxed),
                time_ns: rt.control.clock().now_ns(),
                level: if result.success { "INFO" } else { "WARN" },
                text: format!(
                    "episode {index} (seed {seed}) ended: {}, score {:.4}",
                    if result.success { "success" } else { "failure" },
                    result.score
                ),
            });
        }
        episodes.push(result);
    }
    if let Some(server) = sim.take() {
        out_of_limit += server.stats().out_of_limit_commands.load(Ordering::Relaxed);
    }
    let report = rt.control.report();
    let LinkCounters {
        counters: link,
        cameras: camera_reports,
    } = rt.link.counters();
    drop(rt); // closes the telemetry channel
    drop(rerun_handle);
    let TelemetryOutcome {
        programs: rewards,
        frame_rewards,
        rerun,
        ..
    } = telemetry.finish();
    let successes = episodes.iter().filter(|e| e.success).count();
    Ok(DemoOutcome {
        robot: config.name.clone(),
        task,
        policy: format!("{:?}", config.policy.kind),
        success_rate: successes as f64 / episodes.len().max(1) as f64,
        episodes,
        out_of_limit_commands: out_of_limit,
        loop_stats: stats.summary(),
        interventions: report.interventions,
        link,
        cameras: camera_reports,
        rewards,
        frame_rewards,
        rerun,
    })
}

fn task_episode_seconds(config: &rlrt_runtime::RobotConfig) -> anyhow::Result<f64> {
    let task = crate::loopback::sim_task(config)?;
    Ok(task.file.episode_seconds(config.period_s()))
}

fn wait_for(timeout: Duration, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    while !ready() {
        if start.elapsed() > timeout {
            anyhow::bail!("timed out after {} s", timeout.as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

impl std::fmt::Display for DemoOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "rlrt demo: {} on the MuJoCo {:?} task over zenoh (tcp/127.0.0.1), policy {}",
            self.robot, self.task, self.policy
        )?;
        for (i, e) in self.episodes.iter().enumerate() {
            writeln!(
                f,
                "  episode {i} seed {:>3}: {}  final distance {:.4} m after {} steps{}",
                e.seed,
                if e.success { "success" } else { "FAILED " },
                e.score,
                e.steps,
                if e.outage_ms > 0.0 {
                    format!(
                        "  (simulator killed for {} ms: {} ticks on the fault action)",
                        e.outage_ms, e.fault_ticks
                    )
                } else {
                    String::new()
                }
            )?;
        }
        writeln!(
            f,
            "success rate {:.0}%  ({} episodes)",
            self.success_rate * 100.0,
            self.episodes.len()
        )?;
        writeln!(
            f,
            "commands outside joint limits seen by the robot: {}",
            self.out_of_limit_commands
        )?;
        for c in &self.cameras {
            writeln!(f, "{c}")?;
        }
        write_summaries(f, &self.rewards)?;
        rlrt_rewards::live::frames::write_summaries(f, &self.frame_rewards)?;
        write!(f, "{}", self.loop_stats)?;
        if self.interventions.is_empty() {
            writeln!(f, "safety interventions: none")?;
        } else {
            writeln!(f, "safety interventions:")?;
            for (cause, n) in &self.interventions {
                writeln!(f, "  {:<24} {n:>10}", cause.name())?;
            }
        }
        super::write_link_counters(f, &self.link)?;
        if let Some(rerun) = &self.rerun {
            write!(f, "{rerun}")?;
        }
        Ok(())
    }
}

/// `rlrt demo`: runs the episodes and prints the outcome; exit code 3 unless it passed.
pub fn execute(args: DemoArgs, output: super::Output) -> anyhow::Result<super::Exit> {
    crate::signals::stop_flag();
    let outcome = run(&args)?;
    output.print(&outcome)?;
    Ok(super::Exit::run_failed_unless(outcome.passed()))
}
