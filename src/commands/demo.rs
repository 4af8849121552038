//! `rlrt demo`: the built-in demonstration. Seeded reach episodes on the reach arm: each
//! draws a joint-space target, the scripted controller drives the arm there at 100 Hz on
//! wall-clock time, and one episode loses its observations for a while (a simulated link
//! dropout) so the watchdog's hold and the recovery show in the log. Prints success rate,
//! loop statistics and safety interventions.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rlrt_runtime::stats::LoopStats;
use rlrt_runtime::RunLimit;
use rlrt_sim::KinematicArm;

use super::run::{run_wall_clock, warn_unrunnable};

/// The demo's robot when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "hw-configs/reach-arm.toml";
const DEFAULT_CONFIG_TEXT: &str = include_str!("../../hw-configs/reach-arm.toml");
/// An episode succeeds when every joint ends within this of its target.
pub const SUCCESS_TOLERANCE_RAD: f64 = 0.02;

#[derive(Clone, Debug)]
pub struct DemoArgs {
    pub config: Option<PathBuf>,
    pub episodes: u32,
    pub episode_seconds: f64,
    pub seed: u64,
    pub dropout_ms: f64,
}

#[derive(Debug, serde::Serialize)]
pub struct EpisodeResult {
    pub seed: u64,
    pub target_rad: Vec<f64>,
    pub final_error_rad: f64,
    pub success: bool,
    pub dropout_ms: f64,
    pub fault_ticks: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct DemoOutcome {
    pub episodes: Vec<EpisodeResult>,
    pub success_rate: f64,
    pub out_of_limit_commands: u64,
    pub loop_stats: rlrt_runtime::stats::LoopSummary,
    pub interventions: Vec<(rlrt_runtime::Cause, u64)>,
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
    let base = super::parse_with_overrides(&text, &path, &[])?;
    warn_unrunnable(&base);
    let stats = Arc::new(LoopStats::default());
    let mut episodes = Vec::new();
    let mut out_of_limit = 0;
    let mut totals: Vec<(rlrt_runtime::Cause, u64)> = Vec::new();
    for index in 0..args.episodes {
        let seed = args.seed.wrapping_add(index as u64);
        // Targets come from the same seeded draw the plant uses for start positions, with
        // another seed: the middle half of every joint's range.
        let mut draw = KinematicArm::new(&base);
        draw.reset(seed ^ 0x5EED_7A26_E7D0_0001);
        let target: Vec<f64> = draw.positions().to_vec();
        let config = super::parse_with_overrides(
            &text,
            &path,
            &[
                (
                    "policy.kind",
                    Some(toml::Value::String("joint_target".into())),
                ),
                (
                    "policy.target_rad",
                    Some(toml::Value::Array(
                        target.iter().map(|v| toml::Value::Float(*v)).collect(),
                    )),
                ),
                ("policy.amplitude_fraction", None),
                ("policy.frequency_hz", None),
            ],
        )?;
        let dropout = index == args.episodes / 2 && args.dropout_ms > 0.0;
        let dropout_ms = args.dropout_ms;
        let inject = move |plant: &rlrt_sim::ThreadedPlantHandle| {
            std::thread::sleep(Duration::from_millis(800));
            let silence = plant.silence();
            silence.store(true, Ordering::Relaxed);
            tracing::warn!(
                dropout_ms,
                "demo: cutting the robot's observations (simulated link dropout)"
            );
            std::thread::sleep(Duration::from_secs_f64(dropout_ms / 1e3));
            silence.store(false, Ordering::Relaxed);
            tracing::info!("demo: observations flow again");
        };
        let limit = RunLimit {
            max_ticks: Some((args.episode_seconds * config.control_rate_hz).round() as u64),
        };
        let outcome = run_wall_clock(
            &config,
            seed,
            config.control_rate_hz.max(1000.0),
            limit,
            if dropout { Some(&inject) } else { None },
            Some(stats.clone()),
        )?;
        let error = outcome
            .final_positions
            .iter()
            .zip(&target)
            .map(|(q, t)| (q - t).abs())
            .fold(0.0, f64::max);
        out_of_limit += outcome.out_of_limit_commands;
        for (cause, n) in outcome.report.interventions {
            match totals.iter_mut().find(|(c, _)| *c == cause) {
                Some((_, total)) => *total += n,
                None => totals.push((cause, n)),
            }
        }
        let result = EpisodeResult {
            seed,
            target_rad: target,
            final_error_rad: error,
            success: error < SUCCESS_TOLERANCE_RAD,
            dropout_ms: if dropout { args.dropout_ms } else { 0.0 },
            fault_ticks: outcome.report.fault_ticks,
        };
        tracing::info!(
            episode = index,
            seed,
            success = result.success,
            final_error_rad = format!("{error:.4}"),
            "episode done"
        );
        episodes.push(result);
    }
    let successes = episodes.iter().filter(|e| e.success).count();
    Ok(DemoOutcome {
        success_rate: successes as f64 / episodes.len().max(1) as f64,
        episodes,
        out_of_limit_commands: out_of_limit,
        loop_stats: stats.summary(),
        interventions: totals,
    })
}

impl std::fmt::Display for DemoOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "rlrt demo: reach arm, scripted joint-target controller, 100 Hz"
        )?;
        for (i, e) in self.episodes.iter().enumerate() {
            writeln!(
                f,
                "  episode {i} seed {:>3}: {}  final error {:.4} rad{}",
                e.seed,
                if e.success { "success" } else { "FAILED " },
                e.final_error_rad,
                if e.dropout_ms > 0.0 {
                    format!(
                        "  (link dropout {} ms: {} ticks on the fault action)",
                        e.dropout_ms, e.fault_ticks
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
        write!(f, "{}", self.loop_stats)?;
        if self.interventions.is_empty() {
            writeln!(f, "safety interventions: none")?;
        } else {
            writeln!(f, "safety interventions:")?;
            for (cause, n) in &self.interventions {
                writeln!(f, "  {:<24} {n:>10}", cause.name())?;
            }
        }
        Ok(())
    }
}
