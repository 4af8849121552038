//! `rlrt bench iql`: IQL update steps per second on the CPU at batch 256 (2x256 MLPs, 17
//! observation and 6 action values by default), one full update per step: V by expectile
//! regression, the advantage-weighted Gaussian actor with the cosine learning-rate schedule,
//! twin Q, Polyak targets, and the losses read back, as `rlrt train iql` runs it.
//!
//! rlrt's `Learner` is timed on both of burn's CPU backends (Flex, the training default, and
//! NdArray), one thread each. The peer is the same update written in PyTorch eager (the way
//! CORL writes it), run by `python3` at one thread and at all cores when it can import torch
//! (`--python-path` is added to PYTHONPATH); its absence is reported, not an error.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use rlrt_policies::iql::{IqlConfig, Learner, Replay};
use rlrt_runtime::bench::{BenchReport, Metric, Metrics};

pub struct BenchIqlArgs {
    pub observations: usize,
    pub actions: usize,
    pub hidden: Vec<usize>,
    pub batch: usize,
    /// Timed update steps per run (after a tenth as many warm-up steps).
    pub steps: usize,
    pub no_peer: bool,
    /// Added to PYTHONPATH for the PyTorch peer (default `.deps/python`).
    pub python_path: Option<PathBuf>,
}

/// Transitions in the random replay buffer (sampling cost does not depend on it much).
const TRANSITIONS: usize = 100_000;

/// The peer: the same update in PyTorch eager. Prints {"torch": version, "threads": {"1":
/// [ms per step...], "<cores>": [...]}}.
const PEER: &str = r#"
import copy, json, math, os, sys, time
import torch
from torch import nn
o, a, batch, steps, warmup = (int(v) for v in sys.argv[1:6])
hidden = [int(v) for v in sys.argv[6].split(",")]
tau, beta, gamma, polyak, lr, clip = 0.7, 3.0, 0.99, 0.005, 3e-4, 100.0

def mlp(i, out):
    sizes, layers = [i] + hidden, []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], out))

def run(threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    n = 100_000
    obs, nxt = torch.randn(n, o), torch.randn(n, o)
    act, rew = torch.rand(n, a) * 2 - 1, torch.randn(n, 1)
    not_done = torch.ones(n, 1)
    actor, log_std = mlp(o, a), nn.Parameter(torch.zeros(a))
    q1, q2, v = mlp(o + a, 1), mlp(o + a, 1), mlp(o, 1)
    t1, t2 = copy.deepcopy(q1).requires_grad_(False), copy.deepcopy(q2).requires_grad_(False)
    v_opt = torch.optim.Adam(v.parameters(), lr=lr)
    a_opt = torch.optim.Adam(list(actor.parameters()) + [log_std], lr=lr)
    q_opt = torch.optim.Adam(list(q1.parameters()) + list(q2.parameters()), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(a_opt, 1_000_000)
    online = list(q1.parameters()) + list(q2.parameters())
    target = list(t1.parameters()) + list(t2.parameters())
    def step():
        i = torch.randint(n, (batch,))
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
        return (v_loss.item(), a_loss.item(), q_loss.item(), w.mean().item(), adv.mean().item())
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append((time.perf_counter() - t) * 1e3)
    return times

cores = os.cpu_count() or 1
out = {"torch": torch.__version__, "threads": {}}
for threads in sorted({1, cores}):
    out["threads"][str(threads)] = run(threads)
print(json.dumps(out))
"#;

fn steps_per_second(ms: &[f64]) -> f64 {
    1e3 * ms.len() as f64 / ms.iter().sum::<f64>()
}

/// Milliseconds per update of rlrt's learner on backend `B`, after `steps / 10` warm-up
/// steps, and the losses of the very first update (the same seed and data on every backend,
/// so they must agree to rounding: a cross-check of the backends).
fn time_learner<B: AutodiffBackend>(
    args: &BenchIqlArgs,
    device: B::Device,
) -> (Vec<f64>, serde_json::Value) {
    let config = IqlConfig {
        batch_size: args.batch,
        hidden: args.hidden.clone(),
        ..IqlConfig::default()
    };
    let replay = Replay::random(args.observations, args.actions, TRANSITIONS, 7);
    let mut learner = Learner::<B>::new(config, replay, device);
    let first = learner.update();
    let first = serde_json::json!({
        "value": first.value,
        "q": first.q,
        "actor": first.actor,
        "advantage": first.advantage,
    });
    for _ in 1..args.steps / 10 {
        std::hint::black_box(learner.update());
    }
    let times = (0..args.steps)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(learner.update());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    (times, first)
}

fn run_peer(args: &BenchIqlArgs) -> anyhow::Result<serde_json::Value> {
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
    super::python_json(
        &[
            "-",
            &args.observations.to_string(),
            &args.actions.to_string(),
            &args.batch.to_string(),
            &args.steps.to_string(),
            &(args.steps / 10).to_string(),
            &hidden,
        ],
        Some(&python_path),
        PEER.as_bytes(),
        "torch importable by python3",
    )
}

pub fn run(args: &BenchIqlArgs) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(
        args.steps >= 10 && args.batch > 0 && args.observations > 0 && args.actions > 0,
        "--steps must be at least 10, and --batch, --observations and --actions above zero"
    );
    anyhow::ensure!(
        !args.hidden.is_empty() && args.hidden.iter().all(|&h| h > 0),
        "--hidden needs at least one width above zero"
    );
    let (flex, flex_losses) =
        time_learner::<rlrt_policies::iql::CpuBackend>(args, Default::default());
    let (ndarray, ndarray_losses) = time_learner::<
        burn::backend::Autodiff<burn::backend::NdArray<f32>>,
    >(args, Default::default());
    let rate = steps_per_second(&flex);
    let losses = serde_json::json!({ "rlrt": flex_losses, "burn_ndarray": ndarray_losses });

    let mut report = BenchReport::new("iql");
    report.extra.insert(
        "shape".into(),
        format!(
            "{} observations, {} actions, hidden {:?}, batch {}",
            args.observations, args.actions, args.hidden, args.batch
        )
        .into(),
    );
    report.extra.insert(
        "rlrt_backend".into(),
        "burn 0.21 Autodiff<Flex> f32, 1 thread".into(),
    );
    report.extra.insert("rlrt_steps_per_s".into(), rate.into());
    report.extra.insert("first_update_losses".into(), losses);
    report.extra.insert(
        "burn_ndarray_steps_per_s".into(),
        steps_per_second(&ndarray).into(),
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    report.extra.insert("cores".into(), cores.into());
    report
        .metrics
        .insert("update_step".into(), Metric::from_samples("ms", flex));
    let mut peer = Metrics::new();
    peer.insert("update_step".into(), Metric::from_samples("ms", ndarray));
    report.peers.insert("burn_ndarray_1thread".into(), peer);

    if args.no_peer {
        report
            .extra
            .insert("peer".into(), "skipped (--no-peer)".into());
        return Ok(report);
    }
    match run_peer(args) {
        Ok(peer) => {
            report
                .extra
                .insert("peer".into(), "pytorch eager (the same update)".into());
            report
                .extra
                .insert("peer_torch".into(), peer["torch"].clone());
            let threads = peer["threads"].as_object().cloned().unwrap_or_default();
            for (n, series) in threads {
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
                    .insert(format!("pytorch_{n}thread_steps_per_s"), peer_rate.into());
                report.extra.insert(
                    format!("ratio_rlrt_over_pytorch_{n}thread_steps_per_s"),
                    (rate / peer_rate).into(),
                );
                let mut metrics = Metrics::new();
                metrics.insert("update_step".into(), Metric::from_samples("ms", ms));
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
