//! `kind = "classifier"`: any ONNX model that maps a camera frame to a success probability,
//! thresholded to a sparse reward; and `kind = "preference_model"`: the same kind of model
//! whose one output is the reward itself (any finite value), such as a reward model fitted to
//! preference labels (`rlrt reward train-preferences`). The model's one input is either
//!
//! - float32 `[1 or batch, C, H, W]` (channels first), pixel values scaled to [0, 1], or
//! - uint8 `[1 or batch, H, W, C]` (channels last), the frame's bytes as they are,
//!
//! with C = 3 for an `rgb8` camera and 1 for `mono8`; H and W are the camera's (or symbolic).
//! Its one output is float32 with one value per frame (`[1]`, `[1, 1]`, `[batch]`, ...): the
//! probability that the frame shows success. Everything is checked at load against the
//! hw-config's camera, so a mismatch stops the run before it starts.
//!
//! A model may also read a sentence (the source's `goal`): an int64 (or int32) input
//! `[1, L]` of token ids, and optionally a second one whose name contains `mask` (1 for each
//! token, 0 for padding). Ids come from CLIP's byte-level BPE tokenizer, read from
//! `vocab.json` and `merges.txt` beside the model, with start and end tokens, truncated to
//! L and padded with the end token (as transformers' `CLIPTokenizer` pads); with a symbolic
//! L they are not padded. They are computed once, at load.

use std::path::{Path, PathBuf};

use ort::session::{Session, SessionInputValue};
use ort::value::{Tensor, TensorElementType, ValueType};
use rlrt_runtime::config::{CameraSpec, ImageEncoding};

/// How the model wants its pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// float32, channels first, values in [0, 1].
    NchwF32,
    /// uint8, channels last, raw bytes.
    NhwcU8,
}

/// What a model's one output value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// A success probability in [0, 1] (classifiers).
    Probability,
    /// A reward: any finite value (reward models).
    Reward,
}

/// A loaded classifier (or reward model) for one camera.
pub struct OnnxClassifier {
    output: Output,
    session: Session,
    input_name: String,
    /// The sentence's inputs: (name, element type, values), fed with every frame.
    text: Vec<(String, TensorElementType, Vec<i64>)>,
    layout: Layout,
    channels: usize,
    width: usize,
    height: usize,
}

/// Why a frame model cannot be used for a camera.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Session(#[from] rlrt_models::ort::SessionError),
    #[error("camera {camera:?} sends {encoding} frames; a classifier reward reads rgb8 or mono8")]
    Encoding {
        camera: String,
        encoding: &'static str,
    },
    /// The model's inputs, outputs or text do not fit the camera or the source.
    #[error("{}: {message}", path.display())]
    Unfit { path: PathBuf, message: String },
    #[error("{}: the model reads a sentence", path.display())]
    Tokenizer {
        path: PathBuf,
        #[source]
        source: crate::clip::ClipError,
    },
    #[error("{}: a trial run on a black frame failed", path.display())]
    Trial {
        path: PathBuf,
        #[source]
        source: ScoreError,
    },
}

fn model_error(path: &Path, message: impl std::fmt::Display) -> ModelError {
    ModelError::Unfit {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// Why one frame could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("frame has {got} bytes, expected {want}")]
    FrameSize { got: usize, want: usize },
    #[error("ONNX Runtime: {0}")]
    Run(#[from] ort::Error),
    #[error("the model gave {0}")]
    NotFinite(f32),
    #[error("the model gave {0}, not a probability in [0, 1] (end the model with a sigmoid)")]
    NotProbability(f32),
    #[error("the model gave {0} values for one frame, expected 1")]
    Values(usize),
}

impl OnnxClassifier {
    /// Loads `path` for frames of `camera`, with `text` for a model that reads a sentence;
    /// runs it once on a black frame.
    pub fn load(path: &Path, camera: &CameraSpec, text: Option<&str>) -> Result<Self, ModelError> {
        Self::load_as(path, camera, text, Output::Probability)
    }

    /// As [`OnnxClassifier::load`], for a model whose output is a reward (any finite value).
    pub fn load_reward(
        path: &Path,
        camera: &CameraSpec,
        text: Option<&str>,
    ) -> Result<Self, ModelError> {
        Self::load_as(path, camera, text, Output::Reward)
    }

    fn load_as(
        path: &Path,
        camera: &CameraSpec,
        text: Option<&str>,
        output: Output,
    ) -> Result<Self, ModelError> {
        let channels = match camera.encoding {
            ImageEncoding::Rgb8 => 3,
            ImageEncoding::Mono8 => 1,
            other => {
                return Err(ModelError::Encoding {
                    camera: camera.name.clone(),
                    encoding: other.as_str(),
                })
            }
        };
        // As many intra-op threads as the CPU pool has (`--threads`; all cores but the
        // loop's for `run`): frame rewards are scored off the tick.
        let session = rlrt_models::ort::open_session(path, rayon::current_num_threads())?;
        let (inputs, outputs) = (session.inputs(), session.outputs());
        let int_type = |ty: &ValueType| match ty {
            ValueType::Tensor { ty, shape, .. }
                if matches!(ty, TensorElementType::Int64 | TensorElementType::Int32)
                    && shape.len() == 2 =>
            {
                Some((*ty, shape[1]))
            }
            _ => None,
        };
        let images: Vec<_> = inputs
            .iter()
            .filter(|i| int_type(i.dtype()).is_none())
            .collect();
        let texts: Vec<_> = inputs
            .iter()
            .filter(|i| int_type(i.dtype()).is_some())
            .collect();
        let masks = texts.iter().filter(|i| i.name().contains("mask")).count();
        if images.len() != 1
            || outputs.len() != 1
            || texts.len() > 2
            || texts.len() - masks > 1
            || masks > 1
        {
            return Err(model_error(
                path,
                format!(
                    "has inputs {:?} and {} outputs; a classifier has one image input, optionally \
                     token ids [1, L] (int64) and an attention mask, and one probability output",
                    inputs.iter().map(|i| i.name()).collect::<Vec<_>>(),
                    outputs.len()
                ),
            ));
        }
        let text = match (texts.is_empty(), text) {
            (true, None) => Vec::new(),
            (true, Some(_)) => {
                return Err(model_error(
                    path,
                    "the source has a goal sentence, but the model reads no text (no int64 \
                     [1, L] input); remove `goal`",
                ))
            }
            (false, None) => {
                return Err(model_error(
                    path,
                    "the model reads a sentence (token ids); give the source a `goal`",
                ))
            }
            (false, Some(sentence)) => {
                let ids_input = texts
                    .iter()
                    .find(|i| !i.name().contains("mask"))
                    .ok_or_else(|| model_error(path, "an attention mask without token ids"))?;
                let (_, len) = int_type(ids_input.dtype()).expect("an int input");
                let folder = path.parent().unwrap_or(Path::new("."));
                let context = if len > 0 { len as usize } else { 77 };
                let tokenizer =
                    crate::clip::Tokenizer::from_folder(folder, context).map_err(|source| {
                        ModelError::Tokenizer {
                            path: path.to_owned(),
                            source,
                        }
                    })?;
                let ids = if len > 0 {
                    tokenizer.encode_padded(sentence)
                } else {
                    tokenizer.encode(sentence)
                }
                .map_err(|source| ModelError::Tokenizer {
                    path: path.to_owned(),
                    source,
                })?;
                let real = tokenizer
                    .encode(sentence)
                    .map_err(|source| ModelError::Tokenizer {
                        path: path.to_owned(),
                        source,
                    })?
                    .len();
                texts
                    .iter()
                    .map(|i| {
                        let (ty, _) = int_type(i.dtype()).expect("an int input");
                        let values: Vec<i64> = if i.name().contains("mask") {
                            (0..ids.len()).map(|k| i64::from(k < real)).collect()
                        } else {
                            ids.iter().map(|v| i64::from(*v)).collect()
                        };
                        (i.name().to_owned(), ty, values)
                    })
                    .collect()
            }
        };
        let input_name = images[0].name().to_owned();
        let (ty, dims) = match images[0].dtype() {
            ValueType::Tensor { ty, shape, .. } => (*ty, shape.to_vec()),
            other => {
                return Err(model_error(
                    path,
                    format!("input {input_name:?} is {other:?}, expected an image tensor"),
                ))
            }
        };
        let (w, h) = (camera.width as i64, camera.height as i64);
        let c = channels as i64;
        let fits = |got: i64, want: i64| got < 0 || got == want;
        let layout = match (ty, dims.as_slice()) {
            (TensorElementType::Float32, [n, dc, dh, dw])
                if fits(*n, 1) && fits(*dc, c) && fits(*dh, h) && fits(*dw, w) =>
            {
                Layout::NchwF32
            }
            (TensorElementType::Uint8, [n, dh, dw, dc])
                if fits(*n, 1) && fits(*dh, h) && fits(*dw, w) && fits(*dc, c) =>
            {
                Layout::NhwcU8
            }
            _ => {
                return Err(model_error(
                    path,
                    format!(
                        "input {input_name:?} is {ty:?} {dims:?}; camera {:?} ({} x {} {}) needs \
                         float32 [1, {c}, {h}, {w}] (values in [0, 1]) or uint8 [1, {h}, {w}, {c}]",
                        camera.name,
                        camera.width,
                        camera.height,
                        camera.encoding.as_str()
                    ),
                ))
            }
        };
        match outputs[0].dtype() {
            ValueType::Tensor {
                ty: TensorElementType::Float32,
                shape,
                ..
            } if shape.iter().all(|d| *d == 1 || *d < 0) => {}
            other => {
                return Err(model_error(
                    path,
                    format!(
                        "output {:?} is {other:?}; expected float32 with one {} per frame, \
                         such as [1, 1]",
                        outputs[0].name(),
                        match output {
                            Output::Probability => "probability",
                            Output::Reward => "reward",
                        }
                    ),
                ))
            }
        }
        let mut classifier = Self {
            output,
            session,
            input_name,
            text,
            layout,
            channels,
            width: camera.width as usize,
            height: camera.height as usize,
        };
        let black = vec![0u8; classifier.frame_len()];
        classifier
            .score(&black)
            .map_err(|source| ModelError::Trial {
                path: path.to_owned(),
                source,
            })?;
        Ok(classifier)
    }

    fn frame_len(&self) -> usize {
        self.width * self.height * self.channels
    }

    /// The success probability of one frame (the camera's bytes, rows top first); for a
    /// model loaded with [`OnnxClassifier::load_reward`], its reward.
    pub fn probability(&mut self, frame: &[u8]) -> Result<f64, ScoreError> {
        self.score(frame)
    }

    /// The model's output for one frame, checked: a probability in [0, 1], or a finite
    /// reward.
    pub fn score(&mut self, frame: &[u8]) -> Result<f64, ScoreError> {
        if frame.len() != self.frame_len() {
            return Err(ScoreError::FrameSize {
                got: frame.len(),
                want: self.frame_len(),
            });
        }
        let (h, w, c) = (self.height, self.width, self.channels);
        let run = ScoreError::Run;
        let image: SessionInputValue<'_> = match self.layout {
            Layout::NchwF32 => {
                let mut planes = vec![0.0f32; frame.len()];
                for (i, px) in frame.chunks_exact(c).enumerate() {
                    for (ch, v) in px.iter().enumerate() {
                        planes[ch * h * w + i] = f32::from(*v) / 255.0;
                    }
                }
                Tensor::from_array(([1, c, h, w], planes))
                    .map_err(run)?
                    .into()
            }
            Layout::NhwcU8 => Tensor::from_array(([1, h, w, c], frame.to_vec()))
                .map_err(run)?
                .into(),
        };
        let mut inputs: Vec<(String, SessionInputValue<'_>)> =
            vec![(self.input_name.clone(), image)];
        for (name, ty, values) in &self.text {
            let shape = [1, values.len()];
            let value: SessionInputValue<'_> = if *ty == TensorElementType::Int32 {
                let v: Vec<i32> = values.iter().map(|x| *x as i32).collect();
                Tensor::from_array((shape, v)).map_err(run)?.into()
            } else {
                Tensor::from_array((shape, values.clone()))
                    .map_err(run)?
                    .into()
            };
            inputs.push((name.clone(), value));
        }
        let outputs = self.session.run(inputs).map_err(run)?;
        let (_, values) = outputs[0].try_extract_tensor::<f32>().map_err(run)?;
        match values {
            [r] if self.output == Output::Reward && r.is_finite() => Ok(f64::from(*r)),
            [r] if self.output == Output::Reward => Err(ScoreError::NotFinite(*r)),
            [p] if (0.0..=1.0).contains(p) => Ok(f64::from(*p)),
            [p] => Err(ScoreError::NotProbability(*p)),
            other => Err(ScoreError::Values(other.len())),
        }
    }
}
