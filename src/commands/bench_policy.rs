//! `rlrt bench policy`: per-call latency of a trained actor at batch 1 (2x256 MLP, 17
//! inputs, 6 outputs by default) through the path the tick uses (`CheckpointPolicy::act`:
//! plain arrays, no allocation) against burn's own forward pass on the same weights
//! (NdArray, tensor in, data out). PyTorch and ONNX Runtime peers are not measured yet.

use std::time::Instant;

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use rlrt_policies::checkpoint::{CheckpointPolicy, Normalisation};
use rlrt_policies::iql::{cpu, seeded_actor};
use rlrt_runtime::bench::{BenchReport, Metric};
use rlrt_runtime::Policy;

pub struct BenchPolicyArgs {
    pub inputs: usize,
    pub outputs: usize,
    pub hidden: Vec<usize>,
    pub calls: usize,
}

fn summarise(mut ns: Vec<u64>) -> Metric {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize] as f64 / 1e3;
    Metric {
        unit: "us".to_owned(),
        p50: at(0.5),
        p99: at(0.99),
        max: at(1.0),
        count: Some(ns.len() as u64),
    }
}

pub fn run(args: &BenchPolicyArgs) -> anyhow::Result<BenchReport> {
    let device = cpu();
    let actor = seeded_actor::<NdArray<f32>>(args.inputs, args.outputs, &args.hidden, 42, &device);
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
        let input = Tensor::<NdArray<f32>, 2>::from_data(
            TensorData::new(x.to_vec(), [1, x.len()]),
            &device,
        );
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
        .map(|(a, b)| (*a as f32 - b).abs())
        .fold(0.0f32, f32::max);

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
    report
        .metrics
        .insert("batch1_act".to_owned(), summarise(batch_one));
    let mut peer = rlrt_runtime::bench::Metrics::new();
    peer.insert("forward".to_owned(), summarise(burn));
    report.peers.insert("burn_ndarray".to_owned(), peer);
    let shape: Vec<usize> = std::iter::once(args.inputs)
        .chain(args.hidden.iter().copied())
        .chain(std::iter::once(args.outputs))
        .collect();
    report
        .extra
        .insert("layers".to_owned(), serde_json::json!(shape));
    report.extra.insert(
        "max_abs_difference".to_owned(),
        serde_json::json!(max_difference),
    );
    report.extra.insert(
        "threads".to_owned(),
        serde_json::json!("1 (NdArray built without rayon)"),
    );
    Ok(report)
}
