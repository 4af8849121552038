//! CLIP's hot operations as a burn backend extension: a dense layer with its bias, activation
//! or residual add folded in, and the head split and merge around attention.
//!
//! Every backend gets them composed from burn's tensor operations (the `portable` functions).
//! On the CPU (burn's Flex) that composition costs a pass over memory and a fresh buffer per
//! operation, and its sigmoid runs a scalar `expf` per element: at batch 16 those passes took
//! about a quarter of a ViT-B/32 forward pass, as much as PyTorch's whole lead (docs/clip.md).
//! The Flex implementation below keeps each weight in 64-column panels and multiplies them with
//! the `gemm` crate (as Flex's own matmul does), accumulating into a buffer that already holds
//! the bias and residual, followed by at most one vectorised pass; the head split and merge
//! are copies of whole head-sized rows. Tensors that are not contiguous f32 take the portable
//! path.

use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::activation::{gelu, sigmoid};
use burn::tensor::TensorPrimitive;

/// What a dense layer does to its output after the bias.
pub enum Epilogue<B: Backend> {
    Identity,
    /// `y * sigmoid(1.702 y)`, OpenAI CLIP's activation.
    QuickGelu,
    /// The erf GELU (open_clip variants).
    Gelu,
    /// `residual + y`, residual [rows, outputs].
    Residual(Tensor<B, 2>),
}

/// The operations CLIP's layers are built from, overridable per backend.
pub trait ClipBackend: Backend {
    /// A dense layer's weight [inputs, outputs] in the layout `dense` takes:
    /// [panels, inputs, outputs / panels], column block `p` of the weight in panel `p`. One
    /// panel by default (the weight itself).
    fn dense_weight(weight: Tensor<Self, 2>) -> Tensor<Self, 3> {
        weight.unsqueeze::<3>()
    }

    /// `then(x · weight + bias)`; x [rows, inputs], weight from `dense_weight`.
    fn dense(
        x: Tensor<Self, 2>,
        weight: Tensor<Self, 3>,
        bias: Option<Tensor<Self, 1>>,
        then: Epilogue<Self>,
    ) -> Tensor<Self, 2> {
        portable::dense(x, weight, bias, then)
    }

    /// [batch, tokens, (q|k|v, head, dim)] to queries, keys and values, each
    /// [batch, heads, tokens, dim].
    fn split_heads(qkv: Tensor<Self, 3>, heads: usize) -> [Tensor<Self, 4>; 3] {
        portable::split_heads(qkv, heads)
    }

    /// [batch, heads, tokens, dim] to [batch, tokens, heads * dim].
    fn merge_heads(context: Tensor<Self, 4>) -> Tensor<Self, 3> {
        portable::merge_heads(context)
    }
}

/// The compositions of burn operations every backend can run.
pub mod portable {
    use super::*;

    pub fn dense<B: Backend>(
        x: Tensor<B, 2>,
        weight: Tensor<B, 3>,
        bias: Option<Tensor<B, 1>>,
        then: Epilogue<B>,
    ) -> Tensor<B, 2> {
        let [panels, inputs, width] = weight.dims();
        let weight = if panels == 1 {
            weight.reshape([inputs, width])
        } else {
            weight.swap_dims(0, 1).reshape([inputs, panels * width])
        };
        let mut y = x.matmul(weight);
        if let Some(bias) = bias {
            y = y + bias.unsqueeze::<2>();
        }
        match then {
            Epilogue::Identity => y,
            Epilogue::QuickGelu => y.clone() * sigmoid(y.mul_scalar(QUICK_GELU_SCALE)),
            Epilogue::Gelu => gelu(y),
            Epilogue::Residual(residual) => residual + y,
        }
    }

    pub fn split_heads<B: Backend>(qkv: Tensor<B, 3>, heads: usize) -> [Tensor<B, 4>; 3] {
        let [batch, tokens, width] = qkv.dims();
        let head_dim = width / 3 / heads;
        // Laid out once (one copy for the three), then three contiguous slices.
        let all = qkv
            .reshape([batch, tokens, 3, heads, head_dim])
            .permute([2, 0, 3, 1, 4])
            .reshape([3 * batch, heads, tokens, head_dim]);
        let part = |i: usize| {
            all.clone()
                .slice([i * batch..(i + 1) * batch, 0..heads, 0..tokens, 0..head_dim])
        };
        [part(0), part(1), part(2)]
    }

    pub fn merge_heads<B: Backend>(context: Tensor<B, 4>) -> Tensor<B, 3> {
        let [batch, heads, tokens, head_dim] = context.dims();
        context
            .swap_dims(1, 2)
            .reshape([batch, tokens, heads * head_dim])
    }
}

/// OpenAI CLIP's quick GELU: `x * sigmoid(1.702 x)`.
pub const QUICK_GELU_SCALE: f32 = 1.702;

/// NdArray (a benchmark peer) runs the portable compositions.
impl ClipBackend for burn::backend::NdArray {}

#[cfg(feature = "cuda")]
impl<R, F, I, BT> ClipBackend for burn_cubecl::CubeBackend<R, F, I, BT>
where
    R: burn_cubecl::CubeRuntime,
    F: burn_cubecl::FloatElement,
    I: burn_cubecl::IntElement,
    BT: burn_cubecl::BoolElement,
{
}

#[cfg(feature = "cuda")]
impl ClipBackend for burn::backend::Cuda<f32> {}

#[cfg(feature = "cuda")]
impl ClipBackend for burn::backend::Cuda<half::f16> {}

fn flex<const D: usize>(t: FlexTensor) -> Tensor<Flex, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

fn primitive<const D: usize>(t: Tensor<Flex, D>) -> FlexTensor {
    t.into_primitive().tensor()
}

/// An optional operand as `Some(None)` when absent, `Some(Some(values))` when present as
/// contiguous f32, and `None` when present in another form (the portable path takes it).
fn optional_f32(t: &Option<FlexTensor>) -> Option<Option<&[f32]>> {
    t.as_ref().map_or(Some(None), |t| t.as_slice().map(Some))
}

fn from_vec<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> Tensor<Flex, D> {
    Tensor::from_primitive(TensorPrimitive::Float(FlexTensor::from_data(
        TensorData::new(values, shape),
    )))
}

impl ClipBackend for Flex {
    /// Panels of `PANEL` output columns each, every panel [inputs, PANEL] contiguous: the
    /// order in which gemm's 64-row tiles of the transposed product read the weight (see
    /// `dense_f32`). A weight whose output count is not a multiple of `PANEL` stays one panel.
    fn dense_weight(weight: Tensor<Flex, 2>) -> Tensor<Flex, 3> {
        let [inputs, outputs] = weight.dims();
        if outputs % PANEL != 0 || outputs == PANEL {
            return weight.unsqueeze::<3>();
        }
        let Ok(values) = weight.clone().into_data().to_vec::<f32>() else {
            return weight.unsqueeze::<3>();
        };
        let panels = outputs / PANEL;
        let mut laid = Vec::with_capacity(values.len());
        for p in 0..panels {
            for row in values.chunks_exact(outputs) {
                laid.extend_from_slice(&row[p * PANEL..(p + 1) * PANEL]);
            }
        }
        from_vec(laid, [panels, inputs, PANEL])
    }

    fn dense(
        x: Tensor<Flex, 2>,
        weight: Tensor<Flex, 3>,
        bias: Option<Tensor<Flex, 1>>,
        then: Epilogue<Flex>,
    ) -> Tensor<Flex, 2> {
        let [rows, inputs] = x.dims();
        let [panels, weight_rows, width] = weight.dims();
        let outputs = panels * width;
        assert_eq!(
            inputs, weight_rows,
            "dense: input width {inputs} vs weight {weight_rows}"
        );
        let (xp, wp) = (primitive(x), primitive(weight));
        let bp = bias.map(primitive);
        let (residual, activation) = match then {
            Epilogue::Residual(r) => (Some(primitive(r)), Epilogue::Identity),
            other => (None, other),
        };
        let (Some(xs), Some(ws), Some(bs), Some(rs)) = (
            xp.as_slice::<f32>(),
            wp.as_slice::<f32>(),
            optional_f32(&bp),
            optional_f32(&residual),
        ) else {
            let then = match residual {
                Some(r) => Epilogue::Residual(flex(r)),
                None => activation,
            };
            return portable::dense(flex(xp), flex(wp), bp.map(flex), then);
        };
        let mut out = dense_f32(xs, ws, bs, rs, rows, inputs, panels);
        match activation {
            Epilogue::QuickGelu => quick_gelu_in_place(&mut out),
            Epilogue::Gelu => return gelu(from_vec(out, [rows, outputs])),
            Epilogue::Identity | Epilogue::Residual(_) => {}
        }
        from_vec(out, [rows, outputs])
    }

    fn split_heads(qkv: Tensor<Flex, 3>, heads: usize) -> [Tensor<Flex, 4>; 3] {
        let [batch, tokens, width] = qkv.dims();
        let p = primitive(qkv);
        let Some(src) = p.as_slice::<f32>() else {
            return portable::split_heads(flex(p), heads);
        };
        let hidden = width / 3;
        let head_dim = hidden / heads;
        let mut parts = [(); 3].map(|_| vec![0f32; batch * tokens * hidden]);
        for b in 0..batch {
            for t in 0..tokens {
                let row = &src[(b * tokens + t) * width..][..width];
                for (s, part) in parts.iter_mut().enumerate() {
                    for h in 0..heads {
                        let to = ((b * heads + h) * tokens + t) * head_dim;
                        part[to..to + head_dim]
                            .copy_from_slice(&row[s * hidden + h * head_dim..][..head_dim]);
                    }
                }
            }
        }
        parts.map(|v| from_vec(v, [batch, heads, tokens, head_dim]))
    }

    fn merge_heads(context: Tensor<Flex, 4>) -> Tensor<Flex, 3> {
        let [batch, heads, tokens, head_dim] = context.dims();
        let p = primitive(context);
        let Some(src) = p.as_slice::<f32>() else {
            return portable::merge_heads(flex(p));
        };
        let width = heads * head_dim;
        let mut out = vec![0f32; batch * tokens * width];
        for b in 0..batch {
            for h in 0..heads {
                for t in 0..tokens {
                    let from = ((b * heads + h) * tokens + t) * head_dim;
                    let to = (b * tokens + t) * width + h * head_dim;
                    out[to..to + head_dim].copy_from_slice(&src[from..from + head_dim]);
                }
            }
        }
        from_vec(out, [batch, tokens, width])
    }
}

/// Output columns per weight panel on Flex: the height of gemm's f32 tiles (4 AVX-512
/// registers of 16), and a multiple of the AVX2 and NEON tile heights.
const PANEL: usize = 64;

/// `residual + bias + x · w`, w in `panels` panels ([panels, inputs, outputs / panels]).
///
/// The output starts as the residual plus the bias (or the bias alone) and gemm accumulates
/// into it. Each panel is one product in transposed form, out^T[panel] = w[panel]^T x^T: the
/// panel is gemm's tall left operand, already contiguous in the order its tiles read it, so
/// gemm streams it from memory once and in place (with the input's columns under its packing
/// threshold, raised here from 8 * 6 to 16 * 6: one image is 50 tokens). At batch 1 the
/// weights are most of the memory traffic (350 MB per ViT-B/32 image); in a gemm-only timing
/// of the 12 layers (gemm 0.19, AVX-512; a scratch program, not kept) this took 83 to 90 ms against 115 to 140 ms for
/// `x · w` on the plain [inputs, outputs] layout, and was no slower at 100 to 800 rows.
fn dense_f32(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    rows: usize,
    inputs: usize,
    panels: usize,
) -> Vec<f32> {
    assert!(panels > 0 && w.len() % (panels * inputs) == 0);
    let width = w.len() / (panels * inputs);
    let outputs = panels * width;
    assert_eq!(x.len(), rows * inputs);
    let mut out = match residual {
        Some(r) => {
            assert_eq!(r.len(), rows * outputs);
            r.to_vec()
        }
        None => vec![0f32; rows * outputs],
    };
    if let Some(b) = bias {
        assert_eq!(b.len(), outputs);
        for row in out.chunks_exact_mut(outputs) {
            for (o, b) in row.iter_mut().zip(b) {
                *o += b;
            }
        }
    }
    let accumulate = residual.is_some() || bias.is_some();
    if rows == 0 || outputs == 0 {
        return out;
    }
    static THRESHOLD: std::sync::Once = std::sync::Once::new();
    THRESHOLD.call_once(|| gemm::set_lhs_packing_threshold_single_thread(16));
    /// The output buffer, shared by the panels' products: each writes its own columns.
    #[derive(Clone, Copy)]
    struct Out(*mut f32);
    // SAFETY: the panels' products write disjoint columns of the buffer (see below), and
    // the buffer outlives the parallel loop, which joins before `out` is used again.
    unsafe impl Send for Out {}
    unsafe impl Sync for Out {}
    impl Out {
        // A method, so that closures capture the whole `Out` (Send and Sync), not its field.
        fn at(self, offset: usize) -> *mut f32 {
            // SAFETY: callers stay within the buffer (see the product below).
            unsafe { self.0.add(offset) }
        }
    }
    let dst = Out(out.as_mut_ptr());
    // The panels are independent products, spread over the current rayon pool (`--threads`;
    // a pool of one runs them in order). Each panel's own product stays on one thread: at
    // one image (50 rows) a panel is too small to split further.
    let product = |p: usize| {
        let panel = &w[p * inputs * width..(p + 1) * inputs * width];
        // SAFETY: `out` is [rows, outputs] row-major and this panel writes its columns
        // p * width .. (p + 1) * width (the transposed view: row stride 1, column stride
        // `outputs`), which no other panel writes; the panel is [inputs, width] row-major
        // (read as its transpose) and `x` is [rows, inputs] row-major (read as its
        // transpose), sizes asserted above. Neither input aliases the output.
        unsafe {
            gemm::gemm(
                width,
                rows,
                inputs,
                dst.at(p * width),
                outputs as isize,
                1,
                accumulate,
                panel.as_ptr(),
                width as isize,
                1,
                x.as_ptr(),
                inputs as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    };
    if rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        (0..panels).into_par_iter().for_each(product);
    } else {
        (0..panels).for_each(product);
    }
    out
}

/// `v * sigmoid(1.702 v)` over a buffer, vectorised with the widest SIMD the CPU has (AVX-512,
/// AVX2 or NEON, chosen at run time by `pulp`).
pub fn quick_gelu_in_place(values: &mut [f32]) {
    struct Pass<'a>(&'a mut [f32]);
    impl pulp::WithSimd for Pass<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) {
            for v in self.0.iter_mut() {
                *v = quick_gelu(*v);
            }
        }
    }
    pulp::Arch::new().dispatch(Pass(values));
}

/// `x * sigmoid(1.702 x)` = `x / (1 + e^(-1.702 x))`, branch-free so that loops over it
/// vectorise.
#[inline(always)]
pub fn quick_gelu(x: f32) -> f32 {
    x / (1.0 + exp(-QUICK_GELU_SCALE * x))
}

/// e^x to within 3e-7 relative error (about 3 ulp) where the result is a normal number, and
/// infinity or 0 beyond, without branches or
/// calls (Cody-Waite range reduction and Cephes' degree-5 polynomial for `expf`): `f32::exp`
/// is a libm call per element that no loop vectorises.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n * LN2_HI is exact for |n| < 2^9.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to the nearest integer and leaves it in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    // Clamped where 2^n stays a normal number: e^88.37 and e^-87.33 are about 2.4e38 and 1.2e-38.
    let clamped = x.clamp(-87.33, 88.37);
    let shifted = clamped * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // 2^n from the integer in `shifted`'s low bits, into the exponent field.
    let n_int = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    let e = e * f32::from_bits(((n_int + 127) as u32) << 23);
    // Beyond the clamp, what libm returns (selects, not branches, once vectorised).
    if x > 88.37 {
        f32::INFINITY
    } else if x < -87.33 {
        0.0
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(1000.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn quick_gelu_matches_its_definition_vectorised() {
        let mut values: Vec<f32> = (0..10_001).map(|i| (i as f32 - 5000.0) * 0.01).collect();
        values.extend([f32::MAX, f32::MIN, 1e-30, -1e-30, 0.0, -0.0, 200.0, -200.0]);
        let want: Vec<f64> = values
            .iter()
            .map(|&v| {
                let v = v as f64;
                v / (1.0 + (-1.702 * v).exp())
            })
            .collect();
        let mut got = values.clone();
        quick_gelu_in_place(&mut got);
        for ((g, w), v) in got.iter().zip(&want).zip(&values) {
            let err = (*g as f64 - w).abs();
            assert!(
                err <= 1e-6 * w.abs().max(1.0),
                "quick_gelu({v}) = {g}, expected {w}"
            );
        }
    }

    type P = burn::backend::Flex;

    fn random<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<P, D> {
        let n: usize = shape.iter().product();
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let values: Vec<f32> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect();
        Tensor::from_data(TensorData::new(values, shape), &Default::default())
    }

    fn assert_close<const D: usize>(a: Tensor<P, D>, b: Tensor<P, D>, what: &str) {
        assert_eq!(a.dims(), b.dims(), "{what}: shapes");
        let (a, b) = (
            a.into_data().to_vec::<f32>().unwrap(),
            b.into_data().to_vec::<f32>().unwrap(),
        );
        let worst = max_abs(&a, &b);
        assert!(
            worst < 1e-5,
            "{what}: the Flex kernel differs from the portable one by {worst}"
        );
    }

    fn max_abs(a: &[f32], b: &[f32]) -> f64 {
        rlrt_models::compare::max_abs_difference(
            &a.iter().map(|v| *v as f64).collect::<Vec<_>>(),
            &b.iter().map(|v| *v as f64).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn flex_kernels_agree_with_the_portable_compositions() {
        // One panel (80 outputs) and three (192), at one image's rows and more.
        for (rows, outputs) in [(37, 80), (150, 80), (37, 192), (150, 192)] {
            check_dense(rows, outputs);
        }
        check_heads();
    }

    fn check_dense(rows: usize, outputs: usize) {
        let inputs = 48;
        let x = random([rows, inputs], 1);
        let plain = random([inputs, outputs], 2);
        let w = P::dense_weight(plain.clone());
        assert_eq!(
            w.dims()[0],
            if outputs % 64 == 0 { outputs / 64 } else { 1 }
        );
        // The panels hold the weight's column blocks.
        assert_close(
            w.clone().swap_dims(0, 1).reshape([inputs, outputs]),
            plain.clone(),
            "dense_weight",
        );
        let plain = plain.unsqueeze::<3>();
        let b = random([outputs], 3);
        let r = random([rows, outputs], 4);
        type Then = fn(Tensor<P, 2>) -> Epilogue<P>;
        let cases: Vec<(&str, Then)> = vec![
            ("identity", |_| Epilogue::Identity),
            ("quick gelu", |_| Epilogue::QuickGelu),
            ("gelu", |_| Epilogue::Gelu),
            ("residual", Epilogue::Residual),
        ];
        for (name, then) in cases {
            for bias in [Some(b.clone()), None] {
                let fast = P::dense(x.clone(), w.clone(), bias.clone(), then(r.clone()));
                let slow = portable::dense(x.clone(), plain.clone(), bias.clone(), then(r.clone()));
                assert_close(
                    fast,
                    slow,
                    &format!("dense, {name}, bias {}", bias.is_some()),
                );
            }
        }
        // A transposed (strided) input takes the portable path and still agrees.
        let xt = random([inputs, rows], 5).transpose();
        let fast = P::dense(xt.clone(), w.clone(), Some(b.clone()), Epilogue::QuickGelu);
        let slow = portable::dense(xt, plain, Some(b), Epilogue::QuickGelu);
        assert_close(fast, slow, "dense, strided input");
    }

    fn check_heads() {
        let (batch, tokens, heads, head_dim) = (3, 7, 4, 5);
        let qkv = random([batch, tokens, 3 * heads * head_dim], 6);
        let fast = P::split_heads(qkv.clone(), heads);
        let slow = portable::split_heads(qkv, heads);
        for (i, (f, s)) in fast.into_iter().zip(slow).enumerate() {
            assert_close(f, s, &format!("split_heads part {i}"));
        }
        let context = random([batch, heads, tokens, head_dim], 7);
        assert_close(
            P::merge_heads(context.clone()),
            portable::merge_heads(context.clone()),
            "merge_heads",
        );
        // Strided context (as attention may return) takes the portable path.
        let strided = random([batch, tokens, heads, head_dim], 8).swap_dims(1, 2);
        assert_close(
            P::merge_heads(strided.clone()),
            portable::merge_heads(strided),
            "merge_heads, strided",
        );
    }
}
