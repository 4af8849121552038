//! Policies the rlrt control loop runs: the scripted controllers used for bring-up, demos,
//! data collection and tests ([`scripted`]), offline RL in burn ([`iql`]: IQL and behaviour
//! cloning) and trained actors on the tick ([`checkpoint`]: a batch-1 MLP path that never
//! allocates), ONNX models run by ONNX Runtime ([`onnx`], feature `onnx`) and TorchScript
//! modules run by libtorch ([`torchscript`], feature `tch`), all behind the same
//! [`rlrt_runtime::Policy`] interface. [`training`] is a whole offline training run: a
//! dataset in, a checkpoint folder out, evaluations and offline diagnostics on the way.

pub mod checkpoint;
#[cfg(any(feature = "onnx", feature = "tch"))]
pub mod imported;
pub mod iql;
pub mod iql_config;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod onnx_export;
pub mod scripted;
#[cfg(feature = "tch")]
pub mod torchscript;
pub mod training;

use rlrt_runtime::config::PolicyKind;
use rlrt_runtime::{Policy, RobotConfig};

/// Why a policy could not be built from a config.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{config}: policy.kind = {kind:?} needs \"joint_positions\" in observation.state")]
    NeedsJointPositions { config: String, kind: PolicyKind },
    #[error("{config}: policy.kind = \"ee_servo\" needs policy.from and policy.to")]
    NeedsServo { config: String },
    #[error("{config}: policy.kind = \"checkpoint\" needs policy.checkpoint_path")]
    NeedsCheckpoint { config: String },
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error("{config}: policy.kind = \"{kind}\" needs policy.model_path")]
    NeedsModel { config: String, kind: &'static str },
    #[error("{config}: policy.kind = \"onnx\", but this build has no ONNX Runtime support (build rlrt-policies with the `onnx` feature)")]
    NoOnnx { config: String },
    #[cfg(feature = "onnx")]
    #[error(transparent)]
    Onnx(#[from] onnx::OnnxError),
    #[error("{config}: policy.kind = \"torchscript\", but this build has no libtorch (build rlrt with the `tch` feature: cargo build --release --features tch)")]
    NoTorch { config: String },
    #[cfg(feature = "tch")]
    #[error(transparent)]
    TorchScript(#[from] torchscript::TorchScriptError),
}

/// Builds the policy a config names.
pub fn build(config: &RobotConfig) -> Result<Box<dyn Policy>, BuildError> {
    Ok(match config.policy.kind {
        PolicyKind::Hold => Box::new(scripted::Hold::new(config)?),
        PolicyKind::Sine => Box::new(scripted::Sine::new(config)),
        PolicyKind::JointTarget => Box::new(scripted::JointTarget::new(config)?),
        PolicyKind::EeServo => Box::new(scripted::EeServo::new(config)?),
        PolicyKind::Checkpoint => {
            let dir = config.policy.checkpoint_path.as_ref().ok_or_else(|| {
                BuildError::NeedsCheckpoint {
                    config: config.source.display().to_string(),
                }
            })?;
            Box::new(checkpoint::CheckpointPolicy::load_for(dir, config)?)
        }
        PolicyKind::Onnx => {
            let path = model_path(config, "onnx")?;
            #[cfg(feature = "onnx")]
            {
                Box::new(onnx::OnnxPolicy::load_for(path, config)?)
            }
            #[cfg(not(feature = "onnx"))]
            {
                let _ = path;
                return Err(BuildError::NoOnnx {
                    config: config.source.display().to_string(),
                });
            }
        }
        PolicyKind::Torchscript => {
            let path = model_path(config, "torchscript")?;
            #[cfg(feature = "tch")]
            {
                Box::new(torchscript::TorchScriptPolicy::load_for(path, config)?)
            }
            #[cfg(not(feature = "tch"))]
            {
                let _ = path;
                return Err(BuildError::NoTorch {
                    config: config.source.display().to_string(),
                });
            }
        }
    })
}

/// `policy.model_path`, which the `kind` policy needs.
fn model_path<'a>(
    config: &'a RobotConfig,
    kind: &'static str,
) -> Result<&'a std::path::Path, BuildError> {
    config
        .policy
        .model_path
        .as_deref()
        .ok_or_else(|| BuildError::NeedsModel {
            config: config.source.display().to_string(),
            kind,
        })
}
