//! `rlrt bench rerun`: what logging everything to rerun costs the control loop.
//!
//! The reach arm runs against its MuJoCo task over a loopback zenoh link (free-running at the
//! control rate, like hardware), with its reward program and one camera rendering offscreen,
//! in the same process without rerun (the peer) and with every frame, joint, action, reward
//! term, safety event and timing value logged to an `.rrd` file, in alternating rounds (off,
//! on, off, on, ...) so that background load falls on both alike. Each reports tick start
//! lateness (jitter) as the median over its rounds of each round's p50, p99 and max; the
//! figure to watch is the difference of the two p99s.

use std::path::PathBuf;

use rlrt_runtime::bench::{BenchReport, Metric, Metrics};

use super::run::{run_config, RunArgs, RunOutcome};
use crate::timeline::Destination;

const CONFIG_TEXT: &str = include_str!("../../hw-configs/reach-arm.toml");
const CONFIG_PATH: &str = "hw-configs/reach-arm.toml";

/// `rlrt bench rerun`: tick jitter with everything logged to rerun against the same run without
/// rerun: the reach arm in MuJoCo over loopback zenoh, its reward program and one camera.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchRerunArgs {
    #[arg(long, default_value_t = 500.0)]
    pub rate_hz: f64,
    #[arg(long, default_value_t = 30.0)]
    pub camera_hz: f64,
    /// Camera width and height, pixels.
    #[arg(long, default_value_t = 84)]
    pub camera_size: u32,
    /// Seconds of each run.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Rounds of (off, on); medians over rounds are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[command(flatten)]
    pub scheduling: super::SchedulingArgs,
    /// Keep the recording of the logged run here (a temporary file when absent).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Median over rounds of each round's p50, p99 and max.
fn jitter(outcomes: &[RunOutcome]) -> Metrics {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let metric = |pick: fn(&RunOutcome) -> &rlrt_runtime::stats::Summary| {
        let each: Vec<Metric> = outcomes
            .iter()
            .map(|o| Metric::from_ns_summary(pick(o)))
            .collect();
        Metric {
            unit: "us".to_owned(),
            p50: median(each.iter().map(|m| m.p50).collect()),
            p99: median(each.iter().map(|m| m.p99).collect()),
            max: median(each.iter().map(|m| m.max).collect()),
            count: Some(each.iter().filter_map(|m| m.count).sum()),
        }
    };
    Metrics::from([
        (
            "start_lateness".to_owned(),
            metric(|o| &o.report.loop_stats.start_lateness),
        ),
        (
            "tick_total".to_owned(),
            metric(|o| &o.report.loop_stats.tick_total),
        ),
    ])
}

pub fn run(args: &BenchRerunArgs) -> anyhow::Result<BenchReport> {
    let camera = toml::Table::from_iter([
        ("name".to_owned(), toml::Value::String("front".into())),
        (
            "width".to_owned(),
            toml::Value::Integer(args.camera_size.into()),
        ),
        (
            "height".to_owned(),
            toml::Value::Integer(args.camera_size.into()),
        ),
        ("rate_hz".to_owned(), toml::Value::Float(args.camera_hz)),
        ("encoding".to_owned(), toml::Value::String("rgb8".into())),
    ]);
    let mut overrides = vec![
        (
            "robot.control_rate_hz",
            Some(toml::Value::Float(args.rate_hz)),
        ),
        (
            "observation.cameras",
            Some(toml::Value::Array(vec![toml::Value::Table(camera)])),
        ),
    ];
    overrides.extend(args.scheduling.overrides());
    let config = super::parse_with_overrides(CONFIG_TEXT, &PathBuf::from(CONFIG_PATH), &overrides)?;
    let temp = tempfile_path();
    let out = args.out.clone().unwrap_or_else(|| temp.clone());
    let mut run_args = RunArgs {
        config: PathBuf::from(CONFIG_PATH),
        seconds: Some(args.seconds),
        ticks: None,
        sim: true,
        kinematic: false,
        lockstep: false,
        seed: 0,
        plant_rate_hz: None,
        wait_seconds: 10.0,
        rerun: None,
        record: None,
        episode_seconds: 30.0,
    };
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds.max(1) {
        run_args.rerun = None;
        off.push(run_config(&config, &run_args)?);
        run_args.rerun = Some(Destination::Save(out.clone()));
        on.push(run_config(&config, &run_args)?);
    }
    let bytes = std::fs::metadata(&out).map_or(0, |m| m.len());
    if args.out.is_none() {
        let _ = std::fs::remove_file(&temp);
    }

    let mut report = BenchReport::new("rerun");
    report.metrics = jitter(&on);
    report.peers.insert("rerun_off".to_owned(), jitter(&off));
    let p99s = |runs: &[RunOutcome]| -> Vec<f64> {
        runs.iter()
            .map(|o| o.report.loop_stats.start_lateness.p99_ns as f64 * 1e-3)
            .collect()
    };
    let difference =
        report.metrics["start_lateness"].p99 - report.peers["rerun_off"]["start_lateness"].p99;
    let last = on.last().expect("at least one round");
    let sum = |runs: &[RunOutcome], f: fn(&RunOutcome) -> u64| -> u64 { runs.iter().map(f).sum() };
    let extra = &mut report.extra;
    extra.insert("rate_hz".into(), args.rate_hz.into());
    extra.insert(
        "scheduler".into(),
        format!(
            "cpu_core {:?}, realtime_priority {:?}",
            args.scheduling.cpu_core, args.scheduling.realtime_priority
        )
        .into(),
    );
    extra.insert(
        "camera".into(),
        format!("{0}x{0} rgb8 at {1} Hz", args.camera_size, args.camera_hz).into(),
    );
    extra.insert("seconds_per_run".into(), args.seconds.into());
    extra.insert("rounds".into(), off.len().into());
    extra.insert(
        "start_lateness_p99_on_minus_off_us".into(),
        difference.into(),
    );
    extra.insert(
        "start_lateness_p99_each_round_on_us".into(),
        p99s(&on).into(),
    );
    extra.insert(
        "start_lateness_p99_each_round_off_us".into(),
        p99s(&off).into(),
    );
    extra.insert(
        "ticks_on".into(),
        sum(&on, |o| o.report.loop_stats.ticks).into(),
    );
    extra.insert(
        "ticks_off".into(),
        sum(&off, |o| o.report.loop_stats.ticks).into(),
    );
    extra.insert(
        "telemetry_dropped_on".into(),
        sum(&on, |o| o.report.loop_stats.telemetry_dropped).into(),
    );
    if let Some(rerun) = &last.rerun {
        extra.insert("rerun_last_round".into(), serde_json::to_value(rerun)?);
    }
    extra.insert("rrd_bytes".into(), bytes.into());
    extra.insert(
        "cpus".into(),
        std::thread::available_parallelism()
            .map_or(0, |n| n.get())
            .into(),
    );
    Ok(report)
}

fn tempfile_path() -> PathBuf {
    std::env::temp_dir().join(format!("rlrt-bench-rerun-{}.rrd", std::process::id()))
}
