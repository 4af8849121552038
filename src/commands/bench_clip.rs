//! `rlrt bench clip`: image-embedding latency of a randomly initialised, full-size CLIP
//! ViT-B/32 vision tower (built from the preset; no download), preprocessed 224 x 224 input
//! already on the device to the projected embedding back on the host, at batch 1 and at a
//! larger batch.
//!
//! - **CPU** (`--device cpu`, the default): burn's Flex backend with rlrt's fused layers (the
//!   path rlrt's CLIP rewards run), batch 1 and 16, at one thread and at `--threads` (default
//!   all cores), each on a rayon pool of its own. The peer: Hugging Face's
//!   `CLIPVisionModelWithProjection` of the same config in PyTorch (`torch.inference_mode`,
//!   `torch.set_num_threads` at the same thread counts).
//! - **CUDA** (`--device cuda`, feature `cuda`): burn's CUDA backend at `--precision` (f16 by
//!   default there), batch 1 and 64. The peer is the same transformers model on the same GPU at
//!   the same precision, eager and replayed from a CUDA graph.
//!
//! The peer runs in `python3` with the caller's environment (plus `--python-path`); when
//! torch or transformers cannot be imported the report says so and carries rlrt's numbers.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use rlrt_rewards::clip::model::{Clip, RandomInit};
use rlrt_rewards::clip::{ClipBackend, ClipConfig, Preset};
use rlrt_runtime::bench::{BenchReport, Metric, Metrics};
use rlrt_runtime::compute::{ComputeDevice, Precision};

/// `rlrt bench clip`: image-embedding latency of a randomly initialised CLIP ViT-B/32 at batch 1
/// and a larger batch: burn Flex on the CPU at one thread and at --threads, or burn CUDA with
/// --device cuda; against PyTorch's transformers CLIP of the same config (CPU threads, or the
/// same GPU eager and from a CUDA graph) when python3 can import torch and transformers.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchClipArgs {
    /// Timed calls at batch 1 (after the warm-up calls).
    #[arg(long, default_value_t = 20)]
    pub calls: usize,
    /// Timed calls at the larger batch.
    #[arg(long, default_value_t = 5)]
    pub batch_calls: usize,
    /// The larger batch (default 16 on the CPU, 64 on CUDA).
    #[arg(long)]
    pub batch: Option<usize>,
    /// cpu, cuda or cuda:N (CUDA needs rlrt built with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: ComputeDevice,
    /// CPU thread counts rlrt and PyTorch are timed at (each on a pool of its own); the last
    /// is the headline. Empty: one thread and every thread of the global pool.
    #[arg(skip)]
    pub threads: Vec<usize>,
    /// f32 or f16 (default f32 on the CPU, f16 on CUDA).
    #[arg(long)]
    pub precision: Option<Precision>,
    /// Skip the PyTorch peer.
    #[arg(long)]
    pub no_peer: bool,
    /// With --device cuda: burn's CUDA backend without its fusion layer (each operation
    /// its own kernel).
    #[arg(long)]
    pub no_fusion: bool,
    /// Added to PYTHONPATH for the PyTorch peer.
    #[arg(long)]
    pub python_path: Option<PathBuf>,
}

/// The CPU peer: prints {"torch": version, "threads": {"1": {"b1": [ms...], "bN": [...]}, ...}}.
const PEER_CPU: &str = r#"
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
for threads in sorted({int(t) for t in sys.argv[4].split(",")}):
    torch.set_num_threads(threads)
    row = {}
    for name, b, n in (("b1", 1, calls), ("bN", batch, batch_calls)):
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

/// The CUDA peer: the same model on the GPU at the same precision, eager and from a CUDA
/// graph; each call ends with the embeddings copied to the host (as rlrt's do). Prints
/// {"torch", "gpu", "eager": {"b1": [ms...], "bN": [...]}, "graph": {...}}.
const PEER_CUDA: &str = r#"
import json, sys, time
import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
calls, batch_calls, batch, precision = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
index = int(sys.argv[5])
dtype = {"f16": torch.float16, "f32": torch.float32}[precision]
torch.manual_seed(0)
device = torch.device("cuda", index)
config = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                          num_attention_heads=12, image_size=224, patch_size=32,
                          projection_dim=512, hidden_act="quick_gelu")
model = CLIPVisionModelWithProjection(config).eval().to(device=device, dtype=dtype)
out = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(device),
       "eager": {}, "graph": {}}
warmup = 10
with torch.inference_mode():
    for name, b, n in (("b1", 1, calls), ("bN", batch, batch_calls)):
        x = torch.randn(b, 3, 224, 224, device=device, dtype=dtype)
        times = []
        for i in range(n + warmup):
            t = time.perf_counter()
            model(pixel_values=x).image_embeds.float().cpu()
            if i >= warmup:
                times.append((time.perf_counter() - t) * 1e3)
        out["eager"][name] = times
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(3):
                model(pixel_values=x)
        torch.cuda.current_stream(device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            y = model(pixel_values=x).image_embeds
        times = []
        for i in range(n + warmup):
            t = time.perf_counter()
            graph.replay()
            y.float().cpu()
            if i >= warmup:
                times.append((time.perf_counter() - t) * 1e3)
        out["graph"][name] = times
print(json.dumps(out))
"#;

/// Latencies (ms) of one series of calls: whole calls, and the host's share of each (until
/// `forward` returns, before the read-back waits for the device).
#[derive(Default)]
struct Series {
    total: Vec<f64>,
    submit: Vec<f64>,
}

/// Latencies of a random ViT-B/32 vision tower on backend `B` at batch 1 (`calls`) and at
/// `batch` (`batch_calls`; 0 gives empty series), after `warmup` calls each. The input is made
/// on the device; each call ends with the embeddings read back to the host.
fn time_vision<B: ClipBackend>(
    device: &B::Device,
    calls: usize,
    batch: usize,
    batch_calls: usize,
    warmup: usize,
) -> (Series, Series) {
    let config = ClipConfig::preset(Preset::VitB32);
    let Ok(vision) = Clip::<B>::build_vision(&config, &mut RandomInit::<B> { device });
    let time = |batch: usize, calls: usize| -> Series {
        let mut series = Series::default();
        if calls == 0 {
            return series;
        }
        let x =
            Tensor::<B, 4>::random([batch, 3, 224, 224], Distribution::Normal(0.0, 1.0), device);
        for i in 0..calls + warmup {
            let t = Instant::now();
            let out = vision.forward(x.clone());
            let submitted = t.elapsed();
            std::hint::black_box(out.into_data());
            let total = t.elapsed();
            if i >= warmup {
                series.total.push(total.as_secs_f64() * 1e3);
                series.submit.push(submitted.as_secs_f64() * 1e3);
            }
        }
        series
    };
    (time(1, calls), time(batch, batch_calls))
}

/// rlrt's series on the chosen device (one entry per thread count on the CPU, each timed on
/// a rayon pool of its own: CLIP's dense layers spread their weight panels over it), with a
/// name and a description of the backend.
fn time_rlrt(
    args: &BenchClipArgs,
    precision: Precision,
    batch: usize,
) -> anyhow::Result<Vec<(String, Series, Series, String)>> {
    match args.device {
        ComputeDevice::Cpu => {
            anyhow::ensure!(
                precision == Precision::F32,
                "--precision f16 needs --device cuda (the CPU backend computes in f32)"
            );
            anyhow::ensure!(
                !args.no_fusion,
                "--no-fusion applies to --device cuda (the CPU backend has no fusion layer)"
            );
            let mut runs = Vec::new();
            for &threads in &args.threads {
                let pool = crate::threads::local_pool(threads)?;
                let (b1, bn) = pool.install(|| {
                    time_vision::<rlrt_rewards::clip::CpuBackend>(
                        &Default::default(),
                        args.calls,
                        batch,
                        args.batch_calls,
                        2,
                    )
                });
                let s = if threads == 1 { "" } else { "s" };
                runs.push((
                    format!("rlrt_{threads}thread"),
                    b1,
                    bn,
                    format!("burn 0.21 Flex f32 (gemm, rlrt's fused layers), {threads} thread{s}"),
                ));
            }
            Ok(runs)
        }
        #[cfg(feature = "cuda")]
        ComputeDevice::Cuda(index) => {
            use rlrt_rewards::clip::engine::{
                CudaBackend, CudaHalfBackend, CudaHalfUnfusedBackend, CudaUnfusedBackend,
            };
            // Autotuning runs on the first calls of each shape: warm up well past it.
            let warmup = 20;
            let (calls, batch_calls) = (args.calls, args.batch_calls);
            let (b1, bn) = super::with_cuda(index, |device| match (precision, args.no_fusion) {
                (Precision::F32, false) => {
                    time_vision::<CudaBackend>(&device, calls, batch, batch_calls, warmup)
                }
                (Precision::F16, false) => {
                    time_vision::<CudaHalfBackend>(&device, calls, batch, batch_calls, warmup)
                }
                (Precision::F32, true) => {
                    time_vision::<CudaUnfusedBackend>(&device, calls, batch, batch_calls, warmup)
                }
                (Precision::F16, true) => time_vision::<CudaHalfUnfusedBackend>(
                    &device,
                    calls,
                    batch,
                    batch_calls,
                    warmup,
                ),
            })?;
            let layers = super::cuda_layers(args.no_fusion);
            Ok(vec![(
                format!("rlrt_cuda{index}"),
                b1,
                bn,
                format!("burn 0.21 CUDA {precision} (cubecl, {layers}) on cuda:{index}"),
            )])
        }
        #[cfg(not(feature = "cuda"))]
        ComputeDevice::Cuda(_) => Err(super::no_cuda()),
    }
}

fn run_peer(
    args: &BenchClipArgs,
    precision: Precision,
    batch: usize,
) -> anyhow::Result<serde_json::Value> {
    let (calls, batch_calls, batch) = (
        args.calls.to_string(),
        args.batch_calls.to_string(),
        batch.to_string(),
    );
    match args.device {
        ComputeDevice::Cpu => super::python_json(
            &[
                "-",
                &calls,
                &batch_calls,
                &batch,
                &args
                    .threads
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ],
            args.python_path.as_deref(),
            PEER_CPU.as_bytes(),
            "torch and transformers importable by python3",
        ),
        ComputeDevice::Cuda(index) => super::python_json(
            &[
                "-",
                &calls,
                &batch_calls,
                &batch,
                &precision.to_string(),
                &index.to_string(),
            ],
            args.python_path.as_deref(),
            PEER_CUDA.as_bytes(),
            "torch with CUDA and transformers importable by python3",
        ),
    }
}

fn series(value: &serde_json::Value) -> Vec<f64> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default()
}

pub fn run(args: &BenchClipArgs) -> anyhow::Result<BenchReport> {
    let args = &BenchClipArgs {
        threads: super::bench::default_thread_counts(&args.threads),
        ..args.clone()
    };
    anyhow::ensure!(
        args.calls > 0 && args.batch_calls > 0,
        "--calls and --batch-calls must be above zero"
    );
    let cuda = args.device.is_cuda();
    let batch = args.batch.unwrap_or(if cuda { 64 } else { 16 });
    anyhow::ensure!(
        batch > 1,
        "--batch must be above one (batch 1 is always timed)"
    );
    let precision = args
        .precision
        .unwrap_or(if cuda { Precision::F16 } else { Precision::F32 });
    let runs = time_rlrt(args, precision, batch)?;
    let batch_key = format!("batch{batch}_image_embedding");
    let images_per_s = |m: &Metric| batch as f64 * 1e3 / m.p50;

    let mut report = BenchReport::new("clip");
    report
        .extra
        .insert("model".into(), "ViT-B/32 vision tower, random init".into());
    report
        .extra
        .insert("device".into(), args.device.to_string().into());
    report
        .extra
        .insert("precision".into(), precision.to_string().into());
    report.extra.insert("batch".into(), batch.into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    report.extra.insert("cores".into(), cores.into());
    // (name, batch-1 p50, batch-N p50) of each rlrt run, for the ratios.
    let mut rlrt_p50 = Vec::new();
    let last = runs.len() - 1;
    for (i, (name, b1, bn, backend)) in runs.into_iter().enumerate() {
        let (b1_submit, bn_submit) = (
            Metric::from_samples("ms", b1.submit),
            Metric::from_samples("ms", bn.submit),
        );
        let (b1, bn) = (
            Metric::from_samples("ms", b1.total),
            Metric::from_samples("ms", bn.total),
        );
        report.extra.insert(
            format!("{name}_batch{batch}_images_per_s_p50"),
            images_per_s(&bn).into(),
        );
        report
            .extra
            .insert(format!("{name}_backend"), backend.clone().into());
        rlrt_p50.push((name.clone(), b1.p50, bn.p50));
        // The headline (the last thread count, or the GPU) keeps the plain metric names.
        let suffix = if i == last {
            report.extra.insert("rlrt_backend".into(), backend.into());
            report.extra.insert(
                format!("rlrt_batch{batch}_images_per_s_p50"),
                images_per_s(&bn).into(),
            );
            String::new()
        } else {
            format!("_{name}")
        };
        report
            .metrics
            .insert(format!("batch1_image_embedding{suffix}"), b1);
        report.metrics.insert(format!("{batch_key}{suffix}"), bn);
        // On a GPU, how much of a call the host spends issuing it: a forward pass that
        // returns close to the whole call's time is bound by the host, not by the device.
        if cuda {
            report
                .metrics
                .insert("batch1_host_submit".into(), b1_submit);
            report
                .metrics
                .insert(format!("batch{batch}_host_submit"), bn_submit);
        }
    }

    if args.no_peer {
        report
            .extra
            .insert("peer".into(), "skipped (--no-peer)".into());
        return Ok(report);
    }
    let peer = match run_peer(args, precision, batch) {
        Ok(peer) => peer,
        Err(e) => {
            report
                .extra
                .insert("peer".into(), format!("absent: {e:#}").into());
            return Ok(report);
        }
    };
    report
        .extra
        .insert("peer_torch".into(), peer["torch"].clone());
    // (peer name, its two series) for each way the peer ran.
    let rows: Vec<(String, serde_json::Value)> = if cuda {
        report.extra.insert(
            "peer".into(),
            format!(
                "pytorch (transformers CLIPVisionModelWithProjection) {precision} on the same GPU"
            )
            .into(),
        );
        report.extra.insert("gpu".into(), peer["gpu"].clone());
        ["eager", "graph"]
            .iter()
            .map(|mode| (format!("pytorch_cuda_{mode}"), peer[*mode].clone()))
            .collect()
    } else {
        report.extra.insert(
            "peer".into(),
            "pytorch (transformers CLIPVisionModelWithProjection)".into(),
        );
        peer["threads"]
            .as_object()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|(n, row)| (format!("pytorch_{n}thread"), row))
            .collect()
    };
    for (name, row) in rows {
        let (p1, pn) = (
            Metric::from_samples("ms", series(&row["b1"])),
            Metric::from_samples("ms", series(&row["bN"])),
        );
        // Every rlrt run against every peer run; the bar compares equal thread counts
        // (ratio_rlrt_Nthread_over_pytorch_Nthread_...).
        for (rlrt_name, r1, rn) in &rlrt_p50 {
            report.extra.insert(
                format!("ratio_{rlrt_name}_over_{name}_batch1_p50"),
                (r1 / p1.p50).into(),
            );
            report.extra.insert(
                format!("ratio_{rlrt_name}_over_{name}_batch{batch}_p50"),
                (rn / pn.p50).into(),
            );
        }
        report.extra.insert(
            format!("{name}_batch{batch}_images_per_s_p50"),
            images_per_s(&pn).into(),
        );
        let mut metrics = Metrics::new();
        metrics.insert("batch1_image_embedding".into(), p1);
        metrics.insert(batch_key.clone(), pn);
        report.peers.insert(name, metrics);
    }
    Ok(report)
}
