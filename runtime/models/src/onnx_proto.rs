//! Writing ONNX models without a protobuf dependency: ONNX files are a handful of protobuf
//! messages, and exporters (trained actors in `rlrt-policies`, success classifiers in
//! `rlrt-rewards`) only need to write a few of them. Field numbers follow `onnx.proto` of the
//! ONNX repository; models are written with IR version 8 and opset 17.

/// Protobuf wire encoding: just what ONNX needs.
#[derive(Default)]
pub struct Message(pub Vec<u8>);

impl Message {
    pub fn varint(&mut self, mut v: u64) {
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

    pub fn int(&mut self, field: u32, v: i64) {
        self.key(field, 0);
        self.varint(v as u64);
    }

    pub fn float(&mut self, field: u32, v: f32) {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    pub fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    pub fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    pub fn message(&mut self, field: u32, m: Message) {
        self.bytes(field, &m.0);
    }
}

/// TensorProto element types.
pub const FLOAT: i64 = 1;
pub const UINT8: i64 = 2;

/// An attribute of a node.
pub enum Attr<'a> {
    Int(&'a str, i64),
    Ints(&'a str, &'a [i64]),
}

/// TensorProto: a float32 initializer.
pub fn tensor(name: &str, dims: &[usize], values: &[f32]) -> Message {
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

/// NodeProto.
pub fn node(op: &str, name: &str, inputs: &[&str], output: &str, attrs: &[Attr<'_>]) -> Message {
    const INT: i64 = 2;
    const INTS: i64 = 7;
    let mut n = Message::default();
    for i in inputs {
        n.string(1, i);
    }
    n.string(2, output);
    n.string(3, name);
    n.string(4, op);
    for attr in attrs {
        let mut a = Message::default();
        match attr {
            Attr::Int(name, v) => {
                a.string(1, name);
                a.int(3, *v);
                a.int(20, INT);
            }
            Attr::Ints(name, vs) => {
                a.string(1, name);
                for v in *vs {
                    a.int(8, *v);
                }
                a.int(20, INTS);
            }
        }
        n.message(5, a);
    }
    n
}

/// A dimension of a graph input or output.
pub enum Dim<'a> {
    Fixed(usize),
    Named(&'a str),
}

/// ValueInfoProto of a tensor.
pub fn value_info(name: &str, elem_type: i64, dims: &[Dim<'_>]) -> Message {
    let mut shape = Message::default();
    for d in dims {
        let mut dim = Message::default();
        match d {
            Dim::Fixed(n) => dim.int(1, *n as i64),
            Dim::Named(s) => dim.string(2, s),
        }
        shape.message(1, dim);
    }
    let mut tensor_type = Message::default();
    tensor_type.int(1, elem_type);
    tensor_type.message(2, shape);
    let mut ty = Message::default();
    ty.message(1, tensor_type);
    let mut v = Message::default();
    v.string(1, name);
    v.message(2, ty);
    v
}

/// A whole model: `nodes`, `initializers`, one input and one output, opset 17.
pub fn model(
    graph_name: &str,
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    input: Message,
    output: Message,
) -> Vec<u8> {
    let mut graph = Message::default();
    for n in nodes {
        graph.message(1, n);
    }
    graph.string(2, graph_name);
    for t in initializers {
        graph.message(5, t);
    }
    graph.message(11, input);
    graph.message(12, output);
    let mut opset = Message::default();
    opset.string(1, "");
    opset.int(2, 17);
    let mut model = Message::default();
    model.int(1, 8);
    model.string(2, "rlrt");
    model.string(3, env!("CARGO_PKG_VERSION"));
    model.message(7, graph);
    model.message(8, opset);
    model.0
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
}
