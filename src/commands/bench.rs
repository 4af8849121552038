//! `rlrt bench`: the benchmarks. Each prints a table, or with --json exactly one JSON object
//! (median, p99, the peer a user would pick instead, and the ratio).

use clap::Subcommand;
use rlrt_runtime::bench::BenchReport;

use super::{bench_clip, bench_loop, bench_policy, bench_reward, Exit, Output};
#[cfg(feature = "sim")]
use super::{bench_iql, bench_link, bench_rerun};

#[derive(Subcommand)]
pub enum Bench {
    /// Image-embedding latency of a randomly initialised CLIP ViT-B/32 at batch 1 and a larger
    /// batch: burn Flex on the CPU at one thread and at --threads, or burn CUDA with --device cuda;
    /// against PyTorch's transformers CLIP of the same config (CPU threads, or the same GPU
    /// eager and from a CUDA graph) when python3 can import torch and transformers.
    Clip(BenchCommand<bench_clip::BenchClipArgs>),
    #[cfg(feature = "sim")]
    /// IQL update steps per second at batch 256 through `rlrt train`'s own update loop: burn
    /// Flex on the CPU at one thread and at --threads (default all cores), or burn CUDA with
    /// --device cuda; against the same update in PyTorch eager (same thread counts) and JAX
    /// jit when python3 can import them.
    Iql(BenchCommand<bench_iql::BenchIqlArgs>),
    #[cfg(feature = "sim")]
    /// Tick jitter with everything logged to rerun against the same run without rerun: the
    /// reach arm in MuJoCo over loopback zenoh, its reward program and one camera.
    Rerun(BenchCommand<bench_rerun::BenchRerunArgs>),
    /// Per-call latency of a trained actor at batch 1: the tick's path (plain arrays, no
    /// allocation) against burn's own forward pass on the same weights.
    Policy(BenchCommand<bench_policy::BenchPolicyArgs>),
    /// Evaluations per second and per-call latency of the reach reward program, against
    /// the same reward in Python with numpy.
    RewardProgram(BenchCommand<bench_reward::BenchRewardArgs>),
    #[cfg(feature = "sim")]
    /// Observation-to-command round trip through zenoh on loopback (against zenoh's own
    /// ping-pong), and the lockstep step rate of runtime plus simulator over the link.
    Link(BenchCommand<bench_link::BenchLinkArgs>),
    /// Tick punctuality of the control loop against a sleep-until-deadline loop.
    Loop(BenchCommand<bench_loop::BenchLoopArgs>),
}

/// A benchmark's own arguments and `--json`.
#[derive(clap::Args)]
pub struct BenchCommand<A: clap::Args> {
    #[command(flatten)]
    pub args: A,
    #[command(flatten)]
    pub output: Output,
}

/// `rlrt bench ...`: runs the benchmark and prints its report.
pub fn execute(bench: Bench) -> anyhow::Result<Exit> {
    let (report, output) = match bench {
        Bench::Clip(c) => (bench_clip::run(&c.args)?, c.output),
        #[cfg(feature = "sim")]
        Bench::Iql(c) => (bench_iql::run(&c.args)?, c.output),
        #[cfg(feature = "sim")]
        Bench::Rerun(c) => (bench_rerun::run(&c.args)?, c.output),
        Bench::Policy(c) => (bench_policy::run(&c.args)?, c.output),
        Bench::RewardProgram(c) => (bench_reward::run(&c.args)?, c.output),
        #[cfg(feature = "sim")]
        Bench::Link(c) => (bench_link::run(&c.args)?, c.output),
        Bench::Loop(c) => {
            // Ctrl-C ends the measured loop at a tick; taken before the set-up.
            crate::signals::stop_flag();
            (bench_loop::run(&c.args)?, c.output)
        }
    };
    print_report(&report, output);
    Ok(Exit::Success)
}

fn print_report(report: &BenchReport, output: Output) {
    if output.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
}

/// The CPU thread counts a benchmark times rlrt at when none are given: one thread, and every
/// thread of the global pool (`--threads`).
pub(crate) fn default_thread_counts(given: &[usize]) -> Vec<usize> {
    if !given.is_empty() {
        return given.to_vec();
    }
    let mut threads = vec![1, rayon::current_num_threads()];
    threads.dedup();
    threads
}
