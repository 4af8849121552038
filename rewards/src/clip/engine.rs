//! A CLIP model on the device and precision the user chose, behind one type: burn's Flex
//! backend on the CPU (f32), or with the `cuda` feature burn's CUDA backend in f32 or f16.
//! Text and image embeddings come back as f32 on the host whatever computed them.

use std::path::Path;

use rlrt_runtime::compute::{check_pair, ComputeDevice, Precision};

use super::{ClipBackend, ClipConfig, ClipError, ClipModel, CpuBackend, Resize, Rgb8};

/// burn's CUDA backend at f32 (feature `cuda`).
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Cuda<f32>;
/// burn's CUDA backend at f16 (feature `cuda`).
#[cfg(feature = "cuda")]
pub type CudaHalfBackend = burn::backend::Cuda<half::f16>;
/// burn's CUDA backend at f32 without its fusion layer: every operation is its own kernel,
/// launched as it is called (`rlrt bench clip --no-fusion` compares the two).
#[cfg(feature = "cuda")]
pub type CudaUnfusedBackend = burn_cubecl::CubeBackend<cubecl::cuda::CudaRuntime, f32, i32, u8>;
/// The same at f16.
#[cfg(feature = "cuda")]
pub type CudaHalfUnfusedBackend =
    burn_cubecl::CubeBackend<cubecl::cuda::CudaRuntime, half::f16, i32, u8>;

/// A loaded CLIP on one device.
pub enum ClipEngine {
    Cpu(ClipModel<CpuBackend>),
    #[cfg(feature = "cuda")]
    Cuda(ClipModel<CudaBackend>),
    #[cfg(feature = "cuda")]
    CudaHalf(ClipModel<CudaHalfBackend>),
}

macro_rules! each {
    ($engine:expr, $model:ident => $body:expr) => {
        match $engine {
            ClipEngine::Cpu($model) => $body,
            #[cfg(feature = "cuda")]
            ClipEngine::Cuda($model) => $body,
            #[cfg(feature = "cuda")]
            ClipEngine::CudaHalf($model) => $body,
        }
    };
}

/// What a model is built from.
#[derive(Clone, Copy)]
enum Source<'a> {
    Folder(&'a Path),
    Random(&'a ClipConfig),
}

fn build<B: ClipBackend>(
    source: Source<'_>,
    device: &B::Device,
) -> Result<ClipModel<B>, ClipError> {
    match source {
        Source::Folder(folder) => ClipModel::load(folder, device),
        Source::Random(config) => Ok(ClipModel::random(config.clone(), device)),
    }
}

impl ClipEngine {
    /// Loads a Hugging Face CLIP folder (see [`ClipModel::load`]) onto `device`.
    pub fn load(
        folder: &Path,
        device: ComputeDevice,
        precision: Precision,
    ) -> Result<Self, ClipError> {
        Self::on(Source::Folder(folder), device, precision)
    }

    /// A randomly initialised model of `config`, without tokenizer (benchmarks).
    pub fn random(
        config: &ClipConfig,
        device: ComputeDevice,
        precision: Precision,
    ) -> Result<Self, ClipError> {
        Self::on(Source::Random(config), device, precision)
    }

    fn on(
        source: Source<'_>,
        device: ComputeDevice,
        precision: Precision,
    ) -> Result<Self, ClipError> {
        check_pair(device, precision)?;
        match device {
            ComputeDevice::Cpu => Ok(ClipEngine::Cpu(build(source, &Default::default())?)),
            #[cfg(feature = "cuda")]
            ComputeDevice::Cuda(index) => rlrt_models::cuda::on_cuda(index, || {
                let d = burn::backend::cuda::CudaDevice::new(index);
                match precision {
                    Precision::F32 => build(source, &d).map(ClipEngine::Cuda),
                    Precision::F16 => build(source, &d).map(ClipEngine::CudaHalf),
                }
            })
            .map_err(ClipError::Cuda)?,
            #[cfg(not(feature = "cuda"))]
            ComputeDevice::Cuda(_) => {
                let _ = (source, precision);
                Err(ClipError::NoCudaBuild)
            }
        }
    }

    pub fn config(&self) -> &ClipConfig {
        each!(self, m => &m.config)
    }

    /// Which backend, precision and device compute the embeddings, for reports.
    pub fn describe(&self) -> String {
        match self {
            ClipEngine::Cpu(_) => "burn 0.21 Flex f32 on the CPU (1 thread)".into(),
            #[cfg(feature = "cuda")]
            ClipEngine::Cuda(m) => format!("burn 0.21 CUDA f32 on {:?}", m.device()),
            #[cfg(feature = "cuda")]
            ClipEngine::CudaHalf(m) => format!("burn 0.21 CUDA f16 on {:?}", m.device()),
        }
    }

    /// Unit-length text embeddings, one per prompt (see [`ClipModel::embed_texts`]).
    pub fn embed_texts(&self, prompts: &[&str]) -> Result<Vec<Vec<f32>>, ClipError> {
        each!(self, m => m.embed_texts(prompts))
    }

    /// Unit-length image embeddings of preprocessed frames (see [`ClipModel::embed_pixels`]).
    pub fn embed_pixels(&self, frames: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, ClipError> {
        each!(self, m => m.embed_pixels(frames))
    }

    /// Unit-length image embeddings of camera frames (see [`ClipModel::embed_frames`]).
    pub fn embed_frames(
        &self,
        frames: &[Rgb8<'_>],
        mode: Resize,
    ) -> Result<Vec<Vec<f32>>, ClipError> {
        each!(self, m => m.embed_frames(frames, mode))
    }
}

/// Anything that embeds prompts into CLIP's shared space (a model on one backend, or an
/// engine on any).
pub trait EmbedText {
    fn embed_texts(&self, prompts: &[&str]) -> Result<Vec<Vec<f32>>, ClipError>;
}

impl EmbedText for ClipEngine {
    fn embed_texts(&self, prompts: &[&str]) -> Result<Vec<Vec<f32>>, ClipError> {
        ClipEngine::embed_texts(self, prompts)
    }
}

impl<B: ClipBackend> EmbedText for ClipModel<B> {
    fn embed_texts(&self, prompts: &[&str]) -> Result<Vec<Vec<f32>>, ClipError> {
        ClipModel::embed_texts(self, prompts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clip::Preset;

    #[test]
    fn half_precision_and_cuda_are_refused_with_the_reason() {
        let config = ClipConfig::preset(Preset::VitB32);
        let Err(e) = ClipEngine::random(&config, ComputeDevice::Cpu, Precision::F16) else {
            panic!("f16 on the CPU was accepted");
        };
        assert!(e.to_string().contains("needs a CUDA device"), "{e}");
        #[cfg(not(feature = "cuda"))]
        {
            let Err(e) = ClipEngine::random(&config, ComputeDevice::Cuda(0), Precision::F32) else {
                panic!("CUDA accepted without the feature");
            };
            assert!(e.to_string().contains("built without CUDA"), "{e}");
        }
    }
}
