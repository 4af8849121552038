//! IQL on burn's CUDA backend (feature `cuda`; needs an NVIDIA GPU: built only with the
//! feature, which CI never enables). The same seed gives the same initial weights and the same
//! minibatches on every backend, so the CUDA learner must track the CPU (Flex) learner: the
//! first update's losses within 1e-3 (relative), and a hundred updates later within 5%. The
//! first bound is not 1e-5: on an H100 the first value loss differed by 1.3e-4 relative
//! (cubecl's f32 matrix products round differently from the CPU's; seen 2026-11-27).

use rlrt_policies::iql::{cpu, CpuBackend, CudaBackend, IqlConfig, Learner, Replay};

fn learners() -> (Learner<CpuBackend>, Learner<CudaBackend>) {
    rlrt_models::cuda::check_cuda_driver().unwrap();
    let config = IqlConfig {
        steps: 1000,
        ..IqlConfig::default()
    };
    let replay = || Replay::random(17, 6, 10_000, 3);
    (
        Learner::new(config.clone(), replay(), cpu()),
        Learner::new(config, replay(), burn::backend::cuda::CudaDevice::new(0)),
    )
}

fn relative(a: f32, b: f32) -> f32 {
    (a - b).abs() / b.abs().max(1e-3)
}

#[test]
fn cuda_learner_tracks_the_cpu_learner() {
    let (mut on_cpu, mut on_gpu) = learners();
    for step in 1..=100 {
        let (c, g) = (on_cpu.update(), on_gpu.update());
        let pairs = [
            ("value", g.value, c.value),
            ("q", g.q, c.q),
            ("actor", g.actor, c.actor),
            ("advantage", g.advantage, c.advantage),
        ];
        let bound = if step == 1 { 1e-3 } else { 5e-2 };
        for (name, gpu, cpu) in pairs {
            assert!(gpu.is_finite(), "step {step}: {name} loss {gpu}");
            assert!(
                relative(gpu, cpu) <= bound,
                "step {step}: {name} loss {gpu} on CUDA, {cpu} on the CPU"
            );
        }
        if step == 1 || step == 100 {
            println!("step {step}: cuda {g:?} cpu {c:?}");
        }
    }
    let (mse_cpu, mse_gpu) = (on_cpu.actor_mse(5000), on_gpu.actor_mse(5000));
    assert!(
        relative(mse_gpu, mse_cpu) <= 5e-2,
        "actor mse {mse_gpu} vs {mse_cpu}"
    );
}
