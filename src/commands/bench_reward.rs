//! `rlrt bench reward-program`: how fast a checked reward program evaluates states.
//!
//! rlrt's side is `RewardProgram::evaluate` on the reach program as the checker hands it
//! out: a straight-line program, so on the direct path, which the checker verified against
//! Rhai (`direct_path` in the report says so). The same program with every call in Rhai is
//! measured too (`evaluate_rhai`, `rhai_evaluations_per_s`). The peer is the same reward
//! written the way a Python RL stack would, with numpy, run by `python3` in the same
//! bench on the same states; its totals are compared with rlrt's, so the two compute the
//! same thing. Both report evaluations per second (a tight loop) and per-call latency
//! (each call timed on its own).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use rlrt_rewards::program::{check, CheckOptions, Environment, Limits, ProgramState};
use rlrt_runtime::bench::{BenchReport, Metric, Metrics};
use rlrt_runtime::stats::{Histogram, Summary};

const CONFIG_TEXT: &str = include_str!("../../hw-configs/reach-arm.toml");
const CONFIG_PATH: &str = "hw-configs/reach-arm.toml";
const PROGRAM_TEXT: &str = include_str!("../../rewards/programs/reach.rhai");
const PROGRAM_PATH: &str = "rewards/programs/reach.rhai";
const STATES: usize = 1024;
const WARMUP_CALLS: usize = 2000;
/// States whose totals are compared between rlrt and the peer.
const COMPARED: usize = 256;

/// The reach program in Python with numpy: same terms, same constants.
const PEER: &str = r#"
import json, sys, time
import numpy as np

S2 = -2.0 * np.log(0.1)

def tolerance(x, lo, hi, margin):
    if lo <= x <= hi:
        return 1.0
    if margin == 0.0:
        return 0.0
    d = (lo - x if x < lo else x - hi) / margin
    return float(np.exp(-0.5 * d * d * S2))

def reward(ee, target, previous_action):
    d = float(np.linalg.norm(ee - target))
    terms = {
        "reach": tolerance(d, 0.0, 0.03, 0.3),
        "distance": -d,
        "success": 1.0 if d < 0.03 else 0.0,
        "smooth": -2.0 * float(np.linalg.norm(previous_action)),
    }
    return terms, sum(terms.values())

job = json.load(sys.stdin)
states = [tuple(np.array(v, dtype=np.float64) for v in s) for s in job["states"]]
calls, warmup, n = job["calls"], job["warmup"], len(states)
for i in range(warmup):
    reward(*states[i % n])
start = time.perf_counter_ns()
for i in range(calls):
    reward(*states[i % n])
elapsed = time.perf_counter_ns() - start
per_call = []
for i in range(calls):
    t0 = time.perf_counter_ns()
    reward(*states[i % n])
    per_call.append(time.perf_counter_ns() - t0)
print(json.dumps({
    "evaluations_per_s": calls / (elapsed / 1e9),
    "per_call_ns": per_call,
    "totals": [reward(*s)[1] for s in states[:job["compared"]]],
    "numpy": np.__version__,
}))
"#;

/// `rlrt bench reward-program`: evaluations per second and per-call latency of the reach reward
/// program, against the same reward in Python with numpy.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchRewardArgs {
    /// Timed calls (for the throughput and again for the latency measurement).
    #[arg(long, default_value_t = 100_000)]
    pub calls: usize,
    /// Skip the Python peer.
    #[arg(long)]
    pub no_peer: bool,
}

struct Measured {
    evaluations_per_s: f64,
    latency: Summary,
}

pub fn run(args: &BenchRewardArgs) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(args.calls > 0, "--calls must be above zero");
    let config = rlrt_runtime::config::parse(CONFIG_TEXT, Path::new(CONFIG_PATH))?;
    let env = Environment::from_config(&config)?;
    let (mut program, _) = check(
        &env,
        PROGRAM_TEXT,
        Path::new(PROGRAM_PATH),
        &Limits::default(),
        &CheckOptions::default(),
    )?;
    let states = env.sample_states(STATES, 1, 1.0);
    let ours = measure(args.calls, |i| {
        program
            .evaluate(&states[i % STATES])
            .map(|t| t.total())
            .unwrap_or(f64::NAN)
    });
    let invalid = program.counters().invalid;
    anyhow::ensure!(
        invalid == 0,
        "{invalid} evaluations of the reach program failed"
    );
    let ops = program.last_operations();
    // The same program with every call in Rhai's interpreter, for comparison.
    let (mut in_rhai, _) = check(
        &env,
        PROGRAM_TEXT,
        Path::new(PROGRAM_PATH),
        &Limits::default(),
        &CheckOptions::default(),
    )?;
    in_rhai.disable_direct_path();
    let rhai = measure(args.calls, |i| {
        in_rhai
            .evaluate(&states[i % STATES])
            .map(|t| t.total())
            .unwrap_or(f64::NAN)
    });

    let mut report = BenchReport::new("reward-program");
    report
        .metrics
        .insert("evaluate".into(), Metric::from_ns_summary(&ours.latency));
    report.metrics.insert(
        "evaluate_rhai".into(),
        Metric::from_ns_summary(&rhai.latency),
    );
    let extra = &mut report.extra;
    extra.insert("program".into(), PROGRAM_PATH.into());
    extra.insert("config".into(), CONFIG_PATH.into());
    extra.insert("calls".into(), args.calls.into());
    extra.insert("evaluations_per_s".into(), ours.evaluations_per_s.into());
    extra.insert("operations_per_call".into(), ops.into());
    extra.insert("direct_path".into(), program.is_direct().into());
    extra.insert(
        "rhai_evaluations_per_s".into(),
        rhai.evaluations_per_s.into(),
    );
    // Calls in Rhai can end by the time limit when another process pre-empts them.
    extra.insert("rhai_invalid".into(), in_rhai.counters().invalid.into());
    if args.no_peer {
        return Ok(report);
    }
    match run_peer(&env, &states, args.calls) {
        Ok(peer) => {
            let ours_totals: Vec<f64> = states[..COMPARED]
                .iter()
                .map(|s| program.evaluate(s).map(|t| t.total()).unwrap_or(f64::NAN))
                .collect();
            // NaN when either side failed an evaluation, infinite when the peer returned
            // fewer totals than it was asked for.
            let max_diff = rlrt_models::compare::max_abs_difference(&ours_totals, &peer.totals);
            let mut metrics = Metrics::new();
            metrics.insert("evaluate".into(), Metric::from_ns_summary(&peer.latency));
            report.peers.insert("python_numpy".into(), metrics);
            let extra = &mut report.extra;
            extra.insert(
                "peer_evaluations_per_s".into(),
                peer.evaluations_per_s.into(),
            );
            extra.insert(
                "speedup_evaluations_per_s".into(),
                (ours.evaluations_per_s / peer.evaluations_per_s).into(),
            );
            extra.insert(
                "speedup_p99".into(),
                (peer.latency.p99_ns as f64 / ours.latency.p99_ns.max(1) as f64).into(),
            );
            extra.insert("max_abs_total_difference".into(), max_diff.into());
            extra.insert("peer_numpy".into(), peer.numpy.into());
        }
        Err(e) => {
            report
                .extra
                .insert("peer_error".into(), format!("{e:#}").into());
        }
    }
    Ok(report)
}

fn measure(calls: usize, mut call: impl FnMut(usize) -> f64) -> Measured {
    let mut sink = 0.0;
    for i in 0..WARMUP_CALLS {
        sink += call(i);
    }
    let start = Instant::now();
    for i in 0..calls {
        sink += call(i);
    }
    let evaluations_per_s = calls as f64 / start.elapsed().as_secs_f64();
    let histogram = Histogram::new();
    for i in 0..calls {
        let t0 = Instant::now();
        sink += call(i);
        histogram.record(t0.elapsed().as_nanos() as u64);
    }
    std::hint::black_box(sink);
    Measured {
        evaluations_per_s,
        latency: histogram.summary(),
    }
}

struct Peer {
    evaluations_per_s: f64,
    latency: Summary,
    totals: Vec<f64>,
    numpy: String,
}

fn python_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".deps/python")
}

fn run_peer(env: &Environment, states: &[ProgramState], calls: usize) -> anyhow::Result<Peer> {
    let sensor = |s: &ProgramState, name: &str| env.sensor(s, name).map(<[f64]>::to_vec);
    let mut rows = Vec::with_capacity(states.len());
    for s in states {
        let ee = sensor(s, "ee_position").context("the config has no ee_position")?;
        let target = sensor(s, "target_position").context("the config has no target_position")?;
        rows.push(serde_json::json!([
            ee,
            target,
            &s.previous_action[..s.action_len]
        ]));
    }
    let job = serde_json::json!({
        "states": rows, "calls": calls, "warmup": WARMUP_CALLS, "compared": COMPARED,
    });
    let result = super::python_json(
        &["-c", PEER],
        Some(&python_path()),
        job.to_string().as_bytes(),
        &format!(
            "numpy, which `cargo xtask setup` installs into {}",
            python_path().display()
        ),
    )?;
    let histogram = Histogram::new();
    for v in result["per_call_ns"].as_array().context("per_call_ns")? {
        histogram.record(v.as_u64().unwrap_or(0));
    }
    Ok(Peer {
        evaluations_per_s: result["evaluations_per_s"].as_f64().unwrap_or(0.0),
        latency: histogram.summary(),
        totals: result["totals"]
            .as_array()
            .context("totals")?
            .iter()
            .map(|v| v.as_f64().unwrap_or(f64::NAN))
            .collect(),
        numpy: result["numpy"].as_str().unwrap_or("?").to_owned(),
    })
}
