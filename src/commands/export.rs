//! `rlrt export onnx|torchscript`: an `rlrt train` checkpoint's actor as an ONNX model or a
//! TorchScript module (normalisation, network, tanh and scaling to the action bounds in one
//! graph), checked after writing: ONNX Runtime or libtorch runs the file and its actions are
//! compared with the checkpoint path's. `rlrt export lerobot`: a dataset in LeRobot's layout
//! (`rlrt_datasets::lerobot`).

use std::path::PathBuf;

use anyhow::Context;
use rlrt_policies::checkpoint::{CheckpointMeta, CheckpointPolicy, MlpWeights};
use rlrt_policies::onnx::OnnxPolicy;
use rlrt_policies::onnx_export::export_actor;
use rlrt_runtime::Policy;

/// `rlrt export onnx` and `rlrt export torchscript`.
#[derive(clap::Args, Clone, Debug)]
pub struct ExportArgs {
    /// The checkpoint folder (`rlrt train --out`).
    pub checkpoint: PathBuf,
    /// The file to write (.onnx or .pt).
    #[arg(long)]
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
    let (meta, weights) = read_checkpoint(args)?;
    let bytes = export_actor(&weights, &meta.normalisation)?;
    create_parent(&args.out)?;
    std::fs::write(&args.out, &bytes).with_context(|| format!("writing {}", args.out.display()))?;
    let check = match OnnxPolicy::load(
        &args.out,
        meta.observation_len,
        meta.action_len,
        "the checkpoint's observation",
        "the checkpoint's action",
    ) {
        Ok(mut onnx) => Ok(compare(&mut onnx, &meta, weights.clone(), "ONNX Runtime")?),
        Err(e) => Err(format!("{:#}", anyhow::Error::new(e))),
    };
    Ok(outcome(args, &meta, bytes.len(), check, "ONNX Runtime"))
}

/// `rlrt export torchscript`: the actor traced by libtorch and saved as TorchScript.
#[cfg(feature = "tch")]
pub fn torchscript(args: &ExportArgs) -> anyhow::Result<ExportOutcome> {
    use rlrt_policies::torchscript::{export_actor, TorchScriptPolicy};
    let (meta, weights) = read_checkpoint(args)?;
    create_parent(&args.out)?;
    export_actor(&weights, &meta.normalisation, &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let bytes = std::fs::metadata(&args.out)
        .with_context(|| format!("reading {}", args.out.display()))?
        .len() as usize;
    let mut module = TorchScriptPolicy::load(
        &args.out,
        meta.observation_len,
        meta.action_len,
        "the checkpoint's observation",
        "the checkpoint's action",
    )?;
    let check = compare(&mut module, &meta, weights, "libtorch")?;
    Ok(outcome(args, &meta, bytes, Ok(check), "libtorch"))
}

/// Without libtorch in the build there is nothing to trace with.
#[cfg(not(feature = "tch"))]
pub fn torchscript(_args: &ExportArgs) -> anyhow::Result<ExportOutcome> {
    anyhow::bail!(
        "this rlrt was built without libtorch; rebuild with `--features tch` (LIBTORCH names \
         a libtorch folder; `cargo xtask setup` puts one in .deps/libtorch)"
    )
}

fn read_checkpoint(args: &ExportArgs) -> anyhow::Result<(CheckpointMeta, MlpWeights)> {
    let meta = CheckpointMeta::read(&args.checkpoint.join("checkpoint.json"))?;
    let weights = rlrt_policies::iql::load_actor_weights(&args.checkpoint, &meta)
        .with_context(|| format!("reading the actor of {}", args.checkpoint.display()))?;
    Ok((meta, weights))
}

fn create_parent(out: &std::path::Path) -> anyhow::Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// Runs `exported` and the checkpoint path on 100 seeded observations (spread over three
/// standard deviations of the training data) and fails above 1e-4; returns the largest
/// difference.
fn compare(
    exported: &mut dyn Policy,
    meta: &CheckpointMeta,
    weights: MlpWeights,
    runtime: &str,
) -> anyhow::Result<f64> {
    let (inputs, outputs) = (meta.observation_len, meta.action_len);
    let mut native = CheckpointPolicy::from_parts(meta, weights);
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
        exported
            .act(&x, &mut a)
            .map_err(|e| anyhow::anyhow!("{runtime} could not run the export: {e:?}"))?;
        native
            .act(&x, &mut b)
            .map_err(|e| anyhow::anyhow!("the checkpoint path failed: {e:?}"))?;
        worst = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(worst, rlrt_models::compare::worse);
    }
    anyhow::ensure!(
        worst <= 1e-4,
        "the exported model differs from the checkpoint by {worst} (more than 1e-4)"
    );
    Ok(worst)
}

/// The outcome; `check` is the largest difference, or why `runtime` could not run the file.
fn outcome(
    args: &ExportArgs,
    meta: &CheckpointMeta,
    bytes: usize,
    check: Result<f64, String>,
    runtime: &str,
) -> ExportOutcome {
    let (max_abs_difference, check) = match check {
        Ok(worst) => (
            Some(worst),
            format!(
                "{runtime}'s actions match the checkpoint's within {worst:.2e} on 100 seeded \
                 observations"
            ),
        ),
        Err(e) => (None, format!("not checked: {e}")),
    };
    ExportOutcome {
        checkpoint: args.checkpoint.display().to_string(),
        out: args.out.display().to_string(),
        bytes,
        observation_len: meta.observation_len,
        action_len: meta.action_len,
        hidden: meta.hidden.clone(),
        max_abs_difference,
        check,
    }
}

/// `rlrt export`: a trained actor for other runtimes, or a dataset for LeRobot.
#[derive(clap::Subcommand)]
pub enum Export {
    /// An `rlrt train` checkpoint's actor as one ONNX graph (normalisation, network, tanh,
    /// scaling to the action bounds), checked with ONNX Runtime against the checkpoint.
    Onnx {
        #[command(flatten)]
        args: ExportArgs,
        #[command(flatten)]
        output: super::Output,
    },
    /// An `rlrt train` checkpoint's actor as a TorchScript module traced by libtorch (the
    /// same graph as `export onnx`), checked with libtorch against the checkpoint. Needs rlrt
    /// built with the `tch` feature.
    Torchscript {
        #[command(flatten)]
        args: ExportArgs,
        #[command(flatten)]
        output: super::Output,
    },
    #[cfg(feature = "datasets")]
    /// An rlrt dataset (`rlrt record`, `rlrt import`) in LeRobot's dataset layout v3.0:
    /// parquet steps (state, action, reward, done flags, and rgb8/mono8 camera frames as PNG
    /// images), info, stats, tasks and episodes metadata. Depth cameras are not exported.
    Lerobot {
        #[command(flatten)]
        args: LeRobotArgs,
        #[command(flatten)]
        output: super::Output,
    },
}

/// `rlrt export lerobot`.
#[cfg(feature = "datasets")]
#[derive(clap::Args, Clone, Debug)]
pub struct LeRobotArgs {
    /// The dataset folder.
    pub data: PathBuf,
    /// The folder to write (must not hold a LeRobot dataset yet).
    #[arg(long)]
    pub out: PathBuf,
    /// The task sentence of every episode (default: the robot's name in the config).
    #[arg(long)]
    pub task: Option<String>,
}

/// `rlrt export ...`: writes the export and prints what was written.
pub fn execute(export: Export) -> anyhow::Result<super::Exit> {
    match export {
        Export::Onnx { args, output } => output.print(&onnx(&args)?)?,
        Export::Torchscript { args, output } => output.print(&torchscript(&args)?)?,
        #[cfg(feature = "datasets")]
        Export::Lerobot { args, output } => output.print(&rlrt_datasets::lerobot::export(
            &args.data,
            &args.out,
            args.task.as_deref(),
        )?)?,
    }
    Ok(super::Exit::Success)
}
