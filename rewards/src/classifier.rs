//! A small success classifier on camera frames, trained in burn from labelled frames and
//! exported to ONNX, so that it runs in the loop as a `kind = "classifier"` reward (through
//! ONNX Runtime, like any classifier a user brings).
//!
//! The network reads the camera's frame as it arrives (uint8, height x width x channels):
//!
//! ```text
//! frame -> / 255 -> Conv k x k stride s, ReLU -> [Conv 1 x 1, ReLU] ... -> global max pool
//!       -> Linear -> sigmoid
//! ```
//!
//! One strided convolution looks at overlapping patches (8 x 8 every 4 pixels by default);
//! the 1 x 1 convolutions mix its features per patch; global max pooling then asks "is there
//! anywhere in the frame a patch that looks like success" (a gripper on an object), which
//! keeps the head small and the detector translation-invariant. In burn the patches are cut
//! out when a batch is built (the frames need no gradient) and every layer is a matrix
//! product: burn's CPU backend runs direct convolutions far slower than products, and this
//! keeps a few thousand 84 x 84 frames to seconds per epoch. The ONNX export writes the same
//! network as `Conv` nodes. Training minimises the class-balanced logistic loss with Adam on
//! minibatches drawn from the crate's seeded generator, so a run on the CPU is repeatable.
//! Weights start from the same seeded generator (uniform, PyTorch's default bounds).

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rlrt_models::onnx_proto::{self, model, node, tensor, value_info, Attr, Dim};
use rlrt_runtime::rng::{splitmix64, uniform01};

use crate::training::{fit, Schedule};

/// Training backend: burn's Flex on the CPU (one thread, deterministic for a seed).
pub type TrainBackend = Autodiff<Flex>;

/// Labelled frames of one camera, back to back.
#[derive(Clone, Debug, Default)]
pub struct Frames {
    pub width: usize,
    pub height: usize,
    /// 3 (rgb8) or 1 (mono8).
    pub channels: usize,
    pub pixels: Vec<u8>,
    pub labels: Vec<bool>,
}

impl Frames {
    pub fn new(width: usize, height: usize, channels: usize) -> Self {
        Self {
            width,
            height,
            channels,
            ..Self::default()
        }
    }

    pub fn frame_bytes(&self) -> usize {
        self.width * self.height * self.channels
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn push(&mut self, pixels: &[u8], label: bool) {
        self.pixels.extend_from_slice(pixels);
        self.labels.push(label);
    }

    pub fn frame(&self, i: usize) -> &[u8] {
        let b = self.frame_bytes();
        &self.pixels[i * b..(i + 1) * b]
    }

    pub fn positives(&self) -> usize {
        self.labels.iter().filter(|l| **l).count()
    }
}

/// Sizes and training settings.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClassifierConfig {
    /// Side and stride of the patches of the first convolution (no padding).
    pub patch: usize,
    pub stride: usize,
    /// Channels of the first convolution, then of each 1 x 1 convolution.
    pub channels: Vec<usize>,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

impl ClassifierConfig {
    pub(crate) fn schedule(&self) -> Schedule {
        Schedule {
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
        }
    }
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self {
            patch: 8,
            stride: 4,
            channels: vec![32, 32],
            epochs: 12,
            batch_size: 32,
            learning_rate: 2e-3,
            seed: 0,
        }
    }
}

/// Why a classifier cannot be trained or exported.
#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    #[error("{0}")]
    Data(String),
    #[error("the frames are {width} x {height}, smaller than one {patch} x {patch} patch")]
    TooSmall {
        width: usize,
        height: usize,
        patch: usize,
    },
}

/// The network.
#[derive(Module, Debug)]
pub struct SuccessCnn<B: Backend> {
    /// The strided convolution as a product: [channels x patch x patch, channels[0]].
    patch: Linear<B>,
    /// Where each patch lies, (row, column) in [-1, 1], mapped to channels[0] and added to
    /// the first convolution's output (CoordConv): lets the network tell where in the frame
    /// something is, which global max pooling alone throws away. Reward models use it; the
    /// success classifier does not.
    positions: Option<Linear<B>>,
    /// Patches along each side: [rows, columns] (0 without `positions`).
    grid: [usize; 2],
    /// The 1 x 1 convolutions.
    mix: Vec<Linear<B>>,
    head: Linear<B>,
}

/// Each patch's (row, column) scaled to [-1, 1], [rows x columns, 2] row-major.
fn patch_positions(grid: [usize; 2]) -> Vec<f32> {
    let along = |i: usize, n: usize| {
        if n > 1 {
            2.0 * i as f32 / (n - 1) as f32 - 1.0
        } else {
            0.0
        }
    };
    let mut out = Vec::with_capacity(grid[0] * grid[1] * 2);
    for y in 0..grid[0] {
        for x in 0..grid[1] {
            out.push(along(y, grid[0]));
            out.push(along(x, grid[1]));
        }
    }
    out
}

fn seeded_linear<B: Backend>(
    inputs: usize,
    outputs: usize,
    device: &B::Device,
    rng: &mut u64,
) -> Linear<B> {
    let bound = 1.0 / (inputs as f64).sqrt();
    let mut draw = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| ((2.0 * uniform01(rng) - 1.0) * bound) as f32)
            .collect()
    };
    let mut linear = LinearConfig::new(inputs, outputs).init::<B>(device);
    // burn's Linear stores [in, out]: y = x W + b.
    linear.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(draw(inputs * outputs), [inputs, outputs]),
        device,
    ));
    linear.bias = Some(Param::from_tensor(Tensor::from_data(
        TensorData::new(draw(outputs), [outputs]),
        device,
    )));
    linear
}

impl<B: Backend> SuccessCnn<B> {
    /// Seeded initialisation for frames of `channels` channels.
    pub fn new(
        config: &ClassifierConfig,
        channels: usize,
        device: &B::Device,
        rng: &mut u64,
    ) -> Self {
        let k = config.patch;
        let first = config.channels.first().copied().unwrap_or(16);
        let patch = seeded_linear(channels * k * k, first, device, rng);
        let mut mix = Vec::new();
        let mut width = first;
        for &c in config.channels.iter().skip(1) {
            mix.push(seeded_linear(width, c, device, rng));
            width = c;
        }
        let head = seeded_linear(width, 1, device, rng);
        Self {
            patch,
            positions: None,
            grid: [0, 0],
            mix,
            head,
        }
    }

    /// As [`SuccessCnn::new`], with the patch positions of `width` x `height` frames as
    /// inputs of the first layer (drawn after every other weight).
    pub fn with_positions(
        config: &ClassifierConfig,
        channels: usize,
        width: usize,
        height: usize,
        device: &B::Device,
        rng: &mut u64,
    ) -> Self {
        let mut model = Self::new(config, channels, device, rng);
        let first = config.channels.first().copied().unwrap_or(16);
        let mut positions = seeded_linear::<B>(2, first, device, rng);
        positions.bias = None;
        model.positions = Some(positions);
        model.grid = [
            patches_along(height, config.patch, config.stride),
            patches_along(width, config.patch, config.stride),
        ];
        model
    }

    /// Success logits [batch, 1] of patches [batch, patches, channels x patch x patch].
    pub fn forward(&self, patches: Tensor<B, 3>) -> Tensor<B, 2> {
        let mut x = self.patch.forward(patches);
        if let Some(positions) = &self.positions {
            let device = x.device();
            let n = self.grid[0] * self.grid[1];
            let at = Tensor::<B, 2>::from_data(
                TensorData::new(patch_positions(self.grid), [n, 2]),
                &device,
            );
            x = x + positions.forward(at).unsqueeze::<3>();
        }
        let mut x = relu(x);
        for layer in &self.mix {
            x = relu(layer.forward(x));
        }
        let [n, _, c] = x.dims();
        let pooled = x.max_dim(1).reshape([n, c]);
        self.head.forward(pooled)
    }
}

/// Patches per frame side: (side - patch) / stride + 1.
fn patches_along(side: usize, patch: usize, stride: usize) -> usize {
    (side - patch) / stride + 1
}

/// The patches of frames `indices` as [batch, patches, channels x patch x patch], values
/// in [0, 1]; a patch's values are ordered channel, row, column (ONNX's Conv weight order).
pub fn batch<B: Backend>(
    frames: &Frames,
    indices: &[usize],
    patch: usize,
    stride: usize,
    device: &B::Device,
) -> Tensor<B, 3> {
    let (h, w, c) = (frames.height, frames.width, frames.channels);
    let (py, px) = (
        patches_along(h, patch, stride),
        patches_along(w, patch, stride),
    );
    let features = c * patch * patch;
    let mut out = vec![0.0f32; indices.len() * py * px * features];
    for (b, &i) in indices.iter().enumerate() {
        let frame = frames.frame(i);
        for gy in 0..py {
            for gx in 0..px {
                let base = ((b * py + gy) * px + gx) * features;
                for ky in 0..patch {
                    let row = (gy * stride + ky) * w + gx * stride;
                    for kx in 0..patch {
                        let pixel = &frame[(row + kx) * c..(row + kx + 1) * c];
                        for (ch, v) in pixel.iter().enumerate() {
                            out[base + (ch * patch + ky) * patch + kx] = f32::from(*v) / 255.0;
                        }
                    }
                }
            }
        }
    }
    Tensor::from_data(
        TensorData::new(out, [indices.len(), py * px, features]),
        device,
    )
}

/// `head` of the network's output for every frame (batches of 64).
pub(crate) fn outputs<B: Backend>(
    model: &SuccessCnn<B>,
    frames: &Frames,
    (patch, stride): (usize, usize),
    device: &B::Device,
    head: impl Fn(Tensor<B, 2>) -> Tensor<B, 2>,
) -> Vec<f32> {
    let all: Vec<usize> = (0..frames.len()).collect();
    let mut out = Vec::with_capacity(frames.len());
    for chunk in all.chunks(64) {
        let x = batch::<B>(frames, chunk, patch, stride, device);
        out.extend(values(head(model.forward(x))));
    }
    out
}

/// Success probabilities of every frame (batches of 64).
pub fn probabilities<B: Backend>(
    model: &SuccessCnn<B>,
    frames: &Frames,
    patch: usize,
    stride: usize,
    device: &B::Device,
) -> Vec<f32> {
    outputs(model, frames, (patch, stride), device, sigmoid)
}

/// Accuracy of probabilities against labels at threshold 0.5.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Scores {
    pub frames: usize,
    pub positives: usize,
    pub accuracy: f64,
    /// Mean of the true-positive and true-negative rates: 0.5 for any constant guess.
    pub balanced_accuracy: f64,
    /// Accuracy of always guessing the more frequent label.
    pub majority_accuracy: f64,
}

impl Scores {
    pub fn of(probabilities: &[f32], labels: &[bool]) -> Self {
        let (mut tp, mut tn) = (0usize, 0usize);
        for (p, l) in probabilities.iter().zip(labels) {
            match (*p >= 0.5, *l) {
                (true, true) => tp += 1,
                (false, false) => tn += 1,
                _ => {}
            }
        }
        let n = labels.len();
        let pos = labels.iter().filter(|l| **l).count();
        let neg = n - pos;
        let rate = |k: usize, of: usize| if of == 0 { 1.0 } else { k as f64 / of as f64 };
        Self {
            frames: n,
            positives: pos,
            accuracy: rate(tp + tn, n),
            balanced_accuracy: 0.5 * (rate(tp, pos) + rate(tn, neg)),
            majority_accuracy: rate(pos.max(neg), n),
        }
    }
}

/// A trained classifier and how it did.
pub struct Trained {
    pub model: SuccessCnn<Flex>,
    pub patch: usize,
    pub stride: usize,
    pub channels: usize,
    pub width: usize,
    pub height: usize,
    /// Mean loss of each epoch.
    pub losses: Vec<f64>,
    pub train: Scores,
    pub validation: Scores,
}

/// Trains on `train`, scores on `validation`; `progress` gets (epoch, mean loss).
pub fn train(
    train: &Frames,
    validation: &Frames,
    config: &ClassifierConfig,
    progress: impl FnMut(usize, f64),
) -> Result<Trained, ClassifierError> {
    let (w, h, c) = (train.width, train.height, train.channels);
    if validation.width != w || validation.height != h || validation.channels != c {
        return Err(ClassifierError::Data(
            "training and validation frames differ in size".into(),
        ));
    }
    if w < config.patch || h < config.patch || config.stride == 0 {
        return Err(ClassifierError::TooSmall {
            width: w,
            height: h,
            patch: config.patch,
        });
    }
    let pos = train.positives();
    if pos == 0 || pos == train.len() {
        return Err(ClassifierError::Data(format!(
            "the training frames are all {}: a classifier needs both successes and failures",
            if pos == 0 { "failures" } else { "successes" }
        )));
    }
    let device = Default::default();
    let mut rng = config.seed ^ 0xC1A5_51F1;
    splitmix64(&mut rng);
    let model = SuccessCnn::<TrainBackend>::new(config, c, &device, &mut rng);
    // Class-balanced weights: each class contributes half of the loss.
    let n = train.len() as f64;
    let (w_pos, w_neg) = (0.5 * n / pos as f64, 0.5 * n / (n - pos as f64));
    let loss = |model: &SuccessCnn<TrainBackend>, chunk: &[usize]| {
        let x = batch::<TrainBackend>(train, chunk, config.patch, config.stride, &device);
        let labels: Vec<f32> = chunk
            .iter()
            .map(|i| if train.labels[*i] { 1.0 } else { 0.0 })
            .collect();
        let weights: Vec<f32> = chunk
            .iter()
            .map(|i| (if train.labels[*i] { w_pos } else { w_neg }) as f32)
            .collect();
        let y = Tensor::<TrainBackend, 2>::from_data(
            TensorData::new(labels, [chunk.len(), 1]),
            &device,
        );
        let weight = Tensor::<TrainBackend, 2>::from_data(
            TensorData::new(weights, [chunk.len(), 1]),
            &device,
        );
        let z = model.forward(x);
        // log(1 + e^z) - y z, computed stably as max(z, 0) + log(1 + e^-|z|) - y z.
        let softplus = z.clone().clamp_min(0.0) + z.clone().abs().neg().exp().log1p();
        ((softplus - y * z) * weight).mean()
    };
    let (model, losses) = fit(
        model,
        train.len(),
        config.schedule(),
        &mut rng,
        loss,
        progress,
    );
    let model = model.valid();
    let (k, st) = (config.patch, config.stride);
    let train_scores = Scores::of(&probabilities(&model, train, k, st, &device), &train.labels);
    let validation_scores = Scores::of(
        &probabilities(&model, validation, k, st, &device),
        &validation.labels,
    );
    Ok(Trained {
        model,
        patch: config.patch,
        stride: config.stride,
        channels: c,
        width: w,
        height: h,
        losses,
        train: train_scores,
        validation: validation_scores,
    })
}

pub(crate) fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 after convert")
}

/// Input and output names of exported classifiers.
pub const INPUT: &str = "frame";
pub const OUTPUT: &str = "success";

/// The classifier as an ONNX model: uint8 [1, height, width, channels] in (the camera's bytes),
/// float32 [1, 1] out (the success probability); see `docs/frame-rewards.md`.
pub fn export_onnx(trained: &Trained) -> Vec<u8> {
    export_network(
        &trained.model,
        &Geometry {
            patch: trained.patch,
            stride: trained.stride,
            channels: trained.channels,
            width: trained.width,
            height: trained.height,
        },
        "rlrt_success_classifier",
        OUTPUT,
        Head::Sigmoid,
    )
}

/// The frames a network reads and how it cuts them into patches.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub patch: usize,
    pub stride: usize,
    pub channels: usize,
    pub width: usize,
    pub height: usize,
}

/// What follows the network's linear head in the exported graph.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Head {
    /// A probability (the classifier).
    Sigmoid,
    /// `(logit - shift) / scale`, folded into the head's weights (a reward model's
    /// normalisation).
    Affine { shift: f32, scale: f32 },
}

/// `model` as ONNX: uint8 [1, height, width, channels] in, float32 [1, 1] out, named `output`.
pub(crate) fn export_network(
    model_: &SuccessCnn<Flex>,
    geometry: &Geometry,
    graph: &str,
    output: &str,
    head: Head,
) -> Vec<u8> {
    let mut inits = vec![tensor("inv255", &[1], &[1.0 / 255.0])];
    let mut nodes = vec![
        node(
            "Cast",
            "to_float",
            &[INPUT],
            "frame_f",
            &[Attr::Int("to", onnx_proto::FLOAT)],
        ),
        node(
            "Transpose",
            "to_nchw",
            &["frame_f"],
            "nchw",
            &[Attr::Ints("perm", &[0, 3, 1, 2])],
        ),
        node("Mul", "scale", &["nchw", "inv255"], "x0", &[]),
    ];
    // Conv weights [out, in, k, k] are burn's [in features, out] transposed (features are
    // ordered channel, row, column in both).
    let mut conv = |index: usize, layer: &Linear<Flex>, input: &str, k: usize, stride: usize| {
        let weight = layer.weight.val();
        let [features, outputs] = weight.dims();
        let w = values(weight);
        let mut transposed = vec![0.0f32; w.len()];
        for f in 0..features {
            for o in 0..outputs {
                transposed[o * features + f] = w[f * outputs + o];
            }
        }
        let (wn, bn) = (format!("conv{index}_w"), format!("conv{index}_b"));
        inits.push(tensor(
            &wn,
            &[outputs, features / (k * k), k, k],
            &transposed,
        ));
        let bias = layer
            .bias
            .as_ref()
            .map(|b| values(b.val()))
            .unwrap_or_default();
        inits.push(tensor(&bn, &[outputs], &bias));
        let mut out = format!("conv{index}");
        nodes.push(node(
            "Conv",
            &out,
            &[input, &wn, &bn],
            &out,
            &[
                Attr::Ints("kernel_shape", &[k as i64, k as i64]),
                Attr::Ints("strides", &[stride as i64, stride as i64]),
                Attr::Ints("pads", &[0, 0, 0, 0]),
            ],
        ));
        if let (0, Some(positions)) = (index, &model_.positions) {
            // The position term is the same for every frame: a constant [1, C, rows, columns].
            let grid = model_.grid;
            let at = patch_positions(grid);
            let pw = values(positions.weight.val());
            let n = grid[0] * grid[1];
            let mut term = vec![0.0f32; outputs * n];
            for o in 0..outputs {
                for p in 0..n {
                    term[o * n + p] = at[2 * p] * pw[o] + at[2 * p + 1] * pw[outputs + o];
                }
            }
            inits.push(tensor("positions", &[1, outputs, grid[0], grid[1]], &term));
            nodes.push(node(
                "Add",
                "at_positions",
                &[&out, "positions"],
                "placed0",
                &[],
            ));
            out = "placed0".to_owned();
        }
        let relu_out = format!("relu{index}");
        nodes.push(node("Relu", &relu_out, &[&out], &relu_out, &[]));
        relu_out
    };
    let mut x = conv(0, &model_.patch, "x0", geometry.patch, geometry.stride);
    for (i, layer) in model_.mix.iter().enumerate() {
        x = conv(i + 1, layer, &x, 1, 1);
    }
    nodes.push(node("GlobalMaxPool", "pool", &[&x], "pooled", &[]));
    nodes.push(node(
        "Flatten",
        "flatten",
        &["pooled"],
        "features",
        &[Attr::Int("axis", 1)],
    ));
    // burn's Linear stores [in, out]; Gemm with transB takes [out, in]: one output, same order.
    let mut head_w = values(model_.head.weight.val());
    let mut head_b = model_
        .head
        .bias
        .as_ref()
        .map(|b| values(b.val()))
        .unwrap_or_default();
    if let Head::Affine { shift, scale } = head {
        head_w.iter_mut().for_each(|w| *w /= scale);
        head_b.iter_mut().for_each(|b| *b = (*b - shift) / scale);
    }
    inits.push(tensor("head_w", &[1, head_w.len()], &head_w));
    inits.push(tensor("head_b", &[1], &head_b));
    let logit = match head {
        Head::Sigmoid => "logit",
        Head::Affine { .. } => output,
    };
    nodes.push(node(
        "Gemm",
        "head",
        &["features", "head_w", "head_b"],
        logit,
        &[Attr::Int("transB", 1)],
    ));
    if let Head::Sigmoid = head {
        nodes.push(node("Sigmoid", "probability", &["logit"], output, &[]));
    }
    model(
        graph,
        nodes,
        inits,
        value_info(
            INPUT,
            onnx_proto::UINT8,
            &[
                Dim::Fixed(1),
                Dim::Fixed(geometry.height),
                Dim::Fixed(geometry.width),
                Dim::Fixed(geometry.channels),
            ],
        ),
        value_info(output, onnx_proto::FLOAT, &[Dim::Fixed(1), Dim::Fixed(1)]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames with a bright square somewhere (success) or nowhere (failure).
    fn squares(n: usize, seed: u64) -> Frames {
        let mut rng = seed;
        let mut f = Frames::new(24, 24, 3);
        for i in 0..n {
            let mut px = vec![20u8; 24 * 24 * 3];
            for v in px.iter_mut() {
                *v = (20.0 + 30.0 * uniform01(&mut rng)) as u8;
            }
            let success = i % 2 == 0;
            if success {
                let (x0, y0) = (
                    (uniform01(&mut rng) * 20.0) as usize,
                    (uniform01(&mut rng) * 20.0) as usize,
                );
                for y in y0..y0 + 4 {
                    for x in x0..x0 + 4 {
                        px[(y * 24 + x) * 3 + 1] = 240;
                    }
                }
            }
            f.push(&px, success);
        }
        f
    }

    #[test]
    fn learns_a_visible_success_cue_and_is_repeatable() {
        let config = ClassifierConfig {
            patch: 6,
            stride: 3,
            channels: vec![8, 8],
            epochs: 6,
            batch_size: 16,
            learning_rate: 1e-2,
            seed: 3,
        };
        let (train_set, val) = (squares(160, 1), squares(60, 2));
        let a = train(&train_set, &val, &config, |_, _| {}).unwrap();
        assert!(a.validation.balanced_accuracy >= 0.9, "{:?}", a.validation);
        let b = train(&train_set, &val, &config, |_, _| {}).unwrap();
        assert_eq!(a.losses, b.losses, "same seed, same run");
    }

    #[test]
    fn one_class_or_tiny_frames_are_refused() {
        let mut all_fail = Frames::new(24, 24, 3);
        for _ in 0..4 {
            all_fail.push(&[0; 24 * 24 * 3], false);
        }
        let e = train(
            &all_fail,
            &all_fail,
            &ClassifierConfig::default(),
            |_, _| {},
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("all failures"), "{e}");
        let tiny = Frames::new(4, 4, 3);
        let e = train(&tiny, &tiny, &ClassifierConfig::default(), |_, _| {})
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("smaller than one 8 x 8 patch"), "{e}");
    }
}
