//! The CLIP text and vision transformers (Radford et al., 2021) as burn modules, generic over
//! the backend. Layer for layer the Hugging Face `CLIPModel`: pre-LayerNorm residual blocks,
//! scaled dot-product attention with a causal mask in the text tower, the text pooled at its end
//! token, the image at its class token, both projected into the shared space without bias.
//!
//! Weights are stored the way the forward pass uses them: Linear weights as [in, out] (HF's
//! [out, in] transposed once at load), in the backend's layout (`ClipBackend::dense_weight`).

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::TensorPrimitive;

use super::config::{Activation, ClipConfig, TextConfig, TowerConfig, VisionConfig};
use super::kernels::{ClipBackend, Epilogue};

/// A linear layer.
#[derive(Module, Debug)]
pub struct Dense<B: Backend> {
    /// [in, out] in the backend's layout: [panels, in, out / panels]
    /// (`ClipBackend::dense_weight`).
    pub weight: Param<Tensor<B, 3>>,
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: ClipBackend> Dense<B> {
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        self.forward_then(x, Epilogue::Identity)
    }

    /// The layer followed by `then` (an activation, or a residual add whose tensor has the
    /// output's shape), in one step where the backend can (`kernels.rs`).
    pub fn forward_then<const D: usize>(&self, x: Tensor<B, D>, then: Epilogue<B>) -> Tensor<B, D> {
        let dims = x.dims();
        let [panels, inputs, width] = self.weight.dims();
        let outputs = panels * width;
        let rows = dims[..D - 1].iter().product::<usize>();
        let y = B::dense(
            x.reshape([rows, inputs]),
            self.weight.val(),
            self.bias.as_ref().map(|b| b.val()),
            then,
        );
        let mut out = dims;
        out[D - 1] = outputs;
        y.reshape(out)
    }
}

/// A residual tensor [..., width] as the [rows, width] matrix `Epilogue::Residual` takes.
fn residual<B: Backend, const D: usize>(x: Tensor<B, D>) -> Epilogue<B> {
    let dims = x.dims();
    let rows = dims[..D - 1].iter().product::<usize>();
    Epilogue::Residual(x.reshape([rows, dims[D - 1]]))
}

/// LayerNorm over the last dimension.
#[derive(Module, Debug)]
pub struct Norm<B: Backend> {
    pub gamma: Param<Tensor<B, 1>>,
    pub beta: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl<B: Backend> Norm<B> {
    /// burn's layer-norm operation: one fused pass on Flex, the mean / variance composition
    /// elsewhere.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        Tensor::from_primitive(TensorPrimitive::Float(B::layer_norm(
            x.into_primitive().tensor(),
            self.gamma.val().into_primitive().tensor(),
            Some(self.beta.val().into_primitive().tensor()),
            self.eps,
        )))
    }
}

#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// The query, key and value projections as one layer, weight [hidden, 3 * hidden]
    /// (queries, then keys, then values): one matrix product and one bias add per layer
    /// instead of three of each, which matters most where every operation costs a kernel
    /// launch (CUDA).
    pub qkv: Dense<B>,
    pub out: Dense<B>,
    pub heads: usize,
}

impl<B: ClipBackend> Attention<B> {
    /// `skip + attention(x)`. `x`, `skip`: [batch, tokens, hidden]. `causal`: each token
    /// attends to itself and the tokens before it (the text tower). The scale is CLIP's
    /// 1/sqrt(head_dim), the default of burn's attention op, which each backend implements in
    /// one kernel where it can (flash attention on CUDA, a fused loop on Flex).
    pub fn forward(&self, x: Tensor<B, 3>, skip: Tensor<B, 3>, causal: bool) -> Tensor<B, 3> {
        let [q, k, v] = B::split_heads(self.qkv.forward(x), self.heads);
        let options = AttentionModuleOptions {
            is_causal: causal,
            ..Default::default()
        };
        let context = B::merge_heads(attention(q, k, v, None, None, options));
        self.out.forward_then(context, residual(skip))
    }
}

#[derive(Module, Debug)]
pub struct Layer<B: Backend> {
    pub norm1: Norm<B>,
    pub attention: Attention<B>,
    pub norm2: Norm<B>,
    pub fc1: Dense<B>,
    pub fc2: Dense<B>,
    pub quick_gelu: bool,
}

impl<B: ClipBackend> Layer<B> {
    pub fn forward(&self, x: Tensor<B, 3>, causal: bool) -> Tensor<B, 3> {
        let x = self
            .attention
            .forward(self.norm1.forward(x.clone()), x, causal);
        let activation = if self.quick_gelu {
            Epilogue::QuickGelu
        } else {
            Epilogue::Gelu
        };
        let h = self
            .fc1
            .forward_then(self.norm2.forward(x.clone()), activation);
        self.fc2.forward_then(h, residual(x))
    }
}

#[derive(Module, Debug)]
pub struct TextTransformer<B: Backend> {
    /// [vocab, hidden]
    pub token_embedding: Param<Tensor<B, 2>>,
    /// [positions, hidden]
    pub position_embedding: Param<Tensor<B, 2>>,
    pub layers: Vec<Layer<B>>,
    pub final_norm: Norm<B>,
    /// [hidden, projection]
    pub projection: Dense<B>,
    pub eos_token_id: u32,
}

impl<B: ClipBackend> TextTransformer<B> {
    /// Unnormalised text embeddings, [batch, projection]. Every row of `ids` has the same
    /// length (pad after the end token: the causal mask keeps padding out of the pooled
    /// position, so its value does not matter).
    pub fn forward(&self, ids: &[Vec<u32>]) -> Tensor<B, 2> {
        let device = self.token_embedding.device();
        let batch = ids.len();
        let tokens = ids[0].len();
        let hidden = self.token_embedding.dims()[1];
        let flat: Vec<i64> = ids.iter().flatten().map(|&t| t as i64).collect();
        let index =
            Tensor::<B, 1, Int>::from_data(TensorData::new(flat, [batch * tokens]), &device);
        let x = self
            .token_embedding
            .val()
            .select(0, index)
            .reshape([batch, tokens, hidden]);
        let positions = self.position_embedding.val().slice([0..tokens, 0..hidden]);
        let mut x = x + positions.unsqueeze::<3>();
        for layer in &self.layers {
            x = layer.forward(x, true);
        }
        let x = self.final_norm.forward(x);
        let pooled: Vec<Tensor<B, 2>> = ids
            .iter()
            .enumerate()
            .map(|(row, seq)| {
                let at = pooled_position(seq, self.eos_token_id);
                x.clone()
                    .slice([row..row + 1, at..at + 1, 0..hidden])
                    .reshape([1, hidden])
            })
            .collect();
        self.projection.forward(Tensor::cat(pooled, 0))
    }
}

/// Where HF pools a token sequence: legacy configs (`eos_token_id == 2`) take the position of
/// the highest id (the end token in the original vocabulary), newer ones the first end token.
/// Falls back to the last position when the end token is absent.
pub fn pooled_position(ids: &[u32], eos_token_id: u32) -> usize {
    if eos_token_id == 2 {
        // argmax, first occurrence on ties, like torch.
        let mut best = 0;
        for (i, &t) in ids.iter().enumerate() {
            if t > ids[best] {
                best = i;
            }
        }
        best
    } else {
        ids.iter()
            .position(|&t| t == eos_token_id)
            .unwrap_or(ids.len() - 1)
    }
}

#[derive(Module, Debug)]
pub struct VisionTransformer<B: Backend> {
    /// The patch convolution (kernel = stride = patch, no bias) as a matrix,
    /// [channels * patch * patch, hidden], rows ordered channel, row, column.
    pub patch_embedding: Param<Tensor<B, 2>>,
    /// [hidden]
    pub class_embedding: Param<Tensor<B, 1>>,
    /// [1 + patches, hidden]
    pub position_embedding: Param<Tensor<B, 2>>,
    pub pre_norm: Norm<B>,
    pub layers: Vec<Layer<B>>,
    pub post_norm: Norm<B>,
    /// [hidden, projection]
    pub projection: Dense<B>,
    pub patch_size: usize,
}

impl<B: ClipBackend> VisionTransformer<B> {
    /// Unnormalised image embeddings, [batch, projection], from preprocessed pixels
    /// [batch, 3, size, size].
    pub fn forward(&self, pixels: Tensor<B, 4>) -> Tensor<B, 2> {
        let [batch, channels, height, width] = pixels.dims();
        let p = self.patch_size;
        let (gh, gw) = (height / p, width / p);
        let hidden = self.class_embedding.dims()[0];
        // A stride-p convolution with a p x p kernel is a matmul over non-overlapping patches.
        let patches = pixels
            .reshape([batch, channels, gh, p, gw, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([batch * gh * gw, channels * p * p])
            .matmul(self.patch_embedding.val())
            .reshape([batch, gh * gw, hidden]);
        let class = self
            .class_embedding
            .val()
            .reshape([1, 1, hidden])
            .repeat_dim(0, batch);
        let x =
            Tensor::cat(vec![class, patches], 1) + self.position_embedding.val().unsqueeze::<3>();
        let mut x = self.pre_norm.forward(x);
        for layer in &self.layers {
            x = layer.forward(x, false);
        }
        let cls = x
            .slice([0..batch, 0..1, 0..hidden])
            .reshape([batch, hidden]);
        self.projection.forward(self.post_norm.forward(cls))
    }
}

/// Both towers.
#[derive(Module, Debug)]
pub struct Clip<B: Backend> {
    pub text: TextTransformer<B>,
    pub vision: VisionTransformer<B>,
}

/// Tensors filled by a closure `init(shape)`; used to build a model from a config, either
/// randomly (benchmarks) or from checkpoint tensors (`weights.rs`).
pub trait TensorSource<B: Backend> {
    type Error;
    /// A tensor under its Hugging Face name, in HF's layout and shape.
    fn tensor<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<B, D>, Self::Error>;
}

/// A linear layer's weight [in, out] and optional bias, before `ClipBackend::dense_weight`.
type LinearParts<B> = (Tensor<B, 2>, Option<Tensor<B, 1>>);

/// HF's nn.Linear `name` as a weight [in, out] and its bias.
fn linear_parts<B: Backend, S: TensorSource<B>>(
    src: &mut S,
    name: &str,
    inputs: usize,
    outputs: usize,
    bias: bool,
) -> Result<LinearParts<B>, S::Error> {
    // HF stores nn.Linear weights as [out, in].
    let weight = src
        .tensor(&format!("{name}.weight"), [outputs, inputs])?
        .transpose();
    let bias = if bias {
        Some(src.tensor(&format!("{name}.bias"), [outputs])?)
    } else {
        None
    };
    Ok((weight, bias))
}

fn dense_layer<B: ClipBackend>(weight: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Dense<B> {
    Dense {
        weight: Param::from_tensor(B::dense_weight(contiguous(weight))),
        bias: bias.map(Param::from_tensor),
    }
}

fn dense<B: ClipBackend, S: TensorSource<B>>(
    src: &mut S,
    name: &str,
    inputs: usize,
    outputs: usize,
    bias: bool,
) -> Result<Dense<B>, S::Error> {
    let (weight, bias) = linear_parts(src, name, inputs, outputs, bias)?;
    Ok(dense_layer(weight, bias))
}

/// HF's separate q_proj, k_proj and v_proj under `prefix` as one [in, 3 * out] layer.
fn qkv<B: ClipBackend, S: TensorSource<B>>(
    src: &mut S,
    prefix: &str,
    hidden: usize,
) -> Result<Dense<B>, S::Error> {
    let mut weights = Vec::with_capacity(3);
    let mut biases = Vec::with_capacity(3);
    for name in ["q_proj", "k_proj", "v_proj"] {
        let (weight, bias) = linear_parts(src, &format!("{prefix}.{name}"), hidden, hidden, true)?;
        weights.push(weight);
        biases.push(bias.expect("asked with a bias"));
    }
    Ok(dense_layer(
        Tensor::cat(weights, 1),
        Some(Tensor::cat(biases, 0)),
    ))
}

/// A transposed view laid out in memory once, at load, so that no matmul has to deal with
/// a strided weight on every call.
fn contiguous<B: Backend>(t: Tensor<B, 2>) -> Tensor<B, 2> {
    let device = t.device();
    Tensor::from_data(t.into_data(), &device)
}

fn norm<B: Backend, S: TensorSource<B>>(
    src: &mut S,
    name: &str,
    size: usize,
    eps: f64,
) -> Result<Norm<B>, S::Error> {
    Ok(Norm {
        gamma: Param::from_tensor(src.tensor(&format!("{name}.weight"), [size])?),
        beta: Param::from_tensor(src.tensor(&format!("{name}.bias"), [size])?),
        eps,
    })
}

fn layers<B: ClipBackend, S: TensorSource<B>>(
    src: &mut S,
    prefix: &str,
    t: &TowerConfig,
) -> Result<Vec<Layer<B>>, S::Error> {
    let (h, m) = (t.hidden_size, t.intermediate_size);
    (0..t.num_layers)
        .map(|i| {
            let p = format!("{prefix}.encoder.layers.{i}");
            Ok(Layer {
                norm1: norm(src, &format!("{p}.layer_norm1"), h, t.layer_norm_eps)?,
                attention: Attention {
                    qkv: qkv(src, &format!("{p}.self_attn"), h)?,
                    out: dense(src, &format!("{p}.self_attn.out_proj"), h, h, true)?,
                    heads: t.num_heads,
                },
                norm2: norm(src, &format!("{p}.layer_norm2"), h, t.layer_norm_eps)?,
                fc1: dense(src, &format!("{p}.mlp.fc1"), h, m, true)?,
                fc2: dense(src, &format!("{p}.mlp.fc2"), m, h, true)?,
                quick_gelu: t.activation == Activation::QuickGelu,
            })
        })
        .collect()
}

fn text<B: ClipBackend, S: TensorSource<B>>(
    src: &mut S,
    c: &TextConfig,
    projection: usize,
) -> Result<TextTransformer<B>, S::Error> {
    let h = c.tower.hidden_size;
    Ok(TextTransformer {
        token_embedding: Param::from_tensor(src.tensor(
            "text_model.embeddings.token_embedding.weight",
            [c.vocab_size, h],
        )?),
        position_embedding: Param::from_tensor(src.tensor(
            "text_model.embeddings.position_embedding.weight",
            [c.max_positions, h],
        )?),
        layers: layers(src, "text_model", &c.tower)?,
        final_norm: norm(
            src,
            "text_model.final_layer_norm",
            h,
            c.tower.layer_norm_eps,
        )?,
        projection: dense(src, "text_projection", h, projection, false)?,
        eos_token_id: c.eos_token_id,
    })
}

fn vision<B: ClipBackend, S: TensorSource<B>>(
    src: &mut S,
    c: &VisionConfig,
    projection: usize,
) -> Result<VisionTransformer<B>, S::Error> {
    let h = c.tower.hidden_size;
    let p = c.patch_size;
    let eps = c.tower.layer_norm_eps;
    let conv = src.tensor(
        "vision_model.embeddings.patch_embedding.weight",
        [h, c.num_channels, p, p],
    )?;
    Ok(VisionTransformer {
        patch_embedding: Param::from_tensor(contiguous(
            conv.reshape([h, c.num_channels * p * p]).transpose(),
        )),
        class_embedding: Param::from_tensor(
            src.tensor("vision_model.embeddings.class_embedding", [h])?,
        ),
        position_embedding: Param::from_tensor(src.tensor(
            "vision_model.embeddings.position_embedding.weight",
            [c.grid() * c.grid() + 1, h],
        )?),
        // HF's spelling.
        pre_norm: norm(src, "vision_model.pre_layrnorm", h, eps)?,
        layers: layers(src, "vision_model", &c.tower)?,
        post_norm: norm(src, "vision_model.post_layernorm", h, eps)?,
        projection: dense(src, "visual_projection", h, projection, false)?,
        patch_size: p,
    })
}

impl<B: ClipBackend> Clip<B> {
    /// The vision tower alone (image embeddings, benchmarks).
    pub fn build_vision<S: TensorSource<B>>(
        config: &ClipConfig,
        src: &mut S,
    ) -> Result<VisionTransformer<B>, S::Error> {
        vision(src, &config.vision, config.projection_dim)
    }

    /// Builds both towers, asking `src` for every tensor by its HF name.
    pub fn build<S: TensorSource<B>>(config: &ClipConfig, src: &mut S) -> Result<Self, S::Error> {
        Ok(Self {
            text: text(src, &config.text, config.projection_dim)?,
            vision: vision(src, &config.vision, config.projection_dim)?,
        })
    }
}

/// Random weights (normal, std 0.02; LayerNorm gains near one), for benchmarks and shape
/// tests: the cost of a forward pass does not depend on the values.
pub struct RandomInit<'a, B: Backend> {
    pub device: &'a B::Device,
}

impl<B: Backend> TensorSource<B> for RandomInit<'_, B> {
    type Error = std::convert::Infallible;

    fn tensor<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<B, D>, Self::Error> {
        let t = Tensor::random(
            shape,
            burn::tensor::Distribution::Normal(0.0, 0.02),
            self.device,
        );
        Ok(if name.contains("norm") && name.ends_with(".weight") {
            t.add_scalar(1.0)
        } else {
            t
        })
    }
}
