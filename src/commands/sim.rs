//! `rlrt sim <config>`: the config's MuJoCo task as a standalone robot on the zenoh link,
//! for a runtime in another process or on another host (`rlrt run <config>`). It uses the
//! config's `[link]` (a simulator on another host lists the runtime's address in
//! `link.connect`, or both find each other by multicast scouting in peer mode).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rlrt_runtime::config;
use rlrt_runtime::link::open_session;
use rlrt_sim::ServeMode;

use crate::loopback::serve_mujoco;

/// `rlrt sim`: a config's MuJoCo task served as a robot on the zenoh link.
#[derive(clap::Args, Clone, Debug)]
pub struct SimArgs {
    /// The hw-config file; its [sim] table names the task, its [link] table the session.
    pub config: PathBuf,
    /// Step once per command flagged lockstep (for training loops) instead of in real
    /// time at the control rate.
    #[arg(long)]
    pub lockstep: bool,
    /// Seed of the first episode's start state.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Do not render the cameras (no EGL needed).
    #[arg(long)]
    pub no_cameras: bool,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    pub seconds: Option<f64>,
}

#[derive(Debug, serde::Serialize)]
pub struct SimOutcome {
    pub robot: String,
    pub task: String,
    pub seconds: f64,
    pub steps: u64,
    pub commands: u64,
    pub malformed_commands: u64,
    pub dropped_commands: u64,
    pub out_of_limit_commands: u64,
    pub states_published: u64,
    pub frames_published: u64,
    /// Of the frames, those published from zenoh shared memory.
    pub frames_shared: u64,
    pub render_failures: u64,
    pub resets: u64,
}

pub fn run(args: &SimArgs) -> anyhow::Result<SimOutcome> {
    let config = config::load(&args.config)?;
    let task = config
        .sim
        .as_ref()
        .map(|s| s.task.clone())
        .unwrap_or_default();
    crate::loopback::sim_task(&config)?;
    let session = open_session(&config.link)?;
    let mode = if args.lockstep {
        ServeMode::Lockstep
    } else {
        ServeMode::FreeRun {
            rate_hz: config.control_rate_hz,
        }
    };
    let server = serve_mujoco(&session, &config, args.seed, mode, !args.no_cameras)?;
    tracing::info!(
        robot = config.name,
        task,
        prefix = config.link.key_prefix,
        mode = if args.lockstep {
            "lockstep"
        } else {
            "free-run"
        },
        "simulator serving; Ctrl-C stops"
    );
    let stop = crate::signals::stop_flag();
    let stats = server.stats();
    let start = Instant::now();
    let mut last_report = Instant::now();
    while !stop.load(Ordering::Relaxed)
        && args
            .seconds
            .is_none_or(|s| start.elapsed().as_secs_f64() < s)
    {
        std::thread::sleep(Duration::from_millis(20));
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            tracing::info!(
                steps = stats.steps.load(Ordering::Relaxed),
                commands = stats.commands.load(Ordering::Relaxed),
                frames = stats.frames_published.load(Ordering::Relaxed),
                malformed_commands = stats.malformed_commands.load(Ordering::Relaxed),
                "simulator"
            );
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    drop(server);
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    Ok(SimOutcome {
        robot: config.name.clone(),
        task,
        seconds,
        steps: load(&stats.steps),
        commands: load(&stats.commands),
        malformed_commands: load(&stats.malformed_commands),
        dropped_commands: load(&stats.dropped_commands),
        out_of_limit_commands: load(&stats.out_of_limit_commands),
        states_published: load(&stats.states_published),
        frames_published: load(&stats.frames_published),
        frames_shared: load(&stats.frames_shared),
        render_failures: load(&stats.render_failures),
        resets: load(&stats.resets),
    })
}

impl std::fmt::Display for SimOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "simulated {} ({:?} task) for {:.1} s: {} steps, {} states and {} camera frames published ({} from shared memory)",
            self.robot,
            self.task,
            self.seconds,
            self.steps,
            self.states_published,
            self.frames_published,
            self.frames_shared
        )?;
        writeln!(
            f,
            "commands {} (malformed {}, dropped {}, outside joint limits {}), resets {}, render failures {}",
            self.commands,
            self.malformed_commands,
            self.dropped_commands,
            self.out_of_limit_commands,
            self.resets,
            self.render_failures
        )
    }
}

/// `rlrt sim`: serves until Ctrl-C (or `--seconds`), then prints the counters.
pub fn execute(args: SimArgs, output: super::Output) -> anyhow::Result<super::Exit> {
    crate::signals::stop_flag();
    output.print(&run(&args)?)?;
    Ok(super::Exit::Success)
}
