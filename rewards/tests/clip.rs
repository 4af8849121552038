//! Conformance of the Rust CLIP with Hugging Face transformers 5.24, on the small randomly
//! initialised CLIP and the tokenizer files in `tests/fixtures/clip` (made by
//! `make_fixtures.py` there): token ids exactly, the uint8 frames after resize and crop
//! exactly, normalised pixels within 1e-6, unit embeddings within 1e-4 (f32). Then the error
//! paths: a missing tensor, a tensor of the wrong shape, an empty prompt, a frame of the wrong
//! size.

use std::path::Path;

use crate::common::{fixtures, floats, max_abs_diff, read_png, reference};
use rlrt_rewards::clip::preprocess::{normalise, resize_frame};
use rlrt_rewards::clip::{ClipError, ClipModel, Resize, Rgb8};

type B = rlrt_rewards::clip::CpuBackend;

/// The bar the issue sets for embeddings (f32, unit vectors).
const EMBEDDING_TOLERANCE: f32 = 1e-4;
/// HF and Rust do the same f32 operations on the same uint8 values.
const PIXEL_TOLERANCE: f32 = 1e-6;

fn load() -> ClipModel<B> {
    ClipModel::<B>::load(&fixtures(), &Default::default()).unwrap()
}

#[test]
fn token_ids_match_hf() {
    let model = load();
    let tokenizer = model.tokenizer.as_ref().unwrap();
    let reference = reference();
    for text in reference["texts"].as_array().unwrap() {
        let prompt = text["prompt"].as_str().unwrap();
        let expected: Vec<u32> = text["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let ids = tokenizer.encode_padded(prompt).unwrap();
        assert_eq!(
            ids, expected,
            "prompt {prompt:?}, HF tokens {}",
            text["tokens"]
        );
    }
}

#[test]
fn text_embeddings_match_hf() {
    let model = load();
    let reference = reference();
    let texts = reference["texts"].as_array().unwrap();
    let prompts: Vec<&str> = texts
        .iter()
        .map(|t| t["prompt"].as_str().unwrap())
        .collect();
    // Batched (padded to the longest prompt) and one by one must both match.
    let batched = model.embed_texts(&prompts).unwrap();
    let mut worst = 0f32;
    for (i, text) in texts.iter().enumerate() {
        let expected = floats(&text["embedding"]);
        let single = model.embed_texts(&[prompts[i]]).unwrap().remove(0);
        for got in [&batched[i], &single] {
            let diff = max_abs_diff(got, &expected);
            assert!(
                diff <= EMBEDDING_TOLERANCE,
                "prompt {:?}: max abs diff {diff}",
                prompts[i]
            );
            worst = worst.max(diff);
        }
    }
    println!(
        "text embeddings: max abs diff {worst:e} over {} prompts",
        texts.len()
    );
}

#[test]
fn preprocessing_and_image_embeddings_match_hf() {
    let model = load();
    let reference = reference();
    let stride = reference["pixel_sample_stride"].as_u64().unwrap() as usize;
    let mut worst_pixel = 0f32;
    let mut worst_embedding = 0f32;
    for image in reference["images"].as_array().unwrap() {
        let name = image["name"].as_str().unwrap();
        let (rgb, width, height) = read_png(&fixtures().join(format!("images/{name}.png")));
        assert_eq!(width as u64, image["width"].as_u64().unwrap());
        let frame = Rgb8 {
            data: &rgb,
            width,
            height,
        };
        for (variant, mode) in [("crop", Resize::CentreCrop), ("plain", Resize::Plain)] {
            let resized = resize_frame(frame, 224, mode).unwrap();
            let (expected, w, h) =
                read_png(&fixtures().join(format!("reference/{name}_{variant}.png")));
            assert_eq!((w, h), (224, 224));
            let differing = resized
                .iter()
                .zip(&expected)
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(
                differing, 0,
                "{name} {variant}: {differing} uint8 values differ from PIL"
            );

            let pixels = normalise(&resized, 224);
            let sample: Vec<f32> = pixels.iter().step_by(stride).copied().collect();
            let diff = max_abs_diff(&sample, &floats(&image[variant]["pixel_sample"]));
            assert!(
                diff <= PIXEL_TOLERANCE,
                "{name} {variant}: pixels differ by {diff}"
            );
            worst_pixel = worst_pixel.max(diff);

            let embedding = model.embed_frames(&[frame], mode).unwrap().remove(0);
            let diff = max_abs_diff(&embedding, &floats(&image[variant]["embedding"]));
            assert!(
                diff <= EMBEDDING_TOLERANCE,
                "{name} {variant}: embedding max abs diff {diff}"
            );
            worst_embedding = worst_embedding.max(diff);
        }
    }
    println!(
        "pixels: max abs diff {worst_pixel:e}; image embeddings: max abs diff {worst_embedding:e}"
    );
}

#[test]
fn batched_images_match_single_images() {
    let model = load();
    let reference = reference();
    let mut frames = Vec::new();
    for image in reference["images"].as_array().unwrap() {
        let name = image["name"].as_str().unwrap();
        frames.push(read_png(&fixtures().join(format!("images/{name}.png"))));
    }
    let views: Vec<Rgb8> = frames
        .iter()
        .map(|(data, width, height)| Rgb8 {
            data,
            width: *width,
            height: *height,
        })
        .collect();
    let batched = model.embed_frames(&views, Resize::CentreCrop).unwrap();
    for (i, image) in reference["images"].as_array().unwrap().iter().enumerate() {
        let diff = max_abs_diff(&batched[i], &floats(&image["crop"]["embedding"]));
        assert!(diff <= EMBEDDING_TOLERANCE, "batch row {i}: {diff}");
    }
}

/// The fixture folder copied, with the checkpoint rewritten by `edit`.
fn edited_copy(edit: impl Fn(&str, Vec<usize>) -> Option<Vec<usize>>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in ["config.json", "vocab.json", "merges.txt"] {
        std::fs::copy(fixtures().join(file), dir.path().join(file)).unwrap();
    }
    let bytes = std::fs::read(fixtures().join("model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut kept = Vec::new();
    for (name, view) in tensors.tensors() {
        if let Some(shape) = edit(&name, view.shape().to_vec()) {
            let count: usize = shape.iter().product();
            let data = vec![0u8; count * 4];
            kept.push((name, shape, data));
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = kept
        .iter()
        .map(|(name, shape, data)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .unwrap();
            (name.clone(), view)
        })
        .collect();
    let out = safetensors::serialize(views, None).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), out).unwrap();
    dir
}

#[test]
fn missing_tensor_is_named_with_the_file() {
    let name = "text_model.encoder.layers.1.self_attn.v_proj.weight";
    let dir = edited_copy(|n, shape| (n != name).then_some(shape));
    let err = ClipModel::<B>::load(dir.path(), &Default::default())
        .err()
        .unwrap();
    assert!(matches!(err, ClipError::MissingTensor { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(name) && text.contains("model.safetensors") && text.contains("[64, 64]"),
        "{text}"
    );
}

#[test]
fn wrong_shape_is_named_with_expected_and_found() {
    let name = "visual_projection.weight";
    let dir = edited_copy(|n, shape| Some(if n == name { vec![16, 32] } else { shape }));
    let err = ClipModel::<B>::load(dir.path(), &Default::default())
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(
        matches!(err, ClipError::TensorShape { .. })
            && text.contains(name)
            && text.contains("[16, 32]")
            && text.contains("[32, 32]"),
        "{text}"
    );
}

#[test]
fn zeroed_weights_load_but_change_the_embedding() {
    // The edited copy loads (same names and shapes); zero weights give a different embedding,
    // so the conformance tests above really depend on the checkpoint's values.
    let dir = edited_copy(|_, shape| Some(shape));
    let zeroed = ClipModel::<B>::load(dir.path(), &Default::default()).unwrap();
    let real = load();
    let a = zeroed.embed_texts(&["the robot"]);
    let b = real.embed_texts(&["the robot"]).unwrap();
    // All-zero weights make every embedding zero, which cannot be normalised: NaN or a
    // different vector, never the real one.
    match a {
        Ok(a) => assert!(a[0]
            .iter()
            .zip(&b[0])
            .any(|(x, y)| !(x - y).abs().le(&1e-3))),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn empty_prompt_and_wrong_frame_are_errors() {
    let model = load();
    assert!(matches!(
        model.embed_texts(&[" \n\t "]),
        Err(ClipError::EmptyPrompt)
    ));
    assert!(matches!(
        model.embed_texts(&["the robot", ""]),
        Err(ClipError::EmptyPrompt)
    ));
    let frame = vec![0u8; 100 * 50 * 3 - 1];
    let err = model
        .embed_frames(
            &[Rgb8 {
                data: &frame,
                width: 100,
                height: 50,
            }],
            Resize::CentreCrop,
        )
        .unwrap_err();
    assert!(err.to_string().contains("needs 15000 bytes"), "{err}");
}

/// Pillow 13's bicubic resize, run by `python3` with `.deps/python` (pillow comes with the
/// imageio wheel `cargo xtask setup` installs): every case is resized by Pillow and by rlrt,
/// and the bytes must be identical. The size pairs cover all four directions, both sides
/// shrinking included, where Pillow 13 picks the order of its two passes by how many pixels
/// each side loses.
#[test]
fn bicubic_resize_matches_pillow_in_every_direction() {
    use rlrt_rewards::clip::preprocess::resize_bicubic;
    use rlrt_runtime::rng::splitmix64;
    let dir = tempfile::tempdir().unwrap();
    let mut rng = 0x5EED_u64;
    let mut draw = |lo: u64, hi: u64| lo + splitmix64(&mut rng) % (hi - lo);
    let mut cases = Vec::new();
    for i in 0..48usize {
        let (w, h) = (draw(8, 160) as usize, draw(8, 160) as usize);
        // Quarter by quarter: both shrink, width only, height only, both grow.
        let (ow, oh) = match i % 4 {
            0 => (draw(2, w as u64) as usize, draw(2, h as u64) as usize),
            1 => (draw(2, w as u64) as usize, draw(h as u64 + 1, 220) as usize),
            2 => (draw(w as u64 + 1, 220) as usize, draw(2, h as u64) as usize),
            _ => (
                draw(w as u64 + 1, 220) as usize,
                draw(h as u64 + 1, 220) as usize,
            ),
        };
        let pixels: Vec<u8> = (0..w * h * 3).map(|_| draw(0, 256) as u8).collect();
        std::fs::write(dir.path().join(format!("in-{i}.raw")), &pixels).unwrap();
        cases.push((w, h, ow, oh, pixels));
    }
    let job: Vec<[usize; 4]> = cases.iter().map(|c| [c.0, c.1, c.2, c.3]).collect();
    let script = r#"
import json, os, sys
from PIL import Image
folder, cases = sys.argv[1], json.loads(sys.argv[2])
for i, (w, h, ow, oh) in enumerate(cases):
    with open(os.path.join(folder, f"in-{i}.raw"), "rb") as f:
        image = Image.frombytes("RGB", (w, h), f.read())
    with open(os.path.join(folder, f"out-{i}.raw"), "wb") as f:
        f.write(image.resize((ow, oh), Image.Resampling.BICUBIC).tobytes())
"#;
    let deps = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.deps/python");
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(dir.path())
        .arg(serde_json::to_string(&job).unwrap())
        .env("PYTHONPATH", deps)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "Pillow (from cargo xtask setup): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut wrong = Vec::new();
    for (i, (w, h, ow, oh, pixels)) in cases.iter().enumerate() {
        let pillow = std::fs::read(dir.path().join(format!("out-{i}.raw"))).unwrap();
        let ours = resize_bicubic(pixels, *w, *h, *ow, *oh);
        if ours != pillow {
            let differing = ours.iter().zip(&pillow).filter(|(a, b)| a != b).count();
            wrong.push(format!("{w}x{h} -> {ow}x{oh}: {differing} bytes differ"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
