//! Policies trained elsewhere, as TorchScript modules run by libtorch through `tch`
//! (feature `tch`).
//!
//! libtorch is linked when rlrt is built: `LIBTORCH` names a libtorch folder (`include/`,
//! `lib/`); `cargo xtask setup` unpacks the CPU part of the PyPI `torch` wheel into
//! `.deps/libtorch` and `.cargo/config.toml` points there. On a Jetson, point `LIBTORCH` at
//! the libtorch of NVIDIA's PyTorch for JetPack instead.
//!
//! A TorchScript file declares no shapes, so they are checked by one trial call at load: a
//! zero observation `[1, observation length]` goes in and the result must be one floating
//! tensor of `[1, action length]` or `[action length]` values. The input's dtype is the dtype
//! of the module's parameters (float32, or float64 for a module saved in double precision).
//! A module that fails any of this is refused before the loop starts, with libtorch's reason.
//!
//! On the tick the input tensor, allocated once, is overwritten in place, gradients are off,
//! and libtorch computes on one intra-op thread (`at::set_num_threads(1)`, a process-wide
//! setting made at load: the tick has one core). libtorch allocates each call's intermediates
//! and output with its own CPU allocator, and `tch` one pointer array per call; `rlrt bench
//! policy` measures what that costs against rlrt's allocation-free checkpoint path.

use std::path::{Path, PathBuf};

use rlrt_runtime::PolicyError;
use tch::{CModule, Device, IValue, Kind, Tensor};

use crate::imported::{ImportedModel, ImportedPolicy};

/// Why a TorchScript policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TorchScriptError {
    #[error("{}: {message}", path.display())]
    Model { path: PathBuf, message: String },
    #[error("{}: cannot read", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: a trial run failed", path.display())]
    Trial {
        path: PathBuf,
        #[source]
        source: PolicyError,
    },
}

fn model_error(path: &Path, message: impl Into<String>) -> TorchScriptError {
    TorchScriptError::Model {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// libtorch's reason, without the C++ backtrace it appends (`Exception raised from ...`)
/// or the TorchScript traceback before the exception line of an error raised inside a
/// module.
fn torch_message(error: &tch::TchError) -> String {
    let text = match error {
        tch::TchError::Torch(message) => message.clone(),
        other => other.to_string(),
    };
    let text = text
        .split("\nException raised from")
        .next()
        .unwrap_or(&text);
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if text.contains("Traceback of TorchScript") {
        // The interpreter's message ends with the exception, as Python prints it.
        return lines.next_back().unwrap_or_default().to_owned();
    }
    lines.take(3).collect::<Vec<_>>().join(" / ")
}

/// What a TorchScript value is, for messages.
fn ivalue_kind(value: &IValue) -> String {
    match value {
        IValue::Tuple(items) => format!("a tuple of {}", items.len()),
        IValue::GenericList(items) => format!("a list of {}", items.len()),
        IValue::TensorList(items) => format!("a list of {} tensors", items.len()),
        IValue::GenericDict(_) => "a dict".to_owned(),
        IValue::None => "None".to_owned(),
        other => format!("{other:?}"),
    }
}

/// The float dtypes a policy can exchange with rlrt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Float {
    F32,
    F64,
}

impl Float {
    fn of(kind: Kind) -> Option<Self> {
        match kind {
            Kind::Float => Some(Float::F32),
            Kind::Double => Some(Float::F64),
            _ => None,
        }
    }

    fn kind(self) -> Kind {
        match self {
            Float::F32 => Kind::Float,
            Float::F64 => Kind::Double,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Float::F32 => "float32",
            Float::F64 => "float64",
        }
    }
}

/// The dims of `t` if it has at most two, read without allocating (`Tensor::size` returns a
/// `Vec`).
fn dims(t: &Tensor) -> Option<([i64; 2], usize)> {
    let rank = t.dim();
    if rank > 2 {
        return None;
    }
    let mut shape = [0i64; 2];
    // SAFETY: `t` is a live tensor of `rank` <= 2 dimensions; at_shape writes `rank` values.
    unsafe { torch_sys::at_shape(t.as_ptr() as *mut _, shape.as_mut_ptr()) };
    Some((shape, rank))
}

/// Whether `t` holds an action of `len` values: `[1, len]` or `[len]`.
fn is_action(t: &Tensor, len: usize) -> bool {
    match dims(t) {
        Some(([1, n], 2)) | Some(([n, _], 1)) => n == len as i64,
        _ => false,
    }
}

/// A TorchScript module as a policy.
pub type TorchScriptPolicy = ImportedPolicy<TorchScriptModel>;

/// A TorchScript module on the tick.
pub struct TorchScriptModel {
    module: CModule,
    /// `[1, input_len]`, contiguous, on the CPU, in `input_float`; written in place.
    input: Tensor,
    input_float: Float,
    output_float: Float,
    /// A float32 action before it is widened into the caller's f64 slice.
    output_f32: Vec<f32>,
    input_len: usize,
    output_len: usize,
}

impl ImportedModel for TorchScriptModel {
    const KIND: &'static str = "torchscript";
    type Error = TorchScriptError;

    fn open(
        path: &Path,
        input_len: usize,
        output_len: usize,
        input_key: &str,
        output_key: &str,
    ) -> Result<Self, TorchScriptError> {
        // libtorch's own message for a missing file is a page of C++; say it plainly.
        std::fs::metadata(path).map_err(|source| TorchScriptError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut module = CModule::load_on_device(path, Device::Cpu).map_err(|e| {
            model_error(
                path,
                format!(
                    "not a TorchScript module libtorch can load (save one with \
                     torch.jit.trace or torch.jit.script, then .save): {}",
                    torch_message(&e)
                ),
            )
        })?;
        module.f_set_eval().map_err(|e| {
            model_error(path, format!("cannot set eval mode: {}", torch_message(&e)))
        })?;
        let parameters = module.named_parameters().map_err(|e| {
            model_error(
                path,
                format!("cannot list parameters: {}", torch_message(&e)),
            )
        })?;
        let input_float = match parameters.iter().find(|(_, t)| t.is_floating_point()) {
            None => Float::F32,
            Some((name, t)) => {
                let kind = t.kind();
                Float::of(kind).ok_or_else(|| {
                    model_error(
                        path,
                        format!(
                            "parameter {name:?} is {kind:?}; rlrt runs float32 or float64 \
                             modules (convert with module.float() before saving)"
                        ),
                    )
                })?
            }
        };
        tch::set_num_threads(1);
        let input = Tensor::zeros([1, input_len as i64], (input_float.kind(), Device::Cpu));
        let returned = {
            let _no_grad = tch::no_grad_guard();
            module
                .forward_is(&[IValue::Tensor(input.shallow_clone())])
                .map_err(|e| {
                    model_error(
                        path,
                        format!(
                            "a trial call on a [1, {input_len}] {} observation failed \
                             ({input_key} of the hw-config has {input_len} values): {}",
                            input_float.name(),
                            torch_message(&e)
                        ),
                    )
                })?
        };
        let output = match returned {
            IValue::Tensor(t) => t,
            other => {
                return Err(model_error(
                    path,
                    format!(
                        "forward returned {}, not a tensor: a policy returns the action as one \
                         tensor (wrap a module that returns, say, (mean, log_std) in one whose \
                         forward returns the mean)",
                        ivalue_kind(&other)
                    ),
                ))
            }
        };
        let output_float = Float::of(output.kind()).ok_or_else(|| {
            model_error(
                path,
                format!(
                    "returns a {:?} tensor, expected float32 or float64",
                    output.kind()
                ),
            )
        })?;
        if !is_action(&output, output_len) {
            return Err(model_error(
                path,
                format!(
                    "returns shape {:?} for one observation, expected [1, {output_len}] or \
                     [{output_len}] ({output_key} of the hw-config has {output_len} values)",
                    output.size()
                ),
            ));
        }
        Ok(Self {
            module,
            input,
            input_float,
            output_float,
            output_f32: vec![0.0; output_len],
            input_len,
            output_len,
        })
    }

    fn trial_failed(path: &Path, source: PolicyError) -> TorchScriptError {
        TorchScriptError::Trial {
            path: path.to_owned(),
            source,
        }
    }

    fn act(&mut self, observation: &[f64], action: &mut [f64]) -> Result<(), PolicyError> {
        self.write_input(observation);
        let _no_grad = tch::no_grad_guard();
        let output = self
            .module
            .forward_ts(&[&self.input])
            .map_err(|_| PolicyError::Backend(2))?;
        if !is_action(&output, self.output_len) || action.len() != self.output_len {
            return Err(PolicyError::Backend(4));
        }
        match self.output_float {
            Float::F32 => {
                output
                    .f_copy_data(&mut self.output_f32, self.output_len)
                    .map_err(|_| PolicyError::Backend(3))?;
                for (dst, src) in action.iter_mut().zip(&self.output_f32) {
                    *dst = f64::from(*src);
                }
            }
            Float::F64 => output
                .f_copy_data(action, self.output_len)
                .map_err(|_| PolicyError::Backend(3))?,
        }
        Ok(())
    }
}

impl TorchScriptModel {
    /// Writes `observation` into the bound input tensor.
    fn write_input(&mut self, observation: &[f64]) {
        let n = self.input_len.min(observation.len());
        let data = self.input.data_ptr();
        match self.input_float {
            Float::F32 => {
                // SAFETY: `input` is a contiguous CPU float32 tensor of `input_len` values that
                // this policy owns and nothing else references during the write.
                let dst = unsafe { std::slice::from_raw_parts_mut(data as *mut f32, n) };
                for (d, s) in dst.iter_mut().zip(observation) {
                    *d = *s as f32;
                }
            }
            Float::F64 => {
                // SAFETY: as above, float64.
                let dst = unsafe { std::slice::from_raw_parts_mut(data as *mut f64, n) };
                dst.copy_from_slice(&observation[..n]);
            }
        }
    }
}

/// Why an actor could not be written as TorchScript.
#[derive(Debug, thiserror::Error)]
pub enum TorchScriptExportError {
    #[error(transparent)]
    Actor(#[from] crate::onnx_export::ExportError),
    #[error("libtorch: {0}")]
    Torch(String),
}

impl From<tch::TchError> for TorchScriptExportError {
    fn from(e: tch::TchError) -> Self {
        TorchScriptExportError::Torch(torch_message(&e))
    }
}

/// Writes an actor (weights and normalisation, as `rlrt train` saves them) to `path` as a
/// TorchScript module, by tracing the whole policy in libtorch:
///
/// ```text
/// observation [batch, O] -> (x - mean) / std -> linear, relu, ..., linear -> tanh
///                        -> mid + half_range * y -> action [batch, A]
/// ```
///
/// the function [`crate::checkpoint::CheckpointPolicy`] computes on the tick, in float32.
/// The weights become constants of the traced graph; the batch size is free. PyTorch loads
/// the file with `torch.jit.load`.
pub fn export_actor(
    weights: &crate::checkpoint::MlpWeights,
    normalisation: &crate::checkpoint::Normalisation,
    path: &Path,
) -> Result<(), TorchScriptExportError> {
    let (inputs, _) = crate::onnx_export::check_actor(weights, normalisation)?;
    let _no_grad = tch::no_grad_guard();
    let vector = |v: &[f64]| {
        let v: Vec<f32> = v.iter().map(|x| *x as f32).collect();
        Tensor::from_slice(&v)
    };
    let mean = vector(&normalisation.observation_mean);
    let std = vector(&normalisation.observation_std);
    let mid = vector(&normalisation.action_mid);
    let half_range = vector(&normalisation.action_half_range);
    let layers: Vec<(Tensor, Tensor)> = weights
        .layers
        .iter()
        .map(|l| {
            (
                Tensor::from_slice(&l.weight).reshape([l.outputs as i64, l.inputs as i64]),
                Tensor::from_slice(&l.bias),
            )
        })
        .collect();
    let last = layers.len() - 1;
    let example = Tensor::zeros([1, inputs as i64], (Kind::Float, Device::Cpu));
    let module = CModule::create_by_tracing("rlrt_actor", "forward", &[example], &mut |xs| {
        let mut x = (&xs[0] - &mean) / &std;
        for (k, (w, b)) in layers.iter().enumerate() {
            x = x.linear(w, Some(b));
            if k < last {
                x = x.relu();
            }
        }
        vec![x.tanh() * &half_range + &mid]
    })?;
    module.save(path)?;
    Ok(())
}
