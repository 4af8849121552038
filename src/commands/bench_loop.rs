//! `rlrt bench loop`: how punctually the control loop ticks.
//!
//! rlrt's loop (absolute deadlines, sleep then spin, reduced timer slack, optional pinning
//! and SCHED_FIFO) runs a 7-joint arm with a plant thread streaming observations at the
//! control rate and the telemetry consumer draining records, as `rlrt run` does. The peer is
//! the loop most people write first: the same tick, paced by sleeping until each absolute
//! deadline with the thread's default settings. Both run in the same process, one after the
//! other, and report start lateness (jitter).

use std::path::PathBuf;

use anyhow::Context;
use rlrt_runtime::alloc_count;
use rlrt_runtime::bench::{BenchReport, Metric, Metrics};
use rlrt_runtime::config::SchedulerConfig;
use rlrt_runtime::stats::LoopSummary;
use rlrt_runtime::telemetry::telemetry_channel;
use rlrt_runtime::{observation_mailbox, realtime, ControlLoop, RobotConfig, RunLimit, WallClock};
use rlrt_sim::ThreadedPlant;

const DEFAULT_CONFIG_TEXT: &str = include_str!("../../hw-configs/franka-panda.toml");
const DEFAULT_CONFIG_PATH: &str = "hw-configs/franka-panda.toml";
const WARMUP_S: f64 = 0.5;

/// `rlrt bench loop`: tick punctuality of the control loop against a sleep-until-deadline loop.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchLoopArgs {
    #[arg(long, default_value_t = 1000.0)]
    pub rate_hz: f64,
    /// Seconds measured for rlrt's loop (after a 0.5 s warm-up).
    #[arg(long, default_value_t = 20.0)]
    pub seconds: f64,
    /// Seconds measured for the peer loop.
    #[arg(long, default_value_t = 5.0)]
    pub peer_seconds: f64,
    /// hw-config to benchmark (default: the built-in Franka Panda, sine policy).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub scheduling: super::SchedulingArgs,
    /// Spin this long before each deadline instead of sleeping (default 200 us).
    #[arg(long)]
    pub spin_us: Option<f64>,
}

struct Measured {
    summary: LoopSummary,
    allocations: Option<u64>,
    interventions: u64,
    warnings: Vec<String>,
}

pub fn run(args: &BenchLoopArgs) -> anyhow::Result<BenchReport> {
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
    let period_ms = 1e3 / args.rate_hz;
    let mut overrides: Vec<(&str, Option<toml::Value>)> = vec![
        (
            "robot.control_rate_hz",
            Some(toml::Value::Float(args.rate_hz)),
        ),
        (
            "safety.stale_observation_timeout_ms",
            Some(toml::Value::Float((5.0f64).max(5.0 * period_ms))),
        ),
        (
            "safety.estop_after_consecutive_faults",
            Some(toml::Value::Integer(0)),
        ),
        (
            "policy",
            Some(toml::Value::Table(toml::Table::from_iter([(
                "kind".to_owned(),
                toml::Value::String("sine".into()),
            )]))),
        ),
        ("scheduler", Some(toml::Value::Table(toml::Table::new()))),
        ("action.max_delta_per_tick", None),
    ];
    overrides.extend(args.scheduling.overrides());
    if let Some(spin) = args.spin_us {
        overrides.push(("scheduler.spin_us", Some(toml::Value::Float(spin))));
    }
    let config = super::parse_with_overrides(&text, &path, &overrides)?;

    let ours = measure(&config, args.seconds, true)?;
    let peer_config = RobotConfig {
        scheduler: SchedulerConfig {
            spin_ns: 0,
            ..SchedulerConfig::default()
        },
        ..config.clone()
    };
    let peer = measure(&peer_config, args.peer_seconds, false)?;

    let mut report = BenchReport::new("loop");
    for (name, summary) in ours.summary.metrics() {
        report
            .metrics
            .insert(name.to_owned(), Metric::from_ns_summary(&summary));
    }
    let mut peer_metrics = Metrics::new();
    for name in ["start_lateness", "tick_total", "observation_to_command"] {
        if let Some((_, s)) = peer.summary.metrics().into_iter().find(|(n, _)| *n == name) {
            peer_metrics.insert(name.to_owned(), Metric::from_ns_summary(&s));
        }
    }
    report
        .peers
        .insert("sleep_until_deadline".to_owned(), peer_metrics);
    let ticks = ours.summary.ticks;
    let extra = &mut report.extra;
    extra.insert("rate_hz".into(), args.rate_hz.into());
    extra.insert("seconds".into(), args.seconds.into());
    extra.insert("robot".into(), config.name.clone().into());
    extra.insert("ticks".into(), ticks.into());
    extra.insert("overruns".into(), ours.summary.overruns.into());
    extra.insert(
        "missed_deadlines".into(),
        ours.summary.missed_deadlines.into(),
    );
    extra.insert(
        "telemetry_dropped".into(),
        ours.summary.telemetry_dropped.into(),
    );
    extra.insert("safety_interventions".into(), ours.interventions.into());
    extra.insert(
        "allocations_per_tick".into(),
        match ours.allocations {
            Some(n) if ticks > 0 => (n as f64 / ticks as f64).into(),
            _ => serde_json::Value::Null,
        },
    );
    extra.insert(
        "tick_allocations".into(),
        ours.allocations.map_or(serde_json::Value::Null, Into::into),
    );
    extra.insert("peer_ticks".into(), peer.summary.ticks.into());
    extra.insert(
        "peer_allocations".into(),
        peer.allocations.map_or(serde_json::Value::Null, Into::into),
    );
    let ours_p99 = ours.summary.start_lateness.p99_ns as f64;
    let peer_p99 = peer.summary.start_lateness.p99_ns as f64;
    if ours_p99 > 0.0 {
        extra.insert(
            "start_lateness_p99_peer_over_rlrt".into(),
            (peer_p99 / ours_p99).into(),
        );
    }
    extra.insert(
        "cpus".into(),
        std::thread::available_parallelism()
            .map_or(0, |n| n.get())
            .into(),
    );
    extra.insert("warnings".into(), ours.warnings.into());
    Ok(report)
}

/// Runs one loop for `seconds` after a warm-up, on a fresh thread.
fn measure(config: &RobotConfig, seconds: f64, tuned: bool) -> anyhow::Result<Measured> {
    let clock = WallClock::new();
    let (writer, reader) = observation_mailbox(config.dof(), config.observation.sensor_values);
    let (sink, plant) =
        ThreadedPlant::spawn(config, clock.clone(), writer, 1, config.control_rate_hz)?;
    let policy = rlrt_policies::build(config)?;
    let mut control = ControlLoop::new(config, clock, reader, policy, Box::new(sink))?;
    let (telemetry, receiver) =
        telemetry_channel(config.scheduler.telemetry_queue_len, control.stats());
    control = control.with_telemetry(telemetry);
    let log_thread = rlrt_runtime::hub::spawn(
        receiver,
        crate::telemetry::standard_consumers(config.period_ns(), None, None),
    )?;
    let scheduler = config.scheduler.clone();
    let rate = config.control_rate_hz;
    let stop = crate::signals::stop_flag();
    let measured = std::thread::Builder::new()
        .name("rlrt-control".into())
        .spawn(move || {
            let warnings = if tuned {
                realtime::apply_to_current_thread(&scheduler)
            } else {
                Vec::new()
            };
            control.run(
                stop,
                RunLimit {
                    max_ticks: Some((WARMUP_S * rate) as u64),
                },
            );
            control.stats().reset();
            let before = alloc_count::tick_allocations();
            let report = control.run(
                stop,
                RunLimit {
                    max_ticks: Some((seconds * rate).round() as u64),
                },
            );
            let allocations = alloc_count::tick_allocations() - before;
            let interventions = report.interventions.iter().map(|(_, n)| n).sum();
            Measured {
                summary: report.loop_stats,
                allocations: alloc_count::is_installed().then_some(allocations),
                interventions,
                warnings,
            }
        })?
        .join()
        .map_err(|_| anyhow::anyhow!("the control thread panicked"))?;
    let _ = log_thread.join();
    let _final_state = plant.stop();
    Ok(measured)
}
