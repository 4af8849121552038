//! CLIP (Radford et al., 2021) in burn, for zero-shot rewards (VLM-RM): load a Hugging Face
//! CLIP folder, tokenize prompts, preprocess camera frames and embed both into the shared space.
//! The embeddings feed `crate::vlm_rm`.
//!
//! Conformance with transformers 5 (token ids, pixels, embeddings) is tested against fixtures
//! made by `rewards/tests/fixtures/clip/make_fixtures.py`; see docs/clip.md.

pub mod config;
pub mod engine;
pub mod hub;
pub mod kernels;
pub mod model;
pub mod preprocess;
pub mod tokenizer;
pub mod weights;

use std::path::{Path, PathBuf};

use burn::prelude::*;

pub use config::{Activation, ClipConfig, Preset};
pub use engine::{ClipEngine, EmbedText};
pub use kernels::ClipBackend;
pub use model::Clip;
pub use preprocess::{Resize, Rgb8};
pub use tokenizer::Tokenizer;

/// The CPU backend CLIP runs on: burn's Flex (matrix products through the `gemm` crate, which
/// picks AVX-512, AVX2 or NEON kernels at run time; one thread, no rayon). On ViT-B/32 it is
/// about twice as fast as burn's NdArray (matrixmultiply, AVX2 at most); see docs/clip.md.
pub type CpuBackend = burn::backend::Flex;

/// Why a CLIP folder, prompt or frame cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error("cannot read {}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", file.display())]
    Write {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: not a CLIP config.json")]
    ConfigJson {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{file}: {message}")]
    Config { file: String, message: String },
    #[error("{}: not a safetensors file", file.display())]
    Checkpoint {
        file: PathBuf,
        #[source]
        source: safetensors::SafeTensorError,
    },
    #[error("{}: tensor {tensor} is missing (expected shape {expected:?})", file.display())]
    MissingTensor {
        file: PathBuf,
        tensor: String,
        expected: Vec<usize>,
    },
    #[error("{}: tensor {tensor} has shape {found:?}, expected {expected:?}", file.display())]
    TensorShape {
        file: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{}: tensor {tensor} has dtype {found}, expected F32, F16 or BF16", file.display())]
    TensorDtype {
        file: PathBuf,
        tensor: String,
        found: String,
    },
    #[error("{}: expected a JSON object of token to id", file.display())]
    VocabJson {
        file: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {message}", file.display())]
    TokenizerFile { file: PathBuf, message: String },
    #[error("the prompt is empty: a reward needs a sentence describing the goal")]
    EmptyPrompt,
    #[error("image: {0}")]
    Image(String),
    #[error("{}: not a readable PNG", file.display())]
    Png {
        file: PathBuf,
        #[source]
        source: png::DecodingError,
    },
    #[error(transparent)]
    Score(#[from] crate::vlm_rm::ScoreError),
    /// Half precision asked of the CPU.
    #[error(transparent)]
    Precision(#[from] rlrt_runtime::compute::HalfOffGpu),
    /// The CUDA device could not be used.
    #[error(transparent)]
    Cuda(#[from] rlrt_models::cuda::CudaError),
    /// CUDA was asked of a build without it.
    #[error(
        "device: this rlrt was built without CUDA: rebuild with `--features cuda` (see \
         docs/cuda.md)"
    )]
    NoCudaBuild,
    /// A malformed `hf:` id or no cache folder.
    #[error("hf:{id}: {message}")]
    Hub { id: String, message: String },
    /// The Hub model is not cached and could not be downloaded.
    #[error(
        "hf:{id}: not in the Hugging Face cache ({}) and {url} failed; download the model where \
         the Hub is reachable (huggingface-cli download {id}) and copy the cache, or pass the \
         model's folder",
        cache.display()
    )]
    HubUnreachable {
        id: String,
        cache: PathBuf,
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The Hub answered a download with an HTTP error.
    #[error(
        "hf:{id}: not in the Hugging Face cache ({}) and {url} answered HTTP {status}; download \
         the model where the Hub is reachable (huggingface-cli download {id}) and copy the \
         cache, or pass the model's folder",
        cache.display()
    )]
    HubStatus {
        id: String,
        cache: PathBuf,
        url: String,
        status: u16,
    },
}

/// A VLM-RM reward of one frame and what it was computed from.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ClipReward {
    /// 1 - 0.5 |P(s - g)|^2 (see `crate::vlm_rm`); the cosine similarity to the goal without a
    /// baseline.
    pub reward: f64,
    /// Cosine similarity of the frame and the goal prompt.
    pub goal_similarity: f64,
    /// Cosine similarity of the frame and the baseline prompt, if one was given.
    pub baseline_similarity: Option<f64>,
    pub alpha: f64,
}

/// The reward of one frame for a goal prompt, optionally sharpened by a baseline prompt with
/// weight `alpha` (Rocamonde et al., 2023, goal-baseline regularisation).
pub fn reward<B: ClipBackend>(
    model: &ClipModel<B>,
    frame: Rgb8<'_>,
    mode: Resize,
    goal: &str,
    baseline: Option<&str>,
    alpha: f64,
) -> Result<ClipReward, ClipError> {
    let goal = ClipGoal::new(model, goal, baseline, alpha)?;
    let image = model.embed_frames(&[frame], mode)?.remove(0);
    goal.score(&image)
}

/// A goal (and optional baseline) sentence embedded once, scoring any number of image
/// embeddings of the same model.
#[derive(Clone, Debug)]
pub struct ClipGoal {
    goal: Vec<f32>,
    baseline: Option<(Vec<f32>, crate::vlm_rm::GoalBaselineReward)>,
    alpha: f64,
}

impl ClipGoal {
    /// Embeds the prompts with `model`'s text tower.
    pub fn new(
        model: &impl EmbedText,
        goal: &str,
        baseline: Option<&str>,
        alpha: f64,
    ) -> Result<Self, ClipError> {
        let prompts: Vec<&str> = std::iter::once(goal).chain(baseline).collect();
        let mut texts = model.embed_texts(&prompts)?;
        let baseline = match baseline {
            None => None,
            Some(_) => {
                let b = texts.pop().expect("two prompts embedded");
                let scorer = crate::vlm_rm::GoalBaselineReward::new(&texts[0], &b, alpha)?;
                Some((b, scorer))
            }
        };
        let alpha = if baseline.is_some() { alpha } else { 0.0 };
        Ok(Self {
            goal: texts.swap_remove(0),
            baseline,
            alpha,
        })
    }

    /// The reward of one image embedding.
    pub fn score(&self, image: &[f32]) -> Result<ClipReward, ClipError> {
        let goal_similarity = crate::vlm_rm::cosine_reward(image, &self.goal)?;
        Ok(match &self.baseline {
            None => ClipReward {
                reward: goal_similarity,
                goal_similarity,
                baseline_similarity: None,
                alpha: 0.0,
            },
            Some((baseline, scorer)) => ClipReward {
                reward: scorer.score(image)?,
                goal_similarity,
                baseline_similarity: Some(crate::vlm_rm::cosine_reward(image, baseline)?),
                alpha: self.alpha,
            },
        })
    }
}

/// A loaded CLIP: both towers, the tokenizer and the input size.
pub struct ClipModel<B: Backend> {
    pub config: ClipConfig,
    pub model: Clip<B>,
    pub tokenizer: Option<Tokenizer>,
    device: B::Device,
}

impl<B: ClipBackend> ClipModel<B> {
    /// Loads `config.json`, `model.safetensors`, `vocab.json` and `merges.txt` from a Hugging
    /// Face CLIP folder (as `save_pretrained` or a hub download lays it out), or from the
    /// Hub model `hf:<owner>/<name>` (see [`hub::locate`]).
    pub fn load(folder: &Path, device: &B::Device) -> Result<Self, ClipError> {
        let folder = &hub::locate(folder)?;
        let config_file = folder.join("config.json");
        let text = std::fs::read_to_string(&config_file).map_err(|source| ClipError::Read {
            file: config_file.clone(),
            source,
        })?;
        let config = ClipConfig::from_hf_json(&text, &config_file.display().to_string())?;
        let tokenizer = Tokenizer::from_folder(folder, config.text.max_positions)?;
        let checkpoint = weights::Checkpoint::read(&folder.join("model.safetensors"))?;
        let model = Clip::build(&config, &mut checkpoint.source::<B>(device))?;
        Ok(Self {
            config,
            model,
            tokenizer: Some(tokenizer),
            device: device.clone(),
        })
    }

    /// A randomly initialised model of `config`, without tokenizer (benchmarks).
    pub fn random(config: ClipConfig, device: &B::Device) -> Self {
        let Ok(model) = Clip::build(&config, &mut model::RandomInit::<B> { device });
        Self {
            config,
            model,
            tokenizer: None,
            device: device.clone(),
        }
    }

    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Token ids of each prompt (start and end tokens included, not padded).
    pub fn tokenize(&self, prompts: &[&str]) -> Result<Vec<Vec<u32>>, ClipError> {
        let tokenizer = self
            .tokenizer
            .as_ref()
            .ok_or_else(|| ClipError::TokenizerFile {
                file: PathBuf::from("vocab.json"),
                message: "this model was built without a tokenizer".into(),
            })?;
        prompts.iter().map(|p| tokenizer.encode(p)).collect()
    }

    /// Unit-length text embeddings, one per prompt.
    pub fn embed_texts(&self, prompts: &[&str]) -> Result<Vec<Vec<f32>>, ClipError> {
        let mut ids = self.tokenize(prompts)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Pad to the longest prompt of the batch: the causal mask keeps padding out of every
        // position up to the end token, where the text is pooled.
        let longest = ids.iter().map(Vec::len).max().unwrap_or(0);
        let pad = self.config.text.eos_token_id;
        for seq in &mut ids {
            seq.resize(longest, pad);
        }
        Ok(unit_rows(self.model.text.forward(&ids)))
    }

    /// Unit-length image embeddings of preprocessed frames ([3, size, size] each, flattened).
    pub fn embed_pixels(&self, frames: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, ClipError> {
        let size = self.config.vision.image_size;
        if frames.is_empty() {
            return Ok(Vec::new());
        }
        let mut flat = Vec::with_capacity(frames.len() * 3 * size * size);
        for f in frames {
            if f.len() != 3 * size * size {
                return Err(ClipError::Image(format!(
                    "preprocessed frame has {} values, expected 3 x {size} x {size}",
                    f.len()
                )));
            }
            flat.extend_from_slice(f);
        }
        let pixels = Tensor::<B, 4>::from_data(
            TensorData::new(flat, [frames.len(), 3, size, size]),
            &self.device,
        );
        Ok(unit_rows(self.model.vision.forward(pixels)))
    }

    /// Unit-length image embeddings of camera frames.
    pub fn embed_frames(
        &self,
        frames: &[Rgb8<'_>],
        mode: Resize,
    ) -> Result<Vec<Vec<f32>>, ClipError> {
        let size = self.config.vision.image_size;
        let pixels = frames
            .iter()
            .map(|f| preprocess::preprocess(*f, size, mode))
            .collect::<Result<Vec<_>, _>>()?;
        self.embed_pixels(&pixels)
    }
}

/// Rows of a [batch, dim] tensor scaled to unit length (in f64, so the scaling adds no error).
fn unit_rows<B: Backend>(t: Tensor<B, 2>) -> Vec<Vec<f32>> {
    let [_, dim] = t.dims();
    let values = t
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 after convert");
    values
        .chunks(dim)
        .map(|row| {
            let norm = row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
            row.iter().map(|v| (*v as f64 / norm) as f32).collect()
        })
        .collect()
}
