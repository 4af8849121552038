//! `rlrt bench iql`: IQL update steps per second at batch 256 (2x256 MLPs, 17 observation
//! and 6 action values by default), timed through the update loop `rlrt train` runs
//! ([`run_updates`]: minibatch sampling, one full update, progress, the losses read back every
//! `--readback-every` steps, 100 by default as in `train`): V by expectile regression, the
//! advantage-weighted Gaussian actor with the cosine learning-rate schedule, twin Q, Polyak
//! targets. The peers read their losses back as often.
//!
//! - **CPU** (default): rlrt's `Learner` on burn's Flex backend at one thread and at
//!   `--threads` (default all cores), each on a rayon pool of its own. Peers: the same update
//!   in PyTorch eager (the way CORL writes it) at the same thread counts, and in JAX compiled
//!   with `jax.jit` (optax's Adam; XLA uses every core).
//! - **CUDA** (`--device cuda`, feature `cuda`): the `Learner` on burn's CUDA backend; its first
//!   update's losses are checked against Flex's. Peers on the same GPU: PyTorch eager and JAX
//!   jit.
//!
//! Peers run in `python3` when they can import torch (and jax, optax); `--python-path` is added
//! to PYTHONPATH. An absent peer is reported, not an error.

use std::path::PathBuf;
use std::time::Instant;

use std::sync::atomic::AtomicBool;

use burn::tensor::backend::AutodiffBackend;
use rlrt_policies::iql::{IqlConfig, Learner, Replay};
use rlrt_runtime::bench::{BenchReport, Metric, Metrics};
use rlrt_runtime::compute::ComputeDevice;

use super::train::TrainProgress;
use rlrt_policies::training::run_updates;

/// `rlrt bench iql`: IQL update steps per second at batch 256 through `rlrt train`'s own update
/// loop: burn Flex on the CPU at one thread and at --threads (default all cores), or burn CUDA
/// with --device cuda; against the same update in PyTorch eager (same thread counts) and JAX
/// jit when python3 can import them.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchIqlArgs {
    #[arg(long, default_value_t = 17)]
    pub observations: usize,
    #[arg(long, default_value_t = 6)]
    pub actions: usize,
    #[arg(long, value_delimiter = ',', default_value = "256,256")]
    pub hidden: Vec<usize>,
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Timed update steps per run (after a tenth as many warm-up steps).
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Read the losses back every this many steps (a synchronisation on a GPU), in rlrt
    /// and the peers alike (`rlrt train` reads them every 100).
    #[arg(long, default_value_t = 100)]
    pub readback_every: usize,
    /// cpu, cuda or cuda:N (CUDA needs rlrt built with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: ComputeDevice,
    /// CPU thread counts rlrt is timed at, each on a pool of its own (the peers run at one
    /// thread and at the largest of these). Empty: one thread and every thread of the global
    /// pool.
    #[arg(skip)]
    pub threads: Vec<usize>,
    /// Skip the peers.
    #[arg(long)]
    pub no_peer: bool,
    /// With --device cuda: burn's CUDA backend without its fusion layer (each operation
    /// its own kernel).
    #[arg(long)]
    pub no_fusion: bool,
    /// Where the peers find torch (and jax, optax): added to PYTHONPATH; default
    /// .deps/python, which has no torch: pip install torch elsewhere and point here.
    #[arg(long)]
    pub python_path: Option<PathBuf>,
}

/// Transitions in the random replay buffer (sampling cost does not depend on it much).
const TRANSITIONS: usize = 100_000;

/// The PyTorch peer: the same update in PyTorch eager (replay buffer on the device, CORL's
/// layout). argv: o a batch steps warmup hidden readback device. Prints {"torch": version,
/// "runs": {name: [ms per step of each block of `readback` steps...]}}: on the CPU one run at
/// one thread and one at all cores, on CUDA one run.
const PEER_TORCH: &str = r#"
import copy, json, math, os, sys, time
import torch
from torch import nn
o, a, batch, steps, warmup, = (int(v) for v in sys.argv[1:6])
hidden = [int(v) for v in sys.argv[6].split(",")]
readback, device = int(sys.argv[7]), torch.device(sys.argv[8])
tau, beta, gamma, polyak, lr, clip = 0.7, 3.0, 0.99, 0.005, 3e-4, 100.0

def mlp(i, out):
    sizes, layers = [i] + hidden, []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], out)).to(device)

def run():
    torch.manual_seed(0)
    n = 100_000
    obs, nxt = torch.randn(n, o, device=device), torch.randn(n, o, device=device)
    act, rew = torch.rand(n, a, device=device) * 2 - 1, torch.randn(n, 1, device=device)
    not_done = torch.ones(n, 1, device=device)
    actor, log_std = mlp(o, a), nn.Parameter(torch.zeros(a, device=device))
    q1, q2, v = mlp(o + a, 1), mlp(o + a, 1), mlp(o, 1)
    t1, t2 = copy.deepcopy(q1).requires_grad_(False), copy.deepcopy(q2).requires_grad_(False)
    v_opt = torch.optim.Adam(v.parameters(), lr=lr)
    a_opt = torch.optim.Adam(list(actor.parameters()) + [log_std], lr=lr)
    q_opt = torch.optim.Adam(list(q1.parameters()) + list(q2.parameters()), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(a_opt, 1_000_000)
    online = list(q1.parameters()) + list(q2.parameters())
    target = list(t1.parameters()) + list(t2.parameters())
    def step():
        i = torch.randint(n, (batch,), device=device)
        s, x, r, s2, nd = obs[i], act[i], rew[i], nxt[i], not_done[i]
        sa = torch.cat([s, x], 1)
        with torch.no_grad():
            tq = torch.min(t1(sa), t2(sa))
        vs = v(s)
        u = tq - vs
        v_loss = (torch.where(u < 0, 1 - tau, tau) * u.pow(2)).mean()
        v_opt.zero_grad(set_to_none=True); v_loss.backward(); v_opt.step()
        adv = u.detach()
        w = torch.exp(beta * adv).clamp(max=clip)
        ls = log_std.clamp(-5.0, 2.0)
        z = (x - torch.tanh(actor(s))) / ls.exp()
        logp = (-0.5 * z.pow(2) - ls - 0.5 * math.log(2 * math.pi)).sum(1, keepdim=True)
        a_loss = (w * -logp).mean()
        a_opt.zero_grad(set_to_none=True); a_loss.backward(); a_opt.step(); sched.step()
        with torch.no_grad():
            y = r + nd * gamma * v(s2)
        q_loss = (q1(sa) - y).pow(2).mean() + (q2(sa) - y).pow(2).mean()
        q_opt.zero_grad(set_to_none=True); q_loss.backward(); q_opt.step()
        with torch.no_grad():
            for p, tp in zip(online, target):
                tp.mul_(1 - polyak).add_(p, alpha=polyak)
        return torch.stack([v_loss.detach(), a_loss.detach(), q_loss.detach(), w.mean(), adv.mean()])
    for _ in range(warmup):
        step()
    step().tolist()
    times = []
    for _ in range(max(1, steps // readback)):
        t = time.perf_counter()
        for _ in range(readback):
            losses = step()
        losses.tolist()
        times.append((time.perf_counter() - t) * 1e3 / readback)
    return times

out = {"torch": torch.__version__, "runs": {}}
if device.type == "cpu":
    for threads in sorted({int(t) for t in sys.argv[9].split(",")}):
        torch.set_num_threads(threads)
        out["runs"][f"pytorch_{threads}thread"] = run()
else:
    out["runs"]["pytorch_cuda_eager"] = run()
print(json.dumps(out))
"#;

/// The JAX peer: the same update as one `jax.jit`-compiled function with optax's
/// Adam, replay buffer on the device, sampled inside the compiled step. argv: o a batch steps
/// warmup hidden readback [cpu] (on the CPU, XLA uses every core). Prints {"jax": version, "platform": ..., "runs": {"jax_jit": [...]}}.
const PEER_JAX: &str = r#"
import json, math, os, sys, time
if len(sys.argv) > 8 and sys.argv[8] == "cpu":
    os.environ["JAX_PLATFORMS"] = "cpu"
import jax, jax.numpy as jnp, optax
o, a, batch, steps, warmup = (int(v) for v in sys.argv[1:6])
hidden = [int(v) for v in sys.argv[6].split(",")]
readback = int(sys.argv[7])
tau, beta, gamma, polyak, lr, clip = 0.7, 3.0, 0.99, 0.005, 3e-4, 100.0
n = 100_000

def init_mlp(key, i, out):
    sizes, params = [i] + hidden + [out], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        key, k1, k2 = jax.random.split(key, 3)
        bound = 1 / math.sqrt(fan_in)
        params.append((jax.random.uniform(k1, (fan_in, fan_out), minval=-bound, maxval=bound),
                       jax.random.uniform(k2, (fan_out,), minval=-bound, maxval=bound)))
    return params

def mlp(params, x):
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b

keys = jax.random.split(jax.random.PRNGKey(0), 10)
data = (jax.random.normal(keys[0], (n, o)), jax.random.uniform(keys[1], (n, a)) * 2 - 1,
        jax.random.normal(keys[2], (n, 1)), jax.random.normal(keys[3], (n, o)), jnp.ones((n, 1)))
actor = {"net": init_mlp(keys[4], o, a), "log_std": jnp.zeros(a)}
critic = (init_mlp(keys[5], o + a, 1), init_mlp(keys[6], o + a, 1))
value = init_mlp(keys[7], o, 1)
v_tx, q_tx = optax.adam(lr, eps=1e-8), optax.adam(lr, eps=1e-8)
a_tx = optax.adam(optax.cosine_decay_schedule(lr, 1_000_000), eps=1e-8)
state = (actor, critic, critic, value, a_tx.init(actor), q_tx.init(critic), v_tx.init(value))

@jax.jit
def step(state, data, key):
    actor, critic, target, value, a_opt, q_opt, v_opt = state
    obs, act, rew, nxt, not_done = data
    i = jax.random.randint(key, (batch,), 0, n)
    s, x, r, s2, nd = obs[i], act[i], rew[i], nxt[i], not_done[i]
    sa = jnp.concatenate([s, x], 1)
    tq = jnp.minimum(mlp(target[0], sa), mlp(target[1], sa))
    def v_loss_fn(vp):
        u = tq - mlp(vp, s)
        return jnp.mean(jnp.where(u < 0, 1 - tau, tau) * u ** 2), u
    (v_loss, u), g = jax.value_and_grad(v_loss_fn, has_aux=True)(value)
    upd, v_opt = v_tx.update(g, v_opt, value)
    value = optax.apply_updates(value, upd)
    w = jnp.minimum(jnp.exp(beta * u), clip)
    def a_loss_fn(ap):
        ls = jnp.clip(ap["log_std"], -5.0, 2.0)
        z = (x - jnp.tanh(mlp(ap["net"], s))) / jnp.exp(ls)
        logp = jnp.sum(-0.5 * z ** 2 - ls - 0.5 * math.log(2 * math.pi), 1, keepdims=True)
        return jnp.mean(w * -logp)
    a_loss, g = jax.value_and_grad(a_loss_fn)(actor)
    upd, a_opt = a_tx.update(g, a_opt, actor)
    actor = optax.apply_updates(actor, upd)
    y = r + nd * gamma * mlp(value, s2)
    def q_loss_fn(qp):
        return jnp.mean((mlp(qp[0], sa) - y) ** 2) + jnp.mean((mlp(qp[1], sa) - y) ** 2)
    q_loss, g = jax.value_and_grad(q_loss_fn)(critic)
    upd, q_opt = q_tx.update(g, q_opt, critic)
    critic = optax.apply_updates(critic, upd)
    target = jax.tree_util.tree_map(lambda t, p: t * (1 - polyak) + p * polyak, target, critic)
    losses = jnp.stack([v_loss, a_loss, q_loss, jnp.mean(w), jnp.mean(u)])
    return (actor, critic, target, value, a_opt, q_opt, v_opt), losses

key = jax.random.PRNGKey(1)
for _ in range(max(1, warmup)):
    key, sub = jax.random.split(key)
    state, losses = step(state, data, sub)
losses.tolist()
times = []
for _ in range(max(1, steps // readback)):
    t = time.perf_counter()
    for _ in range(readback):
        key, sub = jax.random.split(key)
        state, losses = step(state, data, sub)
    losses.tolist()
    times.append((time.perf_counter() - t) * 1e3 / readback)
print(json.dumps({"jax": jax.__version__, "platform": jax.default_backend(),
                  "runs": {"jax_jit": times}}))
"#;

/// Steps per second of per-step times (ms).
fn steps_per_second(ms: &[f64]) -> f64 {
    1e3 * ms.len() as f64 / ms.iter().sum::<f64>()
}

/// rlrt's learner on backend `B` after its very first update, and that update's losses: the
/// same seed and data on every backend, so they must agree to rounding (a cross-check).
fn first_update<B: AutodiffBackend>(
    args: &BenchIqlArgs,
    device: B::Device,
) -> (Learner<B>, [f32; 4]) {
    let config = IqlConfig {
        batch_size: args.batch,
        hidden: args.hidden.clone(),
        ..IqlConfig::default()
    };
    let replay = Replay::random(args.observations, args.actions, TRANSITIONS, 7);
    let mut learner = Learner::<B>::new(config, replay, device);
    let first = learner.update();
    (
        learner,
        [first.value, first.q, first.actor, first.advantage],
    )
}

/// Milliseconds per update of rlrt's learner on backend `B`, through the update loop of
/// `rlrt train` itself ([`run_updates`]: sampling, update, progress, losses read back every
/// `readback_every` steps), one value per block of `readback_every` updates, after
/// `steps / 10` warm-up steps; and the first update's losses. Runs on the current rayon pool.
fn time_learner<B: AutodiffBackend>(
    args: &BenchIqlArgs,
    device: B::Device,
) -> (Vec<f64>, [f32; 4]) {
    let (mut learner, first) = first_update::<B>(args, device);
    let stop = AtomicBool::new(false);
    let mut progress = TrainProgress::new(args.steps, false);
    let every = args.readback_every.min(args.steps);
    let warm = learner.step() + args.steps / 10;
    run_updates(&mut learner, warm, every, &stop, &mut progress);
    let times = (0..(args.steps / every).max(1))
        .map(|_| {
            let until = learner.step() + every;
            let t = Instant::now();
            let done = run_updates(&mut learner, until, every, &stop, &mut progress);
            std::hint::black_box(done.losses);
            t.elapsed().as_secs_f64() * 1e3 / every as f64
        })
        .collect();
    (times, first)
}

fn losses_json(l: [f32; 4]) -> serde_json::Value {
    serde_json::json!({ "value": l[0], "q": l[1], "actor": l[2], "advantage": l[3] })
}

/// rlrt's timed series on the chosen device, one per thread count on the CPU (name, series,
/// backend), and its first losses.
#[allow(clippy::type_complexity)]
fn time_rlrt(args: &BenchIqlArgs) -> anyhow::Result<(Vec<(String, Vec<f64>, String)>, [f32; 4])> {
    match args.device {
        ComputeDevice::Cpu => {
            let mut runs = Vec::new();
            let mut first = None;
            for &threads in &args.threads {
                let pool = crate::threads::local_pool(threads)?;
                let (ms, losses) = pool.install(|| {
                    time_learner::<rlrt_policies::iql::CpuBackend>(args, Default::default())
                });
                first.get_or_insert(losses);
                let s = if threads == 1 { "" } else { "s" };
                runs.push((
                    format!("rlrt_{threads}thread"),
                    ms,
                    format!("burn 0.21 Autodiff<Flex> f32, {threads} thread{s}"),
                ));
            }
            Ok((runs, first.expect("at least one thread count")))
        }
        #[cfg(feature = "cuda")]
        ComputeDevice::Cuda(index) => {
            use rlrt_policies::iql::{CudaBackend, CudaUnfusedBackend};
            let (ms, first) = super::with_cuda(index, |device| {
                if args.no_fusion {
                    time_learner::<CudaUnfusedBackend>(args, device)
                } else {
                    time_learner::<CudaBackend>(args, device)
                }
            })?;
            let layers = super::cuda_layers(args.no_fusion);
            Ok((
                vec![(
                    format!("rlrt_cuda{index}"),
                    ms,
                    format!("burn 0.21 Autodiff<Cuda> f32 (cubecl, {layers}) on cuda:{index}"),
                )],
                first,
            ))
        }
        #[cfg(not(feature = "cuda"))]
        ComputeDevice::Cuda(_) => Err(super::no_cuda()),
    }
}

fn run_peer(
    args: &BenchIqlArgs,
    script: &str,
    extra: &[String],
    needs: &str,
) -> anyhow::Result<serde_json::Value> {
    let hidden = args
        .hidden
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let python_path = args
        .python_path
        .clone()
        .unwrap_or_else(|| PathBuf::from(".deps/python"));
    let mut argv = vec![
        "-".to_owned(),
        args.observations.to_string(),
        args.actions.to_string(),
        args.batch.to_string(),
        args.steps.to_string(),
        (args.steps / 10).to_string(),
        hidden,
        args.readback_every.min(args.steps).to_string(),
    ];
    argv.extend(extra.iter().cloned());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    super::python_json(&argv, Some(&python_path), script.as_bytes(), needs)
}

pub fn run(args: &BenchIqlArgs) -> anyhow::Result<BenchReport> {
    let args = &BenchIqlArgs {
        threads: super::bench::default_thread_counts(&args.threads),
        ..args.clone()
    };
    anyhow::ensure!(
        args.steps >= 10 && args.batch > 0 && args.observations > 0 && args.actions > 0,
        "--steps must be at least 10, and --batch, --observations and --actions above zero"
    );
    anyhow::ensure!(
        args.readback_every > 0,
        "--readback-every must be at least 1 (above --steps it reads back once per run)"
    );
    anyhow::ensure!(
        !args.hidden.is_empty() && args.hidden.iter().all(|&h| h > 0),
        "--hidden needs at least one width above zero"
    );
    anyhow::ensure!(
        !args.threads.is_empty() && args.threads.iter().all(|&t| t > 0),
        "at least one thread count above zero"
    );
    let cuda = args.device.is_cuda();
    anyhow::ensure!(
        cuda || !args.no_fusion,
        "--no-fusion applies to --device cuda (the CPU backend has no fusion layer)"
    );
    let (runs, first) = time_rlrt(args)?;

    let mut report = BenchReport::new("iql");
    report.extra.insert(
        "shape".into(),
        format!(
            "{} observations, {} actions, hidden {:?}, batch {}",
            args.observations, args.actions, args.hidden, args.batch
        )
        .into(),
    );
    report
        .extra
        .insert("device".into(), args.device.to_string().into());
    report.extra.insert(
        "readback_every".into(),
        args.readback_every.min(args.steps).into(),
    );
    report.extra.insert(
        "timed".into(),
        "rlrt train's own update loop (sampling, update, progress, losses read back)".into(),
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    report.extra.insert("cores".into(), cores.into());
    // The headline is the last (largest) thread count; every count has its own entry.
    let mut rates = Vec::new();
    for (i, (name, ms, backend)) in runs.iter().enumerate() {
        let rate = steps_per_second(ms);
        rates.push((name.clone(), rate));
        report
            .extra
            .insert(format!("{name}_steps_per_s"), rate.into());
        report
            .extra
            .insert(format!("{name}_backend"), backend.clone().into());
        if i + 1 == runs.len() {
            report
                .extra
                .insert("rlrt_backend".into(), backend.clone().into());
            report.extra.insert("rlrt_steps_per_s".into(), rate.into());
            report
                .metrics
                .insert("update_step".into(), Metric::from_samples("ms", ms.clone()));
        } else {
            report.metrics.insert(
                format!("update_step_{name}"),
                Metric::from_samples("ms", ms.clone()),
            );
        }
    }

    // On CUDA, Flex's first update as the cross-check of the GPU's numbers.
    let mut losses = serde_json::Map::new();
    losses.insert("rlrt".into(), losses_json(first));
    if cuda {
        let (_, cpu) = first_update::<rlrt_policies::iql::CpuBackend>(args, Default::default());
        let worst = first
            .iter()
            .zip(cpu)
            .map(|(g, c)| ((g - c).abs() / c.abs().max(1e-6)) as f64)
            .fold(0.0, rlrt_models::compare::worse);
        losses.insert("burn_flex_cpu".into(), losses_json(cpu));
        report.extra.insert(
            "first_update_max_relative_difference_to_cpu".into(),
            worst.into(),
        );
    } else {
        // burn's other CPU backend computes the same first update: an independent check of
        // Flex's kernels (not timed).
        let (_, nd) = first_update::<burn::backend::Autodiff<burn::backend::NdArray<f32>>>(
            args,
            Default::default(),
        );
        losses.insert("burn_ndarray".into(), losses_json(nd));
    }
    report
        .extra
        .insert("first_update_losses".into(), losses.into());

    if args.no_peer {
        report
            .extra
            .insert("peer".into(), "skipped (--no-peer)".into());
        return Ok(report);
    }
    // (name, script, what it needs, extra arguments): PyTorch takes the device as torch
    // names it (which is how rlrt prints it) and, on the CPU, the thread counts; JAX its
    // platform.
    let thread_list = args
        .threads
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut torch_extra = vec![args.device.to_string()];
    let mut jax_extra = Vec::new();
    if !cuda {
        torch_extra.push(thread_list);
        jax_extra.push("cpu".to_owned());
    }
    let peers = [
        (
            "pytorch eager (the same update)",
            PEER_TORCH,
            "torch importable by python3",
            torch_extra,
        ),
        (
            "jax jit (the same update, optax Adam)",
            PEER_JAX,
            "jax and optax importable by python3",
            jax_extra,
        ),
    ];
    let mut said = Vec::new();
    for (name, script, needs, extra) in peers {
        let peer = match run_peer(args, script, &extra, needs) {
            Ok(peer) => peer,
            Err(e) => {
                said.push(format!("{name}: absent: {e:#}"));
                continue;
            }
        };
        said.push(name.to_owned());
        for key in ["torch", "jax", "platform"] {
            if !peer[key].is_null() {
                report
                    .extra
                    .insert(format!("peer_{key}"), peer[key].clone());
            }
        }
        for (run, series) in peer["runs"].as_object().cloned().unwrap_or_default() {
            let ms: Vec<f64> = series
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
                .unwrap_or_default();
            if ms.is_empty() {
                continue;
            }
            let peer_rate = steps_per_second(&ms);
            report
                .extra
                .insert(format!("{run}_steps_per_s"), peer_rate.into());
            for (rlrt_run, rate) in &rates {
                report.extra.insert(
                    format!("ratio_{rlrt_run}_over_{run}_steps_per_s"),
                    (rate / peer_rate).into(),
                );
            }
            let mut metrics = Metrics::new();
            metrics.insert("update_step".into(), Metric::from_samples("ms", ms));
            report.peers.insert(run, metrics);
        }
    }
    report.extra.insert("peer".into(), said.join("; ").into());
    Ok(report)
}
