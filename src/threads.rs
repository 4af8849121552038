//! The CPU thread pool (`--threads`): burn's Flex backend splits large matrix products over
//! rayon's global pool, IQL runs its independent updates side by side on it, and CLIP's CPU
//! kernels split their products over it. Set once, before any of them runs.
//!
//! The real-time loop never runs on this pool: it has its own thread. Commands that run the
//! loop (`run`, `sim`, `demo`) leave one core to it by default, so that reward models scoring
//! camera frames on the pool do not take the loop's core.

use anyhow::Context;

/// Threads the pool gets: `requested`, or all cores (all but one for real-time commands).
pub fn pool_size(requested: Option<usize>, realtime: bool) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match requested {
        Some(n) => n,
        None if realtime => cores.saturating_sub(1).max(1),
        None => cores,
    }
}

/// Builds rayon's global pool with [`pool_size`] threads.
pub fn init_global(requested: Option<usize>, realtime: bool) -> anyhow::Result<usize> {
    if requested == Some(0) {
        anyhow::bail!("--threads 0: expected at least one thread");
    }
    let n = pool_size(requested, realtime);
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("rlrt-pool-{i}"))
        .build_global()
        .with_context(|| format!("starting a pool of {n} threads"))?;
    Ok(n)
}

/// A pool of `n` threads of its own, for timing one thread count beside another in one
/// process (`rlrt bench iql`, `rlrt bench clip`).
pub fn local_pool(n: usize) -> anyhow::Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n.max(1))
        .thread_name(move |i| format!("rlrt-bench-{n}-{i}"))
        .build()
        .with_context(|| format!("starting a pool of {n} threads"))
}
