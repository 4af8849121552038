//! Policies trained elsewhere, as ONNX models run by ONNX Runtime through `ort`.
//!
//! ONNX Runtime is not linked (see `rlrt_models::ort`, which opens the sessions). A model must have one float input shaped
//! `[batch, observation length]` (batch may be symbolic) and one float output shaped `[batch,
//! action length]`; both are checked at load against the hw-config, so a mismatch stops the
//! runtime before the loop starts.
//!
//! On the tick the input and output tensors are allocated once and bound to the session
//! (`IoBinding`): `act` converts the observation into the bound input in place, runs the
//! session on one intra-op thread, and reads the bound output. ONNX Runtime's own arena may
//! still allocate inside a run; `rlrt bench policy` reports allocations per call.

use std::path::{Path, PathBuf};

use ort::memory::Allocator;
use ort::session::{IoBinding, Session};
use ort::value::{Tensor, TensorElementType, ValueType};
use rlrt_models::ort::open_session;
use rlrt_runtime::PolicyError;

use crate::imported::{ImportedModel, ImportedPolicy};

/// Why an ONNX policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error(transparent)]
    Session(#[from] rlrt_models::ort::SessionError),
    #[error("{}: {message}", path.display())]
    Model { path: PathBuf, message: String },
    #[error("{}: preparing the session", path.display())]
    Binding {
        path: PathBuf,
        #[source]
        source: ort::Error,
    },
    #[error("{}: a trial run failed", path.display())]
    Trial {
        path: PathBuf,
        #[source]
        source: PolicyError,
    },
}

fn model_error(path: &Path, message: impl Into<String>) -> OnnxError {
    OnnxError::Model {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Checks that `dtype` is a float tensor `[batch, len]`; returns its name for messages.
fn check_outlet(
    path: &Path,
    what: &str,
    name: &str,
    dtype: &ValueType,
    len: usize,
    config_key: &str,
) -> Result<(), OnnxError> {
    let (ty, shape) = match dtype {
        ValueType::Tensor { ty, shape, .. } => (*ty, shape),
        other => {
            return Err(model_error(
                path,
                format!("{what} {name:?} is {other:?}, expected a float tensor"),
            ))
        }
    };
    if ty != TensorElementType::Float32 {
        return Err(model_error(
            path,
            format!("{what} {name:?} holds {ty:?}, expected float32"),
        ));
    }
    let dims: &[i64] = shape;
    let fits = match dims {
        [batch, n] => (*batch == 1 || *batch < 0) && *n == len as i64,
        [n] => *n == len as i64,
        _ => false,
    };
    if !fits {
        return Err(model_error(
            path,
            format!(
                "{what} {name:?} has shape {dims:?}, expected [batch, {len}] ({config_key} of the \
                 hw-config is {len})"
            ),
        ));
    }
    Ok(())
}

/// An ONNX model as a policy.
pub type OnnxPolicy = ImportedPolicy<OnnxModel>;

/// An ONNX model on the tick: the session and the tensors bound to it.
pub struct OnnxModel {
    session: Session,
    binding: IoBinding,
    input: Tensor<f32>,
    output_name: String,
}

impl ImportedModel for OnnxModel {
    const KIND: &'static str = "onnx";
    type Error = OnnxError;

    fn open(
        path: &Path,
        input_len: usize,
        output_len: usize,
        input_key: &str,
        output_key: &str,
    ) -> Result<Self, OnnxError> {
        let session = open_session(path, 1)?;
        let (inputs, outputs) = (session.inputs(), session.outputs());
        if inputs.len() != 1 || outputs.len() != 1 {
            return Err(model_error(
                path,
                format!(
                    "has {} inputs and {} outputs; a policy has one of each (observation in, \
                     action out)",
                    inputs.len(),
                    outputs.len()
                ),
            ));
        }
        let (input_name, output_name) = (inputs[0].name().to_owned(), outputs[0].name().to_owned());
        check_outlet(
            path,
            "input",
            &input_name,
            inputs[0].dtype(),
            input_len,
            input_key,
        )?;
        check_outlet(
            path,
            "output",
            &output_name,
            outputs[0].dtype(),
            output_len,
            output_key,
        )?;
        let backend = |source: ort::Error| OnnxError::Binding {
            path: path.to_owned(),
            source,
        };
        let allocator = Allocator::default();
        let input = Tensor::<f32>::new(&allocator, [1_usize, input_len]).map_err(backend)?;
        let output = Tensor::<f32>::new(&allocator, [1_usize, output_len]).map_err(backend)?;
        let mut binding = session.create_binding().map_err(backend)?;
        binding.bind_input(&input_name, &input).map_err(backend)?;
        binding.bind_output(&output_name, output).map_err(backend)?;
        Ok(Self {
            session,
            binding,
            input,
            output_name,
        })
    }

    fn trial_failed(path: &Path, source: PolicyError) -> OnnxError {
        OnnxError::Trial {
            path: path.to_owned(),
            source,
        }
    }

    fn act(&mut self, observation: &[f64], action: &mut [f64]) -> Result<(), PolicyError> {
        let (_, input) = self
            .input
            .try_extract_tensor_mut::<f32>()
            .map_err(|_| PolicyError::Backend(1))?;
        for (dst, src) in input.iter_mut().zip(observation) {
            *dst = *src as f32;
        }
        let outputs = self
            .session
            .run_binding(&self.binding)
            .map_err(|_| PolicyError::Backend(2))?;
        let (_, values) = outputs[self.output_name.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|_| PolicyError::Backend(3))?;
        if values.len() != action.len() {
            return Err(PolicyError::Backend(4));
        }
        for (dst, src) in action.iter_mut().zip(values) {
            *dst = f64::from(*src);
        }
        Ok(())
    }
}
