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
//! The file is written with a small protobuf encoder here (ONNX is a handful of protobuf
//! messages), opset 17, IR version 8, float32 throughout; the batch dimension is symbolic.
//! Field numbers follow `onnx.proto` of the ONNX repository.

use crate::checkpoint::{MlpWeights, Normalisation};

/// Protobuf wire encoding: just what ONNX needs.
#[derive(Default)]
struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    fn int(&mut self, field: u32, v: i64) {
        self.key(field, 0);
        self.varint(v as u64);
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    fn message(&mut self, field: u32, m: Message) {
        self.bytes(field, &m.0);
    }
}

const FLOAT: i64 = 1;
const ATTRIBUTE_INT: i64 = 2;

/// TensorProto: a float32 initializer.
fn tensor(name: &str, dims: &[usize], values: &[f32]) -> Message {
    let mut t = Message::default();
    for d in dims {
        t.int(1, *d as i64);
    }
    t.int(2, FLOAT);
    t.string(8, name);
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    t.bytes(9, &raw);
    t
}

/// NodeProto with optional integer attributes.
fn node(op: &str, name: &str, inputs: &[&str], output: &str, ints: &[(&str, i64)]) -> Message {
    let mut n = Message::default();
    for i in inputs {
        n.string(1, i);
    }
    n.string(2, output);
    n.string(3, name);
    n.string(4, op);
    for (attr, v) in ints {
        let mut a = Message::default();
        a.string(1, attr);
        a.int(3, *v);
        a.int(20, ATTRIBUTE_INT);
        n.message(5, a);
    }
    n
}

/// ValueInfoProto of a float tensor `[batch, len]`.
fn value_info(name: &str, len: usize) -> Message {
    let mut batch = Message::default();
    batch.string(2, "batch");
    let mut width = Message::default();
    width.int(1, len as i64);
    let mut shape = Message::default();
    shape.message(1, batch);
    shape.message(1, width);
    let mut tensor_type = Message::default();
    tensor_type.int(1, FLOAT);
    tensor_type.message(2, shape);
    let mut ty = Message::default();
    ty.message(1, tensor_type);
    let mut v = Message::default();
    v.string(1, name);
    v.message(2, ty);
    v
}

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

/// Encodes an actor (weights and normalisation, as `rlrt train` saves them) as an ONNX model.
pub fn export_actor(
    weights: &MlpWeights,
    normalisation: &Normalisation,
) -> Result<Vec<u8>, ExportError> {
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
    let f32s = |v: &[f64]| v.iter().map(|x| *x as f32).collect::<Vec<f32>>();

    let mut graph = Message::default();
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
        nodes.push(node("Gemm", &gemm, &[&x, &w, &b], &gemm, &[("transB", 1)]));
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
    for n in nodes {
        graph.message(1, n);
    }
    graph.string(2, "rlrt_actor");
    for t in inits {
        graph.message(5, t);
    }
    graph.message(11, value_info(INPUT, inputs));
    graph.message(12, value_info(OUTPUT, outputs));

    let mut opset = Message::default();
    opset.string(1, "");
    opset.int(2, 17);
    let mut model = Message::default();
    model.int(1, 8);
    model.string(2, "rlrt");
    model.string(3, env!("CARGO_PKG_VERSION"));
    model.message(7, graph);
    model.message(8, opset);
    Ok(model.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_encode_like_protobuf() {
        let mut m = Message::default();
        m.varint(1);
        m.varint(300);
        m.varint(u64::MAX);
        assert_eq!(&m.0[..3], &[1, 0xac, 0x02]);
        assert_eq!(m.0.len(), 3 + 10);
    }

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
