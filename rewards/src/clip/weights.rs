//! Reads a Hugging Face `model.safetensors` by HF's tensor names. F32, F16 and BF16 tensors
//! are accepted (released checkpoints come in all three) and widened to f32. Every tensor the
//! config implies must be present with exactly the implied shape; extra tensors (`logit_scale`,
//! `position_ids`) are ignored.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use safetensors::{Dtype, SafeTensors};

use super::model::TensorSource;
use super::ClipError;

/// A checkpoint file held in memory.
pub struct Checkpoint {
    file: PathBuf,
    bytes: Vec<u8>,
}

impl Checkpoint {
    pub fn read(file: &Path) -> Result<Self, ClipError> {
        let bytes = std::fs::read(file).map_err(|source| ClipError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        // Parse once here so a damaged header is reported before any tensor is asked for.
        SafeTensors::deserialize(&bytes).map_err(|source| ClipError::Checkpoint {
            file: file.to_path_buf(),
            source,
        })?;
        Ok(Self {
            file: file.to_path_buf(),
            bytes,
        })
    }

    /// A `TensorSource` that puts tensors on `device`.
    pub fn source<'a, B: Backend>(&'a self, device: &'a B::Device) -> CheckpointSource<'a, B> {
        CheckpointSource {
            file: &self.file,
            tensors: SafeTensors::deserialize(&self.bytes).expect("checked in Checkpoint::read"),
            device,
        }
    }
}

pub struct CheckpointSource<'a, B: Backend> {
    file: &'a Path,
    tensors: SafeTensors<'a>,
    device: &'a B::Device,
}

fn widen(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    match dtype {
        Dtype::F32 => Some(
            data.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
        Dtype::F16 => Some(
            data.chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        ),
        Dtype::BF16 => Some(
            data.chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        ),
        _ => None,
    }
}

impl<B: Backend> TensorSource<B> for CheckpointSource<'_, B> {
    type Error = ClipError;

    fn tensor<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<B, D>, ClipError> {
        let view = self
            .tensors
            .tensor(name)
            .map_err(|_| ClipError::MissingTensor {
                file: self.file.to_path_buf(),
                tensor: name.to_string(),
                expected: shape.to_vec(),
            })?;
        if view.shape() != shape {
            return Err(ClipError::TensorShape {
                file: self.file.to_path_buf(),
                tensor: name.to_string(),
                expected: shape.to_vec(),
                found: view.shape().to_vec(),
            });
        }
        let values = widen(view.dtype(), view.data()).ok_or_else(|| ClipError::TensorDtype {
            file: self.file.to_path_buf(),
            tensor: name.to_string(),
            found: format!("{:?}", view.dtype()),
        })?;
        Ok(Tensor::from_data(
            TensorData::new(values, shape),
            self.device,
        ))
    }
}
