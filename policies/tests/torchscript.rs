//! TorchScript policies through libtorch (feature `tch`): a PyTorch-traced MLP gives
//! PyTorch's outputs within 1e-5; an rlrt actor exported to TorchScript gives the checkpoint
//! path's outputs within 1e-5 and agrees with its ONNX export; bad modules are refused at
//! load with what is wrong.

use std::path::Path;

use crate::common::{fixture, max_difference_from_pytorch, random_actor};
use rlrt_policies::checkpoint::CheckpointPolicy;
use rlrt_policies::torchscript::{export_actor, TorchScriptPolicy};
use rlrt_runtime::rng::uniform;
use rlrt_runtime::Policy;

fn load(path: &Path, inputs: usize, outputs: usize) -> Result<TorchScriptPolicy, String> {
    TorchScriptPolicy::load(path, inputs, outputs, "observation.state", "the action")
        .map_err(|e| e.to_string())
}

#[test]
fn pytorch_traced_mlp_matches_pytorch_within_1e_5() {
    let mut policy = load(&fixture("mlp.pt"), 17, 6).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((policy.input_len(), policy.output_len()), (17, 6));
    assert_eq!(policy.name(), "torchscript:mlp.pt");
    let worst = max_difference_from_pytorch(&mut policy, "outputs");
    assert!(worst <= 1e-5, "max abs difference from PyTorch {worst}");
    // The input tensor is written in place on every call: different inputs, different outputs.
    let mut a = [0.0; 6];
    let mut b = [0.0; 6];
    policy.act(&[0.5; 17], &mut a).unwrap();
    policy.act(&[-0.5; 17], &mut b).unwrap();
    assert_ne!(a, b);
    policy.act(&[0.5; 17], &mut b).unwrap();
    assert_eq!(a, b);
}

#[test]
fn exported_rlrt_actor_matches_the_checkpoint_path_within_1e_5() {
    let (weights, normalisation) = random_actor(17, 64, 6, 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("actor.pt");
    export_actor(&weights, &normalisation, &path).unwrap();
    let mut torch = load(&path, 17, 6).unwrap_or_else(|e| panic!("{e}"));
    let mut native = CheckpointPolicy::from_weights(weights, normalisation);
    let mut state = 9u64;
    let (mut a, mut b) = ([0.0; 6], [0.0; 6]);
    let mut worst = 0.0f64;
    let (mut low, mut high) = ([f64::INFINITY; 6], [f64::NEG_INFINITY; 6]);
    for _ in 0..200 {
        let x: Vec<f64> = (0..17).map(|_| uniform(&mut state, -3.0, 3.0)).collect();
        torch.act(&x, &mut a).unwrap();
        native.act(&x, &mut b).unwrap();
        for (j, (p, q)) in a.iter().zip(&b).enumerate() {
            worst = rlrt_models::compare::worse(worst, (p - q).abs());
            low[j] = low[j].min(*q);
            high[j] = high[j].max(*q);
        }
    }
    assert!(worst <= 1e-5, "max abs difference {worst}");
    // Not a comparison of two constants: every action moves over at least a tenth of its
    // range (half range 0.02) as the observation does.
    for j in 0..6 {
        assert!(
            high[j] - low[j] > 0.004,
            "action {j} spans only {low:?}..{high:?}"
        );
    }
    // The traced batch size is free: the file runs on other batch sizes too.
    let module = tch::CModule::load(&path).unwrap();
    let batch = tch::Tensor::zeros([5, 17], (tch::Kind::Float, tch::Device::Cpu));
    let out = module.forward_ts(&[batch]).unwrap();
    assert_eq!(out.size(), vec![5, 6]);
}

#[cfg(feature = "onnx")]
#[test]
fn torchscript_and_onnx_exports_of_one_actor_agree() {
    let (weights, normalisation) = random_actor(9, 32, 4, 5);
    let dir = tempfile::tempdir().unwrap();
    let pt = dir.path().join("actor.pt");
    let onnx = dir.path().join("actor.onnx");
    export_actor(&weights, &normalisation, &pt).unwrap();
    std::fs::write(
        &onnx,
        rlrt_policies::onnx_export::export_actor(&weights, &normalisation).unwrap(),
    )
    .unwrap();
    let mut torch = load(&pt, 9, 4).unwrap();
    let mut ort = rlrt_policies::onnx::OnnxPolicy::load(&onnx, 9, 4, "a", "b")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut state = 4u64;
    let (mut a, mut b) = ([0.0; 4], [0.0; 4]);
    for _ in 0..50 {
        let x: Vec<f64> = (0..9).map(|_| uniform(&mut state, -2.0, 2.0)).collect();
        torch.act(&x, &mut a).unwrap();
        ort.act(&x, &mut b).unwrap();
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() <= 1e-5, "{a:?} vs {b:?}");
        }
    }
}

/// Saves a module traced from `f` on a float32 `[1, inputs]` example.
fn traced(path: &Path, inputs: i64, f: impl Fn(&tch::Tensor) -> tch::Tensor) {
    let example = tch::Tensor::zeros([1, inputs], (tch::Kind::Float, tch::Device::Cpu));
    let module =
        tch::CModule::create_by_tracing("m", "forward", &[example], &mut |xs| vec![f(&xs[0])])
            .unwrap();
    module.save(path).unwrap();
}

#[test]
fn a_float64_module_gets_float64_observations() {
    let mut policy = load(&fixture("mlp_double.pt"), 17, 6).unwrap_or_else(|e| panic!("{e}"));
    let worst = max_difference_from_pytorch(&mut policy, "outputs_float64");
    // float64 end to end: far tighter than the float32 bound.
    assert!(worst <= 1e-12, "max abs difference from PyTorch {worst}");
}

#[test]
fn flat_outputs_run() {
    // A module returning [A] instead of [1, A].
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flat.pt");
    traced(&path, 4, |x| x.sum_dim_intlist(0, false, None) * 2.0);
    let mut policy = load(&path, 4, 4).unwrap_or_else(|e| panic!("{e}"));
    let mut action = [0.0; 4];
    policy.act(&[1.0, -2.0, 0.5, 0.0], &mut action).unwrap();
    assert_eq!(action, [2.0, -4.0, 1.0, 0.0]);
}

#[test]
fn mismatched_or_broken_modules_are_refused_at_load() {
    // Too few observation values for the first layer: the trial call names the config key.
    let e = load(&fixture("mlp.pt"), 16, 6).err().expect("16 inputs");
    assert!(
        e.contains("mlp.pt") && e.contains("[1, 16]") && e.contains("observation.state"),
        "{e}"
    );
    // An action of 6 values where the config wants 7.
    let e = load(&fixture("mlp.pt"), 17, 7).err().expect("7 outputs");
    assert!(
        e.contains("[1, 6]") && e.contains("[1, 7]") && e.contains("the action"),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    // A module returning a batch of 3 rows for one observation.
    let path = dir.path().join("rows.pt");
    traced(&path, 4, |x| x.repeat([3, 1]));
    let e = load(&path, 4, 4).err().expect("[3, 4] is not an action");
    assert!(e.contains("[3, 4]") && e.contains("rows.pt"), "{e}");
    // Integer output.
    let path = dir.path().join("int.pt");
    traced(&path, 2, |x| x.to_kind(tch::Kind::Int64));
    let e = load(&path, 2, 2).err().expect("int64 output");
    assert!(e.contains("Int64") && e.contains("float32"), "{e}");
    // float16 parameters, and a forward that returns a (mean, log_std) tuple.
    let e = load(&fixture("mlp_half.pt"), 17, 6).err().expect("float16");
    assert!(e.contains("Half") && e.contains("module.float()"), "{e}");
    let e = load(&fixture("gaussian_actor.pt"), 17, 6)
        .err()
        .expect("tuple");
    assert!(
        e.contains("gaussian_actor.pt") && e.contains("a tuple of 2") && e.contains("one tensor"),
        "{e}"
    );
    // Not a module at all, a truncated one, and a missing file.
    let junk = dir.path().join("junk.pt");
    std::fs::write(&junk, b"not a module at all").unwrap();
    let e = load(&junk, 17, 6).err().unwrap();
    assert!(
        e.contains("junk.pt") && e.contains("not a TorchScript module"),
        "{e}"
    );
    assert!(!e.contains("Exception raised from"), "backtrace kept: {e}");
    let bytes = std::fs::read(fixture("mlp.pt")).unwrap();
    let cut = dir.path().join("truncated.pt");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = load(&cut, 17, 6).err().unwrap();
    assert!(
        e.contains("truncated.pt") && e.contains("not a TorchScript module"),
        "{e}"
    );
    let e = load(&dir.path().join("missing.pt"), 17, 6).err().unwrap();
    assert!(e.contains("missing.pt") && e.contains("cannot read"), "{e}");
}

#[test]
fn a_module_that_fails_on_the_tick_reports_a_backend_error_not_a_panic() {
    // Looks a row up by the index of the largest observation value: row 0 exists (the
    // zero observation of the trial call picks it), row 2 does not, and libtorch raises.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookup.pt");
    let table = tch::Tensor::from_slice(&[0.25f32, -0.5]).reshape([1, 2]);
    traced(&path, 3, |x| table.index_select(0, &x.argmax(1, false)));
    let mut policy = load(&path, 3, 2).unwrap_or_else(|e| panic!("{e}"));
    let mut action = [9.0; 2];
    policy.act(&[1.0, 0.0, 0.0], &mut action).unwrap();
    assert_eq!(action, [0.25, -0.5]);
    assert_eq!(
        policy.act(&[0.0, 0.0, 1.0], &mut action),
        Err(rlrt_runtime::PolicyError::Backend(2))
    );
    // And it keeps working after the error.
    policy.act(&[1.0, 0.0, 0.0], &mut action).unwrap();
    assert_eq!(action, [0.25, -0.5]);
}
