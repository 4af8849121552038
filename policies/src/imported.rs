//! What ONNX and TorchScript policies share: a model file made elsewhere, loaded for the
//! observation and action sizes of a hw-config (or of a checkpoint, or a benchmark), named
//! after its file, and run once at load, so that a model that loads but cannot run stops the
//! runtime before the loop starts. Each runtime brings an [`ImportedModel`]: how its file
//! is opened and checked, and how one observation becomes one action on the tick.

use std::path::Path;

use rlrt_runtime::{Policy, PolicyError, RobotConfig};

/// One runtime's side of an imported policy.
pub trait ImportedModel: Send + Sized {
    /// The first part of the policy's name (`onnx`, `torchscript`).
    const KIND: &'static str;
    /// Why a file could not be loaded.
    type Error;

    /// Opens the file at `path` as a model of `input_len` observation values in and
    /// `output_len` action values out, and checks it against those sizes; `*_key` name
    /// where the sizes come from (for messages).
    fn open(
        path: &Path,
        input_len: usize,
        output_len: usize,
        input_key: &str,
        output_key: &str,
    ) -> Result<Self, Self::Error>;

    /// The model at `path` loaded but failed its trial run.
    fn trial_failed(path: &Path, error: PolicyError) -> Self::Error;

    /// Writes the action for `observation` into `action` (both of the sizes opened for).
    fn act(&mut self, observation: &[f64], action: &mut [f64]) -> Result<(), PolicyError>;
}

/// A model file behind the [`Policy`] interface.
pub struct ImportedPolicy<M> {
    name: String,
    input_len: usize,
    output_len: usize,
    model: M,
}

impl<M: ImportedModel> ImportedPolicy<M> {
    /// Loads `path` for `config`'s observation features and action.
    pub fn load_for(path: &Path, config: &RobotConfig) -> Result<Self, M::Error> {
        Self::load(
            path,
            config.observation.feature_len,
            config.action.len(),
            "observation.state",
            "the action",
        )
    }

    /// Loads `path` as a policy of `input_len` observation values and `output_len` action
    /// values; `*_key` name where the sizes come from (for messages).
    pub fn load(
        path: &Path,
        input_len: usize,
        output_len: usize,
        input_key: &str,
        output_key: &str,
    ) -> Result<Self, M::Error> {
        let model = M::open(path, input_len, output_len, input_key, output_key)?;
        let file = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut policy = Self {
            name: format!("{}:{file}", M::KIND),
            input_len,
            output_len,
            model,
        };
        // One run through `act` itself: what runs on the tick has run once.
        let mut action = vec![0.0; output_len];
        policy
            .act(&vec![0.0; input_len], &mut action)
            .map_err(|e| M::trial_failed(path, e))?;
        Ok(policy)
    }
}

impl<M: ImportedModel> Policy for ImportedPolicy<M> {
    fn name(&self) -> &str {
        &self.name
    }

    fn input_len(&self) -> usize {
        self.input_len
    }

    fn output_len(&self) -> usize {
        self.output_len
    }

    fn act(&mut self, observation: &[f64], action: &mut [f64]) -> Result<(), PolicyError> {
        self.model.act(observation, action)
    }
}
