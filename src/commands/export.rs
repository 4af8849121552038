//! `rlrt export onnx`: an `rlrt train` checkpoint's actor as an ONNX model (normalisation,
//! network, tanh and scaling to the action bounds in one graph), checked after writing:
//! ONNX Runtime runs the file and its actions are compared with the checkpoint path's.

use std::path::PathBuf;

use anyhow::Context;
use rlrt_policies::checkpoint::{CheckpointMeta, CheckpointPolicy};
use rlrt_policies::onnx::OnnxPolicy;
use rlrt_policies::onnx_export::export_actor;
use rlrt_runtime::Policy;

#[derive(Clone, Debug)]
pub struct ExportArgs {
    pub checkpoint: PathBuf,
    pub out: PathBuf,
}

#[derive(Debug, serde::Serialize)]
pub struct ExportOutcome {
    pub checkpoint: String,
    pub out: String,
    pub bytes: usize,
    pub observation_len: usize,
    pub action_len: usize,
    pub hidden: Vec<usize>,
    /// Largest difference between ONNX Runtime's actions and the checkpoint path's over
    /// 100 seeded observations (`None` when ONNX Runtime could not be loaded to check).
    pub max_abs_difference: Option<f64>,
    pub check: String,
}

impl std::fmt::Display for ExportOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "wrote {} ({} bytes): {} observation values -> {:?} -> {} action values",
            self.out, self.bytes, self.observation_len, self.hidden, self.action_len
        )?;
        writeln!(f, "check: {}", self.check)
    }
}

pub fn onnx(args: &ExportArgs) -> anyhow::Result<ExportOutcome> {
    let meta = CheckpointMeta::read(&args.checkpoint.join("checkpoint.json"))?;
    let weights = rlrt_policies::iql::load_actor_weights(&args.checkpoint, &meta)
        .with_context(|| format!("reading the actor of {}", args.checkpoint.display()))?;
    let bytes = export_actor(&weights, &meta.normalisation)?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.out, &bytes).with_context(|| format!("writing {}", args.out.display()))?;

    let (inputs, outputs) = (meta.observation_len, meta.action_len);
    let (max_abs_difference, check) = match OnnxPolicy::load(
        &args.out,
        inputs,
        outputs,
        "the checkpoint's observation",
        "the checkpoint's action",
    ) {
        Ok(mut onnx) => {
            let mut native = CheckpointPolicy::from_parts(&meta, weights);
            let mut state = 1u64;
            let (mut a, mut b) = (vec![0.0; outputs], vec![0.0; outputs]);
            let mut worst = 0.0f64;
            for _ in 0..100 {
                let x: Vec<f64> = (0..inputs)
                    .map(|i| {
                        meta.normalisation.observation_mean[i]
                            + meta.normalisation.observation_std[i]
                                * rlrt_runtime::rng::uniform(&mut state, -3.0, 3.0)
                    })
                    .collect();
                onnx.act(&x, &mut a)
                    .map_err(|e| anyhow::anyhow!("ONNX Runtime could not run the export: {e:?}"))?;
                native
                    .act(&x, &mut b)
                    .map_err(|e| anyhow::anyhow!("the checkpoint path failed: {e:?}"))?;
                worst = a
                    .iter()
                    .zip(&b)
                    .map(|(p, q)| (p - q).abs())
                    .fold(worst, f64::max);
            }
            anyhow::ensure!(
                worst <= 1e-4,
                "the exported model differs from the checkpoint by {worst} (more than 1e-4)"
            );
            (
                Some(worst),
                format!(
                    "ONNX Runtime's actions match the checkpoint's within {worst:.2e} on 100 \
                     seeded observations"
                ),
            )
        }
        Err(e) => (None, format!("not checked: {e}")),
    };
    Ok(ExportOutcome {
        checkpoint: args.checkpoint.display().to_string(),
        out: args.out.display().to_string(),
        bytes: bytes.len(),
        observation_len: inputs,
        action_len: outputs,
        hidden: meta.hidden.clone(),
        max_abs_difference,
        check,
    })
}
