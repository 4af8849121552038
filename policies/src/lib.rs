//! Policies the rlrt control loop runs. This crate holds the scripted controllers used for
//! bring-up, demos, data collection and tests; learned policies (IQL in burn, ONNX,
//! TorchScript) join it behind the same [`rlrt_runtime::Policy`] interface.

pub mod scripted;

use rlrt_runtime::config::PolicyKind;
use rlrt_runtime::{Policy, RobotConfig};

/// Why a policy could not be built from a config.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{config}: policy.kind = {kind:?} needs \"joint_positions\" in observation.state")]
    NeedsJointPositions { config: String, kind: PolicyKind },
    #[error("{config}: policy.kind = \"ee_servo\" needs policy.from and policy.to")]
    NeedsServo { config: String },
}

/// Builds the policy a config names.
pub fn build(config: &RobotConfig) -> Result<Box<dyn Policy>, BuildError> {
    Ok(match config.policy.kind {
        PolicyKind::Hold => Box::new(scripted::Hold::new(config)?),
        PolicyKind::Sine => Box::new(scripted::Sine::new(config)),
        PolicyKind::JointTarget => Box::new(scripted::JointTarget::new(config)?),
        PolicyKind::EeServo => Box::new(scripted::EeServo::new(config)?),
    })
}
