//! `rlrt bench clip`: image-embedding latency of a randomly initialised, full-size CLIP
//! ViT-B/32 vision tower (built from the preset; no download), preprocessed 224 x 224 input to
//! projected embedding, at batch 1 and batch 16, in burn's Flex backend on the CPU (the one
//! rlrt's CLIP rewards use). Peers: the same tower in burn's NdArray backend (batch 1), and
//! Hugging Face's `CLIPVisionModelWithProjection` of the same config in PyTorch
//! (`torch.inference_mode`, `torch.set_num_threads` at one thread and at all cores), run by
//! `python3` with the caller's environment; when torch or transformers cannot be imported the
//! report says so and carries rlrt's numbers alone.
//!
//! Both burn backends are built without rayon, so they run on one thread whatever the machine
//! has; the report states that.

use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use rlrt_rewards::clip::model::{Clip, RandomInit};
use rlrt_rewards::clip::{ClipConfig, Preset};
use rlrt_runtime::bench::{BenchReport, Metric, Metrics};

pub struct BenchClipArgs {
    /// Timed calls at batch 1 (after two warm-up calls).
    pub calls: usize,
    /// Timed calls at batch 16.
    pub batch_calls: usize,
    pub no_peer: bool,
}

const BATCH: usize = 16;

/// The peer: prints one JSON object {"threads": {"1": {"b1": [...ms], "b16": [...]}, ...}}.
const PEER: &str = r#"
import json, os, sys, time
import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
calls, batch_calls, batch = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
config = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                          num_attention_heads=12, image_size=224, patch_size=32,
                          projection_dim=512, hidden_act="quick_gelu")
model = CLIPVisionModelWithProjection(config).eval()
out = {"torch": torch.__version__, "threads": {}}
for threads in sorted({1, os.cpu_count() or 1}):
    torch.set_num_threads(threads)
    row = {}
    for name, b, n in (("b1", 1, calls), ("b16", batch, batch_calls)):
        x = torch.randn(b, 3, 224, 224)
        times = []
        with torch.inference_mode():
            for i in range(n + 2):
                t = time.perf_counter()
                model(pixel_values=x).image_embeds.numpy()
                if i >= 2:
                    times.append((time.perf_counter() - t) * 1e3)
        row[name] = times
    out["threads"][str(threads)] = row
print(json.dumps(out))
"#;

fn run_peer(args: &BenchClipArgs) -> anyhow::Result<serde_json::Value> {
    super::python_json(
        &[
            "-",
            &args.calls.to_string(),
            &args.batch_calls.to_string(),
            &BATCH.to_string(),
        ],
        None,
        PEER.as_bytes(),
        "torch and transformers importable by python3",
    )
}

/// Batch-1 and batch-16 latencies (ms) of a random ViT-B/32 vision tower on backend `B`, after
/// two warm-up calls each; `batch_calls` 0 skips batch 16 (an empty series).
fn time_vision<B: burn::tensor::backend::Backend>(
    calls: usize,
    batch_calls: usize,
) -> (Vec<f64>, Vec<f64>) {
    let device = Default::default();
    let config = ClipConfig::preset(Preset::VitB32);
    let Ok(vision) = Clip::<B>::build_vision(&config, &mut RandomInit::<B> { device: &device });
    let time = |batch: usize, calls: usize| -> Vec<f64> {
        if calls == 0 {
            return Vec::new();
        }
        let x = Tensor::<B, 4>::random(
            [batch, 3, 224, 224],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        (0..calls + 2)
            .map(|_| {
                let t = Instant::now();
                let out = vision.forward(x.clone()).into_data();
                std::hint::black_box(out);
                t.elapsed().as_secs_f64() * 1e3
            })
            .skip(2)
            .collect()
    };
    (time(1, calls), time(BATCH, batch_calls))
}

pub fn run(args: &BenchClipArgs) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(
        args.calls > 0 && args.batch_calls > 0,
        "--calls and --batch-calls must be above zero"
    );
    let (b1, b16) = time_vision::<rlrt_rewards::clip::CpuBackend>(args.calls, args.batch_calls);
    let (b1, b16) = (
        Metric::from_samples("ms", b1),
        Metric::from_samples("ms", b16),
    );

    let mut report = BenchReport::new("clip");
    report
        .extra
        .insert("model".into(), "ViT-B/32 vision tower, random init".into());
    report
        .extra
        .insert("rlrt_backend".into(), "burn 0.21 Flex f32 (gemm)".into());
    report.extra.insert(
        "rlrt_threads".into(),
        "1 (Flex built without rayon: the same number for 1 and all threads)".into(),
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    report.extra.insert("cores".into(), cores.into());
    let (r1, r16) = (b1.p50, b16.p50);
    report.metrics.insert("batch1_image_embedding".into(), b1);
    report.metrics.insert("batch16_image_embedding".into(), b16);
    let nd1 = Metric::from_samples(
        "ms",
        time_vision::<burn::backend::NdArray<f32>>(args.calls, 0).0,
    );
    report.extra.insert(
        "ratio_rlrt_over_ndarray_batch1_p50".into(),
        (r1 / nd1.p50).into(),
    );
    let mut ndarray = Metrics::new();
    ndarray.insert("batch1_image_embedding".into(), nd1);
    report.peers.insert("burn_ndarray_1thread".into(), ndarray);

    if args.no_peer {
        report
            .extra
            .insert("peer".into(), "skipped (--no-peer)".into());
        return Ok(report);
    }
    match run_peer(args) {
        Ok(peer) => {
            report.extra.insert(
                "peer".into(),
                "pytorch (transformers CLIPVisionModelWithProjection)".into(),
            );
            report
                .extra
                .insert("peer_torch".into(), peer["torch"].clone());
            let threads = peer["threads"].as_object().cloned().unwrap_or_default();
            for (n, row) in threads {
                let series = |key: &str| -> Vec<f64> {
                    row[key]
                        .as_array()
                        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
                        .unwrap_or_default()
                };
                let (p1, p16) = (
                    Metric::from_samples("ms", series("b1")),
                    Metric::from_samples("ms", series("b16")),
                );
                report.extra.insert(
                    format!("ratio_rlrt_over_pytorch_{n}thread_batch1_p50"),
                    (r1 / p1.p50).into(),
                );
                report.extra.insert(
                    format!("ratio_rlrt_over_pytorch_{n}thread_batch16_p50"),
                    (r16 / p16.p50).into(),
                );
                let mut metrics = Metrics::new();
                metrics.insert("batch1_image_embedding".into(), p1);
                metrics.insert("batch16_image_embedding".into(), p16);
                report.peers.insert(format!("pytorch_{n}thread"), metrics);
            }
        }
        Err(e) => {
            report
                .extra
                .insert("peer".into(), format!("absent: {e:#}").into());
        }
    }
    Ok(report)
}
