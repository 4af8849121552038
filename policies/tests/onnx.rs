//! ONNX policies through ONNX Runtime (feature `onnx`): a PyTorch-exported MLP gives
//! PyTorch's outputs within 1e-5; an rlrt actor exported to ONNX gives the checkpoint path's
//! outputs within 1e-5; bad models are refused at load with what is wrong.

use crate::common::{fixture, max_difference_from_pytorch, random_actor};
use rlrt_policies::checkpoint::CheckpointPolicy;
use rlrt_policies::onnx::OnnxPolicy;
use rlrt_policies::onnx_export::export_actor;
use rlrt_runtime::rng::uniform;
use rlrt_runtime::Policy;

#[test]
fn pytorch_exported_mlp_matches_pytorch_within_1e_5() {
    let mut policy = OnnxPolicy::load(&fixture("mlp.onnx"), 17, 6, "inputs", "outputs")
        .unwrap_or_else(|e| panic!("{e}"));
    let worst = max_difference_from_pytorch(&mut policy, "outputs");
    assert!(worst <= 1e-5, "max abs difference from PyTorch {worst}");
    // Different inputs give different outputs (the input binding is live, not stale).
    let mut a = [0.0; 6];
    let mut b = [0.0; 6];
    policy.act(&[0.5; 17], &mut a).unwrap();
    policy.act(&[-0.5; 17], &mut b).unwrap();
    assert_ne!(a, b);
}

#[test]
fn exported_rlrt_actor_matches_the_checkpoint_path_within_1e_5() {
    let (weights, normalisation) = random_actor(17, 64, 6, 3);
    let bytes = export_actor(&weights, &normalisation).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("actor.onnx");
    std::fs::write(&path, bytes).unwrap();
    let mut onnx =
        OnnxPolicy::load(&path, 17, 6, "inputs", "outputs").unwrap_or_else(|e| panic!("{e}"));
    let mut native = CheckpointPolicy::from_weights(weights, normalisation);
    let mut state = 9u64;
    let (mut a, mut b) = ([0.0; 6], [0.0; 6]);
    let mut worst = 0.0f64;
    for _ in 0..200 {
        let x: Vec<f64> = (0..17).map(|_| uniform(&mut state, -3.0, 3.0)).collect();
        onnx.act(&x, &mut a).unwrap();
        native.act(&x, &mut b).unwrap();
        for (p, q) in a.iter().zip(&b) {
            worst = rlrt_models::compare::worse(worst, (p - q).abs());
        }
    }
    assert!(worst <= 1e-5, "max abs difference {worst}");
}

#[test]
fn mismatched_or_broken_models_are_refused_at_load() {
    let e = OnnxPolicy::load(
        &fixture("mlp.onnx"),
        16,
        6,
        "observation.state",
        "the action",
    )
    .err()
    .expect("16 inputs do not fit a 17-input model")
    .to_string();
    assert!(
        e.contains("mlp.onnx") && e.contains("[batch, 16]") && e.contains("observation.state"),
        "{e}"
    );
    let e = OnnxPolicy::load(
        &fixture("mlp.onnx"),
        17,
        7,
        "observation.state",
        "the action",
    )
    .err()
    .expect("7 outputs do not fit")
    .to_string();
    assert!(e.contains("output") && e.contains("[batch, 7]"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"not a model at all").unwrap();
    let e = OnnxPolicy::load(&junk, 17, 6, "a", "b")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("junk.onnx") && e.contains("not a model"), "{e}");
    let bytes = std::fs::read(fixture("mlp.onnx")).unwrap();
    let cut = dir.path().join("truncated.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = OnnxPolicy::load(&cut, 17, 6, "a", "b")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("truncated.onnx"), "{e}");
    let e = OnnxPolicy::load(&dir.path().join("missing.onnx"), 17, 6, "a", "b")
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("missing.onnx") && e.contains("cannot read"),
        "{e}"
    );
}
