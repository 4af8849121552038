//! Shared by the ONNX and TorchScript policy tests: the PyTorch fixtures and a seeded actor.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rlrt_policies::checkpoint::{MlpWeights, Normalisation};
use rlrt_runtime::rng::uniform;
use rlrt_runtime::Policy;

/// A file made by `tests/fixtures/export_mlp.py`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The largest difference between `policy`'s actions and PyTorch's (`outputs_key` of
/// `mlp_reference.json`) on the reference's 8 inputs.
pub fn max_difference_from_pytorch(policy: &mut dyn Policy, outputs_key: &str) -> f64 {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("mlp_reference.json")).unwrap())
            .unwrap();
    let inputs = reference["inputs"].as_array().unwrap();
    let outputs = reference[outputs_key].as_array().unwrap();
    assert_eq!((inputs.len(), outputs.len()), (8, 8));
    let mut worst = 0.0f64;
    let mut action = vec![0.0; policy.output_len()];
    for (x, y) in inputs.iter().zip(outputs) {
        let x: Vec<f64> = x
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        policy.act(&x, &mut action).unwrap();
        for (got, want) in action.iter().zip(y.as_array().unwrap()) {
            worst = rlrt_models::compare::worse(worst, (got - want.as_f64().unwrap()).abs());
        }
    }
    worst
}

/// A seeded 3-layer actor with a normalisation that is not the identity.
pub fn random_actor(
    inputs: usize,
    hidden: usize,
    outputs: usize,
    seed: u64,
) -> (MlpWeights, Normalisation) {
    let mut state = seed;
    let mut draw = |n: usize, scale: f64| -> Vec<f32> {
        (0..n)
            .map(|_| (uniform(&mut state, -1.0, 1.0) * scale) as f32)
            .collect()
    };
    let mut w = MlpWeights::default();
    w.push(
        inputs,
        hidden,
        draw(inputs * hidden, 0.4),
        draw(hidden, 0.1),
    );
    w.push(
        hidden,
        hidden,
        draw(hidden * hidden, 0.2),
        draw(hidden, 0.1),
    );
    w.push(
        hidden,
        outputs,
        draw(hidden * outputs, 0.2),
        draw(outputs, 0.1),
    );
    let n = Normalisation {
        observation_mean: (0..inputs).map(|i| 0.1 * i as f64).collect(),
        observation_std: (0..inputs).map(|i| 0.5 + 0.05 * i as f64).collect(),
        action_mid: (0..outputs).map(|j| 0.01 * j as f64).collect(),
        action_half_range: vec![0.02; outputs],
    };
    (w, n)
}
