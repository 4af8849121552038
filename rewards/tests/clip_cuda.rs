//! CLIP on burn's CUDA backend (feature `cuda`; needs an NVIDIA GPU: built only with the
//! feature, which CI never enables). The same transformers fixtures as `clip.rs`: f32 within
//! the 1e-4, f16 within a half-precision bound, through `ClipEngine` as the runtime
//! uses it.
#![cfg(feature = "cuda")]

mod common;

use common::{fixtures, floats, max_abs_diff, read_png, reference};
use rlrt_rewards::clip::preprocess::{normalise, resize_frame};
use rlrt_rewards::clip::{ClipEngine, Resize, Rgb8};
use rlrt_runtime::compute::{ComputeDevice, Precision};

/// f32 on the GPU: the bar, as on the CPU.
const F32_TOLERANCE: f32 = 1e-4;
/// f16 weights and activations keep about three significant digits through twelve layers.
const F16_TOLERANCE: f32 = 2e-2;

/// Worst text and image embedding differences to transformers at `precision`.
fn worst(precision: Precision) -> (f32, f32) {
    let engine = ClipEngine::load(&fixtures(), ComputeDevice::Cuda(0), precision).unwrap();
    let reference = reference();
    let texts = reference["texts"].as_array().unwrap();
    let prompts: Vec<&str> = texts
        .iter()
        .map(|t| t["prompt"].as_str().unwrap())
        .collect();
    let embedded = engine.embed_texts(&prompts).unwrap();
    let text = texts
        .iter()
        .zip(&embedded)
        .map(|(t, got)| max_abs_diff(got, &floats(&t["embedding"])))
        .fold(0.0, f32::max);
    let mut image = 0f32;
    for item in reference["images"].as_array().unwrap() {
        let name = item["name"].as_str().unwrap();
        let (rgb, width, height) = read_png(&fixtures().join(format!("images/{name}.png")));
        let frame = Rgb8 {
            data: &rgb,
            width,
            height,
        };
        for (variant, mode) in [("crop", Resize::CentreCrop), ("plain", Resize::Plain)] {
            let pixels = normalise(&resize_frame(frame, 224, mode).unwrap(), 224);
            let got = engine.embed_pixels(&[pixels]).unwrap().remove(0);
            image = image.max(max_abs_diff(&got, &floats(&item[variant]["embedding"])));
        }
    }
    println!("{}: text {text:e}, image {image:e}", engine.describe());
    (text, image)
}

#[test]
fn cuda_f32_embeddings_match_transformers() {
    let (text, image) = worst(Precision::F32);
    assert!(text <= F32_TOLERANCE, "text embeddings differ by {text}");
    assert!(image <= F32_TOLERANCE, "image embeddings differ by {image}");
}

#[test]
fn cuda_f16_embeddings_stay_close_to_transformers() {
    let (text, image) = worst(Precision::F16);
    assert!(text <= F16_TOLERANCE, "text embeddings differ by {text}");
    assert!(image <= F16_TOLERANCE, "image embeddings differ by {image}");
}
