//! `rlrt bench policy`: per-call latency of a trained actor at batch 1 (2x256 MLP, 17
//! inputs, 6 outputs by default) through the path the tick uses (`CheckpointPolicy::act`:
//! plain arrays, no allocation) against, on the same weights and one thread each:
//! - burn's own forward pass (Flex, tensor in, data out);
//! - ONNX Runtime in this process: the actor exported to ONNX (`onnx_export`) and run by
//!   `OnnxPolicy`, the path an imported policy takes on the tick;
//! - libtorch in this process (built with the `tch` feature): the actor traced to
//!   TorchScript and run by `TorchScriptPolicy`, on one intra-op thread;
//! - PyTorch eager and ONNX Runtime from Python (what a Python stack would call), when
//!   `python3` can import torch (and onnxruntime) with `--python-path` on its path; their
//!   absence is reported, not an error.
//!
//! Every peer's outputs are compared with rlrt's.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use rlrt_models::compare::max_abs_difference;
use rlrt_policies::checkpoint::{CheckpointPolicy, Normalisation};
use rlrt_policies::iql::{cpu, seeded_actor};
use rlrt_policies::onnx::OnnxPolicy;
use rlrt_policies::onnx_export::export_actor;
use rlrt_runtime::bench::{BenchReport, Metric};
use rlrt_runtime::Policy;

/// `rlrt bench policy`: per-call latency of a trained actor at batch 1: the tick's path (plain
/// arrays, no allocation) against burn's own forward pass on the same weights, and the ONNX,
/// TorchScript and PyTorch peers.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchPolicyArgs {
    #[arg(long, default_value_t = 17)]
    pub inputs: usize,
    #[arg(long, default_value_t = 6)]
    pub outputs: usize,
    #[arg(long, value_delimiter = ',', default_value = "256,256")]
    pub hidden: Vec<usize>,
    /// Timed calls per path (after a tenth as many warm-up calls).
    #[arg(long, default_value_t = 20_000)]
    pub calls: usize,
    /// Where the Python peers find torch and onnxruntime (added to PYTHONPATH; default
    /// .deps/python, which has onnxruntime but not torch: pip install torch elsewhere
    /// and point here to measure PyTorch eager).
    #[arg(long)]
    pub python_path: Option<PathBuf>,
}

/// The Python peers: the same actor (weights from a raw f32 file) in PyTorch eager and the
/// exported ONNX file in ONNX Runtime, one thread each, timed call by call.
const PYTHON_PEERS: &str = r#"
import json, sys, time
import numpy as np
job = json.load(sys.stdin)
x = np.array(job["observation"], dtype=np.float32).reshape(1, -1)
flat = np.fromfile(job["weights"], dtype=np.float32)
calls, warmup = job["calls"], job["warmup"]
def timed(f):
    for _ in range(warmup):
        f()
    out = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        f()
        out.append(time.perf_counter_ns() - t0)
    return out
result = {}
try:
    import torch
    torch.set_num_threads(1)
    layers, at = [], 0
    for (i, o) in job["shapes"]:
        lin = torch.nn.Linear(i, o)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(flat[at:at + i * o].reshape(o, i).copy())); at += i * o
            lin.bias.copy_(torch.from_numpy(flat[at:at + o].copy())); at += o
        layers += [lin, torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1], torch.nn.Tanh()).eval()
    tx = torch.from_numpy(x)
    def torch_call():
        with torch.inference_mode():
            return model(tx)
    result["pytorch_eager"] = {"ns": timed(torch_call), "output": torch_call().numpy()[0].tolist(),
                               "version": torch.__version__}
except ImportError as e:
    result["pytorch_eager"] = {"missing": str(e)}
try:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    session = ort.InferenceSession(job["onnx"], so, providers=["CPUExecutionProvider"])
    feed = {"observation": x}
    run = lambda: session.run(None, feed)
    result["onnxruntime_python"] = {"ns": timed(run), "output": run()[0][0].tolist(),
                                    "version": ort.__version__}
except ImportError as e:
    result["onnxruntime_python"] = {"missing": str(e)}
print(json.dumps(result))
"#;

/// Nanosecond samples as a metric in microseconds.
fn summarise(ns: Vec<u64>) -> Metric {
    Metric::from_samples("us", ns.into_iter().map(|n| n as f64 / 1e3).collect())
}

pub fn run(args: &BenchPolicyArgs) -> anyhow::Result<BenchReport> {
    let device = cpu();
    let actor = seeded_actor::<Flex>(args.inputs, args.outputs, &args.hidden, 42, &device);
    let normalisation = Normalisation {
        observation_mean: vec![0.0; args.inputs],
        observation_std: vec![1.0; args.inputs],
        action_mid: vec![0.0; args.outputs],
        action_half_range: vec![1.0; args.outputs],
    };
    let mut policy = CheckpointPolicy::from_weights(actor.net.weights(), normalisation);
    let observation: Vec<f64> = (0..args.inputs).map(|i| (i as f64 * 0.37).sin()).collect();
    let observation_f32: Vec<f32> = observation.iter().map(|&v| v as f32).collect();
    let mut action = vec![0.0f64; args.outputs];

    let burn_forward = |x: &[f32]| -> Vec<f32> {
        let input =
            Tensor::<Flex, 2>::from_data(TensorData::new(x.to_vec(), [1, x.len()]), &device);
        actor
            .mean(input)
            .into_data()
            .to_vec::<f32>()
            .expect("f32 output")
    };

    // The two paths compute the same function.
    policy
        .act(&observation, &mut action)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let reference = burn_forward(&observation_f32);
    let max_difference = action
        .iter()
        .zip(&reference)
        .map(|(a, b)| (*a - f64::from(*b)).abs())
        .fold(0.0, rlrt_models::compare::worse);

    let warmup = (args.calls / 10).max(100);
    let time = |f: &mut dyn FnMut()| -> Vec<u64> {
        for _ in 0..warmup {
            f();
        }
        (0..args.calls)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_nanos() as u64
            })
            .collect()
    };
    let batch_one = time(&mut || {
        policy.act(&observation, &mut action).expect("finite");
        std::hint::black_box(&action);
    });
    let burn = time(&mut || {
        std::hint::black_box(burn_forward(&observation_f32));
    });

    let mut report = BenchReport::new("policy");
    let ours = summarise(batch_one);
    let ours_p99 = ours.p99;
    report.metrics.insert("batch1_act".to_owned(), ours);
    let mut peer = rlrt_runtime::bench::Metrics::new();
    peer.insert("forward".to_owned(), summarise(burn));
    report.peers.insert("burn_flex".to_owned(), peer);

    // ONNX Runtime in this process, on the exported actor.
    let dir = std::env::temp_dir().join(format!("rlrt-bench-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let onnx_path = dir.join("actor.onnx");
    let weights = policy_weights(&actor);
    std::fs::write(&onnx_path, export_actor(&weights, &identity(args))?)?;
    let mut differences = serde_json::Map::new();
    differences.insert("burn_flex".into(), serde_json::json!(max_difference));
    match OnnxPolicy::load(&onnx_path, args.inputs, args.outputs, "inputs", "outputs") {
        Ok(mut onnx) => {
            let peer = Peer {
                name: "onnxruntime",
                runtime: "ONNX Runtime",
            };
            let difference = peer.measure(&mut onnx, &observation, &action, &time, &mut report)?;
            differences.insert(peer.name.into(), serde_json::json!(difference));
        }
        Err(e) => {
            report
                .extra
                .insert("onnxruntime".into(), format!("not measured: {e}").into());
        }
    }

    // libtorch in this process, on the actor traced to TorchScript.
    #[cfg(feature = "tch")]
    {
        use rlrt_policies::torchscript::{export_actor, TorchScriptPolicy};
        let pt_path = dir.join("actor.pt");
        export_actor(&weights, &identity(args), &pt_path)?;
        let mut module =
            TorchScriptPolicy::load(&pt_path, args.inputs, args.outputs, "inputs", "outputs")?;
        let peer = Peer {
            name: "libtorch",
            runtime: "libtorch",
        };
        let difference = peer.measure(&mut module, &observation, &action, &time, &mut report)?;
        differences.insert(peer.name.into(), serde_json::json!(difference));
    }
    #[cfg(not(feature = "tch"))]
    report.extra.insert(
        "libtorch".into(),
        "not measured: rlrt built without the `tch` feature".into(),
    );

    // PyTorch eager and ONNX Runtime from Python.
    let raw = dir.join("weights.f32");
    let mut flat = Vec::new();
    for l in &weights.layers {
        flat.extend(l.weight.iter().chain(&l.bias).flat_map(|v| v.to_le_bytes()));
    }
    std::fs::write(&raw, flat)?;
    let job = serde_json::json!({
        "observation": observation_f32,
        "weights": raw,
        "onnx": onnx_path,
        "shapes": weights.shapes(),
        "calls": args.calls,
        "warmup": warmup,
    });
    let python_path = args
        .python_path
        .clone()
        .unwrap_or_else(|| PathBuf::from(".deps/python"));
    match python_peers(&job, &python_path) {
        Ok(result) => {
            for name in ["pytorch_eager", "onnxruntime_python"] {
                let r = &result[name];
                if let Some(missing) = r["missing"].as_str() {
                    report
                        .extra
                        .insert(name.into(), format!("not measured: {missing}").into());
                    continue;
                }
                let ns: Vec<u64> = r["ns"]
                    .as_array()
                    .context("ns")?
                    .iter()
                    .filter_map(|v| v.as_u64())
                    .collect();
                let output: Vec<f64> = r["output"]
                    .as_array()
                    .context("output")?
                    .iter()
                    .filter_map(|v| v.as_f64())
                    .collect();
                differences.insert(
                    name.into(),
                    serde_json::json!(max_abs_difference(&action, &output)),
                );
                let m = summarise(ns);
                ratio(&mut report, name, ours_p99, m.p99);
                report
                    .extra
                    .insert(format!("{name}_version"), r["version"].clone());
                report.peers.insert(
                    name.to_owned(),
                    rlrt_runtime::bench::Metrics::from([("act".to_owned(), m)]),
                );
            }
        }
        Err(e) => {
            report
                .extra
                .insert("python_peers".into(), format!("not measured: {e}").into());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let shape: Vec<usize> = std::iter::once(args.inputs)
        .chain(args.hidden.iter().copied())
        .chain(std::iter::once(args.outputs))
        .collect();
    report
        .extra
        .insert("layers".to_owned(), serde_json::json!(shape));
    report.extra.insert(
        "max_abs_difference_from_rlrt".to_owned(),
        serde_json::Value::Object(differences),
    );
    report.extra.insert(
        "threads".to_owned(),
        serde_json::json!("1 (batch 1: below Flex's threshold for splitting a product)"),
    );
    Ok(report)
}

/// A policy runtime rlrt's batch-1 path is compared with, in this process.
struct Peer {
    /// Its key in the report.
    name: &'static str,
    /// What its errors are called.
    runtime: &'static str,
}

impl Peer {
    /// Times `policy.act` with `time` and adds the peer's metrics and p99 ratio to `report`;
    /// returns the largest difference of its action to rlrt's `action`.
    fn measure(
        &self,
        policy: &mut dyn Policy,
        observation: &[f64],
        action: &[f64],
        time: &dyn Fn(&mut dyn FnMut()) -> Vec<u64>,
        report: &mut BenchReport,
    ) -> anyhow::Result<f64> {
        let mut peer_action = vec![0.0f64; action.len()];
        policy
            .act(observation, &mut peer_action)
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", self.runtime))?;
        let difference = max_abs_difference(action, &peer_action);
        let ns = time(&mut || {
            policy.act(observation, &mut peer_action).expect("runs");
            std::hint::black_box(&peer_action);
        });
        let m = summarise(ns);
        let ours_p99 = report.metrics["batch1_act"].p99;
        ratio(report, self.name, ours_p99, m.p99);
        report.peers.insert(
            self.name.to_owned(),
            rlrt_runtime::bench::Metrics::from([("act".to_owned(), m)]),
        );
        Ok(difference)
    }
}

/// rlrt's p99 over the peer's: `p99_ratio_rlrt_over_<peer>` (below 1: rlrt is faster).
fn ratio(report: &mut BenchReport, peer: &str, ours_p99: f64, peer_p99: f64) {
    if peer_p99 > 0.0 {
        report.extra.insert(
            format!("p99_ratio_rlrt_over_{peer}"),
            serde_json::json!(ours_p99 / peer_p99),
        );
    }
}

/// Normalisation that changes nothing (the bench's actor works on raw values).
fn identity(args: &BenchPolicyArgs) -> Normalisation {
    Normalisation {
        observation_mean: vec![0.0; args.inputs],
        observation_std: vec![1.0; args.inputs],
        action_mid: vec![0.0; args.outputs],
        action_half_range: vec![1.0; args.outputs],
    }
}

fn policy_weights<B: burn::tensor::backend::Backend>(
    actor: &rlrt_policies::iql::Actor<B>,
) -> rlrt_policies::checkpoint::MlpWeights {
    actor.net.weights()
}

fn python_peers(
    job: &serde_json::Value,
    python_path: &std::path::Path,
) -> anyhow::Result<serde_json::Value> {
    super::python_json(
        &["-c", PYTHON_PEERS],
        Some(python_path),
        job.to_string().as_bytes(),
        "numpy; torch and onnxruntime are optional",
    )
}
