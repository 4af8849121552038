//! rlrt-trained actors as ONNX models, so they run wherever ONNX Runtime (or TensorRT, or a
//! browser) does.
//!
//! The exported graph is the whole policy, not just the network: it computes exactly what
//! [`crate::checkpoint::CheckpointPolicy`] computes on the tick:
//!
//! ```text
//! observation [batch, O] -> (x - mean) / std -> Gemm, Relu, ..., Gemm -> Tanh
//!                        -> mid + half_range * y -> action [batch, A]
//! ```
//!
//! The file is written with rlrt's small protobuf encoder (`rlrt_models::onnx_proto`),
//! opset 17, IR version 8, float32 throughout; the batch dimension is symbolic.

use rlrt_models::onnx_proto::{model, node, tensor, value_info, Attr, Dim, FLOAT};

use crate::checkpoint::{MlpWeights, Normalisation};

/// Why an actor cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the actor has no layers")]
    Empty,
    #[error("layer {layer}: {message}")]
    Shape { layer: usize, message: String },
    #[error("normalisation has {found} {what} values, the actor {expected}")]
    Normalisation {
        what: &'static str,
        found: usize,
        expected: usize,
    },
}

/// The input and output names of exported policies.
pub const INPUT: &str = "observation";
pub const OUTPUT: &str = "action";

/// Checks that `weights` chain (each layer takes what the one before gives, every array has
/// its size) and that `normalisation` fits them; returns (observation length, action length).
pub fn check_actor(
    weights: &MlpWeights,
    normalisation: &Normalisation,
) -> Result<(usize, usize), ExportError> {
    let first = weights.layers.first().ok_or(ExportError::Empty)?;
    let (inputs, outputs) = (first.inputs, weights.layers.last().map_or(0, |l| l.outputs));
    for (k, pair) in weights.layers.windows(2).enumerate() {
        if pair[0].outputs != pair[1].inputs {
            return Err(ExportError::Shape {
                layer: k + 1,
                message: format!(
                    "takes {} inputs, the layer before gives {}",
                    pair[1].inputs, pair[0].outputs
                ),
            });
        }
    }
    for (k, l) in weights.layers.iter().enumerate() {
        if l.weight.len() != l.inputs * l.outputs || l.bias.len() != l.outputs {
            return Err(ExportError::Shape {
                layer: k,
                message: format!(
                    "{} weights and {} biases for {} x {}",
                    l.weight.len(),
                    l.bias.len(),
                    l.outputs,
                    l.inputs
                ),
            });
        }
    }
    for (what, found, expected) in [
        (
            "observation mean",
            normalisation.observation_mean.len(),
            inputs,
        ),
        (
            "observation std",
            normalisation.observation_std.len(),
            inputs,
        ),
        ("action mid", normalisation.action_mid.len(), outputs),
        (
            "action half range",
            normalisation.action_half_range.len(),
            outputs,
        ),
    ] {
        if found != expected {
            return Err(ExportError::Normalisation {
                what,
                found,
                expected,
            });
        }
    }
    Ok((inputs, outputs))
}

/// Encodes an actor (weights and normalisation, as `rlrt train` saves them) as an ONNX model.
pub fn export_actor(
    weights: &MlpWeights,
    normalisation: &Normalisation,
) -> Result<Vec<u8>, ExportError> {
    let (inputs, outputs) = check_actor(weights, normalisation)?;
    let f32s = |v: &[f64]| v.iter().map(|x| *x as f32).collect::<Vec<f32>>();

    let mut inits = vec![
        tensor(
            "obs_mean",
            &[inputs],
            &f32s(&normalisation.observation_mean),
        ),
        tensor("obs_std", &[inputs], &f32s(&normalisation.observation_std)),
        tensor("act_mid", &[outputs], &f32s(&normalisation.action_mid)),
        tensor(
            "act_half_range",
            &[outputs],
            &f32s(&normalisation.action_half_range),
        ),
    ];
    let mut nodes = vec![
        node("Sub", "centre", &[INPUT, "obs_mean"], "centred", &[]),
        node("Div", "scale", &["centred", "obs_std"], "x0", &[]),
    ];
    let last = weights.layers.len() - 1;
    let mut x = "x0".to_owned();
    for (k, l) in weights.layers.iter().enumerate() {
        let (w, b) = (format!("w{k}"), format!("b{k}"));
        inits.push(tensor(&w, &[l.outputs, l.inputs], &l.weight));
        inits.push(tensor(&b, &[l.outputs], &l.bias));
        let gemm = format!("gemm{k}");
        nodes.push(node(
            "Gemm",
            &gemm,
            &[&x, &w, &b],
            &gemm,
            &[Attr::Int("transB", 1)],
        ));
        x = if k < last {
            let relu = format!("relu{k}");
            nodes.push(node("Relu", &relu, &[&gemm], &relu, &[]));
            relu
        } else {
            gemm
        };
    }
    nodes.push(node("Tanh", "squash", &[&x], "unit", &[]));
    nodes.push(node(
        "Mul",
        "spread",
        &["unit", "act_half_range"],
        "spread",
        &[],
    ));
    nodes.push(node("Add", "shift", &["spread", "act_mid"], OUTPUT, &[]));
    Ok(model(
        "rlrt_actor",
        nodes,
        inits,
        value_info(INPUT, FLOAT, &[Dim::Named("batch"), Dim::Fixed(inputs)]),
        value_info(OUTPUT, FLOAT, &[Dim::Named("batch"), Dim::Fixed(outputs)]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatched_normalisation_is_refused() {
        let mut w = MlpWeights::default();
        w.push(2, 1, vec![1.0, 2.0], vec![0.5]);
        let n = Normalisation {
            observation_mean: vec![0.0; 3],
            observation_std: vec![1.0; 2],
            action_mid: vec![0.0],
            action_half_range: vec![1.0],
        };
        let e = export_actor(&w, &n).unwrap_err().to_string();
        assert!(e.contains("observation mean"), "{e}");
    }
}
